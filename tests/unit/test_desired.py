"""Desired-state files: TOML and JSON parsing, secrets from the environment, errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fullstory_async import (
    DesiredEndpoint,
    DesiredState,
    DesiredStateError,
    EventType,
    load_desired_state,
    parse_desired_state,
)

TOML = """
[[endpoints]]
url = "https://example.com/hooks/notes"
event_types = ["note.created"]
secret_env = "NOTES_SECRET"

[[endpoints]]
url = "https://example.com/hooks/alerts"
event_types = [{ event_name = "segment.trend.alert", subcategory = "SUB1" }]
enabled = false
"""


def test_toml_parses_into_desired_endpoints() -> None:
    """A TOML file gives DesiredEndpoint records with the secret read from the environment."""
    state = parse_desired_state(TOML, environ={"NOTES_SECRET": "s3cr3t-value"})
    assert state == DesiredState(
        (
            DesiredEndpoint(
                "https://example.com/hooks/notes", (EventType("note.created"),), "s3cr3t-value", "NOTES_SECRET", True
            ),
            DesiredEndpoint(
                "https://example.com/hooks/alerts", (EventType("segment.trend.alert", "SUB1"),), None, None, False
            ),
        )
    )
    assert "s3cr3t-value" not in repr(state)


def test_json_file_loads_like_toml(tmp_path: Path) -> None:
    """A .json file with the same document loads to the same state."""
    document = {
        "endpoints": [
            {"url": "https://example.com/hooks/notes", "event_types": ["note.created"], "secret_env": "NOTES_SECRET"},
            {
                "url": "https://example.com/hooks/alerts",
                "event_types": [{"event_name": "segment.trend.alert", "subcategory": "SUB1"}],
                "enabled": False,
            },
        ]
    }
    path = tmp_path / "desired.json"
    path.write_text(json.dumps(document))
    env = {"NOTES_SECRET": "s3cr3t-value"}
    assert load_desired_state(path, environ=env) == parse_desired_state(TOML, environ=env)


def test_toml_file_by_path(tmp_path: Path) -> None:
    """load_desired_state reads a .toml path."""
    path = tmp_path / "desired.toml"
    path.write_text(TOML)
    assert len(load_desired_state(path, environ={"NOTES_SECRET": "x"}).endpoints) == 2


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('[[endpoints]]\nurl = "ftp://x"', "endpoints[0].url", "http(s)"),
        ('[[endpoints]]\nevent_types = ["a"]', "endpoints[0].url", "is required"),
        (
            '[[endpoints]]\nurl = "https://x"\nevent_types = ["ok", ""]',
            "endpoints[0].event_types[1].event_name",
            "empty",
        ),
        ('[[endpoints]]\nurl = "https://x"\nevent_types = "note.created"', "endpoints[0].event_types", "array"),
        ('[[endpoints]]\nurl = "https://x"\nevent_types = [{ name = "x" }]', "endpoints[0].event_types[0]", "event"),
        ('[[endpoints]]\nurl = "https://x"\nenabled = "yes"', "endpoints[0].enabled", "true or false"),
        ('[[endpoints]]\nurl = "https://x"\nsecret = "inline"', "endpoints[0].secret", "secret_env"),
        ('[[endpoints]]\nurl = "https://x"\nsecret_env = "MISSING_VAR"', "endpoints[0].secret_env", "MISSING_VAR"),
        ('[[endpoints]]\nurl = "https://x"\ncolour = "red"', "endpoints[0].colour", "unknown key"),
        (
            '[[endpoints]]\nurl = "https://x"\n[[endpoints]]\nurl = "https://x"',
            "endpoints[1].url",
            "is the same endpoint as endpoints[0]",
        ),
        ("endpoints = 5", "<desired state>: endpoints", "array"),
        ("[[endpoints]\nurl =", "<desired state>", "invalid TOML"),
    ],
)
def test_malformed_state_names_where_and_what(text: str, where: str, problem: str) -> None:
    """Every malformed document raises DesiredStateError naming the field and the problem."""
    with pytest.raises(DesiredStateError) as info:
        parse_desired_state(text, environ={})
    assert where in info.value.where
    assert problem in info.value.problem
    assert isinstance(info.value, ValueError)


def test_invalid_json_names_line_and_column() -> None:
    """A JSON syntax error reports line:column."""
    with pytest.raises(DesiredStateError) as info:
        parse_desired_state('{"endpoints": [\n  {"url": }\n]}', fmt="json", source="f.json", environ={})
    assert info.value.where.startswith("f.json:2:")


def test_missing_file_is_a_desired_state_error(tmp_path: Path) -> None:
    """A path that cannot be read raises DesiredStateError, not OSError."""
    with pytest.raises(DesiredStateError, match="cannot read"):
        load_desired_state(tmp_path / "nope.toml")


def test_secret_value_never_in_error_text() -> None:
    """An error in an entry with a secret does not print the secret."""
    text = '[[endpoints]]\nurl = "https://x"\nsecret_env = "S"\nenabled = 3'
    with pytest.raises(DesiredStateError) as info:
        parse_desired_state(text, environ={"S": "top-secret-value"})
    assert "top-secret-value" not in str(info.value)
