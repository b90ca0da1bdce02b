"""Why a delivery was refused: `SignatureVerificationError` and its machine-readable reasons.

Messages say what was wrong with the request (a malformed part, how old the timestamp
is, how many secrets were tried) and never contain a secret or the expected signature.
"""

from __future__ import annotations

from enum import StrEnum

from fullstory_async._exceptions import FullstoryError


class VerificationFailure(StrEnum):
    """The ``reason`` of a `SignatureVerificationError` (a ``str``, so it compares to plain strings)."""

    MISSING_HEADER = "missing_header"
    """No ``Fullstory-Signature`` header, or an empty one."""

    MALFORMED_HEADER = "malformed_header"
    """The header is not ``o:<orgId>,t:<timestamp>,v:<base64 HMAC-SHA256>``."""

    MISMATCH = "mismatch"
    """The signature matches none of the secrets: a forgery, a tampered body or a wrong secret."""

    UNKNOWN_ORG = "unknown_org"
    """Correctly signed, but by another org than the pinned ``org_id``."""

    STALE_TIMESTAMP = "stale_timestamp"
    """Correctly signed, but the timestamp is further from now than the tolerance (a replay or a clock problem)."""

    MALFORMED_BODY = "malformed_body"
    """Correctly signed, but the body is not a ``{"eventName", "version", "data"}`` JSON envelope."""


class SignatureVerificationError(FullstoryError):
    """A webhook delivery failed verification (or, once verified, could not be read).

    Attributes:
        reason: a `VerificationFailure` saying which check failed.
        detail: a human-readable explanation, free of secrets and signatures.

    """

    def __init__(self, reason: VerificationFailure, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
