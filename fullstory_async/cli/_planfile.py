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

from fullstory_async import DesiredState, Plan
from fullstory_async._bulk.desired import desired_state_from
from fullstory_async.cli._output import Record, change_record, event_type_record, plan_record
from fullstory_async.cli._parser import UsageError

FORMAT = "fullstory-async-plan/1"
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
    """Return the saved plan in ``path``, or ``None`` when the file is not one (a desired-state file)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # read again, and reported, as a desired-state file
    if isinstance(document, dict) and document.get("format") == FORMAT:
        return document
    return None


def restore(saved: Mapping[str, Any], args: argparse.Namespace, environ: Mapping[str, str]) -> DesiredState:
    """Put the saved options into ``args`` and return the saved desired state (secrets read from ``environ``)."""
    for name in OPTIONS:
        setattr(args, name, saved["options"][name])
    return desired_state_from(saved["desired"], environ=environ)


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
