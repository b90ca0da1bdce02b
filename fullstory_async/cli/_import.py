"""``fullstory-async import --scope PREFIX...``: the desired-state file of the endpoints that exist.

For an organisation that made its endpoints by hand and wants to adopt ``plan``/``apply``:
the endpoints inside the scope (`in_scope`), sorted by URL, with the ``scope``, as TOML
(JSON when ``--out`` ends in ``.json``, or with ``--json`` on stdout). ``plan`` on the
result shows no change.

Secrets are write-only in the API, so none is written: each endpoint gets a commented-out
``secret_env`` line with a suggested variable name (`secret_env_names`); without a
``secret_env``, ``plan`` leaves an endpoint's secret alone. A URL the scope rules call
ambiguous (`url_problem`) is never inside a scope, so it is left out, named in a comment.
An existing ``--out`` file is replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fullstory_async import Endpoint, EventType, FullstoryError
from fullstory_async._bulk.listing import complete_listing
from fullstory_async._bulk.scope import UrlKey, check_scope, in_scope, redacted, url_key, url_problem
from fullstory_async.cli._output import event_type_record
from fullstory_async.cli._parser import PROG, UsageError
from fullstory_async.cli._target import Target

SECRET_ENV_PREFIX = "FS_WEBHOOK_SECRET_"

_WHY = (
    "# Secrets cannot be read back from the API, so none is here. Without a secret_env, plan and apply",
    "# leave an endpoint's secret as it is; to manage it, put the secret in the suggested variable and",
    "# uncomment its secret_env line.",
)


def options(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``import``."""
    parser.add_argument(
        "--scope",
        required=True,
        action="extend",
        nargs="+",
        metavar="PREFIX",
        help="URL prefix the file will own (repeat, or give several); endpoints inside it are imported",
    )
    parser.add_argument("--out", metavar="FILE", help="write the file here (.toml, or .json) instead of stdout")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")


def secret_env_names(urls: Iterable[str]) -> list[str]:
    """``FS_WEBHOOK_SECRET_<HOST>_<PATH>`` for each URL, in order; a name already given gets ``_2``, ``_3``...

    Upper case; every run of characters other than ``A-Z`` and ``0-9`` is one ``_``.
    """
    names: list[str] = []
    taken: set[str] = set()
    for url in urls:
        split = urlsplit(url)
        stem = re.sub(r"[^A-Z0-9]+", "_", f"{split.hostname or ''}_{split.path}".upper()).strip("_")
        name, number = SECRET_ENV_PREFIX + stem, 1
        while name in taken:
            number += 1
            name = f"{SECRET_ENV_PREFIX}{stem}_{number}"
        taken.add(name)
        names.append(name)
    return names


