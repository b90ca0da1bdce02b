"""A desired state with unset ``secret_env`` variables: one error naming each (issue 23)."""

from __future__ import annotations

import pytest

from fullstory_async import DesiredStateError, parse_desired_state

DOC = """
[[endpoints]]
url = "https://e.com/a"
secret_env = "A_SECRET"

[[endpoints]]
url = "https://e.com/b"
secret_env = "B_SECRET"

[[endpoints]]
url = "https://e.com/c"
secret_env = "A_SECRET"
"""


def test_every_unset_variable_is_named_with_where_it_is_used():
    with pytest.raises(DesiredStateError) as caught:
        parse_desired_state(DOC, environ={})
    assert caught.value.problem == (
        "2 environment variable(s) are not set: A_SECRET (endpoints[0], endpoints[2]); B_SECRET (endpoints[1])"
    )


def test_one_unset_variable_keeps_the_key_path():
    with pytest.raises(DesiredStateError) as caught:
        parse_desired_state(DOC, environ={"A_SECRET": "x"})
    assert str(caught.value) == "<desired state>: endpoints[1].secret_env: environment variable B_SECRET is not set"


def test_a_malformed_entry_is_reported_before_unset_secrets():
    with pytest.raises(DesiredStateError) as caught:
        parse_desired_state(DOC + '\n[[endpoints]]\nurl = "https://e.com/d"\nenabeld = true\n', environ={})
    assert "endpoints[3].enabeld: unknown key" in str(caught.value)
