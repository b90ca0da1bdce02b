"""The console's HTML, written by hand: every value passes `html.escape`, no template engine, no inline script.

A page is the `layout` around its ``<main>``; each function here returns the text of one
part. What an event sent (its body, its type, an error excerpt) is only ever text: escaped,
inside ``<pre>`` or a table cell, so ``<script>`` or an ``onerror=`` attribute shows as written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from html import escape
from urllib.parse import urlencode

from fullstory_async.console._api import FILTER_FIELDS, MAX_LIMIT, PAGE, attempt
from fullstory_async.receiving import InboxEntry, InboxPage, InboxRecord, ReplayResult
from fullstory_async.receiving._activity import InboxActivity
from fullstory_async.receiving._inbox import rfc3339

BODY_SHOWN = 256 * 1024
"""Characters of a body a delivery's page shows at most (the API gives it whole)."""

_KEY_SHOWN = 12


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def layout(title: str, main: str, *, csrf: str | None, logout: bool) -> str:
    """Return a whole page: head (CSRF token, our own CSS and JS), navigation, ``main``."""
    meta = f'<meta name="csrf-token" content="{_e(csrf)}">' if csrf else ""
    out = ""
    if logout and csrf:
        out = (
            '<form id="logout" method="post" action="/logout">'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}"><button type="submit">Log out</button></form>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · fullstory-async inbox</title>{meta}"
        '<link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script>'
        '</head><body><a class="skip" href="#main">Skip to content</a>'
        '<header><nav aria-label="Console"><a href="/">Deliveries</a> <a href="/activity">Activity</a></nav>'
        f'{out}</header><main id="main"><h1>{_e(title)}</h1>{main}</main></body></html>\n'
    )


def error(message: str) -> str:
    """Return a refusal: an alert naming what is wrong."""
    return f'<p role="alert" id="error">{_e(message)}</p>'


def _hidden(fields: Mapping[str, str | None]) -> str:
    return "".join(
        f'<input type="hidden" name="{_e(name)}" value="{_e(value)}">' for name, value in fields.items() if value
    )


def _filters_form(query: Mapping[str, str]) -> str:
    status = query.get("status", "")
    options = "".join(
        f'<option value="{value}"{" selected" if value == status else ""}>{label}</option>'
        for value, label in (("", "any"), ("pending", "pending"), ("done", "done"), ("dead", "dead"))
    )

    def field(name: str, label: str, hint: str, attributes: str = 'type="text"') -> str:
        return (
            f'<div class="field"><label for="{name}">{label}</label>'
            f'<input id="{name}" name="{name}" {attributes} value="{_e(query.get(name, ""))}" '
            f'aria-describedby="{name}-hint"><small id="{name}-hint">{hint}</small></div>'
        )

    return (
        '<form id="filters" method="get" action="/"><div class="field"><label for="status">Status</label>'
        f'<select id="status" name="status">{options}</select></div>'
        + field("event_type", "Event type", "the body's eventName")
        + field("since", "Since", "RFC 3339 or 30m, 2h, 7d (inclusive)")
        + field("until", "Until", "RFC 3339 or 30m, 2h, 7d (exclusive)")
        + field("key", "Key", "a key or a prefix of 8+ hex digits")
        + field("limit", "Per page", f"1 to {MAX_LIMIT} (default {PAGE})", f'type="number" min="1" max="{MAX_LIMIT}"')
        + '<button type="submit">Apply</button></form>'
    )


def _row(record: InboxRecord) -> str:
    key = _e(record.key)
    received = rfc3339(record.received_at)
    return (
        f'<tr data-key="{key}"><td class="status-{_e(record.status)}">{_e(record.status)}</td>'
        f'<td>{_e(record.event_type)}</td><td><time datetime="{received}">{received}</time></td>'
        f"<td>{record.attempts}</td><td>{_e(record.last_error)}</td>"
        f'<td><a href="/deliveries/{key}"><code>{key[:_KEY_SHOWN]}</code></a></td></tr>'
    )


