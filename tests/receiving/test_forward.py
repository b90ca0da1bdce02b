"""Forwarding to an internal service: the Standard Webhooks signature and every kind of answer, on real servers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fullstory_async import InvalidArgumentError
from fullstory_async.receiving import SignatureVerificationError, VerificationFailure, verify_forwarded
from fullstory_async.receiving._forward import ATTEMPT_HEADER, Forwarder, ForwardOutcome, ForwardTarget
from fullstory_async.receiving._forwarded import new_forward_secret, sign_forwarded
from tests.fakes import Pki, Serve

# The test vector of the Standard Webhooks specification (spec/standard-webhooks.md, "Verifying").
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(b"f0rward-s1gning-k3y-of-32-bytes!").decode()
BODY = b'{"eventName":"note.created","version":1,"data":{"text":"caf\xc3\xa9"}}'
KEY = "4f6b" * 16


def independent_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Compute the signature as the specification defines it, without the SDK's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, webhook_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


Recorder = Callable[..., Awaitable[tuple[str, list[web.Request], list[bytes]]]]


@pytest.fixture
def service(serve: Serve) -> Recorder:
    """Serve one handler on 127.0.0.1 that records every request and body it gets."""

    async def start(
        answer: Callable[[web.Request], Awaitable[web.StreamResponse]], ssl_context: object = None
    ) -> tuple[str, list[web.Request], list[bytes]]:
        requests: list[web.Request] = []
        bodies: list[bytes] = []

        async def handle(request: web.Request) -> web.StreamResponse:
            requests.append(request)
            bodies.append(await request.read())
            return await answer(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return await serve(app, ssl_context) + "/events", requests, bodies

    return start


def ok(_request: web.Request) -> Awaitable[web.StreamResponse]:
    async def answer() -> web.StreamResponse:
        return web.Response(status=204)

    return answer()


def status(code: int, text: str = "", headers: dict[str, str] | None = None) -> Callable[..., Awaitable[web.Response]]:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=code, text=text, headers=headers)

    return answer


async def forward_once(url: str, **target: object) -> ForwardOutcome:
    async with Forwarder(ForwardTarget(url, **target), secret=SECRET) as forwarder:  # type: ignore[arg-type]
        return await forwarder.forward(BODY, webhook_id=KEY, attempt=1)


def test_the_specification_test_vector_verifies_and_signs():
    """The specification's own vector: our signer reproduces it and our verifier accepts it."""
    headers = sign_forwarded(SPEC_BODY, secret=SPEC_SECRET, webhook_id=SPEC_ID, timestamp=SPEC_TIMESTAMP)
    assert headers["webhook-signature"] == SPEC_SIGNATURE
    assert verify_forwarded(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TIMESTAMP + 10) == SPEC_ID


async def test_a_delivery_arrives_exactly_and_verifies_by_three_implementations(service):
    """Body bytes unchanged; the signature passes our verifier, the reference library and a from-the-spec HMAC."""
    url, requests, bodies = await service(ok)
    async with Forwarder(ForwardTarget(url), secret=SECRET) as forwarder:
        first = await forwarder.forward(BODY, webhook_id=KEY, attempt=1)
        second = await forwarder.forward(BODY, webhook_id=KEY, attempt=2)
    assert first == second == ForwardOutcome("done", 204)
    assert bodies == [BODY, BODY]
    for number, (request, body) in enumerate(zip(requests, bodies, strict=True), start=1):
        headers = dict(request.headers)
        assert request.headers["webhook-id"] == KEY  # stable across attempts: the service's de-duplication key
        assert request.headers[ATTEMPT_HEADER] == str(number)
        assert request.headers["Content-Type"] == "application/json"
        assert verify_forwarded(body, request.headers, SECRET) == KEY
        assert Webhook(SECRET).verify(body, headers) == json.loads(body)  # raises when it does not verify
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(body + b" ", headers)
        expected = independent_signature(SECRET, KEY, request.headers["webhook-timestamp"], body)
        assert request.headers["webhook-signature"] == expected


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504])
async def test_temporary_refusals_are_retried(service, code):
    """408, 425, 429 and 5xx are retried; ``Retry-After`` is read."""
    url, _requests, _bodies = await service(status(code, "busy", {"Retry-After": "7"}))
    outcome = await forward_once(url)
    assert (outcome.outcome, outcome.status, outcome.retry_after, outcome.unreachable) == ("retry", code, 7.0, False)
    assert outcome.error is not None
    assert outcome.error.startswith(str(code))


