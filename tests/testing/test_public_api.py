"""`fullstory_async.testing.__all__`: sorted, complete, lazily importable, and what mypy sees."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

import fullstory_async.testing as testing


def test_all_is_sorted_and_unique() -> None:
    """__all__ is sorted and has no duplicates."""
    assert testing.__all__ == sorted(set(testing.__all__))


def test_every_public_name_resolves_to_its_module() -> None:
    """Each name in __all__ loads from the private module the lazy table names."""
    for name in testing.__all__:
        value = getattr(testing, name)
        module = importlib.import_module(f"fullstory_async.testing.{testing._MODULE_OF[name]}")
        assert getattr(module, name) is value
    assert set(testing._MODULE_OF) == set(testing.__all__)
    assert set(testing.__all__) <= set(dir(testing))


def test_type_checking_imports_match_all() -> None:
    """The explicit imports type checkers read are exactly __all__, from the same modules."""
    tree = ast.parse(inspect.getsource(testing))
    [guard] = [node for node in tree.body if isinstance(node, ast.If)]
    imported = {
        alias.name: node.module for node in guard.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert imported == {name: f"fullstory_async.testing.{module}" for name, module in testing._MODULE_OF.items()}


def test_unknown_names_raise_attribute_error() -> None:
    """A name that is not public raises AttributeError like a normal module."""
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = testing.Nope  # type: ignore[attr-defined]


def test_public_classes_are_documented() -> None:
    """Every public class and function carries a docstring."""
    for name in testing.__all__:
        value = getattr(testing, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