def _looks_inside(url: str, scope: Sequence[str]) -> bool:
    """Whether an ambiguous ``url`` reads as one of the scope's (its text, or the host a parser sees)."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        host = ""
    return any(
        url.lower().startswith(prefix.lower()) or host == (urlsplit(prefix).hostname or "").rstrip(".")
        for prefix in scope
    )


def _toml_string(text: str) -> str:
    """Return ``text`` as a TOML basic string (JSON's escapes are TOML's, but DEL must be escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_event_type(event_type: EventType) -> str:
    if event_type.subcategory is None:
        return _toml_string(event_type.event_name)
    return (
        f"{{ event_name = {_toml_string(event_type.event_name)}, "
        f"subcategory = {_toml_string(event_type.subcategory)} }}"
    )


def toml_document(
    scope: Sequence[str], endpoints: Sequence[Endpoint], names: Sequence[str], ambiguous: Sequence[str], where: str
) -> str:
    """Return the desired-state file as TOML."""
    lines = [
        f"# Imported by `{PROG} import` from {where}: {len(endpoints)} endpoint(s) inside the scope.",
        *_WHY,
    ]
    if ambiguous:
        lines.append("# Left out: URLs the scope rules call ambiguous (never inside a scope, never pruned):")
        lines.extend(f"#   {redacted(url)}: {url_problem(url)}" for url in ambiguous)
    lines.append(f"scope = [{', '.join(_toml_string(prefix) for prefix in scope)}]")
    for endpoint, name in zip(endpoints, names, strict=True):
        lines += [
            "",
            "[[endpoints]]",
            f"url = {_toml_string(endpoint.url)}",
            f"event_types = [{', '.join(_toml_event_type(e) for e in endpoint.event_types)}]",
            f"# secret_env = {_toml_string(name)}  # uncomment once {name} holds the secret",
        ]
        if not endpoint.enabled:
            lines.append("enabled = false")
    return "\n".join(lines) + "\n"


def json_document(scope: Sequence[str], endpoints: Sequence[Endpoint]) -> str:
    """Return the desired-state file as JSON (which has no comments: the notes go to stderr)."""
    document: dict[str, Any] = {
        "scope": list(scope),
        "endpoints": [
            {
                "url": e.url,
                "event_types": [event_type_record(t) if t.subcategory else t.event_name for t in e.event_types],
                "enabled": e.enabled,
            }
            for e in endpoints
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _write(path: str, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` at once (a temporary file renamed over it); never replace one without ``force``."""
    target = Path(path)
    temporary = target.parent / f".{target.name}.{secrets.token_hex(8)}"
    try:  # not mkstemp: its 0600 would become the file's mode; this one gets the umask's, as any new file
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise UsageError(f"--out: cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        if force:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)  # fails if a file appeared there since the check
    except FileExistsError:
        raise UsageError(f"--out: {path} exists; pass --force to replace it") from None
    except OSError as exc:
        raise UsageError(f"--out: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


async def run(args: argparse.Namespace, target: Target) -> int:
    """List the endpoints; write the desired state of those inside the scope."""
    scope = check_scope(args.scope)
    if args.out is not None and not args.force and os.path.lexists(args.out):  # noqa: ASYNC240 - one stat, before any request
        raise UsageError(f"--out: {args.out} exists; pass --force to replace it")
    inside: list[Endpoint] = []
    keys: set[UrlKey | None] = set()
    ambiguous: list[str] = []
    outside = 0
    for endpoint in await complete_listing(target.client.webhooks):  # plan's listing: an id once
        if in_scope(endpoint.url, scope):
            key = url_key(endpoint.url)
            if key in keys:  # plan matches the first of one URL, and leaves the others alone
                target.console.notice(f"left out {redacted(endpoint.url)}: a second endpoint with the same URL")
                continue
            keys.add(key)
            inside.append(endpoint)
        elif url_problem(endpoint.url) is not None and _looks_inside(endpoint.url, scope):
            ambiguous.append(endpoint.url)
        else:
            outside += 1
    console = target.console
    for url in ambiguous:
        console.notice(f"left out {redacted(url)}: {url_problem(url)}")
    if not inside:
        raise FullstoryError(
            f"no endpoint at {target.describe()} is inside the scope ({', '.join(scope)}; "
            f"{outside + len(ambiguous)} outside it); nothing written"
        )
    inside.sort(key=lambda e: e.url)
    names = secret_env_names(e.url for e in inside)
    as_json = args.out.lower().endswith(".json") if args.out is not None else console.json
    if as_json:
        text = json_document(scope, inside)
        console.notice(
            "secrets cannot be read back; to manage them, add secret_env keys (suggested: "
            + ", ".join(f"{e.url} -> {name}" for e, name in zip(inside, names, strict=True))
            + ")"
        )
    else:
        text = toml_document(scope, inside, names, ambiguous, target.describe())
    if args.out is None:
        console.out.write(text)
        console.out.flush()
    else:
        _write(args.out, text, args.force)
    left = f"; {outside} outside the scope left out" if outside else ""
    console.notice(
        f"imported {len(inside)} endpoint(s){left}"
        + (f"; check it with: {PROG} plan {args.out}" if args.out is not None else "")
    )
    return 0
