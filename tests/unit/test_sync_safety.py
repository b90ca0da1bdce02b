"""Declarative sync that cannot destroy: scope, complete listings, catalogue checks, the mass-deletion guard.

One test per probe of issue 11 (each failed on the code before it), against FakeFullstory and,
for the doubled listing and the failing listing, a raw aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web

from fullstory_async import (
    Action,
    APIError,
    Change,
    Client,
    DesiredEndpoint,
    DesiredState,
    EventType,
    InvalidArgumentError,
    Plan,
    ResponseDecodeError,
    RetryPolicy,
    _webhooks,
    parse_desired_state,
)
from fullstory_async.testing import FakeFullstory, Fault

NO_RETRY = RetryPolicy(max_attempts=1, wait=False)
SCOPE = ["https://hooks.example.com/"]


def endpoint_json(url: str, n: int) -> dict[str, Any]:
    return {
        "id": f"id-{n}",
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "enabled": True,
        "url": url,
        "eventTypes": [{"eventName": "note.created"}],
    }


class RawServer:
    """A raw aiohttp Webhooks server whose listing pages are given by the test; it records deletes."""

    def __init__(self, pages: list[list[dict[str, Any]]], *, fail_page: int | None = None) -> None:
        self.pages = pages
        self.fail_page = fail_page
        self.deleted: list[str] = []
        self.url = ""

    async def list_endpoints(self, request: web.Request) -> web.Response:
        index = int(request.query.get("paginationToken", "0"))
        if index == self.fail_page:
            return web.json_response({"code": "internal", "message": "boom"}, status=500)
        body: dict[str, Any] = {"endpoints": self.pages[index]}
        if index + 1 < len(self.pages):
            body["nextPaginationToken"] = str(index + 1)
        return web.json_response(body)

    async def event_types(self, request: web.Request) -> web.Response:
        return web.json_response({"eventDefs": [{"eventName": "note.created", "displayName": "Note Created"}]})

    async def delete(self, request: web.Request) -> web.Response:
        self.deleted.append(request.match_info["id"])
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/webhooks/v1/endpoints", self.list_endpoints)
        app.router.add_get("/webhooks/v1/event-types", self.event_types)
        app.router.add_delete("/webhooks/v1/endpoints/{id}", self.delete)
        return app


@pytest.fixture
def raw(serve: Callable[[web.Application], Awaitable[str]]) -> Callable[[RawServer], Awaitable[RawServer]]:
    """Serve a `RawServer` on 127.0.0.1 (the `serve` fixture of tests/conftest.py)."""

    async def start(server: RawServer) -> RawServer:
        server.url = await serve(server.app())
        return server

    return start


def desired(*urls: str, scope: list[str] | None = SCOPE) -> DesiredState:
    return DesiredState(tuple(DesiredEndpoint(url, (EventType("note.created"),)) for url in urls), scope=scope)


async def test_endpoint_repeated_across_pages_is_never_deleted(
    raw: Callable[[RawServer], Awaitable[RawServer]],
) -> None:
    """A listing that repeats a desired endpoint on page 2 (offset paging under inserts): no delete of it."""
    a, b, c = (f"https://hooks.example.com/{name}" for name in "abc")
    server = await raw(
        RawServer([[endpoint_json(a, 1), endpoint_json(b, 2)], [endpoint_json(b, 2), endpoint_json(c, 3)]])
    )
    async with Client(api_key="k", base_url=server.url, retry=NO_RETRY) as fs:
        plan = await fs.webhooks.plan(desired(a, b), prune=True)
        assert [change.url for change in plan.deletes] == [c]
        assert sorted(change.url for change in plan.unchanged) == [a, b]
        results = [r async for r in fs.webhooks.apply(plan)]
    assert all(r.ok for r in results)
    assert server.deleted == ["id-3"]


async def test_a_desired_url_is_never_deleted_even_under_two_ids(
    raw: Callable[[RawServer], Awaitable[RawServer]],
) -> None:
    """Two endpoints with a desired URL (two ids): one is matched, neither is deleted."""
    a = "https://hooks.example.com/a"
    server = await raw(RawServer([[endpoint_json(a, 1)], [endpoint_json(a, 2)]]))
    async with Client(api_key="k", base_url=server.url, retry=NO_RETRY) as fs:
        plan = await fs.webhooks.plan(desired(a), prune=True)
    assert plan.deletes == ()
    assert [change.url for change in plan.unchanged] == [a]


async def test_a_failing_listing_page_means_no_plan(raw: Callable[[RawServer], Awaitable[RawServer]]) -> None:
    """Page 2 fails: plan raises, so nothing can be deleted from a partial view."""
    pages = [[endpoint_json(f"https://hooks.example.com/{n}", n)] for n in range(3)]
    server = await raw(RawServer(pages, fail_page=1))
    async with Client(api_key="k", base_url=server.url, retry=NO_RETRY) as fs:
        with pytest.raises(APIError):
            await fs.webhooks.plan(desired(scope=SCOPE), prune=True)
    assert server.deleted == []


async def test_a_cycling_listing_means_no_plan(raw: Callable[[RawServer], Awaitable[RawServer]]) -> None:
    """Tokens that come back (0 -> 1 -> 0 ...) are an error, not an endless loop."""

    class Cycling(RawServer):
        async def list_endpoints(self, request: web.Request) -> web.Response:
            index = request.query.get("paginationToken", "0")
            return web.json_response({"endpoints": [], "nextPaginationToken": "1" if index == "0" else "0"})

    server = await raw(Cycling([]))
    async with Client(api_key="k", base_url=server.url, retry=NO_RETRY) as fs:
        with pytest.raises(APIError, match="cycles"):
            await fs.webhooks.plan(desired(scope=SCOPE), prune=True)


async def test_prune_without_scope_is_refused() -> None:
    """`plan(prune=True)` on a state with no scope raises naming `scope`; nothing is read or deleted."""
    async with FakeFullstory() as fake, fake.client() as fs:
        fake.add_endpoint("https://other-tool.example.com/hook")
        with pytest.raises(InvalidArgumentError) as info:
            await fs.webhooks.plan(desired("https://hooks.example.com/a", scope=None), prune=True)
    assert info.value.field == "scope"
    assert len(fake.endpoints) == 1


async def test_prune_deletes_only_inside_the_scope() -> None:
    """Endpoints of other tools (outside the scope) are left alone and counted; in-scope extras are deleted."""
    async with FakeFullstory() as fake, fake.client() as fs:
        fake.add_endpoint("https://hooks.example.com/old")
        fake.add_endpoint("https://hooks.example.com.evil.net/x")
        fake.add_endpoint("https://other-tool.example.com/hook")
        plan = await fs.webhooks.plan(desired("https://hooks.example.com/a"), prune=True)
        assert [change.url for change in plan.deletes] == ["https://hooks.example.com/old"]
        assert plan.outside_scope == 2
        assert all([r.ok async for r in fs.webhooks.apply(plan)])
    assert {e.url for e in fake.endpoints.values()} == {
        "https://hooks.example.com/a",
        "https://hooks.example.com.evil.net/x",
        "https://other-tool.example.com/hook",
    }


async def test_mass_deletion_needs_an_explicit_limit() -> None:
    """More deletes than max_deletes (default 10) refuses the plan; a raised limit allows it."""
    async with FakeFullstory() as fake, fake.client() as fs:
        for n in range(11):
            fake.add_endpoint(f"https://hooks.example.com/{n}")
        with pytest.raises(InvalidArgumentError, match="would delete 11 endpoints, more than the limit of 10"):
            await fs.webhooks.plan(desired(), prune=True)
        assert len((await fs.webhooks.plan(desired(), prune=True, max_deletes=11)).deletes) == 11
        assert len((await fs.webhooks.plan(desired(), prune=True, max_deletes=None)).deletes) == 11
    assert len(fake.endpoints) == 11


async def test_misspelt_event_name_fails_the_plan_and_nothing_is_half_applied() -> None:
    """`note.craeted` fails `plan` naming the entry, the value and a suggestion: no plan, nothing created."""
    state = parse_desired_state(
        'scope = ["https://hooks.example.com/"]\n'
        '[[endpoints]]\nurl = "https://hooks.example.com/good"\nevent_types = ["note.created"]\n'
        '[[endpoints]]\nurl = "https://hooks.example.com/bad"\nevent_types = ["note.craeted"]\n',
        environ={},
    )
    async with FakeFullstory() as fake, fake.client() as fs:
        with pytest.raises(InvalidArgumentError) as info:
            await fs.webhooks.plan(state)
    assert info.value.field == "endpoints[1].event_types[0].event_name"
    assert "'note.craeted'" in str(info.value)
    assert 'did you mean "note.created"?' in str(info.value)
    assert "https://hooks.example.com/bad" in str(info.value)
    assert fake.endpoints == {}


async def test_subcategories_are_checked_and_listed_only_for_the_names_used() -> None:
    """A wrong subcategory fails with a suggestion; subcategories are listed only for event types used, once."""
    async with FakeFullstory(request_log_size=100) as fake, fake.client() as fs:
        good = fake.catalogue.get("metric.alert").subcategories[0].subcategory  # type: ignore[union-attr]
        types = (EventType("metric.alert", good), EventType("metric.alert", good[:-1] + "?"))
        state = DesiredState((DesiredEndpoint("https://hooks.example.com/a", types),), scope=SCOPE)
        with pytest.raises(InvalidArgumentError) as info:
            await fs.webhooks.plan(state)
        operations = [r.operation for r in fake.requests]
    assert info.value.field == "endpoints[0].event_types[1].subcategory"
    assert f'did you mean "{good}"?' in str(info.value)
    assert operations == ["list_event_types", "list_event_subcategories"]


@pytest.mark.parametrize(
    ("event_type", "problem"),
    [
        (EventType("note.created", "SUB"), "note.created has no subcategories"),
        (EventType("metric.alert"), "metric.alert needs a subcategory"),
    ],
)
async def test_subcategory_presence_is_checked(event_type: EventType, problem: str) -> None:
    """A subcategory on a type without any, or none on a type that needs one: the plan fails."""
    state = DesiredState((DesiredEndpoint("https://hooks.example.com/a", (event_type,)),), scope=SCOPE)
    async with FakeFullstory() as fake, fake.client() as fs:
        with pytest.raises(InvalidArgumentError, match=problem):
            await fs.webhooks.plan(state)


async def test_unreadable_catalogue_means_no_plan() -> None:
    """When the event types cannot be listed there is no plan (and no change)."""
    async with FakeFullstory() as fake, fake.client(retry=NO_RETRY) as fs:
        fake.faults.add(Fault.server_error(503), route="list_event_types")
        with pytest.raises(APIError):
            await fs.webhooks.plan(desired("https://hooks.example.com/a"))
    assert fake.endpoints == {}


async def test_allow_unlisted_event_types_opts_out_and_says_so() -> None:
    """With allow_unlisted_event_types a value the catalogue does not list is reported, not fatal."""
    state = DesiredState((DesiredEndpoint("https://hooks.example.com/a", (EventType("brand.new"),)),), scope=SCOPE)
    async with FakeFullstory() as fake, fake.client() as fs:
        plan = await fs.webhooks.plan(state, allow_unlisted_event_types=True)
    assert plan.validated
    assert len(plan.creates) == 1
    assert plan.unlisted == (
        "endpoints[0].event_types[0].event_name: 'brand.new' is not an event type of this account",
    )


async def test_apply_refuses_a_plan_that_was_not_validated() -> None:
    """A Plan built by hand (not by plan()) is refused before any request."""
    async with FakeFullstory() as fake, fake.client() as fs:
        with pytest.raises(InvalidArgumentError, match=r"plan: was not made by webhooks\.plan"):
            fs.webhooks.apply(Plan())


@pytest.mark.parametrize(
    "stored",
    [
        "https://HOOKS.example.com/fullstory/notes",
        "https://hooks.example.com:443/fullstory/notes",
        "https://hooks.example.com./fullstory/notes",
    ],
)
async def test_the_desired_endpoint_spelt_otherwise_by_the_server_is_never_deleted(stored: str) -> None:
    """The server holds the desired endpoint under another spelling: prune keeps it, updates it, creates no twin."""
    state = DesiredState(
        (DesiredEndpoint("https://hooks.example.com/fullstory/notes", (EventType("note.created"),), enabled=False),),
        scope=["https://hooks.example.com/fullstory/"],
    )
    async with FakeFullstory() as fake, fake.client() as fs:
        kept = fake.add_endpoint(stored)
        fake.add_endpoint("https://hooks.example.com/fullstory/notes/")  # another path: pruned
        plan = await fs.webhooks.plan(state, prune=True)
        assert plan.creates == ()
        assert [(c.url, c.fields) for c in plan.updates] == [(stored, ("enabled",))]
        assert [c.url for c in plan.deletes] == ["https://hooks.example.com/fullstory/notes/"]
        assert all([r.ok async for r in fs.webhooks.apply(plan)])
    assert [(e.id, e.url, e.enabled) for e in fake.endpoints.values()] == [(kept.id, stored, False)]


async def test_prune_never_deletes_what_leaves_the_scope_or_is_ambiguous() -> None:
    """`..` and `%2e%2e` resolve outside the scope; a backslash or credentials make it ambiguous: never deleted."""
    escaping = [
        "https://hooks.example.com/fullstory/../admin/x",
        "https://hooks.example.com/fullstory/%2e%2e/admin/y",
        "https://hooks.example.com@evil.net/fullstory/z",
        "https://evil.net\\@hooks.example.com/fullstory/x",
    ]
    async with FakeFullstory() as fake, fake.client() as fs:
        for url in escaping:
            fake.add_endpoint(url)
        plan = await fs.webhooks.plan(desired(scope=["https://hooks.example.com/fullstory/"]), prune=True)
    assert plan.deletes == ()
    assert plan.outside_scope == 2
    assert plan.ambiguous == tuple(escaping[2:])


async def test_a_listing_that_never_ends_means_no_plan(
    raw: Callable[[RawServer], Awaitable[RawServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh token on every page: plan stops at the listing walk's page cap (5 here) with an error."""
    monkeypatch.setattr(_webhooks, "MAX_PAGES", 5)

    class Endless(RawServer):
        served = 0

        async def list_endpoints(self, request: web.Request) -> web.Response:
            self.served += 1
            body: dict[str, Any] = {"endpoints": [endpoint_json("https://hooks.example.com/x", 1)]}
            if self.served < 50:  # bounded, so the test ends even when the cap is missing
                body["nextPaginationToken"] = f"t{self.served}"
            return web.json_response(body)

    server = await raw(Endless([]))
    async with Client(api_key="k", base_url=server.url, retry=NO_RETRY) as fs:
        with pytest.raises(ResponseDecodeError, match="did not end within 5 pages"):
            await fs.webhooks.plan(desired(scope=SCOPE), prune=True)
    assert server.served == 5
    assert server.deleted == []


async def test_apply_refuses_a_plan_changed_after_plan_made_it() -> None:
    """`attrs.evolve` of a real plan (a forged delete of another team's endpoint) is refused; nothing deleted."""
    async with FakeFullstory() as fake, fake.client() as fs:
        other = fake.add_endpoint("https://other-team.example.net/hook")
        real = await fs.webhooks.plan(desired("https://hooks.example.com/a"), prune=True)
        assert real.validated
        forged = attrs.evolve(real, deletes=(Change(Action.DELETE, other.url, None, other),))
        rebuilt = Plan(*(getattr(real, f.name) for f in attrs.fields(Plan) if f.init))
        for plan in (forged, rebuilt):
            assert not plan.validated
            with pytest.raises(InvalidArgumentError, match=r"plan: was not made by webhooks\.plan"):
                fs.webhooks.apply(plan)
        assert rebuilt == real  # equal contents, yet only the plan that plan() made runs
    assert set(fake.endpoints) == {other.id}