async def test_retry_after_as_an_http_date_and_the_delay_rule(service):
    """An HTTP-date ``Retry-After`` is honoured; the wait is max(backoff, Retry-After) capped at max_delay."""
    later = format_datetime(datetime.fromtimestamp(datetime.now(UTC).timestamp() + 120, UTC), usegmt=True)
    url, _requests, _bodies = await service(status(503, headers={"Retry-After": later}))
    outcome = await forward_once(url)
    assert outcome.retry_after is not None
    assert 100 < outcome.retry_after <= 120
    assert outcome.delay(backoff=2, max_delay=3600) == outcome.retry_after
    assert outcome.delay(backoff=2, max_delay=30) == 30
    assert ForwardOutcome("retry", 500).delay(backoff=4, max_delay=30) == 4


@pytest.mark.parametrize("code", [400, 401, 404, 410, 413, 422])
async def test_other_client_errors_are_dead_letters_at_once(service, code):
    """A 4xx other than 408, 425 and 429 means the same body would be refused again."""
    url, _requests, _bodies = await service(status(code, '{"error": "no such tenant"}'))
    outcome = await forward_once(url)
    assert (outcome.outcome, outcome.status) == ("dead", code)
    assert outcome.error is not None
    assert "no such tenant" in outcome.error


@pytest.mark.parametrize("code", [301, 302, 307, 308])
async def test_redirects_are_never_followed_and_name_the_location(service, code):
    """A 3xx is a dead letter naming its ``Location``; the redirect target never gets the body."""
    target_url, target_requests, _ = await service(ok)
    url, requests, _bodies = await service(status(code, headers={"Location": target_url}))
    outcome = await forward_once(url)
    assert (outcome.outcome, outcome.status) == ("dead", code)
    assert outcome.error is not None
    assert f"redirect to {target_url} not followed" in outcome.error
    assert len(requests) == 1
    assert target_requests == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_service_that_is_down_is_retried_and_counted_until_it_answers(service):
    """Refused connections are ``retry`` and unreachable; the streak counts them and resets on any answer."""
    url, _requests, _bodies = await service(status(404))
    async with Forwarder(ForwardTarget(f"http://127.0.0.1:{closed_port()}/events"), secret=SECRET) as down:
        outcomes = [await down.forward(BODY, webhook_id=KEY, attempt=n) for n in (1, 2, 3)]
        assert down.unreachable_streak == 3
    assert {(o.outcome, o.status, o.unreachable) for o in outcomes} == {("retry", None, True)}
    assert outcomes[0].error is not None
    assert "cannot connect" in outcomes[0].error
    async with Forwarder(ForwardTarget(url), secret=SECRET) as up:
        up.unreachable_streak = 5
        await up.forward(BODY, webhook_id=KEY, attempt=1)
        assert up.unreachable_streak == 0


async def test_a_service_that_never_answers_costs_one_timeout(service):
    """A hung service is a ``retry`` after the timeout, not a hung worker."""
    never = asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    url, _requests, _bodies = await service(hang)
    outcome = await forward_once(url, timeout=0.2)
    assert (outcome.outcome, outcome.unreachable, outcome.error) == ("retry", True, "no answer within 0.2 s")


async def test_an_endless_answer_is_read_no_further_than_the_cap(service):
    """A 502 whose body never ends is classified from its first 64 KiB, not waited out."""
    never = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=502)
        await response.prepare(request)
        await response.write(b"x" * (64 * 1024 + 10))
        await never.wait()  # the rest never comes: reading past the cap would hit the timeout
        return response

    url, _requests, _bodies = await service(endless)
    outcome = await forward_once(url, timeout=5)
    assert (outcome.outcome, outcome.status, outcome.unreachable) == ("retry", 502, False)
    assert outcome.error is not None
    assert len(outcome.error) < 300


async def test_an_echoed_secret_and_control_characters_never_reach_the_error(service):
    """An echo of the signing secret (whole, key part or a fragment) or terminal escapes never reaches ``error``."""
    key_part = SECRET.removeprefix("whsec_")
    url, _requests, _bodies = await service(status(400, f"bad {SECRET} and {key_part[3:]} \x1b[2J\x07"))
    outcome = await forward_once(url)
    assert outcome.error is not None
    assert key_part[3:13] not in outcome.error  # a fragment too: the client's one scrubber
    assert "\x1b" not in outcome.error
    assert "\x07" not in outcome.error
    assert "<redacted>" in outcome.error


async def test_a_private_ca_is_trusted_only_through_ca_file(service, pki: Pki):
    """TLS verifies the certificate: unknown CA is a retryable failure; ``ca_file`` makes it trusted."""
    url, requests, _bodies = await service(ok, pki.server_context())
    refused = await forward_once(url)
    assert (refused.outcome, refused.unreachable) == ("retry", True)
    assert refused.error is not None
    assert "certificate" in refused.error.lower()
    assert requests == []
    assert await forward_once(url, ca_file=str(pki.ca)) == ForwardOutcome("done", 204)


