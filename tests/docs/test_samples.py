"""Every Python sample in README.md and docs/*.md runs, as a reader would run it.

Collected automatically: every fenced ```` ```python ```` block of every page.

* A sample that defines ``test_...`` functions is a test file: it runs with pytest in a
  fresh directory, under pytest-asyncio's default **strict** mode, so it must show the
  ``@pytest.mark.asyncio`` marker (or other set-up) it needs.
* The other samples of a page run in order, in one namespace and one event loop, like a
  session of ``python -m asyncio`` (top-level ``await`` allowed): a page shows its set-up
  (imports, ``fs = Client()``) once, in its first sample, and later samples use it.
  ``FULLSTORY_API_KEY`` and ``FULLSTORY_BASE_URL`` point at a FakeFullstory of the page's
  own (what ``fake-server`` prints), so ``Client()`` works with no change to the sample.
* ``<!-- sample: skip REASON -->`` on the line before a fence skips that sample, with the
  reason shown. Use it only for what cannot run here (a server that serves forever).
* ``<!-- sample: output -->`` before a ```` ```text ```` fence right after a sample: what that
  sample prints, compared line by line with what it printed (so a page never claims an
  output the code does not give).
* The pages in `WITHOUT_ENVIRONMENT` also run with neither variable set, as a reader who
  copies them without a fake running would: every ``Client`` there must say where its key comes from.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import attrs
import pytest

from fullstory_async import Client
from tests.fakes import ServedFake

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*sample:\s*skip\b\s*(.*?)\s*-->\s*$")
OUTPUT = re.compile(r"\n*<!--\s*sample:\s*output\s*-->\n```text\n(.*?)^```", re.MULTILINE | re.DOTALL)
WITHOUT_ENVIRONMENT = ["docs/production.md"]


@attrs.frozen
class Sample:
    page: str
    line: int
    code: str
    skip: str | None
    output: str | None = None


def samples() -> Iterator[Sample]:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = SKIP.search(before)
            output = OUTPUT.match(text, match.end())
            yield Sample(
                page.relative_to(ROOT).as_posix(),
                line,
                match.group(1),
                skip.group(1) if skip else None,
                output.group(1) if output else None,
            )


ALL = list(samples())


def _is_test_file(code: str) -> bool:
    return re.search(r"^(async )?def test_", code, re.MULTILINE) is not None


def test_every_page_is_collected() -> None:
    """The collector finds the pages and their samples (so a broken pattern cannot pass silently)."""
    pages = {sample.page for sample in ALL}
    assert {"README.md", "docs/testing.md", "docs/quickstart.md"} <= pages
    assert len(ALL) >= 30


TEST_FILES = [s for s in ALL if _is_test_file(s.code)]
SESSIONS = sorted({s.page for s in ALL if not _is_test_file(s.code)})


def test_test_samples_pass_in_strict_mode(tmp_path: Path) -> None:
    """Each sample test file passes under pytest with pytest-asyncio's default (strict) mode.

    One pytest process runs them all, a file each (a new interpreter costs more than a sample);
    the JUnit report says which file passed, failed or was skipped.
    """
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # no project config, as in a user's new project
    files = {}
    for sample in TEST_FILES:
        if sample.skip is None:
            name = "test_" + re.sub(r"\W", "_", f"{sample.page}_{sample.line}")
            (tmp_path / f"{name}.py").write_text(sample.code)
            files[name] = f"{sample.page}:{sample.line}"
    assert files, "no sample test file to run"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=report.xml", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outcomes: dict[str, set[str]] = {name: set() for name in files}
    for case in ElementTree.parse(tmp_path / "report.xml").iter("testcase"):
        failed = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("classname", "")].add(failed[0] if failed else "passed")
    assert {files[name]: kinds for name, kinds in outcomes.items() if kinds != {"passed"}} == {}, result.stdout
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("page", SESSIONS)
def test_page_samples_run(page: str, served: ServedFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's samples run in order in one namespace and loop (see the module docstring)."""
    monkeypatch.setenv("FULLSTORY_BASE_URL", served.url)
    monkeypatch.chdir(tmp_path)
    _run_session(page)


@pytest.mark.parametrize("page", WITHOUT_ENVIRONMENT)
def test_page_samples_run_without_the_environment(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of real-server settings runs with no FULLSTORY_* variable set: its clients name their key."""
    monkeypatch.delenv("FULLSTORY_API_KEY", raising=False)
    monkeypatch.delenv("FULLSTORY_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    _run_session(page)


def test_output_blocks_are_found() -> None:
    """The output convention is in use (so a broken pattern cannot pass silently)."""
    assert any(s.output is not None for s in ALL if s.page == "docs/quickstart.md")


def _run_session(page: str) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    with asyncio.Runner() as runner:
        try:
            for sample in (s for s in ALL if s.page == page and not _is_test_file(s.code)):
                if sample.skip is not None:
                    continue
                name = f"{sample.page}:{sample.line}"
                code = compile(sample.code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    result = eval(code, namespace)
                    if inspect.iscoroutine(result):
                        runner.run(result)
                if sample.output is not None:
                    assert printed.getvalue().splitlines() == sample.output.splitlines(), name
        finally:
            for value in list(namespace.values()):
                if isinstance(value, Client):
                    runner.run(value.aclose())
