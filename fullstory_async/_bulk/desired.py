"""Desired-state files and provision input: one schema, one parser, errors naming the key.

::

    # endpoints.toml
    scope = ["https://example.com/hooks/"]   # what this file owns (top-level: above the first table)

    [[endpoints]]
    url = "https://example.com/hooks/notes"
    event_types = ["note.created"]
    secret_env = "NOTES_WEBHOOK_SECRET"     # the secret itself never lives in the file
    enabled = true                          # optional, default true

    [[endpoints]]
    url = "https://example.com/hooks/alerts"
    event_types = [{ event_name = "segment.trend.alert", subcategory = "CgsiCW8t..." }]
    secret_env = "ALERTS_WEBHOOK_SECRET"

JSON files hold the same document: ``{"scope": [...], "endpoints": [{"url": ..., ...}]}``.
A ``provision`` input line (JSON Lines) is one endpoint object of the same schema
(`parse_endpoint`). Unknown keys are errors, with a did-you-mean.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from fullstory_async._bulk.scope import UrlKey, check_scope, in_scope, redacted, url_key, url_problem
from fullstory_async._exceptions import FullstoryError, InvalidArgumentError
from fullstory_async._models import CreateEndpointRequest, EventType, check_url

ENDPOINT_KEYS = ("url", "event_types", "secret_env", "enabled")
TOP_LEVEL_KEYS = ("scope", "endpoints")


class DesiredStateError(FullstoryError, ValueError):
    """A desired-state file is malformed; ``where`` names the file and the key path."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class UnsetSecretError(InvalidArgumentError):
    """A ``secret_env`` variable is unset or empty; ``variable`` names it (never its value: there is none)."""

    def __init__(self, variable: str) -> None:
        super().__init__("secret_env", f"environment variable {variable} is not set")
        self.variable = variable


