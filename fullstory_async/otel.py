"""OpenTelemetry tracing, an adapter on `Hooks`: ``pip install "fullstory-async[otel]"`` (``opentelemetry-api`` only).

::

    from fullstory_async import Client
    from fullstory_async.otel import OpenTelemetryHooks

    async with Client(hooks=[OpenTelemetryHooks()]) as fs:
        ...

Each call is one span (kind ``INTERNAL``, named ``fullstory <operation>``, current while
the call runs, so spans your own HTTP instrumentation makes nest under it). Each HTTP
attempt is a child span of kind ``CLIENT`` named after its method, with the stable HTTP
semantic-convention attributes: ``http.request.method``, ``url.full``, ``server.address``,
``server.port``, ``http.response.status_code``, ``http.request.resend_count`` (from the
second attempt on), ``error.type`` (the status code, or the error's class name when no
response came) and ``fullstory.request_id`` (when the response names one). Waits are recorded where they happen:

* a wait in the rate governor: event ``fullstory.governor_wait`` on the attempt's span,
  attribute ``fullstory.wait_seconds``;
* a retry wait: event ``fullstory.retry_wait`` on the call's span, attributes
  ``fullstory.attempt`` (the attempt that failed) and ``fullstory.wait_seconds``.

No attribute holds a header or a body, so no API key, endpoint secret or proxy credential
can reach a span.

`OpenTelemetryReceivingHooks` traces the receiving side the same way (``hooks=[...]`` on a
`WebhookReceiver` and an `InboxWorker`): a ``SERVER`` span per delivery with ``verify`` and
``commit`` children, and a ``CONSUMER`` span per handler run, linked to its delivery's span
through the W3C ``traceparent`` the inbox stored with the event.
"""

from __future__ import annotations

import time
from contextvars import Token
from urllib.parse import urlsplit

import attrs

try:
    from opentelemetry import context, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:
    raise ImportError(
        'fullstory_async.otel needs opentelemetry-api: pip install "fullstory-async[otel]"', name=exc.name
    ) from exc

from fullstory_async._hooks import Attempt, Call, CallResult, Hooks, RequestView
from fullstory_async._version import __version__
from fullstory_async.receiving._hooks import Delivery, DeliveryResult, HandlerRun, ReceivingHooks, RunResult

__all__ = ["OpenTelemetryHooks", "OpenTelemetryReceivingHooks"]


