"""Fixtures for the hardening tests: one event loop for a module's hypothesis examples."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


@pytest.fixture(scope="module")
def run() -> Iterator[Callable[[Coroutine[Any, Any, T]], T]]:
    """Run a coroutine on one event loop shared by a module's hypothesis examples."""
    with asyncio.Runner() as runner:
        yield runner.run
