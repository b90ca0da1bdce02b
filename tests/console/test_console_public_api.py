"""The public namespace of fullstory_async.console: complete and sorted."""

from __future__ import annotations

import inspect

import pytest

import fullstory_async.console as console
from fullstory_async import InvalidArgumentError


def test_all_is_sorted_complete_and_unique() -> None:
    public = {name for name, value in vars(console).items() if not name.startswith("_") and not inspect.ismodule(value)}
    assert console.__all__ == sorted(set(console.__all__))
    assert set(console.__all__) == public == {"ConsoleSettings", "console_app"}


def test_the_settings_never_show_the_token() -> None:
    settings = console.ConsoleSettings(token="never-shown-token-123456")
    assert "never-shown" not in repr(settings)
    assert "never-shown" not in str(settings)


@pytest.mark.parametrize("token", ["", "short", "x" * 15, 1234567890123456789])
def test_an_empty_or_short_token_is_refused(token: object) -> None:
    """An empty token would match an empty ``Authorization: Bearer``: refused, as any shorter than 16."""
    with pytest.raises(InvalidArgumentError, match=r"^token: must be at least 16 characters"):
        console.ConsoleSettings(token=token)  # type: ignore[arg-type]
