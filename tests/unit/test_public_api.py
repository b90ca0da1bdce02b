"""The public namespace: `__all__` is complete, sorted and importable."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

import fullstory_async
from fullstory_async import FullstoryError

# The names DESIGN.md promises as stable.
STABLE = {
    "Client",
    "RetryPolicy",
    "CreateEndpointRequest",
    "UpdateEndpointRequest",
    "EventType",
    "Endpoint",
    "EventTypeDefinition",
    "Subcategory",
    "FullstoryError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "APIConnectionError",
    "APITimeoutError",
    "ResponseDecodeError",
}


def public_members() -> set[str]:
    """Return the names the package binds (also those it loads on first use) that are not private or submodules."""
    return {
        name
        for name in dir(fullstory_async)
        if not name.startswith("_") and not inspect.ismodule(getattr(fullstory_async, name))
    }


def test_all_is_sorted() -> None:
    """__all__ is sorted and has no duplicates."""
    assert fullstory_async.__all__ == sorted(fullstory_async.__all__)
    assert len(set(fullstory_async.__all__)) == len(fullstory_async.__all__)


def test_all_is_complete() -> None:
    """Every public class and function bound in the package is exported, and nothing else but __version__."""
    assert set(fullstory_async.__all__) == public_members() | {"__version__"}


def test_every_exported_name_exists() -> None:
    """Every name in __all__ can be imported from the package."""
    namespace: dict[str, object] = {}
    exec("from fullstory_async import *", namespace)
    assert set(fullstory_async.__all__) <= set(namespace)


def test_stable_names_are_exported() -> None:
    """The names the design promises are all exported."""
    assert set(fullstory_async.__all__) >= STABLE


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_error_class_is_exported_and_named_error() -> None:
    """Every FullstoryError subclass the package defines is exported and ends in `Error`."""
    ours = {c for c in _subclasses(FullstoryError) if c.__module__ == "fullstory_async._exceptions"}
    assert ours
    assert {c.__name__ for c in ours | {FullstoryError}} <= set(fullstory_async.__all__)
    assert all(c.__name__.endswith("Error") for c in ours)


def test_exported_objects_come_from_the_package() -> None:
    """Exported classes and functions are defined inside fullstory_async, not re-exported third-party names."""
    for name in fullstory_async.__all__:
        value = getattr(fullstory_async, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("fullstory_async."), name


def test_version_is_a_version_string() -> None:
    """__version__ looks like a PEP 440 release."""
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*", fullstory_async.__version__)


def test_declarative_sync_loads_on_first_use() -> None:
    """`import fullstory_async` leaves plan/apply and desired-state files unloaded until a name of theirs is used."""
    code = (
        "import sys, fullstory_async\n"
        "wing = ('fullstory_async._bulk.reconcile', 'fullstory_async._bulk.desired')\n"
        "assert not any(m in sys.modules for m in wing), sorted(m for m in wing if m in sys.modules)\n"
        "from fullstory_async import Plan, DesiredState\n"
        "assert all(m in sys.modules for m in wing)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        fullstory_async.Nothing  # noqa: B018
