"""`Authorization: Basic <key>` checking: 401 for missing or wrong keys, 403 for read-only writes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from fullstory_async.testing import FakeFullstory, make_api_key

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = "/webhooks/v1/endpoints"
UNAUTHORIZED = {"message": "access is unauthorized", "code": "unauthorized"}
FORBIDDEN = {"message": "insufficient permissions", "code": "forbidden"}
WRITES = [
    ("POST", ENDPOINTS),
    ("POST", f"{ENDPOINTS}/aHR0cHM6Ly9leGFtcGxlLmNvbS9h"),
    ("DELETE", f"{ENDPOINTS}/aHR0cHM6Ly9leGFtcGxlLmNvbS9h"),
]
READS = [
    ("GET", ENDPOINTS),
    ("GET", f"{ENDPOINTS}/aHR0cHM6Ly9leGFtcGxlLmNvbS9h"),
    ("GET", "/webhooks/v1/event-types"),
    ("GET", "/webhooks/v1/event-types/metric.alert/subcategories"),
]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "Basic",
        "Basic ",
        "Basic na1.wrong/FAKEORG",
        "Bearer {key}",
        "{key}",
        "Basic base64({key})",
    ],
)
async def test_missing_or_wrong_credentials_are_401(api: Api, auth: str | None) -> None:
    """No header, another scheme, a wrong key or a base64-encoded key is 401 unauthorized."""
    header = None if auth is None else auth.replace("{key}", api.fake.api_key)
    reply = await api.call("GET", ENDPOINTS, key=None, auth=header)
    assert (reply.status, reply.body) == (401, UNAUTHORIZED)
    assert api.fake.requests[-1].key_role is None


async def test_the_scheme_is_case_insensitive(api: Api) -> None:
    """`basic <key>` is accepted, like any HTTP auth scheme."""
    reply = await api.call("GET", ENDPOINTS, auth=f"basic {api.fake.api_key}")
    assert reply.status == 200


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_a_read_only_key_gets_403_on_writes(api: Api, method: str, path: str) -> None:
    """Create, update and delete with the read-only key are 403 forbidden; nothing changes."""
    api.fake.add_endpoint("https://example.com/a")
    before = dict(api.fake.endpoints)
    reply = await api.call(method, path, json={"url": "https://example.com/b", "eventTypes": []}, key="read_only")
    assert (reply.status, reply.body) == (403, FORBIDDEN)
    assert dict(api.fake.endpoints) == before
    assert api.fake.requests[-1].key_role == "read_only"


@pytest.mark.parametrize(("method", "path"), READS)
async def test_a_read_only_key_may_read(api: Api, method: str, path: str) -> None:
    """Every read operation works with the read-only key."""
    api.fake.add_endpoint("https://example.com/a")
    reply = await api.call(method, path, key="read_only")
    assert reply.status == 200


async def test_authentication_comes_before_not_found(api: Api) -> None:
    """A wrong key on an unknown id is 401, not 404."""
    reply = await api.call("GET", f"{ENDPOINTS}/bm9wZQ", key=None)
    assert reply.status == 401


def test_keys_look_real_and_stay_out_of_reprs() -> None:
    """Keys are "na1.<random>/FAKEORG", distinct per fake, and absent from the fake's repr."""
    fake = FakeFullstory()
    assert re.fullmatch(r"na1\.[A-Za-z0-9_-]{20,}/FAKEORG", fake.api_key)
    assert fake.read_only_api_key != fake.api_key
    assert FakeFullstory().api_key != fake.api_key
    assert fake.api_key not in repr(fake)
    assert make_api_key("ACME", region="eu1").startswith("eu1.")
    assert make_api_key("ACME").endswith("/ACME")


def test_explicit_keys_are_used_and_must_differ() -> None:
    """api_key/read_only_api_key can be fixed; the same key for both is refused."""
    fake = FakeFullstory(api_key="na1.fixed/ORG", read_only_api_key="na1.ro/ORG")
    assert (fake.api_key, fake.read_only_api_key) == ("na1.fixed/ORG", "na1.ro/ORG")
    with pytest.raises(ValueError, match="differ"):
        FakeFullstory(api_key="same", read_only_api_key="same")
