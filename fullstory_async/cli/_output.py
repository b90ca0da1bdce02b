"""What the CLI prints: the console (stdout for results, stderr for notices) and the renderers.

Records are rendered as JSON objects with snake_case keys (the names of the SDK's
records and of the input files) or as aligned text tables. Nothing here ever touches a
secret: the records it renders do not carry one.

Every line printed goes through `printable` (text) or `json_line` (JSON): control
characters, DEL, C1 characters and lone surrogates in it (from a server's error message)
are written as escapes, so no server text can move the cursor, recolour the terminal or
fail to encode. `tolerant` makes a stream that cannot encode a character (``LANG=C``)
write it as a backslash escape instead of raising.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from fullstory_async import (
    APIStatusError,
    ApplyResult,
    Change,
    Endpoint,
    EventType,
    FullstoryError,
    InvalidArgumentError,
    Plan,
    ResponseDecodeError,
)

Record = dict[str, Any]
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff\u2028\u2029]")  # C0 characters are escaped by json


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    r"""Return ``text`` with control characters and lone surrogates written as ``\x..`` / ``\u....`` escapes."""
    return _UNPRINTABLE.sub(_escape, text)


def json_line(record: Record, stream: TextIO) -> str:
    r"""Return ``record`` as one line of JSON for ``stream``: DEL, C1 characters and lone surrogates as ``\u`` escapes.

    On a stream with an encoding other than UTF-8 every non-ASCII character is a ``\u``
    escape too (still valid JSON); an in-memory stream (no encoding) gets the characters.
    """
    encoding = getattr(stream, "encoding", None)
    ascii_only = encoding is not None and encoding.lower().replace("-", "").replace("_", "") != "utf8"
    line = json.dumps(record, ensure_ascii=ascii_only)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def tolerant(stream: TextIO) -> TextIO:
    """Make ``stream`` write what its encoding cannot as backslash escapes (a ``LANG=C`` terminal); return it."""
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        stream.reconfigure(errors="backslashreplace")
    return stream


class Console:
    """Where output goes: results to ``out``, notices, progress and the summary to ``err``."""

    def __init__(self, out: TextIO, err: TextIO, *, json_output: bool) -> None:
        self.out = out
        self.err = err
        self.json = json_output
        self.clear_status: Callable[[], None] | None = None
        """Set by a progress bar while it is shown, so notices start on a clean line."""

    def notice(self, message: str) -> None:
        """Print one ``fullstory-async: ...`` line on stderr."""
        self._clear()
        print(f"fullstory-async: {printable(message)}", file=self.err, flush=True)

    def error(self, message: str, error: BaseException | None = None) -> None:
        """Print one ``error: ...`` line on stderr; with ``--json``, one ``{"error": {...}}`` object."""
        self._clear()
        if self.json:
            record = error_record(error) if error is not None else {"type": "UsageError", "message": message}
            record["message"] = message
            print(json_line({"error": record}, self.err), file=self.err, flush=True)
        else:
            print(f"error: {printable(message)}", file=self.err, flush=True)

    def _clear(self) -> None:
        if self.clear_status is not None:
            self.clear_status()

    def emit(self, record: Record) -> None:
        """Print one JSON object on one line of stdout (after clearing the progress bar)."""
        self._clear()
        print(json_line(record, self.out), file=self.out, flush=True)

    def lines(self, lines: Iterable[str]) -> None:
        """Print text lines on stdout (after clearing the progress bar)."""
        self._clear()
        for line in lines:
            print(printable(line), file=self.out)
        self.out.flush()


def event_type_text(event_type: EventType) -> str:
    """``note.created`` or ``segment.trend.alert:<subcategory>`` (the ``--event-type`` syntax)."""
    if event_type.subcategory is None:
        return event_type.event_name
    return f"{event_type.event_name}:{event_type.subcategory}"


def event_types_text(event_types: Iterable[EventType]) -> str:
    """Event types, sorted, comma-separated."""
    return ", ".join(sorted(event_type_text(e) for e in event_types)) or "-"


def event_type_record(event_type: EventType) -> Record:
    """``{"event_name": ..., "subcategory": ...}`` (subcategory only when there is one)."""
    record: Record = {"event_name": event_type.event_name}
    if event_type.subcategory is not None:
        record["subcategory"] = event_type.subcategory
    return record


def endpoint_record(endpoint: Endpoint) -> Record:
    """Return an endpoint as JSON (there is no secret to leave out: the API never returns it)."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "enabled": endpoint.enabled,
        "event_types": [event_type_record(e) for e in endpoint.event_types],
        "created": endpoint.created.isoformat(),
        "modified": endpoint.modified.isoformat(),
    }


def endpoint_lines(endpoint: Endpoint) -> list[str]:
    """Return an endpoint as ``key: value`` lines."""
    return [
        f"id:          {endpoint.id}",
        f"url:         {endpoint.url}",
        f"enabled:     {'yes' if endpoint.enabled else 'no'}",
        f"event types: {event_types_text(endpoint.event_types)}",
        f"created:     {endpoint.created.isoformat()}",
        f"modified:    {endpoint.modified.isoformat()}",
    ]


