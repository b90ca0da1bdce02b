"""Saved plans: ``plan --out FILE`` writes one, ``apply FILE`` runs it unless the server changed since.

The file is JSON and holds no secret: the desired state (``secret_env`` names, never
values), the sync options, the plan for review, and the fingerprint of the endpoints the
plan was made from. ``apply`` plans again from the same inputs and refuses when the
fingerprint or the changes differ (Terraform's stale-plan rule): the plan you reviewed is
the plan that runs, or nothing runs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fullstory_async import DesiredState, DesiredStateError, InvalidArgumentError, Plan
from fullstory_async._bulk.desired import desired_state_from
from fullstory_async.cli._output import Record, change_record, event_type_record, plan_record
from fullstory_async.cli._parser import PROG, UsageError

FORMAT = "fullstory-async-plan/2"  # 2: the plan lists its "ambiguous" URLs
OPTIONS = ("prune", "rotate_secrets", "max_deletes", "allow_unlisted_event_types")


def _desired_record(desired: DesiredState) -> Record:
    return {
        "scope": list(desired.scope) if desired.scope is not None else None,
        "endpoints": [
            {
                "url": e.url,
                "event_types": [event_type_record(t) for t in e.event_types],
                "enabled": e.enabled,
                **({"secret_env": e.secret_env} if e.secret_env else {}),
            }
            for e in desired.endpoints
        ],
    }


def save(path: str, plan: Plan, desired: DesiredState, args: argparse.Namespace, where: str, fake: bool) -> None:
    """Write the plan file (no secret in it)."""
    desired_record = _desired_record(desired)
    if desired_record["scope"] is None:
        del desired_record["scope"]
    document = {
        "format": FORMAT,
        "desired": desired_record,
        "options": {name: getattr(args, name) for name in OPTIONS},
        "plan": plan_record(plan, where, fake),
    }
    try:
        Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write: {exc.strerror or exc}") from None


def load(path: str) -> dict[str, Any] | None:
    """Return the saved plan in ``path``, or ``None`` when the file is not one (a desired-state file).

    A file that says it is a saved plan but is not a valid one raises `UsageError` naming it.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # read again, and reported, as a desired-state file
    if not isinstance(document, dict) or not str(document.get("format", "")).startswith("fullstory-async-plan/"):
        return None
    problem = _problem(document)
    if problem is not None:
        raise UsageError(f"{path} is not a valid saved plan: {problem}; make it again with {PROG} plan FILE --out")
    return document


_CHECKS: dict[str, Any] = {
    "prune": lambda v: isinstance(v, bool),
    "rotate_secrets": lambda v: isinstance(v, bool),
    "allow_unlisted_event_types": lambda v: isinstance(v, bool),
    "max_deletes": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
}


def _problem(document: Mapping[str, Any]) -> str | None:
    """Return what is wrong with the shape of a saved plan, or ``None``."""
    if document["format"] != FORMAT:
        return f"format {document['format']!r} is not {FORMAT!r} (made by another version)"
    for key, kind in (("desired", dict), ("options", dict), ("plan", dict)):
        if not isinstance(document.get(key), kind):
            return f'"{key}" is missing or not an object'
    for name, valid in _CHECKS.items():
        if name not in document["options"] or not valid(document["options"][name]):
            return f'"options.{name}" is missing or not valid'
    plan = document["plan"]
    for key in ("target", "fingerprint"):
        if not isinstance(plan.get(key), str):
            return f'"plan.{key}" is missing or not a string'
    for key in ("changes", "ambiguous"):
        if not isinstance(plan.get(key), list):
            return f'"plan.{key}" is missing or not a list'
    return None


def _flag(name: str, value: object) -> str:
    flag = "--" + name.replace("_", "-")
    return flag if isinstance(value, bool) else f"{flag} {'none' if value is None else value}"


def restore(path: str, saved: Mapping[str, Any], args: argparse.Namespace, environ: Mapping[str, str]) -> DesiredState:
    """Put the saved options into ``args`` and return the saved desired state (secrets read from ``environ``).

    An option given on the command line must say what the saved plan says: the plan that
    was reviewed is the plan that runs, so a different one is a `UsageError` naming it.
    """
    for name in OPTIONS:
        given, value = getattr(args, name), saved["options"][name]
        if given is not None and given is not False and given != value:  # a flag set, a number written
            raise UsageError(
                f"{_flag(name, given)} conflicts with the saved plan {path}, made with "
                f"{_flag(name, value) if value is not False else 'no ' + _flag(name, True)}: a saved plan runs "
                f"with the options it was made with; to change them, run plan again with {_flag(name, given)}"
            )
        setattr(args, name, value)
    try:
        return desired_state_from(saved["desired"], environ=environ)
    except InvalidArgumentError as exc:
        raise DesiredStateError(f"{path}: desired.{exc.field}", exc.problem) from None


def stale_reason(saved: Mapping[str, Any], plan: Plan, where: str, fake: bool) -> str | None:
    """Why ``plan`` (made again now) is not the saved one, or ``None`` when it is."""
    old = saved["plan"]
    if not fake and old["target"] != where:
        return f"it was made for {old['target']}, not {where}"
    if old["fingerprint"] != plan.fingerprint:
        return f"the endpoints at {where} changed since it was made"
    if old["changes"] != [change_record(change) for change in plan.pending]:
        return "its changes differ from a plan made now"
    return None
