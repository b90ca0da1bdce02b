"""The long commands: ``provision`` (JSON Lines), ``plan`` and ``apply`` (desired-state files).

``apply`` changes a real server only after a confirmation: ``--yes``, ``y`` typed at
the prompt when stdin is a terminal, or a saved plan (reviewed when it was made).
Without any of them and without a terminal, a plan that changes anything is refused
(exit 2) before any change. A plan that changes nothing, and any plan against the
embedded fake (which holds nothing real), runs without asking.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from typing import IO, Any, TextIO

from fullstory_async import DesiredState, Outcome, Plan, ProvisionResult, load_desired_state
from fullstory_async._results import DEFAULT_MAX_DELETES
from fullstory_async.cli import _planfile
from fullstory_async.cli._jsonl import Feed, Line, open_lines, survey
from fullstory_async.cli._output import (
    Console,
    Record,
    apply_line,
    apply_record,
    error_record,
    plan_lines,
    plan_record,
    printable,
)
from fullstory_async.cli._parser import PROG, UsageError
from fullstory_async.cli._progress import Progress, is_terminal
from fullstory_async.cli._target import Target


def _progress(args: argparse.Namespace, console: Console, total: int | None) -> Progress:
    enabled = bool(args.progress) and not args.verbose and is_terminal(console.err)
    return Progress(console, total=total, enabled=enabled)


@contextlib.asynccontextmanager
async def _closing(results: AsyncIterator[object]) -> AsyncIterator[None]:
    """Close a result stream of the SDK as soon as the loop over it ends, even early (a closed pipe).

    Left to the event loop's shutdown, the stream and the stream inside it would be
    closed concurrently, which fails ("aclose(): asynchronous generator is already running").
    """
    try:
        yield
    finally:
        aclose = getattr(results, "aclose", None)
        if aclose is not None:
            await aclose()


def provision_record(result: ProvisionResult, line: Line) -> Record:
    """One output line of ``provision``: the input line, its outcome, the endpoint id or the error."""
    if line.problem is not None:
        error: Record | None = line.problem
    else:
        error = error_record(result.error) if result.error is not None else None
    return {
        "line": line.number,
        "index": result.index,
        "url": result.url or line.url,
        "outcome": str(result.outcome),
        "endpoint_id": result.endpoint.id if result.endpoint is not None else None,
        "error": error,
        "attempts": result.attempts,
    }


def provision_options(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``provision``."""
    parser.add_argument("file", metavar="FILE", help="JSON Lines, one endpoint a line; - reads stdin")
    parser.add_argument(
        "--on-exists",
        choices=("update", "skip", "error"),
        default="update",
        help="what to do with an endpoint that exists (update)",
    )


def _refuse_desired_state_file(path: str, file: IO[bytes] | None) -> None:
    """Refuse a desired-state file (TOML, or a whole JSON document) given to ``provision``: one usage error.

    The name tells; so does the first line of a regular ``file`` (read, then rewound). A pipe is
    not read ahead: its lines can be read only once, by the job.
    """
    if path == "-":
        return
    first = b""
    if file is not None:
        first = next((s for raw in file if (s := raw.strip()) and not s.startswith(b"#")), b"")
        file.seek(0)
    desired = path.lower().endswith(".toml") or first.startswith((b"[[", b"scope", b'{"endpoints"', b'{"scope"'))
    if desired or first == b"{":
        raise UsageError(
            f"{path} looks like a desired-state file; provision reads JSON Lines (one endpoint object a line). "
            f"To apply a desired state: {PROG} apply {path}"
        )


def _survey(path: str, file: IO[bytes] | None, environ: Mapping[str, str]) -> int | None:
    """Refuse a desired-state file; return a regular ``file``'s line count (one pass).

    An unset ``secret_env`` variable in ``file`` is a usage error naming every one.
    """
    _refuse_desired_state_file(path, file)
    if file is None:  # stdin or a pipe: read once, by the job
        return None
    try:
        total, unset = survey(file, environ)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if unset:  # never on the embedded fake: its environment fills them with throwaway secrets
        listed = ", ".join(f"{name} ({count} line(s))" for name, count in unset.items())
        raise UsageError(f"{path}: secret_env variable(s) not set: {listed}; nothing was sent: set them and run again")
    return total


async def provision(args: argparse.Namespace, target: Target) -> int:
    """Stream JSON Lines into ``provision``; print one JSON result a line as each finishes.

    A regular file is read once before the job (streaming: memory stays flat) for its line
    count, the progress bar's total, and its ``secret_env`` names: an unset one is a usage
    error before any request. Stdin, a FIFO or ``<(command)`` cannot be read twice: each of
    its lines naming an unset variable fails in its turn, and one line per variable on
    stderr counts them at the end.
    """
    try:
        lines, file = open_lines(args.file, sys.stdin)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    try:
        total = _survey(args.file, file, target.environ)
    except BaseException:
        if file is not None:
            file.close()
        raise
    feed = Feed(lines, target.environ, target.report_throwaway)
    try:
        with _progress(args, target.console, total) as progress:
            items: AsyncIterator[Any] = feed.items()  # requests, and `Line` markers that fail as they should
            results = target.client.webhooks.provision(items, concurrency=args.concurrency, on_exists=args.on_exists)
            async with _closing(results):
                async for result in results:
                    line = feed.take(result.index)
                    try:
                        target.console.emit(provision_record(result, line))
                    finally:  # counted even when stdout is closed
                        progress.advance(result.outcome)
    finally:
        if file is not None:
            file.close()
        for name, count in feed.unset_secrets.items():
            target.console.notice(f"{name} is not set: {count} line(s) failed for it")
    return 1 if progress.failed else 0