def _epoch_ns(monotonic: float) -> int:
    """Convert a ``time.monotonic()`` instant to the nanoseconds since the epoch that OpenTelemetry takes."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


def _http_attributes(request: RequestView) -> dict[str, AttributeValue]:
    url = urlsplit(request.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return {
        "http.request.method": request.method,
        "url.full": request.url,
        "server.address": url.hostname or "",
        "server.port": port,
    }


def _error_type(status: int | None, error: BaseException | None) -> str | None:
    if status is not None and status >= 400:
        return str(status)
    return None if error is None else type(error).__name__


@attrs.define
class _Open:
    span: Span
    token: Token[Context]


class OpenTelemetryHooks(Hooks):
    """Trace every call and attempt of the clients it is given to (``Client(hooks=[OpenTelemetryHooks()])``).

    Args:
        tracer_provider: the provider to take the tracer from; the global one by default.

    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("fullstory_async", __version__, tracer_provider=tracer_provider)
        self._open: dict[Call, _Open] = {}

    def on_call_start(self, call: Call) -> None:
        """Start the call's span and make it current."""
        request = call.request
        attributes = _http_attributes(request)
        if request.operation:
            attributes["fullstory.operation"] = request.operation
        span = self._tracer.start_span(
            f"fullstory {request.operation or request.method}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_epoch_ns(call.started),
        )
        self._open[call] = _Open(span, context.attach(trace.set_span_in_context(span)))

    def on_attempt(self, call: Call, attempt: Attempt) -> None:
        """Record the attempt as a child span, with its governor wait; record the retry wait on the call's span."""
        parent = self._open.get(call)
        if parent is None:
            return
        if not attempt.sent:  # the rate governor ended it before sending: no HTTP request, so no client span
            parent.span.add_event(
                "fullstory.not_sent",
                {"fullstory.wait_seconds": attempt.governor_wait, "error.type": type(attempt.error).__name__},
                timestamp=_epoch_ns(attempt.started),
            )
            return
        status = attempt.status
        attributes = _http_attributes(attempt.request)
        if attempt.number > 1:
            attributes["http.request.resend_count"] = attempt.number - 1
        if status is not None:
            attributes["http.response.status_code"] = status
        error_type = _error_type(status, attempt.error)
        if error_type is not None:
            attributes["error.type"] = error_type
        outcome = attempt.response if attempt.response is not None else attempt.error
        request_id = getattr(outcome, "request_id", None)
        if request_id:
            attributes["fullstory.request_id"] = request_id
        span = self._tracer.start_span(
            attempt.request.method,
            context=trace.set_span_in_context(parent.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=_epoch_ns(attempt.started),
        )
        if attempt.governor_wait > 0:
            span.add_event(
                "fullstory.governor_wait",
                {"fullstory.wait_seconds": attempt.governor_wait},
                timestamp=_epoch_ns(attempt.started),
            )
        if error_type is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_epoch_ns(attempt.started + attempt.duration))
        if attempt.retry_wait is not None:
            parent.span.add_event(
                "fullstory.retry_wait",
                {"fullstory.attempt": attempt.number, "fullstory.wait_seconds": attempt.retry_wait},
            )

    def on_call_end(self, call: Call, result: CallResult) -> None:
        """End the call's span, with the number of attempts and the error if any."""
        opened = self._open.pop(call, None)
        if opened is None:
            return
        context.detach(opened.token)
        span = opened.span
        span.set_attribute("fullstory.attempts", result.attempts)
        if result.response is not None:
            span.set_attribute("http.response.status_code", result.response.status)
        error = result.error
        if error is not None:
            status = getattr(error, "status", None)
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
            span.set_attribute("error.type", _error_type(status, error) or type(error).__name__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()


_PROPAGATOR = TraceContextTextMapPropagator()


class OpenTelemetryReceivingHooks(ReceivingHooks):
    """Trace every delivery and handler run of the receivers and workers it is given to (``hooks=[...]``).

    Args:
        tracer_provider: the provider to take the tracer from; the global one by default.

    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("fullstory_async", __version__, tracer_provider=tracer_provider)
        self._open: dict[Delivery | HandlerRun, _Open] = {}

    def _start(self, key: Delivery | HandlerRun, span: Span) -> None:
        self._open[key] = _Open(span, context.attach(trace.set_span_in_context(span)))

    def _end(self, key: Delivery | HandlerRun) -> Span | None:
        opened = self._open.pop(key, None)
        if opened is None:
            return None
        context.detach(opened.token)
        return opened.span

    def on_delivery_start(self, delivery: Delivery) -> None:
        """Start the delivery's span, make it current, and give its ``traceparent`` to the inbox."""
        span = self._tracer.start_span(
            "fullstory webhook delivery", kind=SpanKind.SERVER, start_time=_epoch_ns(delivery.started)
        )
        self._start(delivery, span)
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        delivery.traceparent = carrier.get("traceparent")  # none when the span is not recorded (no SDK)

    def on_delivery_end(self, delivery: Delivery, result: DeliveryResult) -> None:
        """Record the ``verify`` and ``commit`` steps as child spans and end the delivery's span with its outcome."""
        span = self._end(delivery)
        if span is None:
            return
        parent = trace.set_span_in_context(span)
        verified = delivery.started + result.verify_duration
        steps = [("verify", delivery.started, verified)]
        if result.commit_duration is not None:
            steps.append(("commit", verified, verified + result.commit_duration))
        for name, start, end in steps:
            step = self._tracer.start_span(name, context=parent, start_time=_epoch_ns(start))
            step.end(end_time=_epoch_ns(end))
        span.set_attribute("fullstory.delivery.outcome", result.outcome)
        if result.status:
            span.set_attribute("http.response.status_code", result.status)
        if result.reason is not None:
            span.set_attribute("fullstory.refusal_reason", result.reason)
        if result.status >= 500 or not result.status:
            span.set_attribute("error.type", str(result.status) if result.status else result.reason or "aborted")
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_epoch_ns(delivery.started + result.duration))

    def on_run_start(self, run: HandlerRun) -> None:
        """Start the run's span, linked to its delivery's, and make it current while the handler runs."""
        links = []
        if run.delivery_traceparent:
            delivered = trace.get_current_span(_PROPAGATOR.extract({"traceparent": run.delivery_traceparent}))
            if delivered.get_span_context().is_valid:
                links.append(Link(delivered.get_span_context()))
        attributes: dict[str, AttributeValue] = {"fullstory.delivery_key": run.key, "fullstory.attempt": run.attempt}
        if run.event_name is not None:
            attributes["fullstory.event_name"] = run.event_name
        span = self._tracer.start_span(
            f"fullstory handle {run.event_name or 'event'}",
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
            start_time=_epoch_ns(run.started),
        )
        self._start(run, span)

    def on_run_end(self, run: HandlerRun, result: RunResult) -> None:
        """End the run's span with its outcome and what the inbox recorded."""
        span = self._end(run)
        if span is None:
            return
        span.set_attribute("fullstory.run.outcome", result.outcome)
        if result.recorded is not None:
            span.set_attribute("fullstory.run.recorded", result.recorded)
        if result.outcome not in ("ok", "cancelled"):
            span.set_attribute("error.type", result.outcome)
            span.set_status(Status(StatusCode.ERROR, result.error))
        span.end(end_time=_epoch_ns(run.started + result.duration))
