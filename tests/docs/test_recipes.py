"""The shell recipes of the docs run as written (see tests/docs/recipes.py)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import time

import pytest

from tests.docs import recipes
from tests.docs.recipes import Step, matches, recipe, run_recipe

needs_shell = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("openssl") is None,
    reason="the recipes are bash and make secrets with openssl, as the docs show",
)


def test_matches_reads_elisions_and_numbers() -> None:
    """`...` in a line, a `...` line and any number match; anything else must be as documented."""
    documented = ("Plan for x: 4 to create.", "...", "done in 0.01s (key na1.Yd...Q)")
    assert matches(documented, "Plan for x: 12 to create.\na\nb\ndone in 3.5s (key na1.Ydabc/Q)\n")
    assert matches(documented, "Plan for x: 4 to create.\ndone in 3s (key na1.YdQ)")
    assert not matches(documented, "Plan for y: 4 to create.\ndone in 3s (key na1.YdQ)\n")
    assert not matches(documented, "Plan for x: 4 to create.\ndone in 3s (key na1.YdQ)\nextra\n")


@needs_shell
def test_cli_fake_server_recipe(tmp_path) -> None:
    """docs/cli.md: fake-server, export its lines and the example's secrets, apply twice: the second changes nothing."""
    with run_recipe(recipe("docs/cli.md", "fake-server"), tmp_path) as ran:
        for step in ran[1:]:
            assert matches(step.documented, step.output), f"$ {step.command}\n{step.output}"
        assert "4 to create" in ran[3].output
        assert "4 created" in ran[3].output
        assert "4 endpoint(s) already match" in ran[4].output


@needs_shell
def test_five_minute_tour(tmp_path) -> None:
    """docs/tour.md runs as written: fake server, apply, receive, send (20 stored, a forged one refused), inbox stats.

    The receiver's banner and the `inbox stats` line are checked by their key fields only (their
    format belongs to the receiving side); the other steps line by line.
    """
    steps = recipe("docs/tour.md", "tour")
    assert [s.command.split()[:2] for s in steps if s.command.startswith("fullstory-async")] == [
        ["fullstory-async", "fake-server"],
        ["fullstory-async", "apply"],
        ["fullstory-async", "receive"],
        ["fullstory-async", "send"],
        ["fullstory-async", "inbox"],
    ]
    with run_recipe(steps, tmp_path) as ran:
        by_command = {step.step.command.split(" --")[0]: step for step in ran}
        for step in ran:
            if step.step.background or "inbox stats" in step.command:
                continue
            assert matches(step.documented, step.output), f"$ {step.command}\n{step.output}"
        assert "4 created" in by_command["fullstory-async apply examples/endpoints.toml"].output
        sent = by_command["fullstory-async send http://127.0.0.1:8081/"].output
        assert sent.count(" 202 ") == 20
        assert "20 sent: 20 2xx, 0 other, 0 no answer" in sent
        forged = next(step for step in ran if step.command.startswith("FORGED="))
        assert " 401 " in forged.output
        assert forged.output.rstrip().endswith("exit 1")
        stats = next(step for step in ran if "inbox stats" in step.command)
        assert re.search(r"\bpending\W+20\b", stats.output), stats.output
        assert re.search(r"\bdead\W+0\b", stats.output), stats.output


_LISTEN_SILENTLY = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[2]))); s.listen(); time.sleep(60)"
)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs, waiting up to 5 s for a signalled one to end."""
    deadline = time.monotonic() + 5
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped
    except FileNotFoundError:
        return False


@needs_shell
def test_a_background_command_missing_a_documented_line_fails_instead_of_hanging(tmp_path, monkeypatch) -> None:
    """A server that serves but never prints the documented NAME=VALUE: an AssertionError, and it is stopped.

    The runner used to block on its stdout for ever (the test hung, the server kept running).
    """
    monkeypatch.setattr(recipes, "READ_TIMEOUT", 0.5)
    steps = [
        Step(f'{shlex.quote(sys.executable)} -c "{_LISTEN_SILENTLY}" --port 8099 &', ("SOMETHING=1",)),
        Step("echo never reached", ()),
    ]
    with pytest.raises(AssertionError, match=r"printed no line within 0\.5 s"), run_recipe(steps, tmp_path):
        pass
    assert not any(
        _alive(int(pid)) for pid in os.listdir("/proc") if pid.isdigit() and _LISTEN_SILENTLY in _cmdline(pid)
    )


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@needs_shell
def test_what_a_step_leaves_running_is_stopped(tmp_path) -> None:
    """A foreground step that starts something in the background (`cmd &` inside it): stopped with the step.

    It used to outlive the test (the step's bash exited, its child was orphaned).
    """
    steps = [Step("sleep 300 & echo $! > left.pid", ())]
    with run_recipe(steps, tmp_path):
        pass
    assert not _alive(int((tmp_path / "left.pid").read_text()))
