"""Fault injection: each fault kind, before/after commit, counts, probabilities and routes."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp
import pytest

from fullstory_async.testing import FakeFullstory, Fault, FaultKind, Faults, endpoint_id

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = "/webhooks/v1/endpoints"
URL = "https://example.com/hook"
SERVER_ERROR = {"message": "Server error was encountered", "code": "server_error"}


async def test_server_error_before_commit_changes_nothing(api: Api) -> None:
    """Fault.server_error(): 500 server_error and the endpoint is not created."""
    api.fake.faults.add(Fault.server_error(), route="create_endpoint", times=1)
    reply = await api.create(URL)
    assert (reply.status, reply.body) == (500, SERVER_ERROR)
    assert api.fake.endpoints_with_url(URL) == []
    assert api.fake.requests[-1].faults == (Fault.server_error(),)
    assert (await api.create(URL)).status == 200


async def test_server_error_after_commit_keeps_the_change(api: Api) -> None:
    """Fault.server_error_after_commit(): 500, yet the endpoint exists (the ambiguous case)."""
    api.fake.faults.add(Fault.server_error_after_commit(503), route="create_endpoint", times=1)
    reply = await api.create(URL)
    assert (reply.status, reply.body) == (503, SERVER_ERROR)
    assert len(api.fake.endpoints_with_url(URL)) == 1
    retry = await api.create(URL)
    assert (retry.status, retry.body["code"]) == (400, "already_exists")


async def test_connection_reset_after_commit(api: Api) -> None:
    """Fault.connection_reset_after_commit(): no response at all, but the endpoint was created."""
    api.fake.faults.add(Fault.connection_reset_after_commit(), route="create_endpoint", times=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.create(URL)
    assert len(api.fake.endpoints_with_url(URL)) == 1
    record = api.fake.requests[-1]
    assert (record.status, record.faults[0].kind) == (None, FaultKind.RESET)


async def test_connection_reset_before_commit(api: Api) -> None:
    """Fault.connection_reset(): no response and nothing created."""
    api.fake.faults.add(Fault.connection_reset(), times=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.create(URL)
    assert api.fake.endpoints_with_url(URL) == []


@pytest.mark.parametrize("after_commit", [False, True])
async def test_html_bad_gateway(api: Api, after_commit: bool) -> None:
    """Fault.bad_gateway_html(): a text/html 502 page, before or after the change."""
    api.fake.faults.add(Fault.bad_gateway_html(after_commit=after_commit), times=1)
    reply = await api.create(URL)
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in reply.body
    assert len(api.fake.endpoints_with_url(URL)) == int(after_commit)


async def test_invalid_json_200(api: Api) -> None:
    """Fault.invalid_json(): 200 application/json whose body does not parse; the change happened."""
    api.fake.faults.add(Fault.invalid_json(), route="create_endpoint", times=1)
    reply = await api.create(URL)
    assert (reply.status, reply.headers["Content-Type"]) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.raw)
    assert len(api.fake.endpoints_with_url(URL)) == 1


async def test_wrong_shape_200(api: Api) -> None:
    """Fault.wrong_shape(): valid JSON that is not an Endpoint object."""
    api.fake.faults.add(Fault.wrong_shape(), route="get_endpoint", times=1)
    api.fake.faults.add(Fault.wrong_shape({"id": 7}), route="get_endpoint", times=1)
    api.fake.add_endpoint(URL)
    first = await api.call("GET", f"{ENDPOINTS}/{endpoint_id(URL)}")
    second = await api.call("GET", f"{ENDPOINTS}/{endpoint_id(URL)}")
    assert (first.status, first.body) == (200, ["not", "an", "object"])
    assert (second.status, second.body) == (200, {"id": 7})


async def test_custom_error_with_retry_after(api: Api) -> None:
    """Fault.error() and Fault.too_many_requests() send their status, body and Retry-After."""
    api.fake.faults.add(Fault.error(503, "unavailable", "try later", retry_after=2.5), times=1)
    api.fake.faults.add(Fault.too_many_requests(retry_after=3), times=1)
    first = await api.call("GET", ENDPOINTS)
    second = await api.call("GET", ENDPOINTS)
    assert (first.status, first.body, first.headers["Retry-After"]) == (
        503,
        {"message": "try later", "code": "unavailable"},
        "2.5",
    )
    assert (second.status, second.body["code"], second.headers["Retry-After"]) == (429, "too_many_requests", "3")


async def test_latency_triggers_client_timeouts(api: Api) -> None:
    """Fault.latency(): the response is late enough for a client timeout; later requests are prompt."""
    api.fake.faults.add(Fault.latency(5.0), route="list_endpoints", times=1)
    timeout = aiohttp.ClientTimeout(total=0.1)
    with pytest.raises(asyncio.TimeoutError):
        await api.session.get(
            api.fake.url + ENDPOINTS, headers={"Authorization": f"Basic {api.fake.api_key}"}, timeout=timeout
        )
    assert (await api.call("GET", ENDPOINTS)).status == 200
    assert api.fake.requests[-1].faults == ()  # the later request met no latency


async def test_latency_adds_to_another_fault(api: Api) -> None:
    """Latency rules combine with the fault that answers."""
    api.fake.faults.add(Fault.latency(0.01), times=1)
    api.fake.faults.add(Fault.server_error(), times=1)
    reply = await api.call("GET", ENDPOINTS)
    assert reply.status == 500
    assert [f.kind for f in api.fake.requests[-1].faults] == [FaultKind.LATENCY, FaultKind.ERROR]


async def test_latency_does_not_block_shutdown(session: aiohttp.ClientSession) -> None:
    """Stopping the fake ends pending latency at once: the waiting client gets a connection error."""
    fake = FakeFullstory()
    await fake.start()
    try:
        fake.faults.add(Fault.latency(60.0))
        pending = asyncio.create_task(
            session.get(fake.url + ENDPOINTS, headers={"Authorization": f"Basic {fake.api_key}"})
        )
        for _ in range(1000):  # bounded: the request reaches the latency wait
            if fake._fake_app._sleepers:
                break
            await asyncio.sleep(0)
        assert fake._fake_app._sleepers
    finally:
        async with asyncio.timeout(1.0):  # a hang guard: the 60 s latency must not hold the stop
            await fake.stop()
    with pytest.raises(aiohttp.ClientError):
        await pending


async def test_times_limits_a_rule_and_then_it_is_removed(api: Api) -> None:
    """A rule with times=2 hits the next two matching requests only."""
    rule = api.fake.faults.add(Fault.server_error(), route="list_endpoints", times=2)
    assert api.fake.faults.remaining(rule) == 2
    statuses = [(await api.call("GET", ENDPOINTS)).status for _ in range(3)]
    other = await api.call("GET", "/webhooks/v1/event-types")
    assert statuses == [500, 500, 200]
    assert other.status == 200
    assert api.fake.faults.remaining(rule) == 0
    assert api.fake.faults.rules == ()


async def test_a_rule_without_times_or_probability_hits_every_request(api: Api) -> None:
    """Unlimited rules stay until removed; clear() removes all."""
    rule = api.fake.faults.add(Fault.server_error())
    assert [(await api.call("GET", ENDPOINTS)).status for _ in range(3)] == [500, 500, 500]
    assert api.fake.faults.remaining(rule) is None
    api.fake.faults.remove(rule)
    assert (await api.call("GET", ENDPOINTS)).status == 200
    api.fake.faults.add(Fault.server_error())
    api.fake.faults.clear()
    assert (await api.call("GET", ENDPOINTS)).status == 200


async def test_probability_is_deterministic_per_seed(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """Two fakes with the same seed fault the same requests; roughly `probability` of them."""
    patterns = []
    for _ in range(2):
        async with FakeFullstory(seed=42) as fake:
            api = api_factory(session, fake)
            fake.faults.add(Fault.server_error(), route="list_endpoints", probability=0.3)
            patterns.append([(await api.call("GET", ENDPOINTS)).status for _ in range(40)])
    assert patterns[0] == patterns[1]
    assert 4 <= patterns[0].count(500) <= 20


def test_reseeding_restarts_the_sequence() -> None:
    """faults.clear(reseed=True) (and fake.reset()) replay the same random draws."""
    faults = Faults(seed=7)

    def draw() -> list[bool]:
        faults.add(Fault.server_error(), probability=0.5)
        picks = [faults.select("list_endpoints", "GET", ENDPOINTS, ENDPOINTS)[1] is not None for _ in range(30)]
        faults.clear(reseed=True)
        return picks

    assert draw() == draw()


@pytest.mark.parametrize(
    ("route", "hits"),
    [
        ("get_endpoint", ["GET /webhooks/v1/endpoints/{id}"]),
        ("GET /webhooks/v1/endpoints/*", ["GET /webhooks/v1/endpoints/{id}"]),
        ("POST /webhooks/v1/endpoints/{id}", ["POST /webhooks/v1/endpoints/{id}"]),
        ("* /webhooks/v1/endpoints/*", [f"{m} /webhooks/v1/endpoints/{{id}}" for m in ("GET", "POST", "DELETE")]),
        ("post /webhooks/v1/endpoints", ["POST /webhooks/v1/endpoints"]),
        (
            "* /webhooks/v1/event-types*",
            ["GET /webhooks/v1/event-types", "GET /webhooks/v1/event-types/{event_name}/subcategories"],
        ),
    ],
)
def test_routes_match_operations_and_method_path_patterns(route: str, hits: list[str]) -> None:
    """Routes are operation names, or METHOD plus a path glob or the route template."""
    from fullstory_async.testing._routes import OPERATIONS

    faults = Faults()
    rule = faults.add(Fault.server_error(), route=route)
    matched = []
    for op in OPERATIONS:
        path = op.path.replace("{id}", "aHR0cHM6Ly9h").replace("{event_name}", "metric.alert")
        if rule.matches(op.name, op.method, path, op.path):
            matched.append(f"{op.method} {op.path}")
    assert matched == hits


@pytest.mark.parametrize("route", ["create_endpoints", "GET", "GET webhooks", " /x"])
def test_bad_routes_are_refused(route: str) -> None:
    """A misspelt operation name or a malformed route is a ValueError at add()."""
    with pytest.raises(ValueError, match=r"route|operation"):
        Faults().add(Fault.server_error(), route=route)


def test_rule_arguments_are_validated() -> None:
    """Times must be >= 1 and probability in (0, 1]."""
    with pytest.raises(ValueError, match="times"):
        Faults().add(Fault.server_error(), times=0)
    with pytest.raises(ValueError, match="probability"):
        Faults().add(Fault.server_error(), probability=1.5)
    with pytest.raises(ValueError, match="seconds"):
        Fault.latency(-1)


def test_only_the_first_answering_rule_is_consumed() -> None:
    """Rules are tried in order; once one answers, later non-latency rules keep their count."""
    faults = Faults()
    first = faults.add(Fault.server_error(), times=1)
    second = faults.add(Fault.bad_gateway_html(), times=1)
    _, fault, _ = faults.select("list_endpoints", "GET", ENDPOINTS, ENDPOINTS)
    assert fault == Fault.server_error()
    assert (faults.remaining(first), faults.remaining(second)) == (0, 1)
    _, fault, _ = faults.select("list_endpoints", "GET", ENDPOINTS, ENDPOINTS)
    assert fault is not None
    assert fault.kind is FaultKind.HTML


async def test_after_commit_faults_replace_error_responses_too(api: Api) -> None:
    """An after-commit fault replaces whatever the handler answered, a 400 included."""
    api.fake.faults.add(Fault.server_error_after_commit(), times=1)
    reply = await api.call("POST", ENDPOINTS, json={"url": "not a url"})
    assert reply.status == 500
    assert len(api.fake.endpoints) == 0


async def test_latency_after_commit_applies_the_change_before_waiting() -> None:
    """Fault.latency(after_commit=True) stores the endpoint at once and only delays the answer."""
    from fullstory_async import APITimeoutError, CreateEndpointRequest
    from fullstory_async import RetryPolicy as _Retry

    async with FakeFullstory() as fake, fake.client(retry=_Retry(max_attempts=1), timeout=0.05) as fs:
        fake.faults.add(Fault.latency(0.3, after_commit=True), route="create_endpoint", times=1)
        with pytest.raises(APITimeoutError):
            await fs.webhooks.create_endpoint(
                CreateEndpointRequest(url="https://example.com/late", event_types=["note.created"])
            )
        assert len(fake.endpoints_with_url("https://example.com/late")) == 1
