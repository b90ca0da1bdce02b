"""Scope: URL-aware prefix matching, and the file rules around it (empty, outside, misplaced in TOML)."""

from __future__ import annotations

import pytest

from fullstory_async import DesiredEndpoint, DesiredState, DesiredStateError, InvalidArgumentError, parse_desired_state
from fullstory_async._bulk.scope import in_scope, path_problem, redacted, url_key


@pytest.mark.parametrize(
    ("url", "inside"),
    [
        ("https://hooks.example.com/a", True),
        ("https://HOOKS.Example.COM/a", True),  # host case-insensitive
        ("HTTPS://hooks.example.com/a", True),  # scheme case-insensitive
        ("https://hooks.example.com:443/a", True),  # the default port written out
        ("https://hooks.example.com", True),
        ("https://hooks.example.com.evil.net/", False),  # a longer host is another host
        ("https://evil.net/https://hooks.example.com/", False),
        ("http://hooks.example.com/a", False),  # another scheme
        ("https://hooks.example.com:8443/a", False),  # another port
        ("https://user@hooks.example.com.evil.net/", False),
    ],
)
def test_host_scope_matches_scheme_host_and_port(url: str, inside: bool) -> None:
    """`https://hooks.example.com` owns that host on 443 only: never a host that merely starts with it."""
    assert in_scope(url, ["https://hooks.example.com"]) is inside


def test_path_prefix() -> None:
    """A path prefix owns paths that start with it; end it with / to own one folder only."""
    scope = ["https://e.com/hooks/"]
    assert in_scope("https://e.com/hooks/a", scope)
    assert not in_scope("https://e.com/hooks-old/a", scope)
    assert not in_scope("https://e.com/other", scope)
    assert not in_scope("https://e.com/HOOKS/a", scope)  # paths are case-sensitive


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("scope = []\nendpoints = []", "scope", "must not be empty"),
        ('scope = "https://e.com/"\nendpoints = []', "scope", "array"),
        ('scope = ["e.com"]\nendpoints = []', "scope[0]", "absolute http(s) URL prefix"),
        ('scope = ["ftp://e.com/"]\nendpoints = []', "scope[0]", "absolute http(s) URL prefix"),
        ('scope = ["https://e.com/?a=1"]\nendpoints = []', "scope[0]", "query"),
        (
            'scope = ["https://e.com/hooks/"]\n[[endpoints]]\nurl = "https://e.com.evil.net/hooks/a"',
            "endpoints[0].url",
            "outside the scope",
        ),
        (
            '[[endpoints]]\nurl = "https://e.com/hooks/a"\nscope = ["https://e.com/hooks/"]',
            "endpoints[0].scope",
            "move it above the first [[endpoints]] table",
        ),
    ],
)
def test_scope_errors_name_the_key(text: str, where: str, problem: str) -> None:
    """A bad scope, a desired URL outside it, or a scope TOML put inside the last table: errors naming the key."""
    with pytest.raises(DesiredStateError) as info:
        parse_desired_state(text, environ={})
    assert info.value.where.endswith(where)
    assert problem in info.value.problem


def test_desired_state_in_python_checks_the_scope() -> None:
    """`DesiredState(..., scope=...)` applies the same rules as the file."""
    inside = DesiredEndpoint("https://e.com/hooks/a")
    assert DesiredState((inside,), scope=["https://e.com/hooks/"]).scope == ("https://e.com/hooks/",)
    with pytest.raises(InvalidArgumentError, match="scope: must not be empty"):
        DesiredState((inside,), scope=[])
    with pytest.raises(InvalidArgumentError, match=r"endpoints\[0\]\.url: .* is outside the scope"):
        DesiredState((inside,), scope=["https://e.com/other/"])


