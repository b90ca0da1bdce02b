"""Adversarial review of issue 19: echoes of the API key in forms the first scrubber missed (raw aiohttp servers).

- the key with an invisible character (zero-width space, soft hyphen, NUL of a UTF-16 body)
  between its characters: a terminal shows it whole, so no fragment may remain once they
  are taken out, in the exception or in CLI output;
- a JSON error body in UTF-16: read as UTF-8 only (as a 2xx body), so the kept body is
  scrubbed too;
- the key as a response's request id: no DEBUG record (``-vv``) holds it, on a 2xx or an error;
- an error status whose body is corrupt gzip: still the status's error (a 429 or 500 retried),
  not a `ResponseDecodeError` (the body is dropped: the status says what happened);
- endpoint URLs ``/fullstory//../admin`` (``/admin`` to a server that merges slashes) and
  ``/fullstory/..%00/admin`` (``..`` to a C server): ambiguous, never pruned;
- an echo of a periodic endpoint secret (``"a" * 64``): removed whole, at about one lookup a
  character (it took 20 s for 1 MB, blocking the loop).
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from fullstory_async import APIStatusError, AuthenticationError, RateLimitError, ServerError, parse_desired_state
from fullstory_async._scrub import SEED, Secrets, request_secrets
from tests.fakes import ServedFake
from tests.hardening.test_hostile_servers import (
    API_KEY,
    SECRET_PART,
    Serve,
    cli_run,
    client,
    endpoint_json,
    leaks,
    listing_app,
)

INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2060-\u206f\ufeff]")


def answer(status: int, body: bytes, content_type: str = "application/json", **headers: str) -> web.Application:
    """Return an app answering every listing with ``status``, ``body`` and ``headers``."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type, headers=headers)

    app = web.Application()
    app.router.add_get("/webhooks/v1/endpoints", handle)
    return app


INTERLEAVED: dict[str, Callable[[], web.Application]] = {
    "zero-width space": lambda: answer(401, json.dumps({"message": "bad key " + "\u200b".join(API_KEY)}).encode()),
    "soft hyphen": lambda: answer(403, ("<title>" + "\u00ad".join(API_KEY) + "</title>").encode(), "text/html"),
    "utf-16 text": lambda: answer(401, f"bad key {API_KEY}".encode("utf-16-le"), "text/plain"),
}


async def shown_by(serve: Serve, app: web.Application) -> tuple[APIStatusError, str]:
    base = await serve(app)
    async with client(base) as fs:
        with pytest.raises(APIStatusError) as info:
            await fs.webhooks.list_endpoints_page()
    error = info.value
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts += [f"{k}: {v}" for k, v in error.headers.items()]
    texts.append(error.body.decode("utf-8", "replace"))
    return error, " ".join(texts)


@pytest.mark.parametrize("kind", INTERLEAVED)
async def test_a_key_interleaved_with_invisible_characters_is_removed(serve: Serve, kind: str) -> None:
    """Take the invisible characters out of everything the exception shows: no fragment of the key is left."""
    error, shown = await shown_by(serve, INTERLEAVED[kind]())
    assert leaks(INVISIBLE.sub("", shown), SECRET_PART) == []
    assert "<redacted>" in error.message


