"""The inbox console as a person uses it, in Chromium: list, filter, page, open, replay, log in, refusals.

Each test seeds an inbox (`SEEDED`: done, pending and dead deliveries of several event types, a
body holding ``<script>`` and ``onerror`` markup, a Latin-1 body), starts the real
``fullstory-async inbox serve`` process on it and asserts what the page shows.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from fullstory_async.receiving import delivery_key, open_inbox, signed_delivery
from tests.browser.conftest import (
    DEAD_ERROR,
    HOSTILE_TYPE,
    NOT_UTF8,
    ORG,
    SEEDED,
    XSS,
    Guard,
    Seeded,
    StartConsole,
    in_a_thread,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, LocatorAssertions, Page, Response

pytestmark = pytest.mark.browser

HEADERS = ["Status", "Event type", "Received (UTC)", "Attempts", "Last error", "Key"]
TOKEN_ENV = "FS_TEST_CONSOLE_TOKEN"
TOKEN = "console-token-4f1d9a7c2b"


def keys_shown(page: Page) -> list[str]:
    """Return the full keys of the deliveries table's rows, top to bottom."""
    return [
        str(key)
        for key in page.locator("#deliveries tr[data-key]").evaluate_all("rows => rows.map(r => r.dataset.key)")
    ]


def statuses_shown(page: Page) -> list[str]:
    return [text.strip() for text in page.locator("#deliveries tr[data-key] td:first-child").all_inner_texts()]


def apply(page: Page, **fields: str) -> None:
    """Fill the filter form (``status`` by its select, the rest by typing) and press Apply."""
    form = page.locator("form#filters")
    for name, value in fields.items():
        if name == "status":
            form.locator("select#status").select_option(value)
        else:
            form.locator(f"input#{name}").fill(value)
    with page.expect_navigation():
        form.get_by_role("button", name="Apply").click()