def endpoint_row(endpoint: Endpoint) -> tuple[str, ...]:
    """Return an endpoint as a row of the ``endpoints list`` table."""
    return (endpoint.id, "yes" if endpoint.enabled else "no", endpoint.url, event_types_text(endpoint.event_types))


ENDPOINT_HEADERS = ("ID", "ENABLED", "URL", "EVENT TYPES")


def table(rows: Sequence[Sequence[str]], headers: Sequence[str] | None) -> list[str]:
    """Align ``rows`` in columns two spaces apart, under ``headers`` when given."""
    everything = [list(headers), *rows] if headers is not None else [list(row) for row in rows]
    if not everything:
        return []
    widths = [max(len(row[i]) for row in everything) for i in range(len(everything[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in everything
    ]


def error_record(error: BaseException, *, prefix: str = "") -> Record:
    """``{"type", "message", "field"?, "status"?}`` for an error (messages never hold secrets)."""
    record: Record = {"type": type(error).__name__, "message": prefix + str(error)}
    if isinstance(error, InvalidArgumentError | ResponseDecodeError):
        record["field"] = error.field
    if isinstance(error, APIStatusError):
        record["status"] = error.status
    return record


def error_text(error: FullstoryError) -> str:
    """One line for an error, e.g. ``401 unauthorized: ... (GET /webhooks/v1/endpoints)``."""
    return str(error) or type(error).__name__


# -- plans ---------------------------------------------------------------------------------------

_SIGN = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


def _state(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _change_detail(change: Change) -> str:
    desired, current = change.desired, change.current
    if change.action == "create" and desired is not None:
        return f"event types [{event_types_text(desired.event_types)}]; {_state(desired.enabled)}"
    if change.action != "update" or desired is None or current is None:
        return ""
    parts = []
    if "event_types" in change.fields:
        parts.append(
            f"event types [{event_types_text(current.event_types)}] -> [{event_types_text(desired.event_types)}]"
        )
    if "enabled" in change.fields:
        parts.append(f"{_state(current.enabled)} -> {_state(desired.enabled)}")
    if "secret" in change.fields:
        parts.append(f"rotate secret (from {desired.secret_env})")
    return "; ".join(parts)


def plan_lines(plan: Plan, where: str) -> list[str]:
    """Return the plan for people: a count line, then a line per change (unchanged ones are only counted)."""
    if plan.is_empty:
        lines = [f"No changes at {where}: {len(plan.unchanged)} endpoint(s) already match."]
    else:
        lines = [
            f"Plan for {where}: {len(plan.creates)} to create, {len(plan.updates)} to update, "
            f"{len(plan.deletes)} to delete, {len(plan.unchanged)} unchanged."
        ]
    for change in plan.pending:
        detail = _change_detail(change)
        lines.append(f"  {_SIGN[change.action]} {change.action:<7} {change.url}" + (f"  {detail}" if detail else ""))
    if plan.outside_scope:
        lines.append(f"{plan.outside_scope} endpoint(s) outside the scope left alone.")
    if plan.ambiguous:
        lines.append(f"{len(plan.ambiguous)} endpoint(s) with an ambiguous URL left alone (never pruned):")
        lines.extend(f"  ? ambiguous {url}" for url in plan.ambiguous)
    lines.extend(f"warning: not in the catalogue, allowed: {text}" for text in plan.unlisted)
    return lines


def change_record(change: Change) -> Record:
    """One change of a plan as JSON."""
    record: Record = {
        "action": str(change.action),
        "url": change.url,
        "endpoint_id": change.current.id if change.current is not None else None,
        "fields": list(change.fields),
    }
    if change.desired is not None:
        record["event_types"] = [event_type_record(e) for e in change.desired.event_types]
        record["enabled"] = change.desired.enabled
        record["secret_env"] = change.desired.secret_env
    return record


def plan_record(plan: Plan, where: str, fake: bool) -> Record:
    """Return the whole plan as one JSON object: the summary and the pending changes."""
    return {
        "target": where,
        "embedded_fake": fake,
        "summary": {
            "create": len(plan.creates),
            "update": len(plan.updates),
            "delete": len(plan.deletes),
            "unchanged": len(plan.unchanged),
            "outside_scope": plan.outside_scope,
        },
        "changes": [change_record(change) for change in plan.pending],
        "ambiguous": list(plan.ambiguous),
        "unlisted": list(plan.unlisted),
        "fingerprint": plan.fingerprint,
    }


def apply_record(result: ApplyResult) -> Record:
    """One result of ``apply`` as JSON."""
    endpoint_id = result.endpoint.id if result.endpoint is not None else None
    if endpoint_id is None and result.change.current is not None:
        endpoint_id = result.change.current.id
    return {
        "action": str(result.change.action),
        "url": result.change.url,
        "outcome": str(result.outcome),
        "endpoint_id": endpoint_id,
        "error": error_record(result.error) if result.error is not None else None,
        "attempts": result.attempts,
    }


def apply_line(result: ApplyResult) -> str:
    """One result of ``apply`` for people."""
    record = apply_record(result)
    if result.error is not None:
        return f"  failed    {record['url']}  error: {error_text(result.error)}"
    suffix = f"  ({record['endpoint_id']})" if record["endpoint_id"] else ""
    return f"  {record['outcome']:<9} {record['url']}{suffix}"
