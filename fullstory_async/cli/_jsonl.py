"""The input of ``provision``: JSON Lines read lazily, each line turned into a request or a problem.

One line is one endpoint::

    {"url": "https://example.com/hooks/a", "event_types": ["note.created"], "secret_env": "HOOK_SECRET"}

``event_types`` items are event names or ``{"event_name": ..., "subcategory": ...}``.
Blank lines are skipped. A line that cannot be a request (invalid JSON, a missing or
invalid field, an unset ``secret_env`` variable) still flows through ``provision`` as a
marker, so that it gets a result, in its turn, naming the line and the field.

Lines are read as they are needed: a regular file directly, a pipe or terminal on stdin
by a daemon thread feeding a small queue (so the event loop, which may be serving the
embedded fake, never blocks on a read, and Ctrl-C never waits for one).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import threading
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import IO, Any

import attrs

from fullstory_async import CreateEndpointRequest, InvalidArgumentError
from fullstory_async._bulk.desired import ENDPOINT_KEYS, UnsetSecretError, parse_endpoint
from fullstory_async.cli._output import Record

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}

RawLines = Iterable[bytes] | Iterable[str] | AsyncIterable[bytes]


@attrs.frozen
class Line:
    """One non-blank input line: its number (from 1), its URL when readable, and a request or a problem."""

    number: int
    url: str | None
    request: CreateEndpointRequest | None = attrs.field(repr=False)
    problem: Record | None = None
    """``{"type", "message", "field"?}`` when the line is not a valid request."""
    unset_secret: str | None = None
    """The ``secret_env`` variable that is not set, when that is the problem."""


def _problem(number: int, url: str | None, field: str | None, problem: str, unset: str | None = None) -> Line:
    message = f"line {number}: {field}: {problem}" if field else f"line {number}: {problem}"
    record: Record = {"type": "InvalidArgumentError", "message": message}
    if field:
        record["field"] = field
    return Line(number, url, None, record, unset)


PROVISION_KEYS = tuple(key for key in ENDPOINT_KEYS if key != "enabled")
"""The keys of a line: those of a desired-state entry but ``enabled`` (provision creates enabled endpoints)."""


def _request(document: dict[str, Any], environ: Mapping[str, str]) -> CreateEndpointRequest:
    if "enabled" in document:
        raise InvalidArgumentError("enabled", "provision creates enabled endpoints: set the state with plan/apply")
    return parse_endpoint(document, environ, PROVISION_KEYS).create_request()  # the schema of desired-state entries


def parse_line(number: int, raw: bytes | str, environ: Mapping[str, str]) -> Line:
    """Turn one input line into a `Line` (never raises for bad input)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        document = json.loads(text)
    except UnicodeDecodeError:
        return _problem(number, None, None, "not valid UTF-8")
    except json.JSONDecodeError as exc:
        return _problem(number, None, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(document, dict):
        return _problem(number, None, None, f"expected a JSON object, got {_JSON_TYPES.get(type(document), 'null')}")
    url = document.get("url") if isinstance(document.get("url"), str) else None
    try:
        return Line(number, url, _request(document, environ))
    except InvalidArgumentError as exc:
        unset = exc.variable if isinstance(exc, UnsetSecretError) else None
        return _problem(number, url, exc.field, exc.problem, unset)


class Feed:
    """The parsed lines as the async iterable ``provision`` pulls from, and the lines in flight.

    ``provision`` numbers items in the order it pulls them; `take` maps a result's index
    back to its `Line`. Only items in flight are held, so memory stays flat.
    """

    def __init__(
        self, lines: RawLines, environ: Mapping[str, str], after_line: Callable[[], None] | None = None
    ) -> None:
        self._lines = lines
        self._environ = environ
        self._after_line = after_line
        self._pending: dict[int, Line] = {}
        self.unset_secrets: Counter[str] = Counter()
        """Lines per unset ``secret_env`` variable, so far."""

    async def _raw(self) -> AsyncIterator[bytes | str]:
        if isinstance(self._lines, AsyncIterable):
            async for raw in self._lines:
                yield raw
        else:
            for text in self._lines:
                yield text

    async def items(self) -> AsyncIterator[object]:
        """Yield a `CreateEndpointRequest` per good line and a `Line` (which provision rejects) per bad one."""
        index = 0
        number = 0
        async for raw in self._raw():
            number += 1
            if not raw.strip():
                continue
            line = parse_line(number, raw, self._environ)
            if line.unset_secret is not None:
                self.unset_secrets[line.unset_secret] += 1
            if self._after_line is not None:
                self._after_line()
            self._pending[index] = line
            index += 1
            yield line.request if line.request is not None else line

    def take(self, index: int) -> Line:
        """Return (and forget) the line of the item ``provision`` numbered ``index``."""
        return self._pending.pop(index)


class PipeLines:
    """Lines of a pipe or terminal, read by a daemon thread into a bounded queue (an async iterable).

    The thread reads the file descriptor with ``os.read``, not through ``sys.stdin``: a
    daemon thread blocked inside a buffered reader would hold its lock while the
    interpreter shuts down after Ctrl-C, which aborts the process.
    """

    def __init__(self, fd: int, *, buffered: int = 256, owned: bool = False) -> None:
        self._fd = fd
        self._buffered = buffered
        self._owned = owned  # the thread closes the fd once read: a file `open_lines` opened, not stdin

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(self._buffered)

        def put(item: bytes | BaseException | None) -> bool:
            try:
                future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            except RuntimeError:  # the loop is closed: nobody is reading any more
                return False
            while not loop.is_closed():
                try:
                    future.result(0.5)
                    return True
                except TimeoutError:
                    continue
            return False

        def read() -> None:
            try:
                feed()
            finally:
                if self._owned:
                    os.close(self._fd)

        def feed() -> None:
            pending = b""
            try:
                while chunk := os.read(self._fd, 65536):
                    *lines, pending = (pending + chunk).split(b"\n")
                    for raw in lines:
                        if not put(raw + b"\n"):
                            return
            except BaseException as exc:  # handed to the reading task, raised there
                put(exc)
                return
            if pending:
                put(pending)
            put(None)

        threading.Thread(target=read, name="fullstory-async-stdin", daemon=True).start()
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item


def survey(file: IO[bytes], environ: Mapping[str, str]) -> tuple[int, Counter[str]]:
    """One streaming pass over a regular file, rewound after: its non-blank lines, and the lines per unset variable.

    Raises:
        OSError: the file cannot be read.

    """
    count = 0
    unset: Counter[str] = Counter()
    file.seek(0)
    for raw in file:
        if not raw.strip():
            continue
        count += 1
        if b"secret_env" not in raw:  # most lines: no JSON parsed twice
            continue
        try:
            document = json.loads(raw)
        except ValueError:  # reported in its turn by `parse_line`
            continue
        name = document.get("secret_env") if isinstance(document, dict) else None
        if isinstance(name, str) and name and not environ.get(name):
            unset[name] += 1
    file.seek(0)
    return count, unset


def open_lines(path: str, stdin: IO[str]) -> tuple[RawLines, IO[bytes] | None]:
    """Return the lines of ``path`` (``-`` is stdin) and, for a regular file, the file (to survey, then close).

    ``path`` is opened once. Anything but a regular file (a FIFO, ``<(command)``,
    ``/dev/stdin``) can be read only once, so it is read as stdin is: by `PipeLines`,
    whose thread closes it.

    Raises:
        OSError: the file cannot be opened.

    """
    if path != "-":
        fd = os.open(path, os.O_RDONLY)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        except OSError:
            os.close(fd)
            raise
        regular = stat.S_ISREG(mode)
        if regular:
            file = os.fdopen(fd, "rb")
            return file, file
        return PipeLines(fd, owned=True), None
    buffer = getattr(stdin, "buffer", None)
    try:
        fd = stdin.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (OSError, ValueError, AttributeError):
        return stdin, None  # no file descriptor (a StringIO): read it directly
    if regular and buffer is not None:
        return buffer, None
    return (stdin if regular else PipeLines(fd)), None
