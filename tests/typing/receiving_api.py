"""The receiving API as users write it: type-checked by mypy (strict), never run."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from fullstory_async import FullstoryError
from fullstory_async.receiving import (
    EventData,
    InboxRecord,
    InboxStats,
    InboxWorker,
    MetricAlertData,
    NoteCreatedData,
    ReceiverSettings,
    SignatureVerificationError,
    VerificationFailure,
    WebhookASGIApp,
    WebhookEvent,
    WebhookReceiver,
    add_webhook_route,
    open_inbox,
    sign,
    signed_delivery,
    verify,
)


async def on_event(event: WebhookEvent) -> None:
    data: EventData = event.data
    match data:
        case NoteCreatedData(author=author, page_info=page):
            text: str | None = author
            height: int | None = page.page_height if page else None
            print(text, height)
        case MetricAlertData(value=value, alert_config=config):
            number: float | None = value
            print(number, config.metric_name if config else None)
        case Mapping():
            print(event.event_name, dict(data))
        case _:
            pass


def on_event_sync(event: WebhookEvent) -> None:
    print(event.org_id, event.signed_at, event.raw.get("eventName"))


def build() -> web.Application:
    app = web.Application()
    receiver: WebhookReceiver = add_webhook_route(
        app, "/hooks", ["new", "old"], on_event, settings=ReceiverSettings(tolerance=None, org_id="o-1")
    )
    other = WebhookReceiver(
        "secret", on_event_sync, settings=ReceiverSettings(max_body_bytes=64 * 1024, shutdown_timeout=0)
    )
    app.router.add_post("/other", other.handle)
    app.on_cleanup.append(other.on_cleanup)
    print(receiver.closed, receiver.asgi)
    return app


def check(body: bytes, header: str | None) -> WebhookEvent | None:
    try:
        return verify(body, header, ("new", "old"), tolerance=300, now=1_700_000_000.0)
    except SignatureVerificationError as exc:
        reason: VerificationFailure = exc.reason
        root: FullstoryError = exc
        print(reason == "mismatch", root)
        return None


header: str = sign(b"{}", "secret", "o-1", 1_700_000_000)


async def durable(url: str) -> None:
    async with open_inbox(url, retention=3600.0) as inbox:
        receiver = WebhookReceiver(["new", "old"], inbox=inbox, settings=ReceiverSettings(org_id="o-1"))
        asgi: WebhookASGIApp = receiver.asgi
        worker = InboxWorker(inbox, on_event, concurrency=4, max_attempts=3, handler_timeout=10.0)
        print(asgi, await worker.run_until_idle())
        stats: InboxStats = await inbox.stats()
        records: list[InboxRecord] = [record async for record in inbox.export()]
        body, headers = signed_delivery("test", {}, secret="new", org_id="o-1")
        print(stats.pending, records, body, headers["Fullstory-Signature"])
