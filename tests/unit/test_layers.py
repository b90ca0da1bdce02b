"""Layering: the bulk layer takes the `Operations` protocol and never imports the client or `_webhooks`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fullstory_async

PACKAGE = Path(fullstory_async.__file__).parent
ABOVE_BULK = {"fullstory_async._client", "fullstory_async._webhooks"}


def imported_modules(path: Path) -> set[str]:
    """Return every module a source file imports, TYPE_CHECKING blocks included."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


@pytest.mark.parametrize("name", ["budget", "operations", "provision", "streaming"])
def test_bulk_modules_do_not_import_the_layers_above(name: str) -> None:
    """_bulk/{budget,operations,provision,streaming}.py import neither _client nor _webhooks, even for typing."""
    assert imported_modules(PACKAGE / "_bulk" / f"{name}.py") & ABOVE_BULK == set()


def test_webhooks_implements_the_bulk_operations_protocol() -> None:
    """Every member of the Operations protocol exists on Webhooks."""
    from fullstory_async._bulk.operations import Operations
    from fullstory_async._webhooks import Webhooks

    members = {name for name in vars(Operations) if not name.startswith("__")} - {"_is_protocol", "_abc_impl"}
    assert members
    assert {name for name in members if not hasattr(Webhooks, name)} == set()
