"""The console's pages and JSON API over a seeded inbox, on SQLite and PostgreSQL (a real server on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from fullstory_async.console import ConsoleSettings
from fullstory_async.receiving import _replaying, delivery_key
from fullstory_async.receiving._inbox import rfc3339
from tests.console.conftest import HOSTILE, START, Seeded, ServeConsole

ROW_KEY = re.compile(r'<tr data-key="([0-9a-f]{64})">')


async def test_the_list_api_pages_newest_first_without_repeats(seeded: Seeded, serve_console: ServeConsole) -> None:
    """Keyset paging through every page: each delivery once, newest first; events stored meanwhile shift nothing."""
    console = await serve_console(seeded.inbox)
    seen: list[str] = []
    cursor = None
    while True:
        query = "/api/deliveries?limit=7" + (f"&cursor={cursor}" if cursor else "")
        status, page = await console.json("GET", query)
        assert status == 200
        seen += [d["key"] for d in page["deliveries"]]
        if len(seen) == 7:  # a newer delivery stored between pages: not in the next ones
            await seeded.inbox.put(b'{"eventName": "late"}', org_id="org-1")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(seeded.keys))
    first = page["deliveries"][-1]
    assert first == {
        "key": seeded.keys[0],
        "status": "done",
        "event_type": "segment.created",
        "received_at": rfc3339(START),
        "attempts": 1,
        "last_error": None,
        "org_id": "org-1",
    }
    assert "body" not in first


async def test_the_list_page_follows_older_links_without_repeats(seeded: Seeded, serve_console: ServeConsole) -> None:
    console = await serve_console(seeded.inbox)
    status, _, text = await console.get("/?status=pending&limit=4")
    assert status == 200
    seen = ROW_KEY.findall(text)
    heads = re.findall(r'<th scope="col">([^<]*)</th>', text)
    assert heads == ["Status", "Event type", "Received (UTC)", "Attempts", "Last error", "Key"]
    while match := re.search(r'<a rel="next" href="([^"]+)">Older</a>', text):
        href = unescape(match[1])
        assert parse_qs(urlsplit(href).query)["status"] == ["pending"]  # the filters carry over
        status, _, text = await console.get(href)
        assert status == 200
        seen += ROW_KEY.findall(text)
    assert seen == list(reversed(seeded.keys[15:]))
    key = seeded.keys[-1]
    assert f'<a href="/deliveries/{key}"><code>{key[:12]}</code></a>' in (await console.get("/"))[2]


FILTERS = [
    ("status=dead", range(10, 15)),
    ("status=done&event_type=note.created", range(1, 10, 2)),
    (f"since={rfc3339(START + 100)}&until={rfc3339(START + 130)}", range(10, 13)),
    ("event_type=segment.created&status=pending", range(16, 30, 2)),
]


async def test_filters_match_as_inbox_replay_reads_them(seeded: Seeded, serve_console: ServeConsole) -> None:
    """Each filter, on one seeded inbox and one console: the API and the page list what it matches."""
    console = await serve_console(seeded.inbox)
    for query, expected in FILTERS:
        _, page = await console.json("GET", f"/api/deliveries?{query}")
        assert [d["key"] for d in page["deliveries"]] == [seeded.keys[n] for n in reversed(expected)], query
        _, _, text = await console.get(f"/?{query}")
        assert ROW_KEY.findall(text) == [seeded.keys[n] for n in reversed(expected)], query


async def test_a_key_prefix_and_relative_times_filter(seeded: Seeded, serve_console: ServeConsole) -> None:
    console = await serve_console(seeded.inbox)
    _, page = await console.json("GET", f"/api/deliveries?key={seeded.keys[3][:10].upper()}")
    assert [d["key"] for d in page["deliveries"]] == [seeded.keys[3]]
    _, page = await console.json("GET", "/api/deliveries?until=2h")  # the seeded inbox lies in 2027
    assert page["deliveries"] == []
    status, _, text = await console.get("/?until=2h")
    assert status == 200
    assert '<p id="empty">No deliveries match.</p>' in text


BAD_FILTERS = [
    ("status=lost", "status"),
    ("since=yesterday", "since"),
    ("until=2026-01-02T03:04:05", "until"),  # no offset
    ("key=abc", "key"),
    ("key=zzzzzzzzzz", "key"),
    ("limit=0", "limit"),
    ("limit=501", "limit"),
    ("limit=ten", "limit"),
    ("cursor=not-a-cursor", "cursor"),
]


async def test_bad_filters_are_refused_naming_the_field(seeded: Seeded, serve_console: ServeConsole) -> None:
    """Each bad filter, on one seeded inbox and one console: 400 naming the field, from the API and the page."""
    console = await serve_console(seeded.inbox)
    for query, field in BAD_FILTERS:
        status, answer = await console.json("GET", f"/api/deliveries?{query}")
        assert status == 400, query
        assert answer["error"].startswith(f"{field}: "), query
        status, _, text = await console.get(f"/?{query}")
        assert status == 400, query
        assert re.search(rf'<p role="alert" id="error">{field}: ', text), query
        assert 'id="deliveries"' not in text, query


async def test_one_delivery_with_body_and_history(seeded: Seeded, serve_console: ServeConsole) -> None:
    console = await serve_console(seeded.inbox)
    key = seeded.keys[12]  # dead, one attempt
    status, answer = await console.json("GET", f"/api/deliveries/{key}")
    assert status == 200
    assert answer["delivery"]["status"] == "dead"
    assert answer["delivery"]["body_encoding"] == "utf-8"
    assert json.loads(answer["delivery"]["body"])["text"] == HOSTILE
    assert answer["history"] == [
        {
            "at": rfc3339(START + 300),
            "attempt": 1,
            "outcome": "dead",
            "status": 503,
            "error": "503 Busy: <b>x</b>",
            "duration_ms": 250.0,
        }
    ]
    status, _, text = await console.get(f"/deliveries/{key}")
    assert status == 200
    assert "<td>503 Busy: &lt;b&gt;x&lt;/b&gt;</td>" in text
    assert '<table id="history">' in text
    assert '"eventName": "segment.created"' in unescape(text.split('<pre id="body">')[1])  # pretty-printed


async def test_a_hostile_body_is_text_never_markup(seeded: Seeded, serve_console: ServeConsole) -> None:
    """``<script>`` and ``onerror=`` in a body, an event type or an error are escaped on every page."""
    name = "<svg onload=alert(3)>"
    await seeded.inbox.put(json.dumps({"eventName": name, "x": HOSTILE}).encode(), org_id="org-1")
    console = await serve_console(seeded.inbox)
    for path in ("/", f"/deliveries/{seeded.keys[12]}", "/activity", "/?status=dead"):
        _, _, text = await console.get(path)
        assert "<script>alert" not in text
        assert "<img src=x" not in text
        assert "<svg onload" not in text
        assert "<b>x</b>" not in text
    _, _, text = await console.get(f"/deliveries/{seeded.keys[0]}")
    pre = text.split('<pre id="body">', 1)[1].split("</pre>", 1)[0]
    assert "&lt;script&gt;alert(\\&quot;body\\&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in pre
    assert len(re.findall(r"<script\b", text)) == 1  # only our own file
    assert '<script src="/static/console.js" defer></script>' in text
    _, _, text = await console.get("/")
    assert "&lt;svg onload=alert(3)&gt;" in text


async def test_a_body_not_utf8_is_base64_and_a_huge_one_is_capped(seeded: Seeded, serve_console: ServeConsole) -> None:
    raw = b"\xff\xfe\x00binary" * 3
    await seeded.inbox.put(raw, org_id="org-1")
    huge = json.dumps({"eventName": "big", "pad": "y" * (300 * 1024)}).encode()
    await seeded.inbox.put(huge, org_id="org-1")
    console = await serve_console(seeded.inbox)
    _, answer = await console.json("GET", f"/api/deliveries/{delivery_key('org-1', raw)}")
    assert answer["delivery"]["body_encoding"] == "base64"
    assert base64.b64decode(answer["delivery"]["body"]) == raw
    _, _, text = await console.get(f"/deliveries/{delivery_key('org-1', raw)}")
    assert f'<pre id="body">{base64.b64encode(raw).decode()}</pre>' in text
    assert "not UTF-8: shown as base64" in text
    _, _, text = await console.get(f"/deliveries/{delivery_key('org-1', huge)}")
    pre = unescape(text.split('<pre id="body">', 1)[1].split("</pre>", 1)[0])
    assert len(pre) == 256 * 1024
    assert "truncated" in text
    _, answer = await console.json("GET", f"/api/deliveries/{delivery_key('org-1', huge)}")
    assert answer["delivery"]["body"].encode() == huge  # the API gives it whole


async def test_unknown_and_malformed_keys(seeded: Seeded, serve_console: ServeConsole) -> None:
    console = await serve_console(seeded.inbox)
    status, answer = await console.json("GET", f"/api/deliveries/{'0' * 64}")
    assert (status, answer["error"].split(":")[0]) == (404, "key")
    status, answer = await console.json("GET", "/api/deliveries/xyz")
    assert (status, answer["error"].split(":")[0]) == (400, "key")
    for key in ("0" * 64, "xyz"):
        status, _, text = await console.get(f"/deliveries/{key}")
        assert status == 404
        assert '<p role="alert" id="error">' in text
    status, answer = await console.json("GET", "/api/nothing")
    assert status == 404
    assert "error" in answer
    status, headers, _ = await console.get("/api/replay")
    assert headers["Allow"] == "POST"
    status, answer = await console.json("GET", "/api/replay")
    assert status == 405
    assert "error" in answer


async def test_stats_and_activity(seeded: Seeded, serve_console: ServeConsole) -> None:
    console = await serve_console(seeded.inbox)
    status, stats = await console.json("GET", "/api/stats")
    assert status == 200
    assert stats == (await seeded.inbox.stats()).to_json()
    assert (stats["pending"], stats["done"], stats["dead"]) == (15, 10, 5)
    status, activity = await console.json("GET", "/api/activity")
    assert status == 200
    minutes = activity["minutes"]
    assert len(minutes) == 24 * 60 + 1
    assert sum(m["done"] for m in minutes) == 10
    assert sum(m["dead"] for m in minutes) == 5
    assert sum(m["pending"] for m in minutes) == 15
    assert minutes[-1]["oldest_pending_age_seconds"] == 150.0  # the 16th delivery, at START + 150
    status, _, text = await console.get("/activity")
    assert status == 200
    assert text.count('<svg role="img" aria-label="') == 2
    heads = re.findall(r'<th scope="col">([^<]*)</th>', text)
    assert heads == ["Minute (UTC)", "Pending", "Done", "Dead", "Oldest pending age (s)"]
    assert '<table id="activity-table">' in text


async def test_replay_through_the_api_has_the_refusals_of_inbox_replay(
    seeded: Seeded, serve_console: ServeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = await serve_console(seeded.inbox)

    async def replay(fields: object, **kwargs: object) -> tuple[int, dict[str, object]]:
        return await console.json("POST", "/api/replay", json=fields, **kwargs)

    assert await replay({}) == (400, {"error": await _error_of({}, seeded)})
    status, answer = await replay({"status": "pending"})
    assert (status, answer["error"].split(":")[0]) == (400, "status")
    status, answer = await replay({"since": "yesterday", "all": True})
    assert (status, answer["error"].split(":")[0]) == (400, "since")
    status, answer = await replay({"stauts": "dead"})
    assert (status, answer["error"].split(":")[0]) == (400, "stauts")
    status, answer = await replay({"all": "yes"})
    assert (status, answer["error"].split(":")[0]) == (400, "all")
    status, answer = await replay(["status"])
    assert (status, answer["error"].split(":")[0]) == (400, "body")
    status, _, text = await console.post("/api/replay", data="status=dead", headers={"Content-Type": "text/plain"})
    assert (status, json.loads(text)["error"].split(":")[0]) == (400, "content-type")
    assert await replay({"status": "dead", "dry_run": True}) == (200, {"matched": 5, "replayed": 5, "dry_run": True})
    monkeypatch.setattr(_replaying, "CONFIRM_ABOVE", 2)
    status, answer = await replay({"status": "dead"})
    assert (status, answer["error"].split(":")[0]) == (400, "yes")
    assert (await seeded.inbox.stats()).dead == 5  # refused: nothing changed
    assert await replay({"status": "dead", "yes": True}) == (200, {"matched": 5, "replayed": 5, "dry_run": False})
    assert (await seeded.inbox.stats()).dead == 0
    assert await replay({"all": True, "yes": True}) == (200, {"matched": 30, "replayed": 10, "dry_run": False})
    status, answer = await replay({"key": seeded.keys[0]})
    assert (status, answer) == (200, {"matched": 1, "replayed": 0, "dry_run": False})


async def _error_of(fields: dict[str, object], seeded: Seeded) -> str:
    """Return the refusal `_replaying.replay` gives (the API shows the very same words)."""
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the message is what is compared
        await _replaying.replay(seeded.inbox, _replaying.parse_filter(), **fields)  # type: ignore[arg-type]
    return str(refused.value)


async def test_replay_from_the_pages(
    seeded: Seeded, serve_console: ServeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = await serve_console(seeded.inbox)
    csrf = await console.csrf()
    status, _, text = await console.post("/replay", data={"csrf": csrf, "status": "dead"})
    assert status == 200
    assert '<p role="status" id="result">replayed 5 of 5 matched</p>' in text
    status, _, text = await console.post(f"/deliveries/{seeded.keys[0]}/replay", data={"csrf": csrf})
    assert '<p role="status" id="result">replayed 1 of 1 matched</p>' in text
    # No filter: a question carrying all=1; over the threshold: one carrying yes=1.
    status, _, text = await console.post("/replay", data={"csrf": csrf})
    assert status == 200
    assert '<p role="alert" id="confirm">' in text
    assert '<input type="hidden" name="all" value="1">' in text
    assert (await seeded.inbox.stats()).done == 9
    monkeypatch.setattr(_replaying, "CONFIRM_ABOVE", 2)
    status, _, text = await console.post("/replay", data={"csrf": csrf, "all": "1"})
    assert '<input type="hidden" name="yes" value="1">' in text
    assert '<input type="hidden" name="all" value="1">' in text
    assert '<button type="submit">Confirm</button>' in text
    status, _, text = await console.post("/replay", data={"csrf": csrf, "all": "1", "yes": "1"})
    assert '<p role="status" id="result">replayed 9 of 30 matched</p>' in text
    status, _, text = await console.post("/replay", data={"csrf": csrf, "status": "pending"})
    assert status == 400
    assert '<p role="alert" id="error">status: ' in text


async def test_the_action_forms_carry_the_filters_and_the_csrf_token(
    seeded: Seeded, serve_console: ServeConsole
) -> None:
    console = await serve_console(seeded.inbox)
    csrf = await console.csrf()
    _, _, text = await console.get("/?status=dead&event_type=note.created")
    form = text.split('<form id="replay-filtered" method="post" action="/replay">', 1)[1].split("</form>", 1)[0]
    assert '<input type="hidden" name="status" value="dead">' in form
    assert '<input type="hidden" name="event_type" value="note.created">' in form
    assert f'<input type="hidden" name="csrf" value="{csrf}">' in form
    assert '<form id="requeue-dead" method="post" action="/replay">' in text


async def test_read_only_hides_and_refuses_every_action(seeded: Seeded, serve_console: ServeConsole) -> None:
    console = await serve_console(seeded.inbox, ConsoleSettings(read_only=True))
    csrf = await console.csrf()
    for path in ("/", f"/deliveries/{seeded.keys[12]}"):
        _, _, text = await console.get(path)
        assert not re.search("replay-filtered|requeue-dead|replay-one", text)
    for path in ("/replay", f"/deliveries/{seeded.keys[12]}/replay"):
        status, _, text = await console.post(path, data={"csrf": csrf, "status": "dead", "all": "1"})
        assert status == 403
        assert "read-only" in text
    status, answer = await console.json("POST", "/api/replay", json={"status": "dead"})
    assert (status, answer["error"].split(":")[0]) == (403, "read-only")
    assert (await seeded.inbox.stats()).dead == 5


async def test_every_control_is_labelled_and_every_page_navigates(seeded: Seeded, serve_console: ServeConsole) -> None:
    console = await serve_console(seeded.inbox)
    for path in ("/", "/?status=lost", f"/deliveries/{seeded.keys[0]}", "/activity", f"/deliveries/{'0' * 64}"):
        _, _, text = await console.get(path)
        assert '<nav aria-label="Console"><a href="/">Deliveries</a> <a href="/activity">Activity</a></nav>' in text
        assert re.search(r'<html lang="en">.*<title>[^<]+</title>.*<main id="main">', text)
        controls = re.findall(r'<(?:input|select)\b(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', text)
        for control in controls:
            assert f'<label for="{control}">' in text, (path, control)
        assert len(re.findall(r"<(?:input|select)\b(?![^>]*type=\"hidden\")", text)) == len(controls)
    _, _, text = await console.get("/")
    assert re.findall(r'<label for="([^"]+)">', text) == ["status", "event_type", "since", "until", "key", "limit"]