def _load(args: argparse.Namespace, target: Target) -> tuple[DesiredState, dict[str, Any] | None]:
    """Return the desired state, and the saved plan when ``args.file`` is one (``apply`` only)."""
    saved = _planfile.load(args.file) if args.command == "apply" else None
    if saved is not None:
        desired = _planfile.restore(args.file, saved, args, target.environ)
    else:
        desired = load_desired_state(args.file, environ=target.environ)
        if args.max_deletes is None:
            args.max_deletes = DEFAULT_MAX_DELETES
    target.report_throwaway()
    return desired, saved


async def _plan(args: argparse.Namespace, target: Target, desired: DesiredState) -> Plan:
    return await target.client.webhooks.plan(
        desired,
        prune=args.prune,
        rotate_secrets=args.rotate_secrets,
        max_deletes=args.max_deletes,
        allow_unlisted_event_types=args.allow_unlisted_event_types,
    )


def _show_plan(plan: Plan, target: Target, stream: TextIO | None = None) -> None:
    lines = plan_lines(plan, target.describe())
    if stream is None:
        target.console.lines(lines)
    else:
        for line in lines:
            print(printable(line), file=stream, flush=True)


async def plan(args: argparse.Namespace, target: Target) -> int:
    """Print what ``apply`` would do (as text, or one JSON object with ``--json``); ``--out`` saves it."""
    desired, _saved = _load(args, target)
    the_plan = await _plan(args, target, desired)
    if target.console.json:
        target.console.emit(plan_record(the_plan, target.where, target.fake))
    else:
        _show_plan(the_plan, target)
    if args.out is not None:
        _planfile.save(args.out, the_plan, desired, args, target.where, target.fake)
        target.console.notice(f"plan saved to {args.out}; run it with: {PROG} apply {args.out}")
    return 3 if args.exit_code and not the_plan.is_empty else 0


async def ask(prompt: str, console: Console) -> str:
    """Print ``prompt`` on stderr and read one line of stdin, without blocking the event loop.

    The read runs in a daemon thread, so Ctrl-C at the prompt exits at once.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    stdin = sys.stdin

    def deliver(text: str) -> None:
        if not answer.done():
            answer.set_result(text)

    def read() -> None:
        try:  # the descriptor, not the buffered stream: see `PipeLines`
            text = os.read(stdin.fileno(), 1024).decode(errors="replace")
        except (AttributeError, OSError, ValueError):  # no descriptor (a StringIO)
            text = stdin.readline()
        with contextlib.suppress(RuntimeError):  # the loop is closed: the command is over
            loop.call_soon_threadsafe(deliver, text)

    print(prompt, end="", file=console.err, flush=True)
    threading.Thread(target=read, name="fullstory-async-prompt", daemon=True).start()
    return await answer


async def _confirmed(args: argparse.Namespace, the_plan: Plan, target: Target, saved: bool) -> int | None:
    """None to go ahead, else the exit status (2: refused without a terminal, 1: declined)."""
    if args.yes or saved or the_plan.is_empty or target.fake:
        return None
    count = len(the_plan.pending)
    if not is_terminal(sys.stdin):
        target.console.error(
            f"refusing to make {count} change(s) to {target.where} without confirmation: "
            "stdin is not a terminal; pass --yes to apply"
        )
        return 2
    deletes = f", deleting {len(the_plan.deletes)}" if the_plan.deletes else ""
    answer = await ask(f"Apply {count} change(s) to {target.where}{deletes}? [y/N] ", target.console)
    if answer.strip().lower() in ("y", "yes"):
        return None
    target.console.notice("apply cancelled; nothing was changed")
    return 1


async def apply(args: argparse.Namespace, target: Target) -> int:
    """Plan, show the plan, confirm (see the module docstring), apply; one result per change.

    Given a plan saved by ``plan --out``, plan again from its inputs and refuse (exit 1,
    nothing changed) when the result differs: the server changed since.
    """
    console = target.console
    desired, saved = _load(args, target)
    the_plan = await _plan(args, target, desired)
    if saved is not None:
        stale = _planfile.stale_reason(saved, the_plan, target.where, target.fake)
        if stale is not None:
            console.error(f"the saved plan {args.file} is stale ({stale}); nothing was changed: run plan again")
            return 1
    _show_plan(the_plan, target, console.err if console.json else None)
    refused = await _confirmed(args, the_plan, target, saved is not None)
    if refused is not None:
        return refused
    results = target.client.webhooks.apply(the_plan, concurrency=args.concurrency)
    with _progress(args, console, len(the_plan.changes)) as progress:
        async with _closing(results):
            async for result in results:
                try:
                    if console.json:
                        console.emit(apply_record(result))
                    elif result.outcome is not Outcome.UNCHANGED:
                        console.lines([apply_line(result)])
                finally:  # counted even when stdout is closed (`| head -1`)
                    progress.advance(result.outcome)
    return 1 if progress.failed else 0
