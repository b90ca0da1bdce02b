"""Receiving Fullstory webhooks: verify the ``Fullstory-Signature``, read typed events, serve them.

::

    from aiohttp import web
    from fullstory_async.receiving import NoteCreatedData, WebhookEvent, add_webhook_route

    async def on_event(event: WebhookEvent) -> None:
        if isinstance(event.data, NoteCreatedData):
            print(event.data.author, event.data.text)

    app = web.Application()
    add_webhook_route(app, "/fullstory/webhooks", secrets=["new-secret", "old-secret"], callback=on_event)
    web.run_app(app)

Outside aiohttp, call `verify` with the raw body and the header value; `sign` produces
the header Fullstory sends, for your own tests.
"""

from fullstory_async.receiving._activity import ActivityMinute, InboxActivity
from fullstory_async.receiving._asgi import WebhookASGIApp
from fullstory_async.receiving._errors import SignatureVerificationError, VerificationFailure
from fullstory_async.receiving._event_data import (
    CustomEventData,
    CustomEventIssue,
    EndpointTestData,
    MetricAlertConfig,
    MetricAlertData,
    NativeMobileCrashData,
    NoteCreatedData,
    PageInfo,
    SegmentAlertConfig,
    SegmentCreatedData,
    SegmentTrendAlertData,
)
from fullstory_async.receiving._events import EventData, WebhookEvent
from fullstory_async.receiving._forward import Forwarder, ForwardHandler, ForwardOutcome, ForwardTarget
from fullstory_async.receiving._forwarded import new_forward_secret, verify_forwarded
from fullstory_async.receiving._hooks import Delivery, DeliveryResult, HandlerRun, ReceivingHooks, RunResult
from fullstory_async.receiving._inbox import Inbox, InboxAttempt, InboxError, InboxRecord, InboxStats, delivery_key
from fullstory_async.receiving._metrics import ReceivingMetrics
from fullstory_async.receiving._open import open_inbox
from fullstory_async.receiving._query import InboxEntry, InboxFilter, InboxPage, ReplayResult
from fullstory_async.receiving._receiver import WebhookCallback, WebhookReceiver, add_webhook_route
from fullstory_async.receiving._refusals import RefusalLog
from fullstory_async.receiving._settings import ReceiverSettings
from fullstory_async.receiving._signature import sign, signed_delivery, verify
from fullstory_async.receiving._verdicts import DeadLetterError, RetryLaterError, ServiceUnavailableError
from fullstory_async.receiving._worker import EventHandler, InboxWorker

__all__ = [
    "ActivityMinute",
    "CustomEventData",
    "CustomEventIssue",
    "DeadLetterError",
    "Delivery",
    "DeliveryResult",
    "EndpointTestData",
    "EventData",
    "EventHandler",
    "ForwardHandler",
    "ForwardOutcome",
    "ForwardTarget",
    "Forwarder",
    "HandlerRun",
    "Inbox",
    "InboxActivity",
    "InboxAttempt",
    "InboxEntry",
    "InboxError",
    "InboxFilter",
    "InboxPage",
    "InboxRecord",
    "InboxStats",
    "InboxWorker",
    "MetricAlertConfig",
    "MetricAlertData",
    "NativeMobileCrashData",
    "NoteCreatedData",
    "PageInfo",
    "ReceiverSettings",
    "ReceivingHooks",
    "ReceivingMetrics",
    "RefusalLog",
    "ReplayResult",
    "RetryLaterError",
    "RunResult",
    "SegmentAlertConfig",
    "SegmentCreatedData",
    "SegmentTrendAlertData",
    "ServiceUnavailableError",
    "SignatureVerificationError",
    "VerificationFailure",
    "WebhookASGIApp",
    "WebhookCallback",
    "WebhookEvent",
    "WebhookReceiver",
    "add_webhook_route",
    "delivery_key",
    "new_forward_secret",
    "open_inbox",
    "sign",
    "signed_delivery",
    "verify",
    "verify_forwarded",
]
