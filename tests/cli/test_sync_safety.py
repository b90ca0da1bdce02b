"""`plan`/`apply` on the command line: typo'd files, scope, exit codes, saved plans, FULLSTORY_BASE_URL."""

from __future__ import annotations

import io
import json
import sys

import pytest

from fullstory_async.cli import main

SCOPED = (
    'scope = ["https://hooks.example.com/"]\n\n'
    '[[endpoints]]\nurl = "https://hooks.example.com/a"\nevent_types = ["note.created"]\n'
)
THREE = ("https://hooks.example.com/a", "https://hooks.example.com/b", "https://hooks.example.com/c")


@pytest.fixture
def three(served):
    """Serve a fake that holds three endpoints."""
    for url in THREE:
        served.call(lambda url=url: served.fake.add_endpoint(url))
    return served


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("typo.toml", 'scope = ["https://hooks.example.com/"]\n[[endpoint]]\nurl = "https://hooks.example.com/a"\n'),
        ("empty.toml", ""),
        ("typo.json", '{"scope": ["https://hooks.example.com/"], "endpoint": []}'),
    ],
)
def test_typod_file_with_prune_yes_deletes_nothing(cli, three, tmp_path, name, text):
    """`[[endpoint]]`, an empty file or `{"endpoint": []}` with --prune --yes: exit 2, nothing deleted."""
    file = tmp_path / name
    file.write_text(text)
    run = cli("--base-url", three.url, "apply", str(file), "--prune", "--yes")
    assert run.code == 2
    assert "endpoint" in run.err
    assert three.urls() == set(THREE)
    plan = cli("--base-url", three.url, "plan", str(file))
    assert plan.code == 2


def test_prune_without_scope_exits_2_naming_scope(cli, three, tmp_path):
    """A file with no scope and --prune: exit 2, the error names `scope`; nothing deleted."""
    file = tmp_path / "desired.toml"
    file.write_text('[[endpoints]]\nurl = "https://hooks.example.com/a"\nevent_types = ["note.created"]\n')
    run = cli("--base-url", three.url, "apply", str(file), "--prune", "--yes")
    assert run.code == 2
    assert run.err.startswith("error: scope: prune needs a scope")
    assert three.urls() == set(THREE)


def test_max_deletes_flag(cli, three, tmp_path):
    """Over --max-deletes the plan is refused (exit 2, says which flag allows it); at the limit it applies."""
    file = tmp_path / "desired.toml"
    file.write_text(SCOPED)
    refused = cli("--base-url", three.url, "apply", str(file), "--prune", "--yes", "--max-deletes", "1")
    assert refused.code == 2
    assert "--max-deletes 2" in refused.err
    assert three.urls() == set(THREE)
    applied = cli("--base-url", three.url, "apply", str(file), "--prune", "--yes", "--max-deletes", "2")
    assert applied.code == 0, applied.err
    assert three.urls() == {THREE[0]}


def test_plan_exit_code(cli, served, tmp_path):
    """`plan --exit-code`: 3 with changes pending, 0 once applied; without the flag 0 either way."""
    file = tmp_path / "desired.toml"
    file.write_text(SCOPED)
    base = ("--base-url", served.url)
    assert cli(*base, "plan", str(file)).code == 0
    assert cli(*base, "plan", str(file), "--exit-code").code == 3
    assert cli(*base, "apply", str(file), "--yes").code == 0
    assert cli(*base, "plan", str(file), "--exit-code").code == 0


def test_saved_plan_applies_and_a_stale_one_is_refused(cli, served, clean_env, tmp_path):
    """`plan --out F` then `apply F` runs that plan (no secret in F); once the server changed, `apply F` refuses."""
    clean_env.setenv("HOOK_SECRET", "hook-secret-value-Qx81")
    file = tmp_path / "desired.toml"
    file.write_text(SCOPED + 'secret_env = "HOOK_SECRET"\n')
    saved = tmp_path / "plan.json"
    base = ("--base-url", served.url)
    run = cli(*base, "plan", str(file), "--out", str(saved))
    assert run.code == 0, run.err
    assert "hook-secret-value-Qx81" not in saved.read_text()
    document = json.loads(saved.read_text())
    assert document["plan"]["summary"]["create"] == 1
    assert document["desired"]["endpoints"][0]["secret_env"] == "HOOK_SECRET"
    applied = cli(*base, "apply", str(saved))  # reviewed when saved: no question asked
    assert applied.code == 0, applied.err
    assert served.urls() == {"https://hooks.example.com/a"}
    assert served.call(lambda: served.fake.endpoints_with_url("https://hooks.example.com/a")[0].secret) == (
        "hook-secret-value-Qx81"
    )

    file.write_text(SCOPED.replace("/a", "/b"))
    assert cli(*base, "plan", str(file), "--prune", "--out", str(saved)).code == 0  # create b, delete a
    served.call(lambda: served.fake.add_endpoint("https://hooks.example.com/c"))  # someone else, since
    stale = cli(*base, "apply", str(saved))
    assert stale.code == 1
    assert f"is stale (the endpoints at {served.url} changed since it was made); nothing was changed" in stale.err
    assert served.urls() == {"https://hooks.example.com/a", "https://hooks.example.com/c"}