def expect(locator: Locator) -> LocatorAssertions:
    """Playwright's waiting assertion (imported here: the module is collected without playwright too)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def press(page: Page, button: Locator) -> Response:
    """Click a button that POSTs (a plain form, or the page's script on its behalf); return the POST's response."""
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        button.click()
    return posted.value


def see_result(page: Page, text: str) -> None:
    """Wait until the page's status region says ``text``."""
    expect(page.locator("#result[role=status]")).to_have_text(text)


def test_the_guard_stops_and_reports_what_a_page_fetches_from_elsewhere(page: Page, guard: Guard) -> None:
    """The route every test's pages go through aborts a request off the console's origin and records it."""
    guard.origins.add("http://127.0.0.1:9")
    page.set_content('<img src="http://192.0.2.1/pixel.png"><link rel="stylesheet" href="https://example.com/x.css">')
    page.wait_for_load_state("load")
    assert sorted(guard.foreign) == ["http://192.0.2.1/pixel.png", "https://example.com/x.css"]
    guard.foreign.clear()  # seen: the teardown's check would fail the test on them


# ------------------------------------------------------------------------------------------------ list and filters


def test_the_list_shows_every_delivery_newest_first_and_each_filter_narrows_it(
    seeded_each: Seeded, console: StartConsole, page: Page
) -> None:
    """Status, event type, time range and key prefix each show just their deliveries; a bad filter names its field."""
    served = console(seeded_each.url)
    response = page.goto(served.url + "/")
    assert response is not None
    assert response.status == 200
    assert page.locator("#deliveries th[scope=col]").all_inner_texts() == HEADERS
    assert keys_shown(page) == seeded_each.newest_first
    assert statuses_shown(page) == [status for _, _, status in reversed(SEEDED)]
    first = page.locator(f'#deliveries tr[data-key="{seeded_each.keys["note-0"]}"]')
    assert (
        first.locator(f'a[href="/deliveries/{seeded_each.keys["note-0"]}"]').inner_text().strip()
        == (seeded_each.keys["note-0"][:12])
    )
    assert seeded_each.received("note-0").strftime("%Y-%m-%d") in first.inner_text()
    assert page.locator("a[rel=next]").count() == 0  # all 15 fit on the first page
    dead = page.locator(f'#deliveries tr[data-key="{seeded_each.keys["note-5"]}"]')
    assert DEAD_ERROR in dead.inner_text()  # the error's markup shown as text

    apply(page, status="dead")
    assert "status=dead" in page.url
    assert keys_shown(page) == [seeded_each.keys[n] for n in seeded_each.names(status="dead")]
    assert set(statuses_shown(page)) == {"dead"}

    apply(page, status="", event_type="note.created")
    assert keys_shown(page) == [seeded_each.keys[n] for n in seeded_each.names(event_type="note.created")]

    since, until = seeded_each.received("trend-4"), seeded_each.received("note-7") + timedelta(seconds=1)
    apply(page, event_type="", since=since.isoformat(), until=until.isoformat())
    assert keys_shown(page) == [seeded_each.keys[n] for n in ("note-7", "latin1", "note-5", "trend-4")]

    apply(page, since="85m", until="")  # relative, as `inbox replay --since`: the last 85 minutes
    assert keys_shown(page) == seeded_each.newest_first[:5]  # received 40, 50, ... 80 minutes ago

    apply(page, since="", key=seeded_each.keys["metric-9"][:12])
    assert keys_shown(page) == [seeded_each.keys["metric-9"]]

    apply(page, key="f" * 64)
    assert keys_shown(page) == []
    assert page.locator("p#empty").inner_text().strip() == "No deliveries match."

    page.goto(served.url + "/?since=yesterday")
    error = page.locator("p#error[role=alert]")
    assert "since" in error.inner_text()
    assert keys_shown(page) == []


def test_older_pages_back_through_every_delivery_once(seeded: Seeded, console: StartConsole, page: Page) -> None:
    """With 4 a page, Older walks 4 + 4 + 4 + 3 deliveries, newest first, none twice; the last page has no Older."""
    served = console(seeded.url)
    page.goto(served.url + "/")
    apply(page, limit="4")
    seen: list[str] = []
    sizes = []
    while True:
        shown = keys_shown(page)
        sizes.append(len(shown))
        seen += shown
        older = page.locator("a[rel=next]")
        if older.count() == 0:
            break
        assert older.inner_text().strip() == "Older"
        with page.expect_navigation():
            older.click()
        assert "cursor=" in page.url
    assert sizes == [4, 4, 4, 3]
    assert seen == seeded.newest_first


def test_older_keeps_the_filters(seeded: Seeded, console: StartConsole, page: Page) -> None:
    """Paging a filtered list stays within the filter."""
    served = console(seeded.url)
    page.goto(served.url + "/")
    apply(page, event_type="note.created", limit="4")
    first = keys_shown(page)
    with page.expect_navigation():
        page.locator("a[rel=next]").click()
    assert first + keys_shown(page) == [seeded.keys[n] for n in seeded.names(event_type="note.created")]
    assert page.locator("a[rel=next]").count() == 0


# ------------------------------------------------------------------------------------------------ one delivery


def open_delivery(page: Page, seeded: Seeded, name: str) -> None:
    """Click the delivery's key link in the list."""
    key = seeded.keys[name]
    with page.expect_navigation():
        page.locator(f'#deliveries a[href="/deliveries/{key}"]').click()
    assert page.url.endswith(f"/deliveries/{key}")


def test_a_body_with_markup_is_shown_as_text_and_runs_nothing(
    seeded: Seeded, console: StartConsole, page: Page, guard: Guard
) -> None:
    """``<script>`` and ``onerror`` in a body (and in an event type, an error) stay text: no dialog, no element."""
    served = console(seeded.url)
    page.goto(served.url + "/")
    assert HOSTILE_TYPE in page.locator("#deliveries").inner_text()
    open_delivery(page, seeded, "xss")
    body = page.locator("pre#body").inner_text()
    assert XSS in body
    assert '"eventName": "note.created"' in body  # pretty-printed
    injected = page.evaluate(
        """() => ({
            scripts: [...document.scripts].filter(s => !s.src).length,
            handlers: document.querySelectorAll('[onerror], [onload], [onmouseover]').length,
            inBody: document.querySelector('#body').children.length,
            images: document.images.length,
        })"""
    )
    assert injected == {"scripts": 0, "handlers": 0, "inBody": 0, "images": 0}
    assert guard.dialogs == []


def test_a_delivery_shows_its_fields_body_and_history_and_replays(
    seeded_each: Seeded, console: StartConsole, page: Page
) -> None:
    """The delivery page lists status, type, attempts and history; Replay makes it pending with a result line."""
    served = console(seeded_each.url)
    page.goto(served.url + "/")
    open_delivery(page, seeded_each, "metric-13")
    details = page.locator("dl#delivery").inner_text()
    assert "done" in details
    assert "metric.alert" in details
    assert '"id": "metric-13"' in page.locator("pre#body").inner_text()
    assert page.locator("#history th").all_inner_texts() == ["When", "Outcome", "Status or error", "Duration"]
    assert page.locator("#history tbody tr").count() == 1
    assert "done" in page.locator("#history tbody tr").inner_text()

    press(page, page.locator("form#replay-one").get_by_role("button", name="Replay"))
    see_result(page, "replayed 1 of 1 matched")
    page.goto(served.url + f"/deliveries/{seeded_each.keys['metric-13']}")
    assert "pending" in page.locator("dl#delivery").inner_text()


def test_a_body_that_is_not_utf8_is_shown_as_base64_with_a_note(
    seeded: Seeded, console: StartConsole, page: Page
) -> None:
    """The Latin-1 body appears base64-encoded (and says so), never mis-decoded."""
    served = console(seeded.url)
    page.goto(served.url + f"/deliveries/{seeded.keys['latin1']}")
    assert base64.b64encode(NOT_UTF8).decode() in page.locator("pre#body").inner_text().replace("\n", "")
    assert "base64" in page.locator("main").inner_text()


def test_a_large_body_is_cut_at_256_kib_with_a_note(seeded: Seeded, console: StartConsole, page: Page) -> None:
    """A 300 KiB body: the page shows its first 256 KiB and says it was truncated."""
    body, _ = signed_delivery("note.created", {"text": "x" * 300 * 1024}, secret="s", org_id=ORG)

    async def put() -> None:
        async with open_inbox(seeded.url) as inbox:
            assert await inbox.put(body, org_id=ORG)

    in_a_thread(put)
    served = console(seeded.url)
    page.goto(served.url + f"/deliveries/{delivery_key(ORG, body)}")
    shown = page.locator("pre#body").inner_text()
    assert 250 * 1024 < len(shown) <= 256 * 1024
    assert body.decode()[:1000] in shown
    assert "truncated" in page.locator("main").inner_text().lower()


def test_an_unknown_delivery_is_a_404_page(seeded: Seeded, console: StartConsole, page: Page) -> None:
    """A full key that names no delivery answers 404 with a page saying so."""
    served = console(seeded.url)
    response = page.goto(served.url + "/deliveries/" + "e" * 64)
    assert response is not None
    assert response.status == 404
    assert page.locator("main p#error[role=alert]").count() == 1


# ------------------------------------------------------------------------------------------------ replaying sets


def test_replay_the_filtered_set_then_requeue_the_dead_letters(
    seeded_each: Seeded, console: StartConsole, page: Page, guard: Guard
) -> None:
    """Replay matching replays the filter's done events (after a confirm); Requeue dead letters empties the dead."""
    served = console(seeded_each.url)
    page.goto(served.url + "/")
    apply(page, status="done", event_type="metric.alert")
    assert len(keys_shown(page)) == 2
    press(page, page.locator("form#replay-filtered").get_by_role("button", name="Replay matching"))
    see_result(page, "replayed 2 of 2 matched")
    page.goto(served.url + "/?status=pending&event_type=metric.alert")
    assert keys_shown(page) == [seeded_each.keys[n] for n in ("metric-13", "metric-2")]

    page.goto(served.url + "/")
    press(page, page.locator("form#requeue-dead").get_by_role("button", name="Requeue dead letters"))
    see_result(page, "replayed 3 of 3 matched")
    page.goto(served.url + "/?status=dead")
    assert page.locator("p#empty").inner_text().strip() == "No deliveries match."
    assert [kind for kind, _ in guard.dialogs] == ["confirm", "confirm"]  # console.js asked before each action


def test_replay_matching_without_a_filter_asks_to_confirm_first(
    seeded: Seeded, console: StartConsole, page: Page
) -> None:
    """As ``inbox replay`` without ``--all``: a confirm page first; only Confirm replays every done and dead one."""
    served = console(seeded.url)
    page.goto(served.url + "/")
    press(page, page.locator("form#replay-filtered").get_by_role("button", name="Replay matching"))
    expect(page.locator("#confirm[role=alert]")).to_have_count(1)
    assert page.locator("#result").count() == 0
    other = page.context.new_page()
    other.goto(served.url + "/?status=done")
    assert len(keys_shown(other)) == 9  # nothing replayed yet
    press(page, page.locator("form#confirm-form").get_by_role("button", name="Confirm"))
    see_result(page, "replayed 12 of 15 matched")
    page.goto(served.url + "/?status=pending")
    assert len(keys_shown(page)) == len(SEEDED)


def test_a_form_post_without_its_csrf_token_is_refused(seeded: Seeded, console: StartConsole, page: Page) -> None:
    """Requeue dead letters with the page's ``csrf`` field removed is refused and changes nothing."""
    served = console(seeded.url)
    page.goto(served.url + "/")
    form = page.locator("form#requeue-dead")
    assert form.locator("input[name=csrf]").count() == 1
    form.evaluate("f => f.querySelector('input[name=csrf]').remove()")
    assert press(page, form.get_by_role("button", name="Requeue dead letters")).status == 403
    expect(page.locator("p#error[role=alert]")).to_contain_text(re.compile("csrf", re.IGNORECASE))
    assert page.locator("#result").count() == 0
    page.goto(served.url + "/?status=dead")
    assert len(keys_shown(page)) == 3  # still dead


def test_read_only_hides_every_action_and_refuses_a_forged_post(
    seeded: Seeded, console: StartConsole, page: Page
) -> None:
    """Under ``--read-only`` no action form is shown, and a POST made from the page anyway is refused."""
    served = console(seeded.url, "--read-only")
    page.goto(served.url + "/")
    assert len(keys_shown(page)) == len(SEEDED)
    for selector in ("form#replay-filtered", "form#requeue-dead", "form[method=post]"):
        assert page.locator(selector).count() == 0
    open_delivery(page, seeded, "note-5")
    assert page.locator("form#replay-one").count() == 0
    assert page.get_by_role("button", name="Replay").count() == 0
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    status = page.evaluate(
        """async csrf => (await fetch('/replay', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: new URLSearchParams({status: 'dead', all: '1', csrf})})).status""",
        csrf,
    )
    assert status == 403
    page.goto(served.url + "/?status=dead")
    assert len(keys_shown(page)) == 3


# ------------------------------------------------------------------------------------------------ accessibility


def test_every_page_has_a_language_title_main_and_labelled_controls(
    seeded: Seeded, console: StartConsole, page: Page
) -> None:
    """List, delivery and activity pages: ``lang``, a title, a main, nav links; every filter control has a label."""
    served = console(seeded.url)
    for path in ("/", f"/deliveries/{seeded.keys['note-0']}", "/activity"):
        page.goto(served.url + path)
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.title().strip()
        assert page.locator("main").count() == 1
        assert page.get_by_role("link", name="Deliveries").count() == 1
        assert page.get_by_role("link", name="Activity").count() == 1
    page.goto(served.url + "/")
    unlabelled = page.locator("form#filters").evaluate(
        """form => [...form.querySelectorAll('input, select, textarea')]
            .filter(c => c.type !== 'hidden' && !(c.labels && [...c.labels].some(l => l.innerText.trim())))
            .map(c => c.name)"""
    )
    assert unlabelled == []
    for label, control in [
        ("Status", "status"),
        ("Event type", "event_type"),
        ("Since", "since"),
        ("Until", "until"),
        ("Key", "key"),
    ]:
        assert page.locator("form#filters").get_by_label(label, exact=True).get_attribute("id") == control
    for name in HEADERS:
        assert page.get_by_role("columnheader", name=name, exact=True).count() == 1


def test_the_filters_and_a_delivery_work_from_the_keyboard_alone(
    seeded: Seeded, console: StartConsole, page: Page
) -> None:
    """Tab to the event type field, type, Enter submits; Tab to a row's link, Enter opens the delivery."""
    served = console(seeded.url)
    page.goto(served.url + "/")
    tab_to(page, "event_type")
    page.keyboard.type("segment.created")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert keys_shown(page) == [seeded.keys[n] for n in seeded.names(event_type="segment.created")]

    tab_to(page, "status")
    page.keyboard.type("dead")  # a select's type-ahead
    tab_to(page, "apply")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert keys_shown(page) == [seeded.keys["segment-1"]]

    key = seeded.keys["segment-1"]
    tab_to(page, f"/deliveries/{key}")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/deliveries/{key}")
    tab_to(page, "replay")
    with page.expect_response(lambda response: response.request.method == "POST"):
        page.keyboard.press("Enter")
    see_result(page, "replayed 1 of 1 matched")


def tab_to(page: Page, target: str) -> None:
    """Press Tab until the focused element is ``target``: a control's id, a link's href, or a button's text."""
    for _ in range(60):
        page.keyboard.press("Tab")
        focused: dict[str, Any] = page.evaluate(
            """() => { const e = document.activeElement;
                return {id: e.id, href: e.getAttribute('href'), text: (e.innerText || e.value || '').trim()}; }"""
        )
        if target in (focused["id"], focused["href"], focused["text"].lower()):
            return
    pytest.fail(f"Tab never reached {target!r}")


# ------------------------------------------------------------------------------------------------ the activity page


def test_the_activity_page_charts_and_tabulates_the_last_day(seeded: Seeded, console: StartConsole, page: Page) -> None:
    """An inline SVG chart with a text alternative and a table beside it counting the seeded deliveries."""
    served = console(seeded.url)
    page.goto(served.url + "/activity")
    charts = page.locator("svg[role=img]")
    assert charts.count() >= 1
    assert all(
        label.strip() for label in charts.evaluate_all("svgs => svgs.map(s => s.getAttribute('aria-label') || '')")
    )
    table = page.locator("#activity-table")
    assert table.locator("th").all_inner_texts()[:5] == [
        "Minute (UTC)",
        "Pending",
        "Done",
        "Dead",
        "Oldest pending age (s)",
    ]
    minute = seeded.received("metric-2").strftime("%H:%M")
    assert minute in table.inner_text()
    rows = table.locator("tr:has(td)").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].slice(1, 4).map(c => Number(c.innerText)))"
    )
    totals = [sum(row[column] for row in rows) for column in range(3)]
    assert totals == [3, 9, 3]  # pending, done, dead: every seeded delivery counted once, by its status now


