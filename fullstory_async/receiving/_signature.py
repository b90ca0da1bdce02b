"""The ``Fullstory-Signature`` scheme: `sign` a body, `verify` a delivery.

Header: ``o:<orgId>,t:<timestamp>,v:<signature>``. Signature: standard base64 of
HMAC-SHA256, keyed with the endpoint secret (UTF-8), over the raw body bytes followed by
``b":" + orgId + b":" + timestamp`` (the exact strings of the header).

Choices where Fullstory's documentation is silent:

- The timestamp unit is not documented: a value above 10^11 is read as milliseconds,
  anything else as seconds (10^11 seconds is the year 5138; 10^11 milliseconds is 1973).
- The replay window (``tolerance``, 300 s by default) applies in both directions, so a
  timestamp from the future beyond the tolerance is refused too; a timestamp exactly
  ``tolerance`` seconds away is accepted; ``None`` turns the check off.
- Header parts are split on ``,`` and then on the first ``:``; whitespace around parts
  is ignored, unknown keys are ignored (room for additions), a repeated key is malformed.
  The org id must be printable ASCII without ``,`` or ``:`` and the timestamp ASCII
  digits, so the signed message cannot be read two ways.
- Checks run in this order: header present, header well formed, signature (against
  every secret, in constant time), org pin, timestamp. So ``unknown_org`` and
  ``stale_timestamp`` are only reported for genuinely signed deliveries. Only then is
  the body parsed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._envelope import parse_event
from fullstory_async.receiving._errors import SignatureVerificationError, VerificationFailure
from fullstory_async.receiving._events import WebhookEvent

SIGNATURE_HEADER = "Fullstory-Signature"
"""Name of the header carrying the signature (HTTP header names are case-insensitive)."""

DEFAULT_TOLERANCE = 300.0
"""Default replay window, in seconds."""

MILLISECONDS_ABOVE = 100_000_000_000
"""Timestamps above this (10^11) are milliseconds, others seconds."""

_DIGITS = re.compile(r"[0-9]{1,20}")
_DIGEST_SIZE = hashlib.sha256().digest_size


@attrs.frozen
class _Header:
    org_id: str
    timestamp: str
    signature: bytes


def _is_token(value: str) -> bool:
    """Printable ASCII without ``,``, ``:`` or spaces."""
    return bool(value) and all("!" <= c <= "~" and c not in ",:" for c in value)


def _digest(body: bytes, secret: str, org_id: str, timestamp: str) -> bytes:
    mac = hmac.new(secret.encode("utf-8"), body, hashlib.sha256)
    mac.update(b":" + org_id.encode("ascii") + b":" + timestamp.encode("ascii"))
    return mac.digest()


def timestamp_seconds(timestamp: int) -> float:
    """Seconds since the epoch for a header timestamp in seconds or milliseconds."""
    return timestamp / 1000 if timestamp > MILLISECONDS_ABOVE else float(timestamp)


def _malformed(detail: str) -> SignatureVerificationError:
    return SignatureVerificationError(VerificationFailure.MALFORMED_HEADER, detail)


def _parse_header(value: str | None) -> _Header:
    if value is None or not value.strip():
        raise SignatureVerificationError(VerificationFailure.MISSING_HEADER, f"no {SIGNATURE_HEADER} header")
    parts: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, item = part.partition(":")
        key = key.strip()
        if not sep:
            raise _malformed(f"part {key[:20]!r} has no ':'")
        if key in parts:
            raise _malformed(f"key {key[:20]!r} appears more than once")
        parts[key] = item.strip()
    missing = [key for key in ("o", "t", "v") if key not in parts]
    if missing:
        raise _malformed(f"missing {', '.join(missing)} (expected o:<orgId>,t:<timestamp>,v:<signature>)")
    org_id, timestamp, encoded = parts["o"], parts["t"], parts["v"]
    if not _is_token(org_id):
        raise _malformed("org id is empty or not printable ASCII without ',' and ':'")
    if not _DIGITS.fullmatch(timestamp):
        raise _malformed("timestamp is not 1 to 20 ASCII digits")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("signature is not standard base64") from None
    if len(signature) != _DIGEST_SIZE:
        raise _malformed(f"signature decodes to {len(signature)} bytes, not {_DIGEST_SIZE}")
    return _Header(org_id, timestamp, signature)


def _check_body(body: object) -> bytes:
    if not isinstance(body, bytes):
        raise InvalidArgumentError("body", f"must be the raw request body as bytes, got {type(body).__name__}")
    return body


def normalize_secrets(secrets: str | Sequence[str]) -> tuple[str, ...]:
    """One secret or several (rotation) as a non-empty tuple of non-empty strings."""
    values: object = (secrets,) if isinstance(secrets, str) else secrets
    if isinstance(values, bytes) or not isinstance(values, Sequence):
        kind = type(secrets).__name__
        raise InvalidArgumentError("secrets", f"must be a string or a sequence of strings, got {kind}")
    if not values:
        raise InvalidArgumentError("secrets", "must contain at least one secret")
    for index, secret in enumerate(values):
        if not isinstance(secret, str) or not secret:
            raise InvalidArgumentError(f"secrets[{index}]", "must be a non-empty string")
    return tuple(values)


def check_tolerance(tolerance: float | None) -> float | None:
    """``None``, or a finite number of seconds >= 0."""
    if tolerance is None:
        return None
    if not isinstance(tolerance, int | float) or isinstance(tolerance, bool) or not math.isfinite(tolerance):
        raise InvalidArgumentError("tolerance", f"must be a finite number of seconds or None, got {tolerance!r}")
    if tolerance < 0:
        raise InvalidArgumentError("tolerance", f"must be >= 0, got {tolerance!r}")
    return float(tolerance)


def sign(body: bytes, secret: str, org_id: str, timestamp: int | None = None) -> str:
    """Return the ``Fullstory-Signature`` header value Fullstory would send for ``body``.

    For tests of your own receiver: ``timestamp`` defaults to the current time in seconds.

    Args:
        body: the exact bytes you will send as the request body.
        secret: the endpoint's secret.
        org_id: the org id to sign as (``o``).
        timestamp: the ``t`` value (seconds, or milliseconds above 10^11); now if ``None``.

    Raises:
        InvalidArgumentError: a ``str`` body, an empty secret, an org id with ``,``, ``:``
            or spaces, or a negative timestamp.

    """
    body = _check_body(body)
    if not isinstance(secret, str) or not secret:
        raise InvalidArgumentError("secret", "must be a non-empty string")
    if not isinstance(org_id, str) or not _is_token(org_id):
        raise InvalidArgumentError("org_id", "must be non-empty printable ASCII without ',', ':' or spaces")
    if timestamp is None:
        timestamp = int(time.time())
    elif not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        raise InvalidArgumentError("timestamp", f"must be a non-negative integer, got {timestamp!r}")
    t = str(timestamp)
    signature = base64.b64encode(_digest(body, secret, org_id, t)).decode("ascii")
    return f"o:{org_id},t:{t},v:{signature}"


def verify(
    body: bytes,
    signature_header: str | None,
    secrets: str | Sequence[str],
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    org_id: str | None = None,
    now: float | None = None,
) -> WebhookEvent:
    """Verify a delivery's signature, then parse its body into a `WebhookEvent`.

    Args:
        body: the raw request body, exactly as received (never re-serialised JSON).
        signature_header: the ``Fullstory-Signature`` header value, or ``None`` if absent.
        secrets: the endpoint secret, or several while rotating (any one may match).
        tolerance: the replay window in seconds (either direction); ``None`` disables it.
        org_id: if given, deliveries signed for another org are refused.
        now: the current time in seconds since the epoch (for tests); ``time.time()`` if ``None``.

    Raises:
        SignatureVerificationError: the delivery must be refused; ``reason`` says why.
        InvalidArgumentError: ``body`` is not bytes, the header is not a ``str`` (decode
            raw ASGI header bytes first), or ``secrets``, ``tolerance`` or ``org_id`` are invalid.

    """
    body = _check_body(body)
    candidates = normalize_secrets(secrets)
    tolerance = check_tolerance(tolerance)
    given: object = signature_header  # callers without type checking may pass raw header bytes
    if given is not None and not isinstance(given, str):
        kind = type(given).__name__
        raise InvalidArgumentError("signature_header", f"must be the header value as a str or None, got {kind}")
    if org_id is not None and (not isinstance(org_id, str) or not org_id):
        raise InvalidArgumentError("org_id", "must be a non-empty string or None")
    signer, signed_at = check_signature(body, signature_header, candidates, tolerance=tolerance, org_id=org_id, now=now)
    return parse_event(body, org_id=signer, signed_at=signed_at)


def check_signature(
    body: bytes,
    signature_header: str | None,
    candidates: tuple[str, ...],
    *,
    tolerance: float | None,
    org_id: str | None,
    now: float | None,
) -> tuple[str, datetime | None]:
    """`verify` without its argument checks and without parsing the body: the signing org and time."""
    header = _parse_header(signature_header)
    matched = False
    for secret in candidates:  # no early exit: the time taken does not say which secret matched
        matched |= hmac.compare_digest(_digest(body, secret, header.org_id, header.timestamp), header.signature)
    if not matched:
        raise SignatureVerificationError(
            VerificationFailure.MISMATCH, f"signature matches none of the {len(candidates)} secret(s)"
        )
    if org_id is not None and header.org_id != org_id:
        raise SignatureVerificationError(
            VerificationFailure.UNKNOWN_ORG, f"signed for org {header.org_id!r}, not the expected org"
        )
    signed = timestamp_seconds(int(header.timestamp))
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - signed) > tolerance:
            when = "old" if signed < current else "in the future"
            raise SignatureVerificationError(
                VerificationFailure.STALE_TIMESTAMP,
                f"timestamp is {abs(current - signed):.0f} s {when} (tolerance {tolerance:g} s)",
            )
    try:
        return header.org_id, datetime.fromtimestamp(signed, UTC)
    except (OverflowError, OSError, ValueError):
        return header.org_id, None


def signed_delivery(
    event_name: str,
    data: Mapping[str, Any],
    *,
    secret: str,
    org_id: str,
    version: int = 1,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Build the request Fullstory sends for one event: ``(body, headers)``, for any test client.

    ::

        body, headers = signed_delivery("note.created", {"text": "hi"}, secret="s", org_id="o-1")
        response = await client.post("/fullstory/webhooks", content=body, headers=headers)  # httpx, ASGI...

    The body is compact UTF-8 JSON ``{"eventName", "version", "data"}``; the headers are
    ``Content-Type: application/json`` and the ``Fullstory-Signature`` of exactly those bytes.
    """
    envelope = {"eventName": event_name, "version": version, "data": dict(data)}
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret, org_id, timestamp)}
