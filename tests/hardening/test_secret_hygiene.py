"""Secret hygiene: API keys and endpoint secrets appear in no repr, str, exception, log record or CLI output.

The root ``tests/conftest.py`` checks every test's log records; these tests drive the
public API, the receiving side and the CLI with known secrets (and failures of every
kind) and check everything a user could see, and prove the suite-wide check itself works.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fullstory_async import (
    APIStatusError,
    Client,
    CreateEndpointRequest,
    DesiredEndpoint,
    DesiredState,
    FullstoryError,
    RetryPolicy,
    UpdateEndpointRequest,
    parse_desired_state,
)
from fullstory_async.cli import main
from fullstory_async.receiving import SignatureVerificationError, WebhookReceiver, sign, verify
from fullstory_async.testing import FakeFullstory, Fault
from tests.fakes import ServedFake

T = TypeVar("T")

KEY = "na1.HygieneAdminKey-Pq9vLx/ORG5"
READ_ONLY_KEY = "na1.HygieneReadOnlyKey-Wd3s/ORG5"
WRONG_KEY = "na1.HygieneWrongKey-Zz8u/ORG5"
SECRET = "HygieneSecret-Ab12Cd34"
NEW_SECRET = "HygieneSecret-Rotated-Ef56"
ALL_KNOWN = (KEY, READ_ONLY_KEY, WRONG_KEY, SECRET, NEW_SECRET)


def assert_clean(texts: list[str], secrets: tuple[str, ...] | set[str] = ALL_KNOWN) -> None:
    """No secret appears in any of ``texts``."""
    assert texts
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:4]}...) appears in: {text[:300]!r}"


def error_texts(error: BaseException) -> list[str]:
    """Everything an exception shows: str, repr, args and the formatted traceback (causes included)."""
    return [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]


# -- the suite-wide check itself ------------------------------------------------------------------


@pytest.mark.secrets_in_logs
def test_the_watch_learns_secrets_and_finds_them_in_any_logger(secret_watch: Any) -> None:
    """Secrets met by the SDK are learned; a record of any logger holding one is reported, redacted."""
    request = CreateEndpointRequest(url="https://example.com/hook", secret=SECRET)
    Client(KEY)
    assert {SECRET, KEY} <= secret_watch.secrets
    logging.getLogger("some.library").debug("payload: %s", json.dumps({"secret": request.secret}))
    try:
        raise RuntimeError(f"auth failed for {KEY}")
    except RuntimeError:
        logging.getLogger("another.library").warning("request failed", exc_info=True)
    leaks = secret_watch.leaks()
    assert len(leaks) == 2
    assert leaks[0].startswith("some.library DEBUG")
    assert leaks[1].startswith("another.library WARNING")
    assert all(SECRET not in leak and KEY not in leak for leak in leaks)


def test_a_test_that_leaks_fails_at_teardown(tmp_path: Path) -> None:
    """Run pytest on a leaking test with the root conftest: it errors at teardown; the opted-out one passes."""
    (tmp_path / "conftest.py").write_text((Path(__file__).parents[1] / "conftest.py").read_text())
    (tmp_path / "test_leak.py").write_text(
        textwrap.dedent(
            """
            import logging

            import pytest

            from fullstory_async import CreateEndpointRequest


            def test_leaks():
                request = CreateEndpointRequest(url="https://example.com/a", secret="LeakedSecret-111")
                logging.getLogger("thirdparty").debug("sending secret=%s", request.secret)


            @pytest.mark.secrets_in_logs
            def test_leaks_on_purpose():
                request = CreateEndpointRequest(url="https://example.com/a", secret="LeakedSecret-222")
                logging.getLogger("thirdparty").debug("sending secret=%s", request.secret)


            def test_clean():
                CreateEndpointRequest(url="https://example.com/a", secret="LeakedSecret-333")
                logging.getLogger("thirdparty").debug("sending a request")
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "3 passed, 1 error" in output, output
    assert "ERROR at teardown of test_leaks" in output
    assert "a secret used in this test reached a log record" in output
    assert "thirdparty DEBUG" in output
    assert "Lea...(16 chars)" in output


# -- the public API ---------------------------------------------------------------------------------


