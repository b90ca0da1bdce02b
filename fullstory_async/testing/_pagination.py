"""Pagination tokens and ``limit`` parsing, shared by the two paginated listings.

A token is unpadded base64url of ``"<scope>:<position>"``. For endpoints the position is
the insertion sequence number of the last endpoint returned (keyset pagination), so a
token stays valid when endpoints before or after it are deleted or created. For
subcategories it is the index of the next item in the (immutable) catalogue.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Literal

LimitPolicy = Literal["error", "clamp"]
"""What an out-of-range ``limit`` does: a 400 (``"error"``) or it is clamped (``"clamp"``)."""

ENDPOINTS_MAX_LIMIT = 100
SUBCATEGORIES_MAX_LIMIT = 1000

_MAX_POSITION_DIGITS = 18


class PaginationError(ValueError):
    """A bad ``limit`` or ``paginationToken``; answered with 400 ``invalid_argument``."""


def encode_token(scope: str, position: int) -> str:
    """Return the opaque token for ``position`` within ``scope``."""
    raw = f"{scope}:{position}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_token(token: str, scope: str) -> int:
    """Return the position a token of ``scope`` encodes; raise `PaginationError` if invalid."""
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise PaginationError("paginationToken is invalid") from None
    prefix, sep, digits = raw.rpartition(":")
    if not sep or prefix != scope or not digits.isdigit() or not digits.isascii() or len(digits) > _MAX_POSITION_DIGITS:
        raise PaginationError("paginationToken is invalid")
    return int(digits)


def parse_limit(raw: str | None, maximum: int, policy: LimitPolicy) -> int:
    """Return the page size for the query value ``raw``; absent means ``maximum``.

    With ``policy="error"`` a value outside ``1..maximum`` raises `PaginationError`; with
    ``"clamp"`` zero or less means ``maximum`` and a larger value is cut to ``maximum``.
    A value that is not an integer always raises.
    """
    if raw is None:
        return maximum
    try:
        limit = int(raw.strip())
    except ValueError:
        raise PaginationError(f"limit must be an integer, got {raw[:40]!r}") from None
    if 1 <= limit <= maximum:
        return limit
    if policy == "clamp":
        return maximum if limit < 1 else min(limit, maximum)
    raise PaginationError(f"limit must be between 1 and {maximum}, got {limit}")


def query_token(query: Mapping[str, str]) -> str | None:
    """Return the pagination token of a query, either spelling; an empty one means none."""
    return query.get("paginationToken") or query.get("pagination_token") or None