@pytest.mark.parametrize("kind", INTERLEAVED)
def test_a_key_interleaved_with_invisible_characters_never_reaches_cli_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The real `endpoints list`: exit 1, and what a terminal would show holds no fragment of the key."""
    served = ServedFake()
    try:
        base = served.serve(INTERLEAVED[kind]())
        code, out, err = cli_run(capsys, monkeypatch, base, "endpoints", "list")
    finally:
        served.close()
    assert code == 1
    assert leaks(INVISIBLE.sub("", out + err), SECRET_PART) == []


async def test_a_utf16_json_error_body_is_read_as_utf8_and_kept_scrubbed(serve: Serve) -> None:
    """A 401 whose JSON is UTF-16: not parsed by sniffing; neither message nor the kept body holds the key."""
    body = json.dumps({"message": f"bad key {API_KEY}"}).encode("utf-16")
    _, shown = await shown_by(serve, answer(401, body))
    assert leaks(INVISIBLE.sub("", shown), SECRET_PART) == []


@pytest.mark.parametrize("status", [200, 400])
async def test_a_request_id_echoing_the_key_reaches_no_debug_record(
    serve: Serve, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """X-Request-Id holds the key: the attempt's DEBUG record says <redacted> (the suite's watch checks all)."""
    caplog.set_level(logging.DEBUG, logger="fullstory_async")
    base = await serve(answer(status, b'{"endpoints": []}', **{"X-Request-Id": API_KEY}))
    async with client(base) as fs:
        try:
            await fs.webhooks.list_endpoints_page()
        except APIStatusError:
            assert status == 400
    [record] = [r for r in caplog.records if r.name == "fullstory_async" and r.levelno == logging.DEBUG]
    request_id: Any = record.fullstory_request_id  # type: ignore[attr-defined]
    assert request_id == "<redacted>"


# -- the scrubber's work per byte --------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["a" * 64, "abc" * 20, "ab12" * 9 + "Z"])
def test_a_periodic_secret_is_removed_from_any_echo_of_it(secret: str) -> None:
    """A secret made of a repeat (each window at many offsets): a long echo, and any fragment of 8+, go whole.

    Each window is indexed at its first offset and windows inside a run found are skipped, so an
    echo costs about one lookup per character (before: one extension per repeat per window, 20 s
    for 1 MB; `bench/scrub.py` times it).
    """
    held = Secrets()
    held.hold([secret])
    assert held.scrub(secret * 500) == "<redacted>"
    for start in range(len(secret) - SEED + 1):
        for end in range(start + SEED, len(secret) + 1):
            text = f"x {secret[start:end]} y"
            assert held.scrub(text) == "x <redacted> y", (start, end)


def test_a_secret_holding_an_invisible_character_is_still_removed_whole() -> None:
    """The text is searched with its invisible characters too while a held secret has one."""
    held = Secrets("na1.AbCdEfGhIjKlMnOp/o-1")
    held.hold(["tab\tseparated-secret-42"])
    assert (
        held.scrub("line\nsaid tab\tseparated-secret-42 and AbCd\u200bEfGhIjKl.")
        == "line\nsaid <redacted> and <redacted>."
    )


class CountingDict(dict[Any, Any]):
    """A dict counting its ``[]`` reads: `Secrets` reads a spelling once per extension."""

    reads = 0

    def __getitem__(self, key: Any) -> Any:
        self.reads += 1
        return super().__getitem__(key)


def test_an_echo_of_a_periodic_secret_costs_a_bounded_number_of_extensions() -> None:
    """An echo of ``"a" * 64``: at most one extension per spelling per 8 characters (before: 57 a character)."""
    held = Secrets()
    held.hold(["a" * 64])
    spellings = held._spellings = CountingDict(held._spellings)
    text = "a" * 20_000
    assert held.scrub(text) == "<redacted>"
    assert 0 < spellings.reads <= len(text) // SEED * len(spellings)


# -- an error status whose body cannot be decoded ----------------------------------------------------

CORRUPT_GZIP = b"\x1f\x8b\x08\x00not-gzip-at-all" * 4


@pytest.mark.parametrize(
    ("status", "error_class", "attempts"),
    [(401, AuthenticationError, 1), (429, RateLimitError, 4), (500, ServerError, 4)],
)
async def test_an_error_status_with_a_corrupt_gzip_body_keeps_its_error_class(
    serve: Serve, status: int, error_class: type[APIStatusError], attempts: int
) -> None:
    """The status decides, as for an error body over the size cap; the undecodable body is dropped."""
    served: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        served.append(1)
        headers = {"Content-Encoding": "gzip", "Retry-After": "0"}
        return web.Response(status=status, body=CORRUPT_GZIP, content_type="application/json", headers=headers)

    app = web.Application()
    app.router.add_get("/webhooks/v1/endpoints", handle)
    async with client(await serve(app)) as fs:
        with pytest.raises(APIStatusError) as info:
            await fs.webhooks.list_endpoints_page()
    assert type(info.value) is error_class
    assert info.value.body == b""
    assert info.value.attempts == len(served) == attempts


# -- scope URLs servers read two ways ----------------------------------------------------------------

SCOPE = "https://hooks.example.com/fullstory/"
AMBIGUOUS = [
    "https://hooks.example.com/fullstory//../admin",
    "https://hooks.example.com/fullstory/x//../../admin",
    "https://hooks.example.com/fullstory//%2e%2e/admin",
    "https://hooks.example.com/fullstory/..%00/admin",
    "https://hooks.example.com/fullstory/..%09/admin",
]
PRUNABLE = [  # read one way by every server: still pruned (the first is where yarl alone would put AMBIGUOUS[0])
    "https://hooks.example.com/fullstory/admin",
    "https://hooks.example.com/fullstory//a",
    "https://hooks.example.com/fullstory/./b",
    "https://HOOKS.example.com:443/fullstory/c",
]


async def test_dot_segments_after_a_double_slash_or_before_a_nul_are_never_pruned(serve: Serve) -> None:
    """Listed as ambiguous, never deleted; a desired URL equal to one of them is matched exactly, not listed."""
    listed = [endpoint_json(url, index) for index, url in enumerate(AMBIGUOUS + PRUNABLE)]
    text = f'scope = ["{SCOPE}"]\n[[endpoints]]\nurl = "{AMBIGUOUS[0]}"\nevent_types = ["note.created"]\n'
    async with client(await serve(listing_app(listed))) as fs:
        plan = await fs.webhooks.plan(parse_desired_state(text, environ={}), prune=True)
    assert [c.url for c in plan.unchanged] == [AMBIGUOUS[0]]
    assert plan.ambiguous == tuple(AMBIGUOUS[1:])
    assert [c.url for c in plan.deletes] == PRUNABLE


def test_a_secret_with_spaces_is_removed_when_form_encoded() -> None:
    """``my secret phrase is long`` echoed as ``my+secret+phrase+is+long`` (a form body or query): removed."""
    held = Secrets()
    held.hold(["my secret phrase is long"])
    assert held.scrub("q=my+secret+phrase+is+long&x=1") == "q=<redacted>&x=1"
    assert held.scrub("q=phrase+is+long") == "q=<redacted>"


def test_the_secrets_of_a_request_body_are_every_string_under_a_secret_key_and_nothing_else() -> None:
    """The endpoint secrets held while a request is in flight: any case, any depth, escapes decoded."""
    body = json.dumps(
        {
            "url": "https://example.com/h",
            "Secret": "top-level",
            "nested": {"SECRET": 'quote " and \\ backslash'},
            "note": 'a "secret": "inside a string" is text',
            "other": {"secret": None},
            "list": [{"secret": "in-a-list"}, {"secret": ""}],
        }
    ).encode()
    assert request_secrets(body) == ["top-level", 'quote " and \\ backslash', "in-a-list"]
    assert request_secrets(b'{"secret" :\n "spaced"}') == ["spaced"]
    assert request_secrets(None) == request_secrets(b"") == []