# ------------------------------------------------------------------------------------------------ off loopback


@pytest.mark.parametrize("tls", ["certificate", "behind-proxy"])
def test_a_console_bound_to_all_addresses_needs_a_login(
    seeded: Seeded, console: StartConsole, context: BrowserContext, guard: Guard, pki: Any, tls: str
) -> None:
    """On 0.0.0.0 (token, TLS): pages redirect to the login; a wrong token is refused; the right one opens a session.

    The session cookie is HttpOnly, SameSite=Strict, Secure (under TLS, or behind a TLS proxy: Chromium
    keeps a Secure cookie of http://127.0.0.1) and not the token; the token appears
    in no page and no output; a POST without its CSRF token is refused even when logged in; after
    Log out, the old session's cookie opens nothing.
    """
    if tls == "certificate":  # the suite's private CA; the browser context accepts it
        flags = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    else:  # a proxy would terminate TLS: the browser reaches the console itself over http://127.0.0.1
        flags = ["--behind-tls-proxy"]
    served = console(seeded.url, "--host", "0.0.0.0", "--token-env", TOKEN_ENV, *flags, env={TOKEN_ENV: TOKEN})
    assert served.url.startswith("https://" if tls == "certificate" else "http://")
    page = context.new_page()
    page.goto(served.url + "/")
    assert page.url == served.url + "/login"
    assert page.locator("#deliveries").count() == 0

    page.get_by_label("Token").fill("not-the-token")
    assert press(page, page.get_by_role("button", name="Log in")).status == 401
    expect(page.locator("p#error[role=alert]")).to_have_count(1)
    assert context.cookies() == []

    page.get_by_label("Token").fill(TOKEN)
    press(page, page.get_by_role("button", name="Log in"))
    expect(page.locator("#deliveries tr[data-key]")).to_have_count(len(SEEDED))
    assert keys_shown(page) == seeded.newest_first
    [cookie] = context.cookies()
    assert cookie["name"] == "fs_console_session"
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert TOKEN not in page.content()

    form = page.locator("form#requeue-dead")
    form.evaluate("f => f.querySelector('input[name=csrf]').remove()")
    assert press(page, form.get_by_role("button", name="Requeue dead letters")).status == 403
    page.goto(served.url + "/?status=dead")
    assert len(keys_shown(page)) == 3

    press(page, page.locator("form#requeue-dead").get_by_role("button", name="Requeue dead letters"))
    see_result(page, "replayed 3 of 3 matched")
    assert TOKEN not in served.output()

    assert context.browser is not None
    stranger = context.browser.new_context(ignore_https_errors=True)
    try:
        stranger.route("**/*", lambda route: guard.route(route))
        other = stranger.new_page()
        other.goto(served.url + f"/deliveries/{seeded.keys['note-0']}")
        assert other.url == served.url + "/login"  # the session is per browser, not per address
    finally:
        stranger.close()

    press(page, page.locator("form#logout").get_by_role("button", name="Log out"))
    page.goto(served.url + "/")
    assert page.url == served.url + "/login"
    context.add_cookies([cookie])  # the old session's cookie, put back: the server has ended that session
    page.goto(served.url + "/")
    assert page.url == served.url + "/login"
