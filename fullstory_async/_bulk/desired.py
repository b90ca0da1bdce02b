"""Desired-state files for declarative sync: TOML or JSON, secrets by environment variable.

::

    # endpoints.toml
    [[endpoints]]
    url = "https://example.com/hooks/notes"
    event_types = ["note.created"]
    secret_env = "NOTES_WEBHOOK_SECRET"     # the secret itself never lives in the file
    enabled = true                          # optional, default true

    [[endpoints]]
    url = "https://example.com/hooks/alerts"
    event_types = [{ event_name = "segment.trend.alert", subcategory = "CgsiCW8t..." }]
    secret_env = "ALERTS_WEBHOOK_SECRET"

JSON files hold the same document: ``{"endpoints": [{"url": ..., ...}]}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from fullstory_async._exceptions import FullstoryError, InvalidArgumentError
from fullstory_async._models import CreateEndpointRequest, EventType, check_url

_FIELDS = frozenset({"url", "event_types", "secret_env", "enabled"})


class DesiredStateError(FullstoryError, ValueError):
    """A desired-state file is malformed; ``where`` names the file, line or field."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@attrs.frozen
class DesiredEndpoint:
    """One endpoint as it should be."""

    url: str
    """Destination URL (identifies the endpoint)."""

    event_types: tuple[EventType, ...] = ()
    """Event types it should receive."""

    secret: str | None = attrs.field(default=None, repr=False)
    """Signing secret, read from ``secret_env``; never shown."""

    secret_env: str | None = None
    """Name of the environment variable that holds the secret."""

    enabled: bool = True
    """Whether it should receive events."""

    def create_request(self) -> CreateEndpointRequest:
        """Return the `CreateEndpointRequest` that makes this endpoint."""
        return CreateEndpointRequest(url=self.url, event_types=self.event_types, secret=self.secret)


@attrs.frozen
class DesiredState:
    """Every endpoint that should exist (with ``prune``, no other may)."""

    endpoints: tuple[DesiredEndpoint, ...] = ()
    """The endpoints, in file order; URLs are unique."""


def load_desired_state(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> DesiredState:
    """Read a ``.toml`` or ``.json`` desired-state file; raise `DesiredStateError` naming what is wrong."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DesiredStateError(str(file), f"cannot read: {exc.__class__.__name__}: {exc}") from None
    fmt = "json" if file.suffix.lower() == ".json" else "toml"
    return parse_desired_state(text, fmt=fmt, source=str(file), environ=environ)


def parse_desired_state(
    text: str, *, fmt: str = "toml", source: str = "<desired state>", environ: Mapping[str, str] | None = None
) -> DesiredState:
    """Parse desired state from TOML or JSON text (see the module docstring for the shape)."""
    import tomllib

    try:
        document: Any = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise DesiredStateError(f"{source}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DesiredStateError(source, f"invalid TOML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("endpoints", []), list):
        raise DesiredStateError(source, 'expected a document with an "endpoints" list')
    environ = os.environ if environ is None else environ
    endpoints: list[DesiredEndpoint] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(document.get("endpoints", [])):
        where = f"{source}: endpoints[{number}]"
        endpoint = _endpoint(entry, where, environ)
        if endpoint.url in seen:
            raise DesiredStateError(f"{where}.url", f"duplicates endpoints[{seen[endpoint.url]}] ({endpoint.url})")
        seen[endpoint.url] = number
        endpoints.append(endpoint)
    return DesiredState(tuple(endpoints))


def _endpoint(entry: object, where: str, environ: Mapping[str, str]) -> DesiredEndpoint:
    if not isinstance(entry, dict):
        raise DesiredStateError(where, f"expected a table/object, got {type(entry).__name__}")
    if "secret" in entry:
        raise DesiredStateError(f"{where}.secret", 'secrets do not belong in the file: use secret_env = "VAR_NAME"')
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise DesiredStateError(
            f"{where}.{unknown[0]}", f"unknown field (expected one of {', '.join(sorted(_FIELDS))})"
        )
    try:
        url = check_url("url", entry.get("url"))
        event_types = tuple(parse_event_type(item, f"event_types[{i}]") for i, item in enumerate(_list(entry)))
    except InvalidArgumentError as exc:
        raise DesiredStateError(f"{where}.{exc.field}", exc.problem) from None
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise DesiredStateError(f"{where}.enabled", f"must be true or false, got {enabled!r}")
    secret_env = entry.get("secret_env")
    secret = None
    if secret_env is not None:
        if not isinstance(secret_env, str) or not secret_env:
            raise DesiredStateError(f"{where}.secret_env", "must be the name of an environment variable")
        secret = environ.get(secret_env)
        if not secret:
            raise DesiredStateError(f"{where}.secret_env", f"environment variable {secret_env} is not set")
    return DesiredEndpoint(url, event_types, secret, secret_env, enabled)


def _list(entry: dict[str, Any]) -> list[Any]:
    value = entry.get("event_types", [])
    if not isinstance(value, list):
        raise InvalidArgumentError("event_types", f"must be a list, got {type(value).__name__}")
    return value


def parse_event_type(item: object, field: str) -> EventType:
    """Read an event type written as a name or ``{event_name, subcategory}``; errors name ``field``."""
    try:
        if isinstance(item, str):
            return EventType(item)
        if isinstance(item, dict) and set(item) <= {"event_name", "subcategory"}:
            subcategory = item.get("subcategory")
            if subcategory is not None and not isinstance(subcategory, str):
                raise InvalidArgumentError("subcategory", "must be a string")
            return EventType(item.get("event_name"), subcategory)  # type: ignore[arg-type]
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{field}.{exc.field}", exc.problem) from None
    raise InvalidArgumentError(field, "must be an event name or {event_name, subcategory}")
