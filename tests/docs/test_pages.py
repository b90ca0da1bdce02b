"""What a newcomer reads first says what it must: set-up, where the samples run, what to install."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section(page: str, heading: str) -> str:
    text = (ROOT / page).read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    level = heading.count("#")
    following = re.search(rf"^#{{1,{level}}} ", text[start + len(heading) :], re.MULTILINE)
    return text[start : start + len(heading) + (following.start() if following else len(text))]


def test_readme_keeps_exactly_two_set_up_commands() -> None:
    """The README's set-up is two one-line commands."""
    blocks = re.findall(r"```console\n(.*?)```", _section("README.md", "## Set up"), re.DOTALL)
    assert [len(block.strip().splitlines()) for block in blocks] == [1, 1]


def test_readme_use_says_how_to_run_it_on_the_fake() -> None:
    """Before its sample, "Use" says how to point `Client()` at the fake server, and links the tour."""
    use = _section("README.md", "## Use")
    before = use[: use.index("```python")]
    for needed in ("fake-server", "FULLSTORY_BASE_URL", "FULLSTORY_API_KEY", "export", "docs/tour.md"):
        assert needed in before, needed


def test_tour_is_in_the_nav_and_the_readme() -> None:
    """The tour is linked from the README's documentation list and the site's navigation."""
    assert "(docs/tour.md)" in _section("README.md", "## Documentation")
    assert re.search(r"^\s+- Five-minute tour: tour\.md$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)


def test_asgi_section_says_what_to_install() -> None:
    """Every third-party module the ASGI sample imports, and the server its docstring runs, is in a pip install line."""
    section = _section("docs/receiving.md", "## In FastAPI or Starlette (ASGI)")
    [sample] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    tree = ast.parse(sample)
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if isinstance(node, ast.Import) or node.module
    }
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m != "fullstory_async"}
    server = re.search(r"\((\w+) app:app\)", ast.get_docstring(tree) or "")
    assert server is not None, "the sample's docstring names the command that serves it"
    installs = " ".join(re.findall(r"pip install ([^\n]*)", section)).split()
    assert third_party | {server.group(1)} <= set(installs), installs
