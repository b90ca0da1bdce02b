"""The seven operation handlers: request in, JSON response or `ApiError` out.

Handlers are synchronous: each one validates, then applies its change in one step, so
concurrent requests never see half an update.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from fullstory_async.testing._catalogue import Catalogue
from fullstory_async.testing._pagination import (
    ENDPOINTS_MAX_LIMIT,
    SUBCATEGORIES_MAX_LIMIT,
    LimitPolicy,
    PaginationError,
    decode_token,
    encode_token,
    parse_limit,
    query_token,
)
from fullstory_async.testing._payload import parse_create_body, parse_endpoint_body
from fullstory_async.testing._responses import (
    ALREADY_EXISTS,
    ApiError,
    dumps,
    json_response,
    raw_json_response,
)
from fullstory_async.testing._store import EndpointStore, endpoint_id

DuplicateUrlPolicy = Literal["error", "replace", "return_existing", "allow"]
"""What a create (or a URL-changing update) with a URL already in use does."""

_ENDPOINTS_SCOPE = "endpoints"


class Handlers:
    """The operations, by name (``create_endpoint`` ...), over one store and catalogue."""

    def __init__(
        self,
        store: EndpointStore,
        catalogue: Catalogue,
        *,
        duplicate_url: DuplicateUrlPolicy,
        limit_policy: LimitPolicy,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.duplicate_url: DuplicateUrlPolicy = duplicate_url
        self.limit_policy: LimitPolicy = limit_policy
        self._event_types_body = dumps(
            {
                "eventDefs": [
                    {
                        "eventName": d.event_name,
                        "displayName": d.display_name,
                        "hasSubcategories": d.has_subcategories,
                    }
                    for d in catalogue
                ]
            }
        )

    def create_endpoint(self, request: web.Request, body: bytes) -> web.Response:
        """Create an endpoint; a URL in use follows the duplicate-URL policy."""
        fields = parse_create_body(body, self.catalogue)
        url, event_types = fields.url or "", fields.event_types or ()
        new_id: str | None = None
        existing = self.store.get(endpoint_id(url))
        if existing is not None:
            if self.duplicate_url == "return_existing":
                return json_response(existing.to_wire())
            if self.duplicate_url == "replace":
                self.store.delete(existing.id)
            elif self.duplicate_url == "allow":
                new_id = self.store.free_id(url)
            else:
                raise ApiError.bad_request(ALREADY_EXISTS, "an endpoint with this url already exists")
        record = self.store.add(url, event_types, fields.secret or "", id=new_id)
        return json_response(record.to_wire())

    def list_endpoints(self, request: web.Request, body: bytes) -> web.Response:
        """List one page of endpoints in creation order."""
        query = request.query
        limit = parse_limit(query.get("limit"), ENDPOINTS_MAX_LIMIT, self.limit_policy)
        token = query_token(query)
        after = decode_token(token, _ENDPOINTS_SCOPE) if token else 0
        records, next_after = self.store.page(after, limit)
        payload: dict[str, object] = {"endpoints": [r.to_wire() for r in records]}
        if next_after is not None:
            payload["nextPaginationToken"] = encode_token(_ENDPOINTS_SCOPE, next_after)
        return json_response(payload)

    def get_endpoint(self, request: web.Request, body: bytes) -> web.Response:
        """Return one endpoint."""
        record = self.store.get(request.match_info["id"])
        if record is None:
            raise ApiError.not_found()
        return json_response(record.to_wire())

    def update_endpoint(self, request: web.Request, body: bytes) -> web.Response:
        """Update an endpoint: absent ``disabled`` enables it, empty fields keep their value."""
        old = self.store.get(request.match_info["id"])
        if old is None:
            raise ApiError.not_found()
        fields = parse_endpoint_body(body, self.catalogue)
        url = fields.url or old.url
        new_id = old.id
        if url != old.url:
            new_id = endpoint_id(url)
            if self.store.get(new_id) is not None:
                if self.duplicate_url != "allow":
                    raise ApiError.bad_request(ALREADY_EXISTS, "an endpoint with this url already exists")
                new_id = self.store.free_id(url)
        record = self.store.replace(
            old,
            url=url,
            event_types=fields.event_types or old.event_types,
            secret=fields.secret or old.secret,
            enabled=not fields.disabled,  # absent `disabled` re-enables (documented)
            id=new_id,
        )
        return json_response(record.to_wire())

    def delete_endpoint(self, request: web.Request, body: bytes) -> web.Response:
        """Delete an endpoint and answer ``{}``."""
        if self.store.delete(request.match_info["id"]) is None:
            raise ApiError.not_found()
        return raw_json_response(b"{}")

    def list_event_types(self, request: web.Request, body: bytes) -> web.Response:
        """List the catalogue (not paginated)."""
        return raw_json_response(self._event_types_body)

    def list_event_subcategories(self, request: web.Request, body: bytes) -> web.Response:
        """List one page of an event type's subcategories."""
        name = request.match_info["event_name"]
        definition = self.catalogue.get(name)
        if definition is None:
            raise ApiError.not_found()
        query = request.query
        limit = parse_limit(query.get("limit"), SUBCATEGORIES_MAX_LIMIT, self.limit_policy)
        token = query_token(query)
        subcategories = definition.subcategories
        scope = f"subcategories:{name}"
        start = decode_token(token, scope) if token else 0
        if start > len(subcategories):
            raise PaginationError("paginationToken is invalid")
        end = start + limit
        payload: dict[str, object] = {
            "subcategoryDefs": [
                {"subcategory": s.subcategory, "displayName": s.display_name} for s in subcategories[start:end]
            ]
        }
        if end < len(subcategories):
            payload["nextPaginationToken"] = encode_token(scope, end)
        return json_response(payload)
