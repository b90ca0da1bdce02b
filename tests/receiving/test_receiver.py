"""The aiohttp receiver on 127.0.0.1 without an inbox: statuses, callbacks before the response, size limit, shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fullstory_async import InvalidArgumentError
from fullstory_async.receiving import (
    NoteCreatedData,
    ReceiverSettings,
    WebhookEvent,
    WebhookReceiver,
    sign,
)
from fullstory_async.testing._delivery import deliver_event, encode_envelope

SECRET = "wh-secret-9Qx7LmPz"
OLD_SECRET = "wh-secret-old-3Kd8"
ORG_ID = "o-1A2B3C-na1"
NOTE = {"id": "n-1", "author": "ada@example.com", "text": "look at this", "created": "2024-01-02T03:04:05.000Z"}
LOGGER = "fullstory_async.receiving"


class Recorder:
    """An async callback that records the events it gets."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)


async def deliver(site: Any, *, secret: str = SECRET, timestamp: int | None = None, **kwargs: Any) -> int:
    """Deliver a note.created event to the site."""
    kwargs.setdefault("data", NOTE)
    kwargs.setdefault("event_name", "note.created")
    return await deliver_event(site.session, site.url, secret=secret, org_id=ORG_ID, timestamp=timestamp, **kwargs)


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers for a body signed with ``secret``."""
    return {"Content-Type": "application/json", "Fullstory-Signature": sign(body, secret, ORG_ID, timestamp)}


# Accepted deliveries -----------------------------------------------------------------------------


async def test_delivered_event_reaches_the_async_callback(serve_receiver: Any) -> None:
    """A signed delivery is answered 202 and the callback gets the typed event."""
    recorder = Recorder()
    site = await serve_receiver([SECRET, OLD_SECRET], recorder)
    assert await deliver(site) == 202
    [event] = recorder.events
    assert event.event_name == "note.created"
    assert isinstance(event.data, NoteCreatedData)
    assert (event.data.id, event.data.author, event.org_id) == ("n-1", "ada@example.com", ORG_ID)


async def test_old_secret_is_accepted_during_rotation(serve_receiver: Any) -> None:
    """A delivery signed with the previous secret is accepted while both are configured."""
    recorder = Recorder()
    site = await serve_receiver([SECRET, OLD_SECRET], recorder)
    assert await deliver(site, secret=OLD_SECRET) == 202
    assert len(recorder.events) == 1


async def test_sync_callback_runs_in_a_worker_thread(serve_receiver: Any) -> None:
    """A plain function callback runs off the event loop's thread."""
    seen: list[tuple[str, int]] = []
    site = await serve_receiver(SECRET, lambda event: seen.append((event.event_name, threading.get_ident())))
    assert await deliver(site) == 202
    assert seen
    assert seen[0][0] == "note.created"
    assert seen[0][1] != threading.get_ident()


async def test_awaitable_returned_by_a_plain_callable_is_awaited(serve_receiver: Any) -> None:
    """A plain callable that returns a coroutine (a lambda around an async function) is awaited."""
    recorder = Recorder()
    site = await serve_receiver(SECRET, lambda event: recorder(event))
    assert await deliver(site) == 202
    assert len(recorder.events) == 1


