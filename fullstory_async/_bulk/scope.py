"""The scope of a desired state: the URL prefixes it owns, matched URL-aware.

A URL is inside a prefix when its scheme and host are the same (case-insensitive),
its port is the same (the default port of the scheme when none is written), and its
path starts with the prefix's path. ``https://hooks.example.com`` therefore never
matches ``https://hooks.example.com.evil.net/``. The path is compared as a string
prefix: end it with ``/`` to own one folder only (``/hooks/`` does not own ``/hooks-old``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

from fullstory_async._exceptions import InvalidArgumentError

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Parts(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


def _parts(url: str) -> _Parts | None:
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return None
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not split.hostname:
        return None
    return _Parts(scheme, split.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme], split.path or "/")


def check_scope(scope: Iterable[str]) -> tuple[str, ...]:
    """Return ``scope`` as a tuple, or raise `InvalidArgumentError` naming ``scope``."""
    if isinstance(scope, str) or not isinstance(scope, Iterable):
        raise InvalidArgumentError("scope", f"must be a list of URL prefixes, got {type(scope).__name__}")
    prefixes = tuple(scope)
    if not prefixes:
        raise InvalidArgumentError("scope", "must not be empty: list the URL prefixes this state owns")
    for index, prefix in enumerate(prefixes):
        if not isinstance(prefix, str) or _parts(prefix) is None:
            raise InvalidArgumentError(
                f"scope[{index}]",
                f"must be an absolute http(s) URL prefix like https://hooks.example.com/, got {prefix!r}",
            )
        split = urlsplit(prefix)
        if split.query or split.fragment or split.username or split.password:
            raise InvalidArgumentError(f"scope[{index}]", "must not contain a query, fragment or credentials")
    return prefixes


def in_scope(url: str, scope: Iterable[str]) -> bool:
    """Whether ``url`` is inside one of the ``scope`` prefixes (see the module docstring)."""
    target = _parts(url)
    if target is None:
        return False
    for prefix in scope:
        owner = _parts(prefix)
        if owner is not None and owner[:3] == target[:3] and target.path.startswith(owner.path):
            return True
    return False