def deliveries(
    query: Mapping[str, str], page: InboxPage | None, *, problem: str | None, csrf: str | None, actions: bool
) -> str:
    """Return the list's ``<main>``: filters, the table (or the refusal of bad filters), paging, actions."""
    parts = [_filters_form(query)]
    if problem is not None:
        parts.append(error(problem))
    if page is not None and not page.records:
        parts.append('<p id="empty">No deliveries match.</p>')
    elif page is not None:
        heads = "".join(
            f'<th scope="col">{name}</th>'
            for name in ("Status", "Event type", "Received (UTC)", "Attempts", "Last error", "Key")
        )
        rows = "".join(_row(record) for record in page.records)
        parts.append(
            f'<table id="deliveries"><caption>Deliveries, newest first</caption><thead><tr>{heads}</tr></thead>'
            f"<tbody>{rows}</tbody></table>"
        )
    if page is not None and page.next_cursor is not None:
        kept = {name: query[name] for name in (*FILTER_FIELDS, "limit") if query.get(name)}
        href = "/?" + urlencode({**kept, "cursor": page.next_cursor})
        parts.append(f'<nav aria-label="Pages"><a rel="next" href="{_e(href)}">Older</a></nav>')
    if actions and csrf and problem is None:
        current = {name: query.get(name) for name in FILTER_FIELDS}
        parts.append(
            '<section aria-labelledby="actions-title"><h2 id="actions-title">Actions</h2>'
            '<form id="replay-filtered" method="post" action="/replay">'
            f'{_hidden({**current, "csrf": csrf})}<button type="submit">Replay matching</button></form>'
            '<form id="requeue-dead" method="post" action="/replay">'
            f"{_hidden({'status': 'dead', 'all': '1', 'csrf': csrf})}"
            '<button type="submit">Requeue dead letters</button></form></section>'
        )
    return "".join(parts)


def _pretty(text: str) -> str:
    """Return JSON text pretty-printed, any other text as it is."""
    try:
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        pretty.encode("utf-8")  # "\ud800" in JSON decodes to a lone surrogate, which no page can send
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return text
    return pretty


