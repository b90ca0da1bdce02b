"""One schema for desired-state files: a misspelt or missing `endpoints` is an error, never zero endpoints."""

from __future__ import annotations

import pytest

from fullstory_async import DesiredStateError, parse_desired_state


@pytest.mark.parametrize(
    ("text", "fmt", "where", "problem"),
    [
        ('[[endpoint]]\nurl = "https://e.com/a"', "toml", "endpoint", 'unknown key (did you mean "endpoints"?)'),
        ('{"endpoint": []}', "json", "endpoint", 'unknown key (did you mean "endpoints"?)'),
        ('{"scopes": ["https://e.com/"], "endpoints": []}', "json", "scopes", 'did you mean "scope"?'),
        ("", "toml", "endpoints", "is missing"),
        ("# nothing here\n", "toml", "endpoints", "is missing"),
        ("{}", "json", "endpoints", "is missing"),
        (
            '[[endpoints]]\nurl = "https://e.com/a"\nevent_type = ["x"]',
            "toml",
            "endpoints[0].event_type",
            "event_types",
        ),
        (
            '[[endpoints]]\nurl = "https://e.com/a"\nevent_types = [{ event = "x" }]',
            "toml",
            "endpoints[0].event_types[0].event",
            'did you mean "event_name"?',
        ),
    ],
)
def test_misspelt_or_missing_keys_are_errors(text: str, fmt: str, where: str, problem: str) -> None:
    """`[[endpoint]]`, an empty file, `{"endpoint": []}`: an error naming the key, with a did-you-mean."""
    with pytest.raises(DesiredStateError) as info:
        parse_desired_state(text, fmt=fmt, environ={})
    assert info.value.where == f"<desired state>: {where}"
    assert problem in info.value.problem


def test_explicit_empty_list_is_zero_endpoints() -> None:
    """`endpoints = []` says "none" on purpose, and parses."""
    assert parse_desired_state('scope = ["https://e.com/"]\nendpoints = []', environ={}).endpoints == ()
