"""A fake Fullstory Webhooks v1 server for tests, with fault injection and a pytest plugin.

::

    from fullstory_async.testing import Fault, FakeFullstory

    async with FakeFullstory() as fake:
        fake.faults.add(Fault.server_error_after_commit(), route="create_endpoint", times=1)
        async with fake.client() as fs:
            ...

See ``docs/testing.md``. The names below are loaded on first use: the pytest plugin
(``fullstory_async.testing._plugin``) is imported in every pytest session of every
project that installs this package, and must not pay for aiohttp's server on import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fullstory_async.testing._catalogue import (
        Catalogue,
        EventTypeDef,
        SubcategoryDef,
        default_event_types,
    )
    from fullstory_async.testing._faults import Fault, FaultKind, FaultRule, Faults
    from fullstory_async.testing._handlers import DuplicateUrlPolicy
    from fullstory_async.testing._pagination import LimitPolicy
    from fullstory_async.testing._ratelimit import ManualClock, RateLimit
    from fullstory_async.testing._requestlog import KeyRole, RecordedRequest, RequestLog
    from fullstory_async.testing._samples import sample_event_data
    from fullstory_async.testing._server import FakeFullstory, make_api_key
    from fullstory_async.testing._store import StoredEndpoint, StoredEventType, endpoint_id

__all__ = [
    "Catalogue",
    "DuplicateUrlPolicy",
    "EventTypeDef",
    "FakeFullstory",
    "Fault",
    "FaultKind",
    "FaultRule",
    "Faults",
    "KeyRole",
    "LimitPolicy",
    "ManualClock",
    "RateLimit",
    "RecordedRequest",
    "RequestLog",
    "StoredEndpoint",
    "StoredEventType",
    "SubcategoryDef",
    "default_event_types",
    "endpoint_id",
    "make_api_key",
    "sample_event_data",
]

_MODULE_OF = {
    "Catalogue": "_catalogue",
    "DuplicateUrlPolicy": "_handlers",
    "EventTypeDef": "_catalogue",
    "FakeFullstory": "_server",
    "Fault": "_faults",
    "FaultKind": "_faults",
    "FaultRule": "_faults",
    "Faults": "_faults",
    "KeyRole": "_requestlog",
    "LimitPolicy": "_pagination",
    "ManualClock": "_ratelimit",
    "RateLimit": "_ratelimit",
    "RecordedRequest": "_requestlog",
    "RequestLog": "_requestlog",
    "StoredEndpoint": "_store",
    "StoredEventType": "_store",
    "SubcategoryDef": "_catalogue",
    "default_event_types": "_catalogue",
    "endpoint_id": "_store",
    "sample_event_data": "_samples",
    "make_api_key": "_server",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