SPELLINGS = (
    "https://HOOKS.example.com/fullstory/notes",  # host case
    "https://hooks.example.com:443/fullstory/notes",  # the default port written out
    "https://hooks.example.com./fullstory/notes",  # a trailing dot in the host
    "https://hooks.example.com/fullstory/x/../notes",  # a dot segment
)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_one_url_identity(spelling: str) -> None:
    """Every spelling of one endpoint has one key; the path, query and fragment stay exact."""
    assert url_key(spelling) == url_key("https://hooks.example.com/fullstory/notes")
    assert url_key("https://hooks.example.com/fullstory/notes/") != url_key(spelling)
    assert url_key("https://hooks.example.com/fullstory/Notes") != url_key(spelling)
    assert url_key("https://hooks.example.com/fullstory/notes?a=1") != url_key(spelling)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/fullstory/../admin/x",  # leaves the scope through ..
        "https://hooks.example.com/fullstory/%2e%2e/admin/y",  # the same, percent-encoded
        "https://hooks.example.com/fullstory/.%2E/admin/y",
        "https://hooks.example.com/fullstory/..",
        "https://evil.net\\@hooks.example.com/fullstory/x",  # a backslash: parsers disagree on the host
        "https://hooks.exa\tmple.com/fullstory/x",  # urlsplit drops a tab: never trusted
        "https://hooks.example.com/fullstory/x\n",
        "https://hooks.example.com@evil.net/fullstory/z",  # credentials before the host
        "https://user@hooks.example.com/fullstory/z",
        "https://hooks%2eexample.com/fullstory/z",
    ],
)
def test_urls_that_leave_or_blur_the_scope_are_outside(url: str) -> None:
    """Dot segments are resolved before the prefix check; an ambiguous URL is never inside a scope."""
    assert not in_scope(url, ["https://hooks.example.com/fullstory/"])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://evil.net\\\\@hooks.example.com/f/x", "backslash"),
        ("https://hooks.example.com@evil.net/f/x", "credentials"),
        ("https://hooks%2eexample.com/f/x", "percent-encoded"),
    ],
)
def test_an_ambiguous_desired_url_is_refused(url: str, problem: str) -> None:
    """A desired URL that parsers read two ways is refused at load, naming the entry."""
    text = f'[[endpoints]]\nurl = "{url}"\n'
    with pytest.raises(DesiredStateError) as info:
        parse_desired_state(text, environ={})
    assert info.value.where.endswith("endpoints[0].url")
    assert "ambiguous" in info.value.problem
    assert problem in info.value.problem


def test_one_endpoint_listed_twice_under_two_spellings_is_an_error_naming_both() -> None:
    """`https://e.com/f/a` and `https://E.COM:443/f/a` are one endpoint: the file is refused, naming both entries."""
    text = (
        '[[endpoints]]\nurl = "https://e.com/f/a"\n'
        '[[endpoints]]\nurl = "https://e.com/f/b"\n'
        '[[endpoints]]\nurl = "https://E.COM:443/f/a"\n'
    )
    with pytest.raises(DesiredStateError) as info:
        parse_desired_state(text, environ={})
    assert info.value.where.endswith("endpoints[2].url")
    assert "is the same endpoint as endpoints[0] (https://e.com/f/a)" in info.value.problem
    assert "https://E.COM:443/f/a" in info.value.problem


def test_credentials_in_a_refused_url_are_never_shown() -> None:
    """The error for a URL with user:password names the entry and the problem, never the password."""
    for text in (
        'scope = ["https://user:hunter2-pw@e.com/"]\nendpoints = []',
        '[[endpoints]]\nurl = "https://user:hunter2-pw@e.com/f/x"\n',
    ):
        with pytest.raises(DesiredStateError) as info:
            parse_desired_state(text, environ={})
        assert "credentials before the host" in str(info.value)
        assert "hunter2-pw" not in str(info.value)
        assert "https://***@e.com/" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@e.com/a", "'https://***@e.com/a'"),
        ("http://user:hun/ter2@e.com/", "'http://***@e.com/'"),  # a / in the password: hidden up to the last @
        ("http://u:p@ss@e.com/", "'http://***@e.com/'"),
        ("https://e.com/no-credentials", "'https://e.com/no-credentials'"),
    ],
)
def test_redacted_hides_everything_before_the_last_at(url: str, shown: str) -> None:
    """A password holding `/` or `@` is hidden whole (the first `/` used to end the hidden part: `ter2` showed)."""
    assert redacted(url) == shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/fullstory/..;/admin/x", "; path parameter"),
        ("https://hooks.example.com/fullstory/x;jsessionid=1", "; path parameter"),
        ("https://hooks.example.com/fullstory/..%2fadmin", "encoded /, \\ or ;"),
        ("https://hooks.example.com/fullstory/%2e%2e%2Fadmin", "encoded /, \\ or ;"),
        ("https://hooks.example.com/fullstory/a%5Cb", "encoded /, \\ or ;"),
        ("https://hooks.example.com/fullstory/%2e%2e%252fadmin", "encoded /"),  # decoded twice: ../admin
        ("https://hooks.example.com/fullstory/%252e%252e/admin", "dot segment"),
        ("https://hooks.example.com/fullstory/a%3bb", "; path parameter"),  # yarl sends %3B as ;
        ("https://hooks.example.com/fullstory/%2e%2e/admin", None),  # resolved by yarl: /admin, outside
        ("https://hooks.example.com/fullstory/notes", None),
    ],
)
def test_paths_servers_read_two_ways_are_ambiguous(url: str, problem: str | None) -> None:
    """`;` parameters, encoded separators and dot segments after decoding: ambiguous, never inside a scope."""
    found = path_problem(url)
    assert (found is None) if problem is None else (problem in (found or ""))
    assert in_scope(url, ["https://hooks.example.com/fullstory/"]) is (url.endswith("/notes"))
    if problem is not None:  # as written it starts with the prefix: a desired one is accepted
        assert in_scope(url, ["https://hooks.example.com/fullstory/"], literal=True)