def unset_secrets_error(unset: Mapping[str, list[str]]) -> InvalidArgumentError:
    """One error naming every unset ``secret_env`` variable and where each is used (``{variable: [where...]}``)."""
    if len(unset) == 1:
        [(variable, places)] = unset.items()
        if len(places) == 1:
            return InvalidArgumentError(f"{places[0]}.secret_env", f"environment variable {variable} is not set")
    listed = "; ".join(f"{variable} ({', '.join(places)})" for variable, places in unset.items())
    return InvalidArgumentError("secret_env", f"{len(unset)} environment variable(s) are not set: {listed}")


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean "x"?)`` for the closest of ``choices``, or ``""``."""
    import difflib  # on first use: keeps `import fullstory_async` light

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _type_name(value: object) -> str:
    names = {dict: "a table/object", list: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


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


def _endpoints(value: Iterable[DesiredEndpoint]) -> tuple[DesiredEndpoint, ...]:
    return tuple(value)


def _scope(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else check_scope(value)


@attrs.frozen
class DesiredState:
    """Every endpoint that should exist, and the ``scope`` of URL prefixes this state owns.

    With a scope, every desired URL must be inside it, and ``plan(prune=True)`` deletes
    only endpoints inside it; without one, pruning is refused.
    """

    endpoints: tuple[DesiredEndpoint, ...] = attrs.field(default=(), converter=_endpoints)
    """The endpoints, in file order; no two URLs name the same endpoint (see `url_key`)."""

    scope: tuple[str, ...] | None = attrs.field(default=None, converter=_scope, kw_only=True)
    """Absolute http(s) URL prefixes this state owns (scheme, host and port match exactly)."""

    def __attrs_post_init__(self) -> None:
        seen: dict[UrlKey, int] = {}
        for number, endpoint in enumerate(self.endpoints):
            if not isinstance(endpoint, DesiredEndpoint):
                raise InvalidArgumentError(f"endpoints[{number}]", "must be a DesiredEndpoint")
            field = f"endpoints[{number}].url"
            key = url_key(endpoint.url)
            if key is None:
                raise InvalidArgumentError(field, f"{redacted(endpoint.url)}: {url_problem(endpoint.url)}")
            if key in seen:
                first = seen[key]
                raise InvalidArgumentError(
                    field,
                    f"{endpoint.url} is the same endpoint as endpoints[{first}] ({self.endpoints[first].url}): "
                    "list each endpoint once",
                )
            seen[key] = number
            if self.scope is not None and not in_scope(endpoint.url, self.scope, literal=True):
                raise InvalidArgumentError(field, f"{endpoint.url} is outside the scope ({', '.join(self.scope)})")


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
    try:
        return desired_state_from(document, environ=os.environ if environ is None else environ)
    except InvalidArgumentError as exc:
        raise DesiredStateError(f"{source}: {exc.field}", exc.problem) from None


def desired_state_from(document: object, *, environ: Mapping[str, str]) -> DesiredState:
    """Build a `DesiredState` from a decoded document; `InvalidArgumentError` names the key path."""
    if not isinstance(document, dict):
        raise InvalidArgumentError("document", f"must be a table/object, got {_type_name(document)}")
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            raise InvalidArgumentError(
                key, f"unknown key{did_you_mean(key, TOP_LEVEL_KEYS)}; expected {', '.join(TOP_LEVEL_KEYS)}"
            )
    if "endpoints" not in document:
        raise InvalidArgumentError(
            "endpoints", 'is missing: a desired state lists its endpoints ([[endpoints]] tables, or "endpoints": [])'
        )
    entries = document["endpoints"]
    if not isinstance(entries, list):
        raise InvalidArgumentError("endpoints", f"must be an array of tables/objects, got {_type_name(entries)}")
    scope = document.get("scope")
    if "scope" in document and not isinstance(scope, list):
        raise InvalidArgumentError("scope", f"must be an array of URL prefixes, got {_type_name(scope)}")
    endpoints = []
    unset: dict[str, list[str]] = {}  # every unset variable is named at once, not one run at a time
    for number, entry in enumerate(entries):
        try:
            endpoints.append(parse_endpoint(entry, environ))
        except UnsetSecretError as exc:
            unset.setdefault(exc.variable, []).append(f"endpoints[{number}]")
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"endpoints[{number}].{exc.field}".rstrip("."), exc.problem) from None
    if unset:
        raise unset_secrets_error(unset)
    return DesiredState(tuple(endpoints), scope=scope)


def parse_endpoint(entry: object, environ: Mapping[str, str], keys: tuple[str, ...] = ENDPOINT_KEYS) -> DesiredEndpoint:
    """Read one endpoint object (a desired-state entry, or one ``provision`` line, whose ``keys`` lack ``enabled``).

    Raises `InvalidArgumentError` whose ``field`` is the key path inside the entry
    (empty when the entry itself is wrong); `UnsetSecretError` for an unset ``secret_env``.
    """
    if not isinstance(entry, dict):
        raise InvalidArgumentError("", f"must be a table/object, got {_type_name(entry)}")
    if "secret" in entry:
        raise InvalidArgumentError("secret", 'secrets do not belong in the file: use secret_env = "VAR_NAME"')
    if "scope" in entry:
        raise InvalidArgumentError(
            "scope",
            "scope is a top-level key: move it above the first [[endpoints]] table "
            "(in TOML, a key below a table header belongs to that table)",
        )
    for key in entry:
        if key not in keys:
            raise InvalidArgumentError(key, f"unknown key{did_you_mean(key, keys)}; expected one of {', '.join(keys)}")
    if "url" not in entry:
        raise InvalidArgumentError("url", "is required")
    url = check_url("url", entry["url"])
    items = entry.get("event_types", [])
    if not isinstance(items, list):
        raise InvalidArgumentError("event_types", f"must be an array, got {_type_name(items)}")
    event_types = tuple(parse_event_type(item, f"event_types[{i}]") for i, item in enumerate(items))
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidArgumentError("enabled", f"must be true or false, got {enabled!r}")
    secret_env = entry.get("secret_env")
    secret = None
    if secret_env is not None:
        if not isinstance(secret_env, str) or not secret_env:
            raise InvalidArgumentError("secret_env", "must be the name of an environment variable")
        secret = environ.get(secret_env)
        if not secret:
            raise UnsetSecretError(secret_env)
    return DesiredEndpoint(url, event_types, secret, secret_env, enabled)


def parse_event_type(item: object, field: str) -> EventType:
    """Read an event type written as a name or ``{event_name, subcategory}``; errors name ``field``."""
    try:
        if isinstance(item, str):
            return EventType(item)
        if isinstance(item, dict):
            for key in item:
                if key not in ("event_name", "subcategory"):
                    hint = did_you_mean(key, ("event_name", "subcategory"))
                    raise InvalidArgumentError(key, f"unknown key{hint}; expected event_name, subcategory")
            subcategory = item.get("subcategory")
            if subcategory is not None and not isinstance(subcategory, str):
                raise InvalidArgumentError("subcategory", "must be a string")
            return EventType(item.get("event_name"), subcategory)  # type: ignore[arg-type]
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{field}.{exc.field}", exc.problem) from None
    raise InvalidArgumentError(field, "must be an event name or {event_name, subcategory}")
