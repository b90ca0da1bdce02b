"""The shell recipes of the docs run as written (see tests/docs/recipes.py)."""

from __future__ import annotations

from tests.docs.recipes import matches, recipe, run_recipe


def test_matches_reads_elisions_and_numbers() -> None:
    """`...` in a line, a `...` line and any number match; anything else must be as documented."""
    documented = ("Plan for x: 4 to create.", "...", "done in 0.01s (key na1.Yd...Q)")
    assert matches(documented, "Plan for x: 12 to create.\na\nb\ndone in 3.5s (key na1.Ydabc/Q)\n")
    assert matches(documented, "Plan for x: 4 to create.\ndone in 3s (key na1.YdQ)")
    assert not matches(documented, "Plan for y: 4 to create.\ndone in 3s (key na1.YdQ)\n")
    assert not matches(documented, "Plan for x: 4 to create.\ndone in 3s (key na1.YdQ)\nextra\n")


def test_cli_fake_server_recipe(tmp_path) -> None:
    """docs/cli.md: fake-server, export its lines and the example's secrets, apply twice: the second changes nothing."""
    with run_recipe(recipe("docs/cli.md", "fake-server"), tmp_path) as ran:
        for step in ran[1:]:
            assert matches(step.documented, step.output), f"$ {step.command}\n{step.output}"
        assert "4 to create" in ran[3].output
        assert "4 created" in ran[3].output
        assert "4 endpoint(s) already match" in ran[4].output
