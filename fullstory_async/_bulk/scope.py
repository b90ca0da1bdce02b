"""URL identity and the scope of a desired state: the URL prefixes it owns.

`url_key` is the one identity of an endpoint URL, used to match a listing against a
desired state, to find a desired file's duplicates and to decide what a scope owns:
scheme and host case-insensitive, a trailing dot of the host dropped, the default port
of the scheme dropped, dot segments of the path (``.``, ``..``, also percent-encoded as
``%2e``) resolved; the rest of the path, the query and the fragment are compared exactly.

A URL that parsers disagree on (a backslash, whitespace or a control character,
credentials before the host, a ``%`` in the host) has no key: it is never inside a
scope (so ``prune`` never deletes it) and a desired state refuses it.

A URL is inside a prefix when their scheme, host and port are the same and its path
starts with the prefix's path. ``https://hooks.example.com`` therefore never matches
``https://hooks.example.com.evil.net/``, and ``/hooks/../admin`` is not under ``/hooks/``.
The path is compared as a string prefix: end it with ``/`` to own one folder only
(``/hooks/`` does not own ``/hooks-old``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

from fullstory_async._exceptions import InvalidArgumentError

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlKey(NamedTuple):
    """The identity of an endpoint URL (see the module docstring)."""

    scheme: str
    host: str
    port: int
    path: str
    query: str
    fragment: str


def _resolve(path: str) -> str:
    """Remove dot segments (RFC 3986 5.2.4), percent-encoded ones too."""
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        dots = segment.lower().replace("%2e", ".")
        last = index == len(segments) - 1
        if dots == "..":
            if output:
                output.pop()
        elif dots != ".":
            output.append(segment)
            continue
        if last:
            output.append("")  # `/a/..` is `/`, `/a/.` is `/a/`
    return "/" + "/".join(output)


def url_problem(url: object) -> str | None:
    """Why ``url`` has no `url_key`, or ``None`` when it has one."""
    if not isinstance(url, str):
        return f"it is {type(url).__name__}, not a string"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "whitespace or a control character makes it ambiguous"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in url):  # JSON's "\ud800" decodes to one; UTF-8 cannot hold it
        return "a lone surrogate code point is not text"
    if "\\" in url:
        return "a backslash makes it ambiguous (URL parsers disagree on its host)"
    try:
        split = urlsplit(url)
        split.port  # noqa: B018 - parsing the port validates it
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    if split.scheme.lower() not in _DEFAULT_PORTS or not split.hostname:
        return "it is not an absolute http(s) URL with a host"
    if "@" in split.netloc:
        return "credentials before the host (user@host) make it ambiguous"
    if "%" in split.netloc:
        return "a percent-encoded host makes it ambiguous"
    return None


def redacted(url: object) -> str:
    """``repr(url)`` with everything from ``//`` to its last ``@`` shown as ``***`` (for error messages).

    Up to the last ``@``, not to the first ``/``: in ``http://user:pa/ss@host/`` the password
    holds a ``/`` (parsers then disagree on the host). An ``@`` in a path hides a little more.
    """
    return repr(re.sub(r"//.*@", "//***@", url, flags=re.DOTALL) if isinstance(url, str) else url)


def url_key(url: str) -> UrlKey | None:
    """Return the identity of ``url``, or ``None`` when it is ambiguous to parse (see the module docstring)."""
    if url_problem(url) is not None:
        return None
    split = urlsplit(url)
    scheme = split.scheme.lower()
    host = (split.hostname or "").rstrip(".")
    return UrlKey(
        scheme, host, split.port or _DEFAULT_PORTS[scheme], _resolve(split.path or "/"), split.query, split.fragment
    )


def check_scope(scope: Iterable[str]) -> tuple[str, ...]:
    """Return ``scope`` as a tuple, or raise `InvalidArgumentError` naming ``scope``."""
    if isinstance(scope, str) or not isinstance(scope, Iterable):
        raise InvalidArgumentError("scope", f"must be a list of URL prefixes, got {type(scope).__name__}")
    prefixes = tuple(scope)
    if not prefixes:
        raise InvalidArgumentError("scope", "must not be empty: list the URL prefixes this state owns")
    for index, prefix in enumerate(prefixes):
        problem = url_problem(prefix)
        if problem is not None:
            raise InvalidArgumentError(
                f"scope[{index}]",
                f"must be an absolute http(s) URL prefix like https://hooks.example.com/, "
                f"got {redacted(prefix)}: {problem}",
            )
        split = urlsplit(prefix)
        if split.query or split.fragment:
            raise InvalidArgumentError(f"scope[{index}]", "must not contain a query or fragment")
    return prefixes


def in_scope(url: str, scope: Iterable[str]) -> bool:
    """Whether ``url`` is inside one of the ``scope`` prefixes (see the module docstring)."""
    target = url_key(url)
    if target is None:
        return False
    for prefix in scope:
        owner = url_key(prefix)
        if owner is not None and owner[:3] == target[:3] and target.path.startswith(owner.path):
            return True
    return False