def test_enabled_false_is_shown_as_a_state(cli, served, tmp_path):
    """A disabled endpoint's plan line says `disabled` after its event types, not inside them."""
    file = tmp_path / "desired.toml"
    file.write_text(SCOPED + "enabled = false\n")
    run = cli("--base-url", served.url, "plan", str(file))
    assert "  + create  https://hooks.example.com/a  event types [note.created]; disabled" in run.out


def test_cli_reads_fullstory_base_url(cli, served, clean_env, tmp_path):
    """With FULLSTORY_BASE_URL and FULLSTORY_API_KEY exported (what fake-server prints), no --base-url needed."""
    file = tmp_path / "desired.toml"
    file.write_text(SCOPED)
    clean_env.setenv("FULLSTORY_BASE_URL", served.url)  # the key is set by the `served` fixture
    run = cli("apply", str(file), "--yes")
    assert run.code == 0, run.err
    assert "embedded fake" not in run.err
    assert served.urls() == {"https://hooks.example.com/a"}


def test_base_url_from_the_environment_without_a_key_is_a_usage_error(cli, clean_env):
    """FULLSTORY_BASE_URL set but no key: exit 2 naming the variables, never the embedded fake or production."""
    clean_env.setenv("FULLSTORY_BASE_URL", "http://127.0.0.1:9")
    run = cli("endpoints", "list")
    assert run.code == 2
    assert "FULLSTORY_API_KEY is not set (FULLSTORY_BASE_URL names a real server)" in run.err


@pytest.mark.parametrize(
    ("options", "conflict"),
    [
        (("--max-deletes", "0"), "--max-deletes 0 conflicts with the saved plan"),
        (("--rotate-secrets",), "--rotate-secrets conflicts with the saved plan"),
        (("--allow-unlisted-event-types",), "--allow-unlisted-event-types conflicts"),
    ],
)
def test_options_given_to_apply_a_saved_plan_must_match_it(cli, three, tmp_path, options, conflict):
    """`apply saved.json --max-deletes 0` is refused (exit 2, naming the option), never silently replaced."""
    file = tmp_path / "desired.toml"
    file.write_text(SCOPED)
    saved = tmp_path / "plan.json"
    base = ("--base-url", three.url)
    assert cli(*base, "plan", str(file), "--prune", "--out", str(saved)).code == 0  # deletes b and c
    refused = cli(*base, "apply", str(saved), *options)
    assert refused.code == 2
    assert conflict in refused.err
    assert three.urls() == set(THREE)
    same = cli(*base, "apply", str(saved), "--prune", "--max-deletes", "10")  # what it was made with
    assert same.code == 0, same.err
    assert three.urls() == {THREE[0]}


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda d: d.pop("options"), '"options" is missing or not an object'),
        (lambda d: d.update(plan="x"), '"plan" is missing or not an object'),
        (lambda d: d["options"].update(max_deletes="ten"), '"options.max_deletes" is missing or not valid'),
        (lambda d: d["options"].pop("prune"), '"options.prune" is missing or not valid'),
        (lambda d: d["plan"].pop("fingerprint"), '"plan.fingerprint" is missing or not a string'),
        (lambda d: d["plan"].update(changes=None), '"plan.changes" is missing or not a list'),
        (lambda d: d.update(format="fullstory-async-plan/9"), "made by another version"),
        (lambda d: d["desired"].update(endpoints="x"), "desired.endpoints: must be an array"),
    ],
)
def test_a_malformed_saved_plan_is_a_clear_error(cli, three, tmp_path, damage, problem):
    """A saved plan with a missing or wrong key: exit 2, one JSON error naming the file and the key; no traceback."""
    file = tmp_path / "desired.toml"
    file.write_text(SCOPED)
    saved = tmp_path / "plan.json"
    assert cli("--base-url", three.url, "plan", str(file), "--prune", "--out", str(saved)).code == 0
    document = json.loads(saved.read_text())
    damage(document)
    saved.write_text(json.dumps(document))
    run = cli("--base-url", three.url, "--json", "apply", str(saved))
    assert run.code == 2
    error = json.loads(run.err.strip().splitlines()[-1])["error"]
    assert str(saved) in error["message"]
    assert problem in error["message"]
    assert "Traceback" not in run.err
    assert three.urls() == set(THREE)


class _ClosedAfterOneLine(io.StringIO):
    """A stdout whose reader goes away after the first line (`| head -1`)."""

    def write(self, text: str) -> int:
        if "\n" in self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_closed_stdout_during_apply_counts_what_it_saw_and_says_the_count_is_partial(
    served, tmp_path, monkeypatch, capsys
):
    """`--json apply big.toml --yes --concurrency 2 | head -1`: the change whose line failed is counted too.

    The summary says the count is partial (changes in flight were cancelled and may have been made).
    """
    file = tmp_path / "big.toml"
    file.write_text(
        'scope = ["https://hooks.example.com/"]\n'
        + "".join(
            f'[[endpoints]]\nurl = "https://hooks.example.com/{n}"\nevent_types = ["note.created"]\n' for n in range(8)
        )
    )
    monkeypatch.setattr(sys, "stdout", _ClosedAfterOneLine())
    code = main(["--base-url", served.url, "--json", "--concurrency", "2", "apply", str(file), "--yes"])
    assert code == 1
    summary = [line for line in capsys.readouterr().err.splitlines() if "item(s) in" in line]
    assert len(summary) == 1
    assert summary[0].startswith("fullstory-async: output closed; stopped after 2 item(s)")
    assert "2 created" in summary[0]
    assert "partial count" in summary[0]
    assert len(served.urls()) >= 2
