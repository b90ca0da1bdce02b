"""The one-call commands: ``endpoints list|get|create|update|delete``, ``event-types``, ``subcategories``.

Each is a thin call of ``client.webhooks``; it prints the result and returns the exit
status. ``fake-server`` (no client) is here too.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Sequence

from fullstory_async import (
    BadRequestError,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    FullstoryError,
    InvalidArgumentError,
    UpdateEndpointRequest,
)
from fullstory_async._bulk.desired import did_you_mean
from fullstory_async.cli._output import (
    ENDPOINT_HEADERS,
    endpoint_lines,
    endpoint_record,
    endpoint_row,
    error_text,
    table,
)
from fullstory_async.cli._parser import UsageError
from fullstory_async.cli._target import Target

_TABLE_BATCH = 100  # rows aligned together: the listing streams, a page at a time


def parse_event_type(text: str) -> EventType:
    """``NAME`` or ``NAME:SUBCATEGORY`` (subcategory values never contain a colon)."""
    name, colon, subcategory = text.partition(":")
    try:
        return EventType(name, subcategory if colon else None)
    except InvalidArgumentError as exc:
        raise UsageError(f"--event-type {text!r}: {exc.field}: {exc.problem}") from None


def _event_types(texts: Sequence[str] | None) -> list[EventType] | None:
    return None if texts is None else [parse_event_type(text) for text in texts]


def _secret(args: argparse.Namespace, target: Target) -> str | None:
    return None if args.secret_env is None else target.secret(args.secret_env, "--secret-env")


async def endpoint_id(target: Target, ref: str) -> str:
    """Return the id of the endpoint ``ref`` names: an id, or a URL (looked up in the listing)."""
    if "://" not in ref:
        return ref
    endpoint = await target.client.webhooks.find_endpoint_by_url(ref)
    if endpoint is None:
        raise FullstoryError(f"no endpoint has the URL {ref}")
    return endpoint.id


def _show(target: Target, endpoint: Endpoint) -> None:
    if target.console.json:
        target.console.emit(endpoint_record(endpoint))
    else:
        target.console.lines(endpoint_lines(endpoint))


async def endpoints_list(args: argparse.Namespace, target: Target) -> int:
    """Print every endpoint: a table, or one JSON object a line (``--json``)."""
    console = target.console
    rows: list[tuple[str, ...]] = []
    headers: tuple[str, ...] | None = ENDPOINT_HEADERS
    async for endpoint in target.client.webhooks.list_endpoints():
        if console.json:
            console.emit(endpoint_record(endpoint))
            continue
        rows.append(endpoint_row(endpoint))
        if len(rows) == _TABLE_BATCH:
            console.lines(table(rows, headers))
            rows, headers = [], None
    if not console.json:
        if rows:
            console.lines(table(rows, headers))
        elif headers is not None:
            console.lines(["No endpoints."])
    return 0


async def endpoints_get(args: argparse.Namespace, target: Target) -> int:
    """Print one endpoint."""
    _show(target, await target.client.webhooks.get_endpoint(await endpoint_id(target, args.id)))
    return 0


async def _hinted(target: Target, event_types: Sequence[EventType] | None, call: Awaitable[Endpoint]) -> int:
    """Await ``call`` and show its endpoint (0); a refused event name gets a did-you-mean (1).

    After the server's ``400`` only, the catalogue is fetched, and each event name it does not
    list is named with the closest one: a request that succeeds costs no extra call.
    """
    try:
        endpoint = await call
    except BadRequestError as exc:
        try:
            names = [d.event_name for d in await target.client.webhooks.list_event_types()]
        except FullstoryError:
            raise exc from None
        hint = "".join(
            f"; {e.event_name!r} is not an event type of this account{did_you_mean(e.event_name, names)}"
            for e in event_types or ()
            if e.event_name not in names
        )
        if not hint:
            raise
        target.console.error(error_text(exc) + hint, exc)
        return 1
    _show(target, endpoint)
    return 0


async def endpoints_create(args: argparse.Namespace, target: Target) -> int:
    """Create one endpoint; never a duplicate (an existing URL is an error), safe to retry.

    Without ``--secret-env`` its deliveries could never be verified: ``--no-secret`` says so on purpose.
    """
    try:
        request = CreateEndpointRequest(url=args.url, event_types=_event_types(args.event_types) or ())
    except InvalidArgumentError as exc:
        raise UsageError(f"--{exc.field.replace('_', '-')}: {exc.problem}") from None
    if args.secret_env is not None and args.no_secret:
        raise UsageError("--secret-env and --no-secret contradict each other: give one")
    if args.secret_env is None and not args.no_secret:
        raise UsageError(
            "--secret-env VAR is required: without a secret, the endpoint's deliveries cannot be verified "
            "(pass --no-secret to create it without one anyway)"
        )
    secret = _secret(args, target)
    if secret is not None:
        request = CreateEndpointRequest(url=request.url, event_types=request.event_types, secret=secret)

    async def create() -> Endpoint:
        endpoint, _outcome = await target.client.webhooks.ensure_endpoint(request, on_exists="error")
        return endpoint

    return await _hinted(target, request.event_types, create())


async def endpoints_update(args: argparse.Namespace, target: Target) -> int:
    """Change the fields given; the rest (the enabled state included) stays as it is."""
    event_types = _event_types(args.event_types)
    secret = _secret(args, target)
    try:
        request = UpdateEndpointRequest(url=args.url, event_types=event_types, secret=secret, enabled=args.enabled)
    except InvalidArgumentError as exc:
        if exc.field == "UpdateEndpointRequest":
            raise UsageError(
                "nothing to change: give --url, --event-type, --secret-env, --enable or --disable"
            ) from None
        raise UsageError(f"--{exc.field.replace('_', '-')}: {exc.problem}") from None
    endpoint = await endpoint_id(target, args.id)
    return await _hinted(target, event_types, target.client.webhooks.update_endpoint(endpoint, request))


async def endpoints_delete(args: argparse.Namespace, target: Target) -> int:
    """Delete one endpoint."""
    deleted = await endpoint_id(target, args.id)
    await target.client.webhooks.delete_endpoint(deleted)
    if target.console.json:
        target.console.emit({"deleted": deleted})
    else:
        target.console.lines([f"Deleted {deleted}."])
    return 0


async def event_types(args: argparse.Namespace, target: Target) -> int:
    """Print the event types the organisation can subscribe to."""
    console = target.console
    definitions = await target.client.webhooks.list_event_types()
    if console.json:
        for d in definitions:
            console.emit(
                {"event_name": d.event_name, "display_name": d.display_name, "has_subcategories": d.has_subcategories}
            )
        return 0
    rows = [(d.event_name, d.display_name, "yes" if d.has_subcategories else "no") for d in definitions]
    console.lines(table(rows, ("EVENT NAME", "DISPLAY NAME", "SUBCATEGORIES")))
    return 0


async def subcategories(args: argparse.Namespace, target: Target) -> int:
    """Print the subcategories of one event type (the values to use in ``NAME:SUBCATEGORY``)."""
    console = target.console
    rows: list[tuple[str, str]] = []
    async for item in target.client.webhooks.list_event_subcategories(args.event):
        if console.json:
            console.emit({"subcategory": item.subcategory, "display_name": item.display_name})
        else:
            rows.append((item.subcategory, item.display_name))
    if not console.json:
        console.lines(table(rows, ("SUBCATEGORY", "DISPLAY NAME")) if rows else [f"{args.event} has no subcategories."])
    return 0


def fake_server(args: argparse.Namespace) -> int:
    """Serve the fake until Ctrl-C (the options and the code of ``python -m fullstory_async.testing``)."""
    from fullstory_async.testing.__main__ import run

    return run(args)
