"""The Standard Webhooks format of forwarded deliveries: `sign_forwarded`, `verify_forwarded`.

A forwarder re-sends each stored delivery to an internal service with the body exactly as
Fullstory sent it and three headers of the Standard Webhooks specification (v1.0.0,
github.com/standard-webhooks/standard-webhooks, ``spec/standard-webhooks.md``):

- ``webhook-id``: the inbox key of the delivery, the same on every retry and replay, so the
  service de-duplicates on it;
- ``webhook-timestamp``: integer seconds since the epoch at the time of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` over ``<id>.<timestamp>.<body>``, keyed
  with the secret's bytes. Several space-separated signatures may appear (secret rotation);
  any one matching is enough.

The secret is ``whsec_`` followed by the standard base64 of 24 to 64 random bytes (the
specification's bounds). Choices where it is silent: an id must be printable ASCII without
``.``, spaces or ``,`` (so the signed content cannot be read two ways); the replay window
applies in both directions, 300 s by default as in the specification's libraries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _random
import time
from collections.abc import Mapping, Sequence

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._errors import SignatureVerificationError, VerificationFailure
from fullstory_async.receiving._signature import DEFAULT_TOLERANCE, check_tolerance

SECRET_PREFIX = "whsec_"
"""The prefix of a Standard Webhooks secret."""

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

_MIN_KEY, _MAX_KEY = 24, 64
_ID = re.compile(r"[!-~]{1,256}")
_DIGITS = re.compile(r"[0-9]{1,12}")


def new_forward_secret() -> str:
    """Return a fresh Standard Webhooks secret (``whsec_`` and 32 random bytes in base64)."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


def forward_key(secret: str, *, field: str = "secret") -> bytes:
    """Return the HMAC key of a ``whsec_`` secret (`InvalidArgumentError` naming ``field``, never the value)."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidArgumentError(field, f"must be a Standard Webhooks secret: {SECRET_PREFIX!r} then base64")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(field, f"is not {SECRET_PREFIX!r} followed by standard base64") from None
    if not _MIN_KEY <= len(key) <= _MAX_KEY:
        raise InvalidArgumentError(field, f"decodes to {len(key)} bytes; a key has {_MIN_KEY} to {_MAX_KEY}")
    return key


def _is_id(value: str) -> bool:
    return bool(_ID.fullmatch(value)) and "." not in value and "," not in value


def _digest(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode("ascii"), hashlib.sha256)
    mac.update(body)
    return mac.digest()


def sign_forwarded(body: bytes, *, secret: str, webhook_id: str, timestamp: int | None = None) -> dict[str, str]:
    """Return the ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers for ``body``.

    Raises:
        InvalidArgumentError: ``body`` is not bytes, ``secret`` is not a ``whsec_`` secret,
            ``webhook_id`` is not printable ASCII without ``.``, ``,`` or spaces, or
            ``timestamp`` is negative.

    """
    if not isinstance(body, bytes):
        raise InvalidArgumentError("body", f"must be bytes, got {type(body).__name__}")
    key = forward_key(secret)
    if not isinstance(webhook_id, str) or not _is_id(webhook_id):
        raise InvalidArgumentError("webhook_id", "must be 1 to 256 printable ASCII characters without '.' or ','")
    if timestamp is None:
        timestamp = int(time.time())
    elif not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        raise InvalidArgumentError("timestamp", f"must be a non-negative integer, got {timestamp!r}")
    t = str(timestamp)
    signature = base64.b64encode(_digest(key, webhook_id, t, body)).decode("ascii")
    return {ID_HEADER: webhook_id, TIMESTAMP_HEADER: t, SIGNATURE_HEADER: f"v1,{signature}"}


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict from a framework that kept the sender's case
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None or not value.strip():
        raise SignatureVerificationError(VerificationFailure.MISSING_HEADER, f"no {name} header")
    return value.strip()


def _signatures(value: str) -> list[bytes]:
    found = []
    for part in value.split():
        version, sep, encoded = part.partition(",")
        if not sep:
            raise SignatureVerificationError(
                VerificationFailure.MALFORMED_HEADER, f"{SIGNATURE_HEADER} part has no ',' (expected v1,<base64>)"
            )
        if version != "v1":
            continue  # another scheme (v1a...): not ours to check
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise SignatureVerificationError(
                VerificationFailure.MALFORMED_HEADER, f"a v1 signature in {SIGNATURE_HEADER} is not standard base64"
            ) from None
    return found


def verify_forwarded(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str:
    """Verify a delivery forwarded by ``fullstory-async forward``; return its ``webhook-id``.

    The service receiving forwarded deliveries calls this with the raw body and the request
    headers, then de-duplicates on the returned id (stable across retries and replays)::

        webhook_id = verify_forwarded(await request.read(), request.headers, secret)

    Args:
        body: the raw request body, exactly as received.
        headers: the request headers (any mapping; names are matched case-insensitively).
        secret: the ``whsec_`` secret, or several while rotating.
        tolerance: the replay window in seconds (either direction); ``None`` disables it.
        now: the current time in seconds (for tests); ``time.time()`` if ``None``.

    Raises:
        SignatureVerificationError: refuse the request; ``reason`` says why (``missing_header``,
            ``malformed_header``, ``mismatch``, ``stale_timestamp``).
        InvalidArgumentError: ``body`` is not bytes, or a secret or ``tolerance`` is invalid.

    """
    if not isinstance(body, bytes):
        raise InvalidArgumentError("body", f"must be bytes, got {type(body).__name__}")
    candidates = (secret,) if isinstance(secret, str) else tuple(secret)
    if not candidates:
        raise InvalidArgumentError("secret", "must contain at least one secret")
    keys = [forward_key(s, field=f"secret[{i}]" if len(candidates) > 1 else "secret") for i, s in enumerate(candidates)]
    tolerance = check_tolerance(tolerance)
    webhook_id = _header(headers, ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signatures = _signatures(_header(headers, SIGNATURE_HEADER))
    if not _is_id(webhook_id):
        raise SignatureVerificationError(VerificationFailure.MALFORMED_HEADER, f"{ID_HEADER} is not a printable id")
    if not _DIGITS.fullmatch(timestamp):
        raise SignatureVerificationError(
            VerificationFailure.MALFORMED_HEADER, f"{TIMESTAMP_HEADER} is not 1 to 12 ASCII digits"
        )
    matched = False
    for key in keys:  # no early exit: the time taken does not say which secret or signature matched
        expected = _digest(key, webhook_id, timestamp, body)
        for signature in signatures:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureVerificationError(
            VerificationFailure.MISMATCH, f"no v1 signature matches any of the {len(keys)} secret(s)"
        )
    if tolerance is not None:
        current = time.time() if now is None else now
        age = current - int(timestamp)
        if abs(age) > tolerance:
            when = "old" if age > 0 else "in the future"
            raise SignatureVerificationError(
                VerificationFailure.STALE_TIMESTAMP, f"timestamp is {abs(age):.0f} s {when} (tolerance {tolerance:g} s)"
            )
    return webhook_id
