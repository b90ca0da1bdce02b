"""Hostile servers (issue 19): raw aiohttp apps, shaped unlike FakeFullstory, one test per attack.

Each attack and its bound:

- the ``Authorization`` value in a 401 JSON message, a 403 HTML title, a 302 ``Location``:
  no fragment of the key in the exception, its ``body`` and ``headers``, or CLI output;
- an echo of an endpoint secret minus its last 3 characters: no fragment of 8 or more
  characters is shown;
- a lone surrogate or NUL in a string of a 2xx body: `ResponseDecodeError` after one
  attempt; the CLI exits 1 without a traceback, also on an ASCII stdout;
- pages each carrying a huge unique next-page token: `ResponseDecodeError` naming
  ``nextPaginationToken`` after one page; a listing's memory bounded;
- a ``br`` (or ``zstd``) body without the package to decode it: `ResponseDecodeError` after
  one attempt, also on a session passed in;
- endpoint URLs ``..;/admin``, ``..%2fadmin``, ``%2e%2e%2fadmin`` under a scope: never
  pruned, listed under ``ambiguous``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import json
import logging
import pickle
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fullstory_async
from fullstory_async import (
    APIConnectionError,
    APIStatusError,
    Client,
    CreateEndpointRequest,
    ResponseDecodeError,
    RetryPolicy,
    parse_desired_state,
)
from fullstory_async.cli import main
from tests.fakes import ServedFake

Serve = Callable[[web.Application], Awaitable[str]]

API_KEY = "na1.HostileKeySecretPart-7Qw9xZ3pLm/o-ORG42-na1"
SECRET_PART = "HostileKeySecretPart-7Qw9xZ3pLm"
ENDPOINT_SECRET = "sig-S3cr3t-A1b2C3d4E5f6G7h8-Zq"
CREATED = "2024-01-01T00:00:00Z"
SEED = 8  # the shortest fragment of a secret that must not be shown (issue 19)
REQUESTS = web.AppKey("requests", list[str])
SERVED = web.AppKey("served", list[int])


def endpoint_json(url: str, index: int = 0) -> dict[str, Any]:
    """Return an endpoint as the API lists it."""
    return {
        "id": f"id-{index}",
        "url": url,
        "enabled": True,
        "eventTypes": [{"eventName": "note.created"}],
        "created": CREATED,
        "modified": CREATED,
    }


def leaks(text: str, *secrets: str) -> list[str]:
    """Every fragment of `SEED` characters of the secrets found in ``text``."""
    return [s[i : i + SEED] for s in secrets for i in range(len(s) - SEED + 1) if s[i : i + SEED] in text]


def client(base_url: str, **kwargs: Any) -> Client:
    return Client(API_KEY, base_url=base_url, retry=RetryPolicy(wait=False), **kwargs)


def cli_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, base_url: str, *args: str
) -> tuple[int, str, str]:
    """Run the real ``fullstory-async`` command in-process against ``base_url``."""
    monkeypatch.setenv("FULLSTORY_API_KEY", API_KEY)
    capsys.readouterr()
    code = main([*args, "--base-url", base_url, "--timeout", "2"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def threaded() -> Iterator[ServedFake]:
    """Serve raw apps to the CLI (which runs its own loop) from a loop on another thread."""
    served = ServedFake()
    try:
        yield served
    finally:
        served.close()


# -- row 1: the Authorization value echoed back --------------------------------------------------


def echo_app() -> web.Application:
    """/401: key in a JSON message; /403: in an HTML title; /302: in Location (raw and percent-encoded)."""

    async def handle(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Basic ")
        kind = request.match_info["kind"]
        if kind == "401":
            body = json.dumps(
                {
                    "code": "unauthorized",
                    "message": f"bad credentials {auth!r} for org {key.rpartition('/')[2]}",
                    "echo": key,
                }
            )
            return web.Response(status=401, text=body, content_type="application/json", headers={"X-Echo": key})
        if kind == "403":
            html = f"<html><head><title>Forbidden for {key}</title></head><body>{key[4:-3]}</body></html>"
            return web.Response(status=403, text=html, content_type="text/html")
        location = f"https://login.example.com/?k={aiohttp.helpers.quote(key, safe='')}&raw={key}"
        return web.Response(status=302, headers={"Location": location, "X-Request-Id": key[4:20]})

    app = web.Application()
    app.router.add_get("/{kind}/webhooks/v1/endpoints", handle)
    return app


@pytest.mark.parametrize("kind", ["401", "403", "302"])
async def test_an_echoed_api_key_never_reaches_the_exception(serve: Serve, kind: str) -> None:
    """The key in a message, an HTML title, a Location or a header: gone from str(), message, body and headers."""
    base = await serve(echo_app())
    async with client(f"{base}/{kind}") as fs:
        with pytest.raises(APIStatusError) as info:
            await fs.webhooks.list_endpoints_page()
    error = info.value
    shown = " ".join(
        [str(error), repr(error), error.message, error.code or "", error.request_id or "", repr(error.args)]
        + [f"{k}: {v}" for k, v in error.headers.items()]
        + [error.body.decode("utf-8", "replace")]
    )
    assert leaks(shown, SECRET_PART) == []
    assert "<redacted>" in shown
    assert dict(pickle.loads(pickle.dumps(error)).headers) == dict(error.headers)  # scrubbed headers still pickle
    assert "for org o-ORG42-na1" in shown or kind != "401"  # the org id alone is not a secret


async def test_a_key_echoed_in_a_malformed_response_reaches_no_traceback() -> None:
    """A raw socket echoes the key in a header aiohttp refuses: the error and its whole traceback hold none of it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        auth = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"authorization:"))
        writer.write(b"HTTP/1.1 200 OK\r\nX-Bad\x01: " + auth.split(b": ", 1)[1] + b"\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(API_KEY, base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=1)) as fs:
            with pytest.raises(APIConnectionError) as info:
                await fs.webhooks.list_endpoints_page()
    finally:
        server.close()
        await server.wait_closed()
    shown = "".join(traceback.format_exception(info.value))
    assert "Invalid header" in shown  # the reason is kept
    assert leaks(shown, SECRET_PART) == []


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("kind", ["401", "403", "302"])
def test_an_echoed_api_key_never_reaches_cli_output(
    threaded: ServedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kind: str, output: str
) -> None:
    """`endpoints list` against the echoing server: exit 1, an error line, no fragment of the key."""
    base = threaded.serve(echo_app())
    code, out, err = cli_run(capsys, monkeypatch, f"{base}/{kind}", "endpoints", "list", "--output", output)
    assert code == 1
    assert leaks(out + err, SECRET_PART) == []
    assert "<redacted>" in err
    if output == "json":
        assert json.loads(err.splitlines()[-1])["error"]["status"] == int(kind)


# -- row 2: an endpoint secret echoed, whole or in part --------------------------------------------


async def test_a_truncated_echo_of_an_endpoint_secret_shows_no_fragment(serve: Serve) -> None:
    """A 400 repeating the secret minus its last 3 characters (and a GET later echoing it) shows nothing of it."""

    async def create(request: web.Request) -> web.Response:
        secret = (await request.json())["secret"]
        body = {"code": "invalid", "message": f"secret {secret[:-3]} rejected; did you mean {secret[2:-1]}?"}
        return web.json_response(body, status=400)

    async def get(request: web.Request) -> web.Response:  # a later call on another path echoes the old secret
        return web.json_response({"message": f"not found (last secret {ENDPOINT_SECRET[1:-2]})"}, status=404)

    app = web.Application()
    app.router.add_post("/webhooks/v1/endpoints", create)
    app.router.add_get("/webhooks/v1/endpoints/{id}", get)
    async with client(await serve(app)) as fs:
        with pytest.raises(APIStatusError) as created:
            await fs.webhooks.create_endpoint(CreateEndpointRequest(url="https://e.com/x", secret=ENDPOINT_SECRET))
        with pytest.raises(APIStatusError) as got:
            await fs.webhooks.get_endpoint("some-id")
    for error in (created.value, got.value):
        assert error.status in (400, 404)
        text = f"{error} {error.body.decode()} {error.message}"
        assert leaks(text, ENDPOINT_SECRET) == [], text
        assert "<redacted>" in text


def test_the_registry_keeps_the_key_and_the_last_1024_endpoint_secrets() -> None:
    """Secrets held now and the last RECENT released are scrubbed; older ones are forgotten (bounded memory)."""
    from fullstory_async._scrub import RECENT, Secrets

    secrets = Secrets(API_KEY)
    made = [hashlib.sha256(str(n).encode()).hexdigest()[:24] for n in range(RECENT + 6)]  # no shared windows
    secrets.hold(["held-all-along-secret-0001"])
    for secret in made:
        secrets.hold([secret])
        assert secrets.scrub(f"x {secret} y") == "x <redacted> y"
        secrets.release([secret])
    assert len(secrets) == 1 + 1 + RECENT  # the key, the one held, the recent ones
    assert secrets.scrub("held-all-along-secret-0001") == "<redacted>"
    secrets.release(["held-all-along-secret-0001"])
    forgotten, kept = made[:7], made[7:]  # releasing the held one made it recent: one more forgotten
    assert all(secrets.scrub(s) == s for s in forgotten)
    assert all(secrets.scrub(s) == "<redacted>" for s in kept)
    assert secrets.scrub(SECRET_PART[3:11]) == "<redacted>"  # the key never leaves
    assert secrets.scrub("o-ORG42-na1 and na1.") == "o-ORG42-na1 and na1."  # org id and region are not secret


@given(
    st.text(min_size=SEED, max_size=40).filter(lambda s: s.strip() == s and s.isprintable()),
    st.text(max_size=30),
    st.text(max_size=30),
    st.data(),
)
@settings(max_examples=80, deadline=None)
def test_any_fragment_of_eight_or_more_characters_is_removed(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    """Whatever the secret and the text around it, no window of SEED characters of it survives."""
    from fullstory_async._scrub import Secrets

    start = data.draw(st.integers(0, len(secret) - SEED))
    end = data.draw(st.integers(start + SEED, len(secret)))
    secrets = Secrets()
    secrets.hold([secret])
    scrubbed = secrets.scrub(before + secret[start:end] + after)
    assert leaks(scrubbed.replace("<redacted>", "\0"), secret) == []


# -- row 3: lone surrogates and control characters in 2xx bodies -----------------------------------


BAD_STRINGS = ["\ud800", "\u0000", "a\u001bb", "\u0085", "\udfff tail"]


def listing_app(endpoints: list[dict[str, Any]], definitions: list[dict[str, Any]] | None = None) -> web.Application:
    """One page of endpoints and one of event types, written with json.dumps (escapes, as a server would)."""
    requests: list[str] = []

    async def endpoints_page(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(text=json.dumps({"endpoints": endpoints}), content_type="application/json")

    async def event_types(request: web.Request) -> web.Response:
        requests.append(request.path)
        defs = definitions if definitions is not None else [{"eventName": "note.created", "displayName": "Note"}]
        return web.Response(text=json.dumps({"eventDefs": defs}), content_type="application/json")

    app = web.Application()
    app[REQUESTS] = requests
    app.router.add_get("/webhooks/v1/endpoints", endpoints_page)
    app.router.add_get("/webhooks/v1/event-types", event_types)
    return app


@pytest.mark.parametrize("bad", BAD_STRINGS)
async def test_invalid_text_in_a_2xx_body_is_a_decode_error_not_retried(serve: Serve, bad: str) -> None:
    """A lone surrogate or a control character in an endpoint or event type: ResponseDecodeError, one request."""
    app = listing_app(
        [endpoint_json(f"https://e.com/{bad}")], [{"eventName": "note.created", "displayName": f"Note {bad}"}]
    )
    async with client(await serve(app)) as fs:
        with pytest.raises(ResponseDecodeError) as endpoint_error:
            await fs.webhooks.list_endpoints_page()
        with pytest.raises(ResponseDecodeError) as type_error:
            await fs.webhooks.list_event_types()
    assert endpoint_error.value.field == "$.endpoints[0].url"
    assert type_error.value.field == "$.event_defs[0].display_name"
    assert endpoint_error.value.attempts == type_error.value.attempts == 1
    assert app[REQUESTS] == ["/webhooks/v1/endpoints", "/webhooks/v1/event-types"]  # not asked again


ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=8)
JSON_TREES = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=10,
)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


@given(JSON_TREES, st.booleans())
@settings(max_examples=200, deadline=None)
def test_a_body_decodes_exactly_when_every_string_is_valid_text(tree: object, ascii_only: bool) -> None:
    """Any JSON tree, escaped or raw UTF-8: decoded when no string holds a surrogate or control, else refused."""
    from fullstory_async._converter import load_json

    body = json.dumps(tree, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    bad = any(c < " " or "\x7f" <= c <= "\x9f" or "\ud800" <= c <= "\udfff" for s in _strings(tree) for c in s)
    if bad:
        with pytest.raises(ResponseDecodeError):
            load_json(body)
    else:
        assert load_json(body) == tree


async def test_a_connection_dropped_mid_body_stays_a_connection_error(serve: Serve) -> None:
    """A body cut short (fewer bytes than Content-Length) is retried as a connection failure, then succeeds."""
    calls = 0
    whole = json.dumps({"endpoints": []}).encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls > 1:
            return web.Response(body=whole, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Length": str(len(whole) + 50)})
        await response.prepare(request)
        await response.write(whole[:5])
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_get("/webhooks/v1/endpoints", handle)
    async with client(await serve(app)) as fs:
        page = await fs.webhooks.list_endpoints_page()
    assert page.items == ()
    assert calls == 2


@pytest.mark.parametrize(
    "args",
    [("endpoints", "list"), ("event-types",), ("endpoints", "list", "--json"), ("event-types", "--json")],
)
@pytest.mark.parametrize("bad", ["\ud800", "\u0000"])
def test_the_cli_reports_invalid_text_without_a_traceback(
    threaded: ServedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    bad: str,
) -> None:
    """`endpoints list` and `event-types` on a lone surrogate or NUL in a body: exit 1, an error naming the field."""
    base = threaded.serve(
        listing_app([endpoint_json(f"https://e.com/{bad}")], [{"eventName": "note.created", "displayName": bad}])
    )
    code, out, err = cli_run(capsys, monkeypatch, base, *args)
    assert code == 1
    assert "Traceback" not in err
    assert out == ""
    assert "ResponseDecodeError" in err or "could not decode response" in err
    assert "$.endpoints[0].url" in err or "$.event_defs[0].display_name" in err


def test_plan_out_on_invalid_text_writes_nothing_and_prints_no_traceback(
    threaded: ServedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`plan --out` when the listing holds a lone surrogate: exit 1, no plan file, no traceback."""
    base = threaded.serve(listing_app([endpoint_json("https://e.com/fullstory/\ud800")]))
    desired = tmp_path / "desired.toml"
    desired.write_text('[[endpoints]]\nurl = "https://e.com/fullstory/a"\nevent_types = ["note.created"]\n')
    out_file = tmp_path / "plan.json"
    code, _, err = cli_run(capsys, monkeypatch, base, "plan", str(desired), "--out", str(out_file))
    assert code == 1
    assert "Traceback" not in err
    assert "$.endpoints[0].url" in err
    assert not out_file.exists()


class AsciiTerminal(io.TextIOWrapper):
    """A stdout whose encoding is ASCII (``LANG=C`` without UTF-8 mode)."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="ascii", errors="strict", line_buffering=True)

    def text(self) -> str:
        self.flush()
        buffer = self.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue().decode("ascii")


SERVER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)


@pytest.fixture
def answering(threaded: ServedFake) -> dict[str, Any]:
    """Serve a listing whose answer each hypothesis example sets: ``status``, ``url``, ``name``, ``message``."""
    state: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        if state["status"] != 200:
            body = {"code": state["name"], "message": state["message"]}
        else:
            body = {"endpoints": [{**endpoint_json("https://e.com/" + state["url"]), "id": state["name"]}]}
        return web.Response(status=state["status"], text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/webhooks/v1/endpoints", handle)
    state["base"] = threaded.serve(app)
    return state


@given(url_tail=SERVER_TEXT, name=SERVER_TEXT, message=SERVER_TEXT, status=st.sampled_from([200, 400, 404]))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_cli_survives_any_server_text_on_an_ascii_stdout(
    answering: dict[str, Any], monkeypatch: pytest.MonkeyPatch, url_tail: str, name: str, message: str, status: int
) -> None:
    """Any code point in a listing or an error message: no traceback, no raw control character, ASCII-safe output."""
    state = answering
    state.update(url=url_tail, name=name, message=message, status=status)
    monkeypatch.setenv("FULLSTORY_API_KEY", API_KEY)
    for output in ("text", "json"):
        out, err = AsciiTerminal(), AsciiTerminal()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["endpoints", "list", "--output", output, "--base-url", state["base"], "--timeout", "2"])
        printed = out.text() + err.text()
        assert code in (0, 1), printed
        assert "Traceback" not in printed
        assert not any((ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F for c in printed)
        if output == "json":
            for line in printed.splitlines():
                json.loads(line)  # every line is still valid JSON


# -- row 4: huge and endless next-page tokens -----------------------------------------------------


def token_app(token_size: int, pages: int) -> web.Application:
    """Each page holds one endpoint and a unique next token of ``token_size`` characters; the last has none."""
    served: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        page = len(served)
        served.append(page)
        body: dict[str, Any] = {"endpoints": [endpoint_json(f"https://e.com/{page}", page)]}
        if page + 1 < pages:
            body["nextPaginationToken"] = f"{page:08d}".ljust(token_size, "t")
        return web.json_response(body)

    app = web.Application()
    app[SERVED] = served
    app.router.add_get("/webhooks/v1/endpoints", handle)
    return app


async def test_a_next_page_token_over_4_kib_is_a_decode_error(serve: Serve) -> None:
    """A 4 MB token on the first page: ResponseDecodeError naming nextPaginationToken; no second page asked for."""
    app = token_app(4 * 1024 * 1024, pages=150)
    async with client(await serve(app)) as fs:
        with pytest.raises(ResponseDecodeError) as info:
            [e async for e in fs.webhooks.list_endpoints()]
    assert info.value.field == "$.nextPaginationToken"
    assert "nextPaginationToken" in str(info.value)
    assert app[SERVED] == [0]


async def test_a_listing_holds_bounded_memory_whatever_its_tokens(serve: Serve) -> None:
    """150 pages with unique 4 KiB tokens: the walk keeps digests, not 600 KB of tokens (tracemalloc).

    Counted: what the client's code allocated during the walk and still holds (the server
    runs in this process too, and its own caches are not the client's).
    """
    pages, size = 150, 4096
    app = token_app(size, pages)
    client_code = tracemalloc.Filter(True, str(Path(fullstory_async.__file__).parent / "*"), all_frames=True)
    quiet = logging.getLogger("fullstory_async")
    async with client(await serve(app)) as fs:
        walk = fs.webhooks.list_endpoints()
        await walk.__anext__()  # the first page: sessions, caches and the event loop warmed
        gc.collect()
        quiet.setLevel(logging.WARNING)  # the suite keeps every log record (the secret watch): not the walk's
        tracemalloc.start(8)
        try:
            before = tracemalloc.take_snapshot().filter_traces([client_code])
            for _ in range(pages - 2):
                await walk.__anext__()
            gc.collect()
            after = tracemalloc.take_snapshot().filter_traces([client_code])
        finally:
            tracemalloc.stop()
            quiet.setLevel(logging.NOTSET)
        assert [e async for e in walk][-1].url == f"https://e.com/{pages - 1}"
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # Tokens kept whole would hold pages * size (600 KB); digests and the walk's own state hold
    # about 80 KB here (of which about 120 B a page is not a token: see the session notes).
    assert held < pages * size / 4, f"{held} bytes held after {pages} pages of {size}-byte tokens"


# -- row 5: a content encoding the client cannot decode --------------------------------------------


def encoded_app(encoding: str, body: bytes) -> web.Application:
    calls: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(body=body, headers={"Content-Encoding": encoding, "Content-Type": "application/json"})

    app = web.Application()
    app[SERVED] = calls
    app.router.add_get("/webhooks/v1/endpoints", handle)
    return app


BROTLI_EMPTY_OBJECT = b"\x0b\x00\x80{}\x03"  # "{}" compressed by brotli


@pytest.mark.parametrize("own_session", [False, True])
@pytest.mark.parametrize(
    ("encoding", "body", "module"),
    [("br", BROTLI_EMPTY_OBJECT, "brotli"), ("zstd", b"\x28\xb5\x2f\xfd\x00\x58\x11\x00\x00{}", "backports.zstd"),
     ("gzip", b"\x1f\x8b\x08\x00not gzip at all", None)],
)  # fmt: skip
async def test_a_body_the_client_cannot_decode_is_a_decode_error(
    serve: Serve, encoding: str, body: bytes, module: str | None, own_session: bool
) -> None:
    """`br` without Brotli, `zstd` without its package, corrupt gzip: ResponseDecodeError after one request."""
    if module is not None:
        try:
            __import__(module)
        except ImportError:
            pass
        else:
            pytest.skip(f"{module} is installed: aiohttp decodes {encoding}")
    app = encoded_app(encoding, body)
    base = await serve(app)
    async with aiohttp.ClientSession() as session:
        async with client(base, **({"session": session} if own_session else {})) as fs:
            with pytest.raises(ResponseDecodeError) as info:
                await fs.webhooks.list_endpoints_page()
        assert not session.closed
    assert "Content-Encoding" in str(info.value)
    assert info.value.attempts == 1
    assert len(app[SERVED]) == 1


# -- row 6: URLs that servers read two ways ---------------------------------------------------------

AMBIGUOUS = [
    "https://hooks.example.com/fullstory/..;/admin/x",
    "https://hooks.example.com/fullstory/..%2fadmin",
    "https://hooks.example.com/fullstory/%2e%2e%2fadmin",
    "https://hooks.example.com/fullstory/a%5cb",
    "https://hooks.example.com/fullstory/x;jsessionid=1",
]
SCOPE = "https://hooks.example.com/fullstory/"
PRUNABLE = "https://hooks.example.com/fullstory/old"


def scoped_app(created: list[str]) -> web.Application:
    app = listing_app([endpoint_json(url, index) for index, url in enumerate([*AMBIGUOUS, PRUNABLE])])

    async def delete(request: web.Request) -> web.Response:
        created.append(f"DELETE {request.match_info['id']}")
        return web.Response(status=204)

    app.router.add_delete("/webhooks/v1/endpoints/{id}", delete)
    return app


async def test_ambiguous_endpoint_urls_are_never_pruned(serve: Serve) -> None:
    """Under scope /fullstory/, `..;`, `..%2f`, `%2e%2e%2f`, `%5c` and `;` URLs are listed as ambiguous, not deleted."""
    done: list[str] = []
    desired = parse_desired_state(f'scope = ["{SCOPE}"]\nendpoints = []\n', environ={})
    async with client(await serve(scoped_app(done))) as fs:
        plan = await fs.webhooks.plan(desired, prune=True)
        assert [c.url for c in plan.deletes] == [PRUNABLE]
        assert plan.ambiguous == tuple(AMBIGUOUS)
        assert [r.ok async for r in fs.webhooks.apply(plan)] == [True]
    assert done == [f"DELETE id-{len(AMBIGUOUS)}"]


async def test_a_desired_ambiguous_url_is_accepted_but_never_pruned(serve: Serve) -> None:
    """A desired URL with `..;` is created when missing, matched exactly when listed, and never a delete."""
    wanted = AMBIGUOUS[0]
    text = f'scope = ["{SCOPE}"]\n[[endpoints]]\nurl = "{wanted}"\nevent_types = ["note.created"]\n'
    desired = parse_desired_state(text, environ={})
    async with client(await serve(scoped_app([]))) as fs:
        plan = await fs.webhooks.plan(desired, prune=True)
    assert [c.url for c in plan.unchanged] == [wanted]
    assert wanted not in plan.ambiguous
    assert plan.ambiguous == tuple(AMBIGUOUS[1:])
    assert [c.url for c in plan.deletes] == [PRUNABLE]


@pytest.mark.parametrize("output", ["text", "json"])
def test_the_cli_plan_lists_ambiguous_urls(
    threaded: ServedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    output: str,
) -> None:
    """`plan --prune` prints the ambiguous URLs (text and --json) and saves them in a format-2 plan file."""
    base = threaded.serve(scoped_app([]))
    desired = tmp_path / "desired.toml"
    desired.write_text(f'scope = ["{SCOPE}"]\nendpoints = []\n')
    saved = tmp_path / "plan.json"
    code, out, err = cli_run(
        capsys, monkeypatch, base, "plan", str(desired), "--prune", "--out", str(saved), "--output", output
    )
    assert code == 0, err
    if output == "json":
        (record,) = [json.loads(line) for line in out.splitlines()]
        assert record["ambiguous"] == AMBIGUOUS
        assert [c["url"] for c in record["changes"]] == [PRUNABLE]
    else:
        assert f"{len(AMBIGUOUS)} endpoint(s) with an ambiguous URL left alone (never pruned):" in out
        assert all(f"  ? ambiguous {url}" in out for url in AMBIGUOUS)
        assert not any(line.startswith("  - delete") and ";" in line for line in out.splitlines())
    document = json.loads(saved.read_text())
    assert document["format"] == "fullstory-async-plan/2"
    assert document["plan"]["ambiguous"] == AMBIGUOUS