async def test_public_api_shows_no_key_or_secret_anywhere() -> None:
    """Through retries, rate limits, resets, every error status and bulk jobs: no repr, str or traceback shows one."""
    texts: list[str] = []
    async with FakeFullstory(api_key=KEY, read_only_api_key=READ_ONLY_KEY) as fake:
        fake.faults.add(Fault.too_many_requests(retry_after=0.01), route="create_endpoint", times=1)
        fake.faults.add(Fault.connection_reset(), route="get_endpoint", times=1)
        request = CreateEndpointRequest(url="https://example.com/hook", event_types=["note.created"], secret=SECRET)
        update = UpdateEndpointRequest(secret=NEW_SECRET, enabled=False)
        texts += [repr(request), str(request), repr(update), repr(fake), repr(fake.faults)]
        async with fake.client(retry=RetryPolicy(wait=False)) as client:
            texts += [repr(client), repr(client.webhooks), repr(vars(client)), repr(client.governor)]
            endpoint = await client.webhooks.create_endpoint(request)
            texts += [repr(endpoint), repr(await client.webhooks.get_endpoint(endpoint.id))]
            texts.append(repr(await client.webhooks.update_endpoint(endpoint, update)))
            for failing in (
                client.webhooks.create_endpoint(request),  # 400: the URL exists
                client.webhooks.get_endpoint("missing"),  # 404
            ):
                with pytest.raises(APIStatusError) as info:
                    await failing
                texts += error_texts(info.value)
            fake.faults.add(Fault.server_error_after_commit(), route="update_endpoint", times=1)
            with pytest.raises(FullstoryError) as failed:
                await client.webhooks.update_endpoint(endpoint, update)
            texts += error_texts(failed.value)
            fake.faults.add(Fault.connection_reset_after_commit(), route="create_endpoint", times=1)
            other = CreateEndpointRequest(url="https://example.com/other", secret=SECRET)
            with pytest.raises(FullstoryError) as failed:
                await client.webhooks.create_endpoint(other)
            texts += error_texts(failed.value)
            results = [r async for r in client.webhooks.provision([request, other, "not a request"])]  # type: ignore[list-item]
            texts += [repr(r) for r in results] + [str(r.error) for r in results if r.error]
            desired = DesiredState((DesiredEndpoint("https://example.com/new", secret=SECRET),))
            plan = await client.webhooks.plan(desired, rotate_secrets=True)
            texts += [repr(plan)] + [repr(r) async for r in client.webhooks.apply(plan)]
        for key, expected in ((WRONG_KEY, "401"), (READ_ONLY_KEY, "403")):
            async with fake.client(api_key=key, retry=RetryPolicy(wait=False)) as client:
                with pytest.raises(APIStatusError, match=expected) as info:
                    await client.webhooks.create_endpoint(request)
                texts += error_texts(info.value)
        texts += [repr(list(fake.requests)), repr(fake.endpoints)]
    assert_clean(texts)


def test_bad_input_never_echoes_a_secret() -> None:
    """A secret rejected for its content, or a key rejected for its shape, is not repeated in the error."""
    for build in (
        lambda: CreateEndpointRequest(url="https://example.com/a", secret=SECRET + "\n"),
        lambda: UpdateEndpointRequest(secret=SECRET + "\x00"),
        lambda: Client(KEY + " tail"),
        lambda: Client(f"Basic {KEY}\x7f"),
    ):
        with pytest.raises(FullstoryError) as info:
            build()
        assert_clean(error_texts(info.value))


def test_desired_state_parse_errors_never_echo_a_secret() -> None:
    """A literal secret in a desired-state file is refused without repeating it; secret_env values stay hidden."""
    with pytest.raises(FullstoryError) as info:
        parse_desired_state(f'[[endpoints]]\nurl = "https://example.com/a"\nsecret = "{SECRET}"\n')
    assert_clean(error_texts(info.value))
    state = parse_desired_state(
        '[[endpoints]]\nurl = "https://example.com/a"\nsecret_env = "HOOK"\n', environ={"HOOK": SECRET}
    )
    assert state.endpoints[0].secret == SECRET
    assert_clean([repr(state), str(state)])


def test_receiving_shows_no_secret() -> None:
    """The receiver's repr and every verification failure keep the endpoint secrets to themselves."""
    body = b'{"eventName": "note.created", "version": 1, "data": {}}'
    header = sign(body, SECRET, "ORG5")
    texts = [repr(WebhookReceiver([SECRET, NEW_SECRET], lambda event: None)), header]
    for secrets, signed in (([NEW_SECRET], header), ([SECRET], header + "x"), ([SECRET], "garbage")):
        with pytest.raises(SignatureVerificationError) as info:
            verify(body, signed, secrets, tolerance=None)
        texts += error_texts(info.value)
    assert_clean(texts)