async def test_the_host_name_is_verified(service, pki: Pki):
    """A certificate for 127.0.0.1 does not pass for ``localhost``, even from the trusted CA."""
    url, requests, _bodies = await service(ok, pki.server_context())
    outcome = await forward_once(url.replace("127.0.0.1", "localhost"), ca_file=str(pki.ca))
    assert (outcome.outcome, outcome.unreachable) == ("retry", True)
    assert requests == []


async def test_mutual_tls_presents_the_client_certificate(service, pki: Pki):
    """A service requiring a client certificate refuses a forwarder without one and accepts the configured one."""
    url, _requests, _bodies = await service(ok, pki.server_context(require_client_certificate=True))
    without = await forward_once(url, ca_file=str(pki.ca))
    assert (without.outcome, without.unreachable) == ("retry", True)
    with_cert = await forward_once(
        url, ca_file=str(pki.ca), client_cert=str(pki.client_cert), client_key=str(pki.client_key)
    )
    assert with_cert == ForwardOutcome("done", 204)


async def test_proxy_variables_never_apply(service, monkeypatch):
    """``HTTP_PROXY`` pointing nowhere does not stop forwarding to an internal service."""
    dead_proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    url, requests, _bodies = await service(ok)
    assert await forward_once(url) == ForwardOutcome("done", 204)
    assert len(requests) == 1


def test_plain_http_is_for_loopback_unless_allowed():
    """A non-loopback ``http`` target is refused naming the flag; allowed with it; loopback always."""
    with pytest.raises(InvalidArgumentError, match="--allow-insecure-http") as refused:
        ForwardTarget("http://events.internal/fullstory")
    assert refused.value.field == "url"
    ForwardTarget("http://events.internal/fullstory", allow_insecure_http=True)
    ForwardTarget("http://[::1]:8080/fullstory")
    ForwardTarget("http://localhost:8080/fullstory")


@pytest.mark.parametrize("bad", ["", "not-whsec", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()])
def test_a_bad_signing_secret_is_refused_without_echoing_it(bad):
    """The secret must be ``whsec_`` and base64 of 24 to 64 bytes; the message names the field, not the value."""
    with pytest.raises(InvalidArgumentError) as refused:
        Forwarder(ForwardTarget("http://127.0.0.1:1/x"), secret=bad)
    assert refused.value.field == "sign secret"
    if bad:
        assert bad not in str(refused.value)


def signed(body: bytes = BODY, timestamp: int = SPEC_TIMESTAMP) -> dict[str, str]:
    return sign_forwarded(body, secret=SECRET, webhook_id=KEY, timestamp=timestamp)


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, BODY, VerificationFailure.MISSING_HEADER),
        ({**signed(), "webhook-signature": "v1 no-comma"}, BODY, VerificationFailure.MALFORMED_HEADER),
        ({**signed(), "webhook-signature": "v1,@@@"}, BODY, VerificationFailure.MALFORMED_HEADER),
        ({**signed(), "webhook-timestamp": "soon"}, BODY, VerificationFailure.MALFORMED_HEADER),
        ({**signed(), "webhook-id": "a.b"}, BODY, VerificationFailure.MALFORMED_HEADER),
        (signed(), BODY + b" ", VerificationFailure.MISMATCH),
        ({**signed(), "webhook-id": "other"}, BODY, VerificationFailure.MISMATCH),
        (signed(timestamp=SPEC_TIMESTAMP - 301), BODY, VerificationFailure.STALE_TIMESTAMP),
        (signed(timestamp=SPEC_TIMESTAMP + 301), BODY, VerificationFailure.STALE_TIMESTAMP),
    ],
)
def test_verification_refuses_with_a_reason(headers, body, reason):
    """Missing or malformed headers, a tampered body or id, and a replayed or future timestamp are refused."""
    with pytest.raises(SignatureVerificationError) as refused:
        verify_forwarded(body, headers, SECRET, now=SPEC_TIMESTAMP)
    assert refused.value.reason == reason


def test_verification_accepts_rotation_and_any_header_case():
    """Several signatures or several secrets: any one matching is enough; header names are case-insensitive."""
    old = new_forward_secret()
    old_signature = sign_forwarded(BODY, secret=old, webhook_id=KEY, timestamp=SPEC_TIMESTAMP)["webhook-signature"]
    headers = signed()
    headers = {
        "Webhook-Id": headers["webhook-id"],
        "Webhook-Timestamp": headers["webhook-timestamp"],
        "Webhook-Signature": f"{old_signature} v1a,ignored {headers['webhook-signature']}",
    }
    assert verify_forwarded(BODY, headers, SECRET, now=SPEC_TIMESTAMP) == KEY
    assert verify_forwarded(BODY, headers, [new_forward_secret(), old], now=SPEC_TIMESTAMP) == KEY
    with pytest.raises(SignatureVerificationError):
        verify_forwarded(BODY, headers, new_forward_secret(), now=SPEC_TIMESTAMP)
