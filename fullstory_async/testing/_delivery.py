"""Delivering a signed event to a receiver, the way Fullstory does (reference §6).

``POST <url>`` with the request `fullstory_async.receiving.signed_delivery` builds:
``Content-Type: application/json``, the body ``{"eventName": ..., "version": ...,
"data": ...}`` (compact UTF-8 JSON) and a ``Fullstory-Signature`` over those exact bytes.
Redirects are not followed: the receiver's status is the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from fullstory_async.receiving import signed_delivery


def encode_envelope(event_name: str, data: Mapping[str, Any], *, version: int = 1) -> bytes:
    """Return the JSON body Fullstory sends for one event."""
    return signed_delivery(event_name, data, secret="-", org_id="-", version=version, timestamp=0)[0]


async def deliver_event(
    session: aiohttp.ClientSession,
    url: str,
    *,
    event_name: str,
    data: Mapping[str, Any],
    secret: str,
    org_id: str,
    version: int = 1,
    timestamp: int | None = None,
) -> int:
    """POST one signed event to ``url`` and return the receiver's HTTP status.

    Args:
        session: the session to send with (not closed here).
        url: the endpoint URL.
        event_name: the envelope's ``eventName``.
        data: the envelope's ``data`` (JSON-serialisable).
        secret: the endpoint secret to sign with.
        org_id: the org id to sign as.
        version: the envelope's ``version``.
        timestamp: the signature's ``t`` (seconds); now if ``None``.

    """
    body, headers = signed_delivery(
        event_name, data, secret=secret, org_id=org_id, version=version, timestamp=timestamp
    )
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
        await response.read()
        return response.status