async def test_response_waits_for_the_callback(serve_receiver: Any) -> None:
    """Without an inbox the 202 is sent only after the callback returned (acknowledge only what is held)."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(event: WebhookEvent) -> None:
        started.set()
        await release.wait()

    site = await serve_receiver(SECRET, slow)
    answer = asyncio.create_task(deliver(site))
    await started.wait()
    await asyncio.sleep(0.01)  # give the response a chance to leave early; it must not
    assert not answer.done()
    release.set()
    assert await answer == 202


async def test_body_exactly_at_the_limit_is_accepted(serve_receiver: Any) -> None:
    """A body of exactly max_body_bytes is read and accepted."""
    recorder = Recorder()
    site = await serve_receiver(SECRET, recorder, max_body_bytes=2048)
    base = len(encode_envelope("test", {"message": ""}))
    body = encode_envelope("test", {"message": "x" * (2048 - base)})
    assert len(body) == 2048
    status, _ = await site.post(body, signed(body))
    assert status == 202


# Refusals --------------------------------------------------------------------------------------


async def test_tampered_body_is_refused_with_401(serve_receiver: Any) -> None:
    """A body changed after signing gets 401, with an empty response body, and no callback."""
    recorder = Recorder()
    site = await serve_receiver(SECRET, recorder)
    body = encode_envelope("note.created", NOTE)
    headers = signed(body)
    status, text = await site.post(body.replace(b"look at this", b"look at that"), headers)
    assert (status, text) == (401, b"")
    assert recorder.events == []


async def test_wrong_secret_is_refused_with_401(serve_receiver: Any) -> None:
    """A delivery signed with a secret the receiver does not know gets 401."""
    recorder = Recorder()
    site = await serve_receiver(SECRET, recorder)
    assert await deliver(site, secret="some-other-secret") == 401
    assert recorder.events == []


async def test_stale_timestamp_is_refused_with_401(serve_receiver: Any) -> None:
    """A genuinely signed delivery from an hour ago is refused as a replay."""
    recorder = Recorder()
    site = await serve_receiver(SECRET, recorder)
    assert await deliver(site, timestamp=int(time.time()) - 3600) == 401
    assert recorder.events == []


async def test_missing_header_is_refused_with_401(serve_receiver: Any) -> None:
    """A POST without Fullstory-Signature gets 401."""
    site = await serve_receiver(SECRET, Recorder())
    status, text = await site.post(encode_envelope("test", {}))
    assert (status, text) == (401, b"")


async def test_other_org_is_refused_when_pinned(serve_receiver: Any) -> None:
    """With org_id pinned, a delivery signed for another org gets 401."""
    site = await serve_receiver(SECRET, Recorder(), org_id="o-ANOTHER-na1")
    assert await deliver(site) == 401


async def test_signed_body_that_is_not_an_envelope_gets_400(serve_receiver: Any) -> None:
    """A correctly signed body that is not an event envelope gets 400 (not 401): the sender is genuine."""
    site = await serve_receiver(SECRET, Recorder())
    status, text = await site.post(b"[]", signed(b"[]"))
    assert (status, text) == (400, b"")


async def test_oversized_body_with_content_length_gets_413(serve_receiver: Any) -> None:
    """A declared Content-Length above the limit is refused with 413 before any verification."""
    recorder = Recorder()
    site = await serve_receiver(SECRET, recorder, max_body_bytes=1024)
    body = encode_envelope("test", {"message": "x" * 1024})
    status, _ = await site.post(body, signed(body))
    assert status == 413
    assert recorder.events == []


async def test_oversized_chunked_body_gets_413(serve_receiver: Any) -> None:
    """A chunked body (no Content-Length) is cut off once it passes the limit."""
    site = await serve_receiver(SECRET, Recorder(), max_body_bytes=1024)
    body = encode_envelope("test", {"message": "x" * 4096})

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    async with site.session.post(site.url, data=chunks(), headers=signed(body)) as response:
        assert response.status == 413
        assert "Content-Length" not in response.request_info.headers


class FakeContent:
    """A request body stream that records how much was asked for."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.returned = 0

    async def read(self, n: int) -> bytes:
        chunk = min(n, self.remaining, 1000)
        self.remaining -= chunk
        self.returned += chunk
        return b"x" * chunk


class FakeRequest:
    """Just enough of a web.Request for the body reader."""

    def __init__(self, size: int, declared: int | None = None) -> None:
        self.content = FakeContent(size)
        self.content_length = declared


@pytest.mark.parametrize(("size", "declared"), [(10_000_000, None), (10_000_000, 10_000_000)])
async def test_body_reader_never_reads_more_than_one_byte_past_the_limit(size: int, declared: int | None) -> None:
    """However big the body, at most limit + 1 bytes are read into memory (none with a large Content-Length)."""
    receiver = WebhookReceiver(SECRET, Recorder(), settings=ReceiverSettings(max_body_bytes=4096))
    request = FakeRequest(size, declared)
    assert await receiver._read_body(request) is None  # type: ignore[arg-type]
    assert request.content.returned <= 4097
    if declared is not None:
        assert request.content.returned == 0


# Callback failures -----------------------------------------------------------------------------