# -- the CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put a wrong key and the endpoint secrets in the environment (``served`` puts in its admin key)."""
    monkeypatch.setenv("WRONG_KEY", WRONG_KEY)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("NEW_HOOK_SECRET", NEW_SECRET)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_output_shows_no_key_or_secret(
    served: ServedFake, cli_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, secret_watch: Any
) -> None:
    """Every command, in text and JSON, at -vv, with failures: stdout and stderr hold no key and no secret."""
    base = ["--base-url", served.fake.url]
    jsonl = tmp_path / "endpoints.jsonl"
    jsonl.write_text(
        json.dumps({"url": "https://example.com/p1", "event_types": ["note.created"], "secret_env": "HOOK_SECRET"})
        + "\n"
        + json.dumps({"url": "https://example.com/p2", "event_types": ["note.created"], "secret": SECRET})
        + "\n"
    )
    toml = tmp_path / "endpoints.toml"
    toml.write_text(
        '[[endpoints]]\nurl = "https://example.com/t1"\nevent_types = ["note.created"]\nsecret_env = "HOOK_SECRET"\n'
    )
    runs = [
        run_cli(capsys, "endpoints", "create", *base, "-vv", "--url", "https://example.com/c1",
                "--event-type", "note.created", "--secret-env", "HOOK_SECRET"),
        run_cli(capsys, "endpoints", "create", *base, "--json", "--url", "https://example.com/c2",
                "--event-type", "note.created", "--secret-env", "HOOK_SECRET"),
        run_cli(capsys, "endpoints", "create", *base, "--url", "https://example.com/c1",
                "--event-type", "note.created", "--secret-env", "HOOK_SECRET"),
        run_cli(capsys, "endpoints", "list", *base, "-vv", "--json"),
        run_cli(capsys, "provision", str(jsonl), *base, "-vv"),
        run_cli(capsys, "provision", str(jsonl), *base, "--json"),
        run_cli(capsys, "plan", str(toml), *base, "--json", "--rotate-secrets"),
        run_cli(capsys, "apply", str(toml), *base, "--yes", "-vv", "--rotate-secrets"),
        run_cli(capsys, "endpoints", "list", *base, "--api-key-env", "WRONG_KEY", "-vv"),
    ]  # fmt: skip
    endpoint_id = next(e.id for e in served.fake.endpoints.values() if e.url == "https://example.com/c1")
    runs += [
        run_cli(capsys, "endpoints", "update", endpoint_id, *base, "-vv", "--secret-env", "NEW_HOOK_SECRET"),
        run_cli(capsys, "endpoints", "get", endpoint_id, *base, "--json"),
    ]
    codes = [code for code, _, _ in runs]
    assert codes == [0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 0], [(code, err[-300:]) for code, _, err in runs]
    assert "401" in runs[8][2]
    assert served.fake.endpoints[next(iter(served.fake.endpoints))].secret in (SECRET, NEW_SECRET)
    texts = [text for _, out, err in runs for text in (out, err)]
    assert_clean(texts, {*ALL_KNOWN, served.api_key, served.fake.read_only_api_key} | secret_watch.secrets)


def test_cli_on_the_embedded_fake_shows_no_generated_key_or_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, secret_watch: Any
) -> None:
    """On the embedded fake, its random keys and the throwaway secrets stay out of stdout and stderr."""
    monkeypatch.delenv("FULLSTORY_API_KEY", raising=False)
    monkeypatch.delenv("UNSET_HOOK_SECRET", raising=False)
    code, out, err = run_cli(
        capsys, "endpoints", "create", "-vv", "--url", "https://example.com/e1",
        "--event-type", "note.created", "--secret-env", "UNSET_HOOK_SECRET",
    )  # fmt: skip
    assert code == 0, err
    assert "UNSET_HOOK_SECRET is not set" in err
    learned = set(secret_watch.secrets)
    assert len(learned) >= 3, "the fake's two keys and the throwaway secret were learned"
    assert_clean([out, err], learned)


def test_cli_refuses_a_bad_secret_without_echoing_it(
    served: ServedFake, cli_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret with a control character is a usage error (exit 2) that names the option, not the value."""
    monkeypatch.setenv("HOOK_SECRET", SECRET + "\x01")
    code, out, err = run_cli(
        capsys, "endpoints", "create", "--base-url", served.fake.url, "--url", "https://example.com/b",
        "--event-type", "note.created", "--secret-env", "HOOK_SECRET",
    )  # fmt: skip
    assert code == 2
    assert "secret" in err
    assert_clean([out, err], {*ALL_KNOWN, served.api_key})
