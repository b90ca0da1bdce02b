r"""URL identity and the scope of a desired state: the URL prefixes it owns.

One library reads every URL here: yarl (the parser aiohttp sends with). `url_key` is the
one identity of an endpoint URL, used to match a listing against a desired state, to
find a desired file's duplicates and to decide what a scope owns: yarl's normal form
(scheme and host case-insensitive, the default port of the scheme dropped,
percent-encoded unreserved characters decoded, dot segments resolved, ``%2e`` ones too),
with a trailing dot of the host dropped; the rest of the path, the query and the
fragment are compared exactly.

A URL that parsers disagree on has no key (a backslash, whitespace or a control
character, credentials before the host, a ``%`` in the host): it is never inside a scope
(so ``prune`` never deletes it) and a desired state refuses it.

A URL whose path servers read two ways is *ambiguous* (`path_problem`): a ``;`` path
parameter (Tomcat and others drop ``;...`` from a segment, so ``/hooks/..;/admin`` is
``/admin`` to them), an encoded ``/``, ``\`` or ``;`` (``%2F``, ``%5C``, ``%3B``, also encoded
twice as ``%252F``), a dot segment that appears only once the path is percent-decoded
(``..%2Fadmin``, ``%252e%252e``), a control character once decoded (``..%00``: a C server ends
the path at NUL), or an empty segment before a dot segment (``/hooks//../admin`` is
``/hooks/admin`` to yarl and RFC 3986 but ``/admin`` to a server that merges slashes first,
as nginx does; its key keeps the path as written). It has a key, so a desired
one is matched exactly, but it is never inside a scope: a plan never prunes it and lists
it under ``ambiguous``. A desired URL that is ambiguous is accepted when its path, as
written, starts with a scope prefix; it is created and updated, never pruned.

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
from urllib.parse import unquote

import yarl

from fullstory_async._exceptions import InvalidArgumentError

_SCHEMES = ("http", "https")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_DECODINGS = 3
"""Percent-decodings of a path segment looked through: a server, a proxy and a framework may each decode once."""


class UrlKey(NamedTuple):
    """The identity of an endpoint URL (see the module docstring)."""

    scheme: str
    host: str
    port: int
    path: str
    query: str
    fragment: str


def _parse(url: str) -> yarl.URL:
    parsed = yarl.URL(url)
    parsed.port  # noqa: B018 - reading the port validates it
    return parsed


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
        parsed = _parse(url)
    except (ValueError, TypeError) as exc:
        return f"it is not a valid URL ({exc})"
    if parsed.scheme.lower() not in _SCHEMES or not parsed.raw_host:
        return "it is not an absolute http(s) URL with a host"
    if "@" in (parsed.raw_authority or ""):
        return "credentials before the host (user@host) make it ambiguous"
    if "%" in parsed.raw_host:
        return "a percent-encoded host makes it ambiguous"
    return None


def path_problem(url: str) -> str | None:
    r"""Why servers may read the path of ``url`` two ways (see the module docstring), or ``None``.

    Each segment of the path as yarl normalised it is percent-decoded up to `_DECODINGS`
    times (a server, a proxy and a framework may each decode once): a ``;``, a ``/`` or
    ``\``, or a ``.``/``..`` segment appearing in any layer makes it ambiguous.
    """
    if _slashes_then_dots(url):
        return "an empty segment (//) before a dot segment makes its path ambiguous (servers that merge slashes)"
    for segment in _parse(url).raw_path.split("/"):
        if ";" in segment:
            return "a ; path parameter makes its path ambiguous"
        text = segment
        for _ in range(_DECODINGS):
            decoded = unquote(text)
            if decoded == text:
                break
            text = decoded
            if "/" in text or "\\" in text or ";" in text:
                return "an encoded /, \\ or ; makes its path ambiguous"
            if text in (".", ".."):
                return "a dot segment after percent-decoding makes its path ambiguous"
            if _CONTROL.search(text):  # C servers end a path at NUL: "..%00" is ".." to them
                return "a control character after percent-decoding makes its path ambiguous"
    return None


def _slashes_then_dots(url: str) -> bool:
    """Whether the path of ``url`` as written has an empty segment (``//``) and a dot segment (yarl resolves both)."""
    written = yarl.URL(url, encoded=True).raw_path.split("/")
    return "" in written[1:-1] and any(unquote(segment) in (".", "..") for segment in written)


def is_ambiguous(url: str) -> bool:
    """Whether ``url`` has no key or an ambiguous path: never inside a scope, never pruned."""
    return url_problem(url) is not None or path_problem(url) is not None


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
    parsed = _parse(url)
    scheme = parsed.scheme.lower()
    # a path servers resolve two ways keeps its dot segments: it is only ever itself
    path = yarl.URL(url, encoded=True).raw_path if _slashes_then_dots(url) else parsed.raw_path
    return UrlKey(
        scheme,
        (parsed.raw_host or "").lower().rstrip("."),
        parsed.port or (443 if scheme == "https" else 80),
        path or "/",
        parsed.raw_query_string,
        parsed.raw_fragment,
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
        parsed = _parse(prefix)
        if parsed.raw_query_string or parsed.raw_fragment:
            raise InvalidArgumentError(f"scope[{index}]", "must not contain a query or fragment")
    return prefixes


def in_scope(url: str, scope: Iterable[str], *, literal: bool = False) -> bool:
    """Whether ``url`` is inside one of the ``scope`` prefixes (see the module docstring).

    An ambiguous URL never is; with ``literal``, one with an ambiguous path is when its
    path as written starts with a prefix (how a desired URL is checked).
    """
    target = url_key(url)
    if target is None or (path_problem(url) is not None and not literal):
        return False
    for prefix in scope:
        owner = url_key(prefix)
        if owner is not None and owner[:3] == target[:3] and target.path.startswith(owner.path):
            return True
    return False
