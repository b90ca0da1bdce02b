r"""Run a shell recipe of the docs (a ```` ```console ```` block marked ``<!-- recipe: NAME -->``) as a reader would.

The block is ``$ command`` lines (a trailing ``\\`` continues one) each followed by its
documented output. The runner:

* runs each command with bash in a fresh folder (``examples/`` linked in), ``fullstory-async``
  on the PATH (this checkout's code), and no FULLSTORY_* or example secret variables; the
  exported environment carries over from one command to the next, as in one shell;
* gives every ``--port N`` of the recipe a free port instead (``:N`` substituted everywhere);
* starts a command ending in `` &`` in the background, waits until its ``--port`` accepts
  connections, and reads the ``NAME=VALUE`` lines it documents: a documented value
  (``na1.Yd...Q/FAKEORG``) is then replaced by the printed one in later commands;
* requires exit status 0 of every other command, and returns what each printed (stdout and
  stderr together) with its documented output, for `matches` or the test's own checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[2]
_RECIPE = re.compile(r"<!--\s*recipe:\s*(\S+)\s*-->\n```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_CLEARED = ("FULLSTORY_API_KEY", "FULLSTORY_BASE_URL", "FULLSTORY_READ_ONLY_API_KEY")


@attrs.frozen
class Step:
    """One ``$`` command of a recipe and its documented output."""

    command: str
    documented: tuple[str, ...]

    @property
    def background(self) -> bool:
        return self.command.endswith("&")


@attrs.frozen
class Ran:
    """A step as it ran: the command run (ports and values substituted) and what it printed."""

    step: Step
    command: str
    output: str
    documented: tuple[str, ...]


def recipe(page: str, name: str) -> list[Step]:
    """Return the steps of the recipe ``name`` of ``page`` (relative to the repository)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    for found in _RECIPE.finditer(text):
        if found.group(1) == name:
            return _steps(found.group(2))
    raise AssertionError(f"{page} has no recipe {name!r}")


def _steps(block: str) -> list[Step]:
    steps: list[Step] = []
    command: list[str] = []
    output: list[str] = []
    continuing = False
    for line in block.splitlines():
        if continuing:
            command.append(line.strip())
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            if command:
                steps.append(Step(" ".join(command), tuple(output)))
            command, output = [line[2:]], []
            continuing = line.endswith("\\")
        else:
            output.append(line)
    if command:
        steps.append(Step(" ".join(command), tuple(output)))
    return [attrs.evolve(s, command=s.command.replace("\\ ", "")) for s in steps]


def matches(documented: tuple[str, ...], output: str) -> bool:
    """Whether ``output`` has the documented lines.

    ``...`` in a line is any text, a ``...`` line any lines (none too), a number any number.
    """
    parts = []
    for line in documented:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        pieces = [_NUMBER.sub(lambda _: "\0", piece) for piece in line.split("...")]
        pattern = ".*?".join(re.escape(piece).replace("\0", r"\d+(?:\.\d+)?") for piece in pieces)
        parts.append(pattern + r"[ \t]*\n")
    return re.fullmatch("".join(parts), output if output.endswith("\n") or not output else output + "\n") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


READ_TIMEOUT = 30.0
"""Seconds a background command has to print each documented ``NAME=VALUE`` line."""


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """Return the next line ``process`` prints; raise `AssertionError` after ``timeout`` (never hang the test).

    A thread reads (a select on the pipe would miss lines already in the reader's buffer); it
    ends when the process is stopped.
    """
    assert process.stdout is not None
    stdout = process.stdout
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        raise AssertionError(f"the background command printed no line within {timeout:g} s")
    return line[0].rstrip("\n")


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM the process group of ``process`` (what it started too), SIGKILL it after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything of the group left behind


def _wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"background command exited {process.returncode} before serving on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing served on port {port} within {timeout:g} s")


@contextlib.contextmanager
def run_recipe(steps: list[Step], folder: Path) -> Iterator[list[Ran]]:
    """Run ``steps`` in ``folder`` (see the module docstring); yield what each printed; stop the background ones."""
    (folder / "examples").symlink_to(ROOT / "examples")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "fullstory-async"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m fullstory_async "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED and not k.endswith("_WEBHOOK_SECRET")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    state = folder / "exported.sh"
    state.write_text("")
    substitutions: dict[str, str] = {}
    for step in steps:
        for port in re.findall(r"--port (\d+)", step.command):
            substitutions.setdefault(f":{port}", f":{_free_port()}")
    for documented, actual in list(substitutions.items()):
        substitutions[f"--port {documented[1:]}"] = f"--port {actual[1:]}"

    def substitute(text: str) -> str:
        for documented, actual in substitutions.items():
            text = text.replace(documented, actual)
        return text

    saved = shlex.quote(str(state))
    shell: dict[str, Any] = {"cwd": folder, "env": env, "text": True}
    background: list[subprocess.Popen[str]] = []
    ran: list[Ran] = []
    try:
        for step in steps:
            command = substitute(step.command)
            if step.background:
                process = subprocess.Popen(
                    ["bash", "-c", f". {saved}; exec {command.removesuffix('&').strip()}"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: stopped whole, whatever happens
                    **shell,
                )
                background.append(process)
                port = re.search(r"--port (\d+)", command)
                assert port is not None, f"a background command needs --port: {step.command}"
                _wait_for_port(int(port.group(1)), process)
                printed = []
                for line in step.documented:
                    name, equals, value = line.partition("=")
                    if equals and name.isupper():
                        got = _read_line(process, READ_TIMEOUT)
                        printed.append(got)
                        got_name, _, got_value = got.partition("=")
                        assert got_name == name, f"{step.command}: printed {got!r}, documented {line!r}"
                        substitutions[value] = got_value
                ran.append(Ran(step, command, "\n".join(printed), step.documented))
                continue
            printed = folder / "step.out"  # a file, not a pipe: what a step leaves running cannot hold it open
            with printed.open("w") as out:
                foreground = subprocess.Popen(
                    ["bash", "-c", f". {saved}\n{command}\nstatus=$?\nexport -p > {saved}\nexit $status"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **shell,
                )
                try:
                    foreground.wait(120)
                finally:
                    _stop(foreground)  # on a timeout, and what the step left running (`cmd &` inside it)
            output = printed.read_text()
            assert foreground.returncode == 0, f"$ {command}\nexit {foreground.returncode}\n{output}"
            ran.append(Ran(step, command, output, tuple(substitute(line) for line in step.documented)))
        yield ran
    finally:
        for process in background:
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()