async def test_callback_exception_answers_500_so_the_sender_retries(
    serve_receiver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing callback gets 500 (never a 2xx), is logged with its traceback, and the retry is handled."""
    calls: list[str] = []

    async def flaky(event: WebhookEvent) -> None:
        calls.append(event.event_name)
        if len(calls) == 1:
            raise RuntimeError("database is down")

    caplog.set_level(logging.INFO, logger=LOGGER)
    site = await serve_receiver(SECRET, flaky)
    assert await deliver(site) == 500
    assert await deliver(site) == 202
    assert calls == ["note.created", "note.created"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "webhook callback failed for a note.created event" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_sync_callback_exception_answers_500(serve_receiver: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An exception in a thread-run callback is a 500 and is logged too."""

    def broken(event: WebhookEvent) -> None:
        raise ValueError("bad")

    site = await serve_receiver(SECRET, broken)
    assert await deliver(site) == 500
    assert any("callback failed" in r.getMessage() for r in caplog.records if r.name == LOGGER)


# Logging ---------------------------------------------------------------------------------------


async def test_refusals_are_logged_with_their_reason_and_never_the_secret(
    serve_receiver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A mismatch is a WARNING naming the reason; a missing header is only INFO; no secret is logged."""
    caplog.set_level(logging.DEBUG)
    site = await serve_receiver([SECRET, OLD_SECRET], Recorder())
    assert await deliver(site, secret="wrong-secret") == 401
    await site.post(encode_envelope("test", {}))
    mine = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.levelno, r.getMessage().split(":")[0]) for r in mine] == [
        (logging.WARNING, "webhook refused 401 (mismatch"),
        (logging.INFO, "webhook refused 401 (missing_header"),
    ]
    for record in caplog.records:
        for hidden in (SECRET, OLD_SECRET, "wrong-secret"):
            assert hidden not in record.getMessage()


async def test_oversized_refusal_is_logged(serve_receiver: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A 413 is logged at WARNING with the limit."""
    site = await serve_receiver(SECRET, Recorder(), max_body_bytes=10)
    status, _ = await site.post(b"x" * 11)
    assert status == 413
    assert any("body over 10 bytes" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# Shutdown --------------------------------------------------------------------------------------


async def test_aclose_gives_up_waiting_after_the_shutdown_timeout(serve_receiver: Any) -> None:
    """A stuck callback does not hold aclose past shutdown_timeout; its delivery is never acknowledged."""
    started = asyncio.Event()

    async def stuck(event: WebhookEvent) -> None:
        started.set()
        await asyncio.Event().wait()

    site = await serve_receiver(SECRET, stuck, shutdown_timeout=0)
    answer = asyncio.create_task(deliver(site))
    await started.wait()
    await site.receiver.aclose()
    assert site.receiver.closed
    assert not answer.done()
    answer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answer


async def test_aclose_lets_running_callbacks_finish(serve_receiver: Any) -> None:
    """Within shutdown_timeout, aclose waits for callbacks instead of cancelling them."""
    release = asyncio.Event()
    started = asyncio.Event()
    finished: list[bool] = []

    async def slow(event: WebhookEvent) -> None:
        started.set()
        await release.wait()
        finished.append(True)

    site = await serve_receiver(SECRET, slow, shutdown_timeout=30)
    answer = asyncio.create_task(deliver(site))
    await started.wait()
    closing = asyncio.create_task(site.receiver.aclose())
    await asyncio.sleep(0)
    assert not closing.done()
    assert await deliver(site) == 503  # closing: new deliveries are refused meanwhile
    release.set()
    await closing
    assert finished == [True]
    assert await answer == 202


async def test_closed_receiver_answers_503(serve_receiver: Any) -> None:
    """After aclose, deliveries get 503 (retry later) and no callback runs; aclose is idempotent."""
    recorder = Recorder()
    site = await serve_receiver(SECRET, recorder)
    await site.receiver.aclose()
    await site.receiver.aclose()
    assert await deliver(site) == 503
    assert recorder.events == []


# Construction ----------------------------------------------------------------------------------


def test_repr_hides_the_secrets() -> None:
    """The receiver's repr counts the secrets and shows none."""
    receiver = WebhookReceiver([SECRET, OLD_SECRET], Recorder())
    assert SECRET not in repr(receiver)
    assert OLD_SECRET not in repr(receiver)
    assert "<2 hidden>" in repr(receiver)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_body_bytes": 1.5}, "max_body_bytes"),
        ({"shutdown_timeout": -1}, "shutdown_timeout"),
        ({"tolerance": -5}, "tolerance"),
        ({"org_id": ""}, "org_id"),
        ({"body_timeout": 0}, "body_timeout"),
        ({"refusal_log": "quiet"}, "refusal_log"),
        ({"secrets": []}, "secrets"),
        ({"callback": "not callable"}, "callback"),
    ],
)
def test_bad_configuration_is_refused_early(kwargs: dict[str, Any], field: str) -> None:
    """Invalid receiver settings raise InvalidArgumentError naming the setting."""
    secrets = kwargs.pop("secrets", SECRET)
    callback = kwargs.pop("callback", Recorder())
    with pytest.raises(InvalidArgumentError) as info:
        WebhookReceiver(secrets, callback, settings=ReceiverSettings(**kwargs))
    assert info.value.field == field
