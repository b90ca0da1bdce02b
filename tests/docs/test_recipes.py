"""The shell recipes of the docs run as written (see tests/docs/recipes.py)."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.docs.recipes import matches, recipe, run_recipe

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