def shown_body(body: bytes) -> tuple[str, list[str]]:
    """Return a body as the page shows it, and notes: JSON pretty-printed, non-UTF-8 as base64, capped.

    A body over `BODY_SHOWN` bytes is shown as sent: parsing megabytes to show their start
    would hold the event loop for seconds (a 10 MB body: 7 s, every other request waiting).
    """
    notes = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = base64.b64encode(body[: BODY_SHOWN // 4 * 3 + 3]).decode("ascii")
        notes.append("The body is not UTF-8: shown as base64.")
    else:
        if len(body) > BODY_SHOWN:
            notes.append(f"Over {BODY_SHOWN // 1024} KiB: shown as sent, not pretty-printed.")
        else:
            text = _pretty(text)
    if len(text) > BODY_SHOWN:
        text = text[:BODY_SHOWN]
        notes.append(f"Display truncated at {BODY_SHOWN // 1024} KiB: the API gives the whole body.")
    return text, notes


def delivery(entry: InboxEntry, *, csrf: str | None, actions: bool) -> str:
    """Return a delivery's ``<main>``: its fields, its body as text, its history, the replay action."""
    record = entry.record
    received = rfc3339(record.received_at)
    fields = "".join(
        f"<dt>{name}</dt><dd>{value}</dd>"
        for name, value in (
            ("Key", f"<code>{_e(record.key)}</code>"),
            ("Status", _e(record.status)),
            ("Event type", _e(record.event_type)),
            ("Received (UTC)", f'<time datetime="{received}">{received}</time>'),
            ("Attempts", str(record.attempts)),
            ("Last error", _e(record.last_error)),
            ("Org", _e(record.org_id)),
        )
    )
    text, notes = shown_body(record.body)
    note = "".join(f'<p class="note">{_e(line)}</p>' for line in notes)
    runs = [attempt(run) for run in entry.history]
    history = "".join(
        f"<tr><td>{_e(run['at'])}</td><td>{_e(run['outcome'])}</td><td>{_e(run['error'])}</td>"
        f"<td>{run['duration_ms']} ms</td></tr>"
        for run in runs
    )
    heads = "".join(f'<th scope="col">{name}</th>' for name in ("When", "Outcome", "Status or error", "Duration"))
    action = ""
    if actions and csrf:
        action = (
            f'<form id="replay-one" method="post" action="/deliveries/{_e(record.key)}/replay">'
            f'{_hidden({"csrf": csrf})}<button type="submit">Replay</button></form>'
        )
    return (
        f'<dl id="delivery">{fields}</dl>{action}<h2>Body</h2>{note}<pre id="body">{_e(text)}</pre>'
        f'<h2>Attempts</h2><table id="history"><thead><tr>{heads}</tr></thead><tbody>{history}</tbody></table>'
        + ("" if runs else '<p id="no-history">No attempt yet.</p>')
    )


def result(outcome: ReplayResult) -> str:
    """Return what a replay did."""
    return (
        f'<p role="status" id="result">replayed {outcome.replayed} of {outcome.matched} matched</p>'
        '<p><a href="/">Back to the deliveries</a></p>'
    )


def confirm(fields: Mapping[str, str | None], question: str, *, csrf: str) -> str:
    """Return a confirmation: the question and a form repeating the request with what it lacked."""
    return (
        f'<p role="alert" id="confirm">{_e(question)}</p><form id="confirm-form" method="post" action="/replay">'
        f'{_hidden({**fields, "csrf": csrf})}<button type="submit">Confirm</button></form>'
        '<p><a href="/">Cancel</a></p>'
    )


def login(*, problem: str | None) -> str:
    """Return the login form."""
    return (error(problem) if problem else "") + (
        '<form id="login" method="post" action="/login"><div class="field"><label for="token">Token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required></div>'
        '<button type="submit">Log in</button></form>'
    )


_CHART_HEIGHT = 120


def _chart(label: str, minutes: int, shapes: Iterable[str]) -> str:
    return (
        f'<svg role="img" aria-label="{_e(label)}" viewBox="0 0 {minutes} {_CHART_HEIGHT}" '
        f'preserveAspectRatio="none" class="chart"><title>{_e(label)}</title>{"".join(shapes)}</svg>'
    )


def activity(figures: InboxActivity) -> str:
    """Return the activity's ``<main>``: two inline SVG charts (no script) and the table of the busy minutes."""
    minutes = figures.minutes
    peak = max((m.pending + m.done + m.dead for m in minutes), default=0) or 1
    bars = []
    for x, minute in enumerate(minutes):
        bottom = float(_CHART_HEIGHT)
        for status, count in (("done", minute.done), ("dead", minute.dead), ("pending", minute.pending)):
            if count:
                height = count / peak * _CHART_HEIGHT
                bottom -= height
                bars.append(f'<rect class="bar-{status}" x="{x}" y="{bottom:.2f}" width="1" height="{height:.2f}"/>')
    oldest = max((m.oldest_pending_age or 0.0 for m in minutes), default=0.0) or 1.0
    points = " ".join(
        f"{x},{_CHART_HEIGHT - (m.oldest_pending_age or 0.0) / oldest * _CHART_HEIGHT:.2f}"
        for x, m in enumerate(minutes)
    )
    first = rfc3339(minutes[0].minute) if minutes else ""
    counts = _chart(f"Deliveries per minute by status since {first}, at most {peak} in a minute", len(minutes), bars)
    ages = _chart(
        f"Oldest pending age at each minute since {first}, at most {oldest:.0f} seconds",
        len(minutes),
        [f'<polyline class="age" points="{points}"/>'] if points else [],
    )
    heads = "".join(
        f'<th scope="col">{name}</th>' for name in ("Minute (UTC)", "Pending", "Done", "Dead", "Oldest pending age (s)")
    )
    rows = "".join(
        f"<tr><td>{rfc3339(m.minute)}</td><td>{m.pending}</td><td>{m.done}</td><td>{m.dead}</td>"
        f"<td>{'' if m.oldest_pending_age is None else f'{m.oldest_pending_age:.0f}'}</td></tr>"
        for m in reversed(minutes)
        if m.pending or m.done or m.dead or m.oldest_pending_age is not None
    )
    legend = (
        '<p class="legend"><span class="key-done">done</span> <span class="key-dead">dead</span> '
        '<span class="key-pending">pending</span> (events received in each minute, by their status now)</p>'
    )
    partial = ""
    if minutes and figures.counted_since > minutes[0].minute:
        partial = f'<p class="note">Counts hold from {rfc3339(figures.counted_since)} (the newest events only).</p>'
    return (
        f'<div class="charts"><figure>{counts}<figcaption>Deliveries per minute</figcaption>{legend}</figure>'
        f"<figure>{ages}<figcaption>Oldest pending age</figcaption></figure></div>{partial}"
        f'<table id="activity-table"><caption>Minutes with activity, newest first</caption>'
        f"<thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>"
        + ("" if rows else '<p id="empty">No activity in the last day.</p>')
    )
