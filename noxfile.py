"""Development tasks: ``nox -s tests``, ``lint``, ``mypy``, ``docs``, ``bench``."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "mypy", "docs"]
nox.options.reuse_existing_virtualenvs = True
# Never download an interpreter; a missing one is skipped with a visible line
# ("Session tests-3.13 skipped: Python interpreter 3.13 not found"), also on CI.
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = False

PYTHONS = ["3.11", "3.12", "3.13"]  # the versions pyproject.toml claims
BROWSER_PYTHON = "3.12"  # the one version that runs the browser tests (one is enough: they test the page)


def _put_pyenv_interpreters_on_path() -> None:
    """Put pyenv's installs of PYTHONS first on PATH by absolute path.

    pyenv's ``python3.12`` shim fails unless ``PYENV_VERSION`` names that version, so
    interpreter discovery would not find an installed 3.12 through it.
    """
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = []
    for python in PYTHONS:
        installs = [p for p in versions.glob(f"{python}.*/bin/python{python}") if p.parent.parent.name[-1].isdigit()]
        if installs:
            newest = max(installs, key=lambda p: tuple(int(n) for n in p.parent.parent.name.split(".")))
            found.append(str(newest.parent))
    os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_put_pyenv_interpreters_on_path()

RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on every supported Python (``tests-3.12`` for one; extra arguments go to pytest).

    The PostgreSQL tests need ``FULLSTORY_TEST_POSTGRES_DSN`` (``.ci/run`` starts a server and sets it).
    The browser tests (``tests/browser``, Debian's ``chromium``) run on `BROWSER_PYTHON` only.
    """
    workers = ("-n", "2")  # two processes (pytest-xdist): CI's two cores; each gets its own PostgreSQL database
    if session.python == BROWSER_PYTHON:
        session.install("-e", ".[tests,postgres,browser]")
        session.run("pytest", *workers, *session.posargs, env={"FULLSTORY_TEST_BROWSER": "1"})
    else:
        session.install("-e", ".[tests,postgres]")
        session.run("pytest", *workers, "-m", "not browser", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def mypy(session: nox.Session) -> None:
    """Mypy strict on the package and on tests/typing (the public API as users write it)."""
    session.install("-e", ".[tests,postgres]", MYPY)
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; any warning fails the build."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against FakeFullstory on 127.0.0.1 (figures go to docs/benchmarks.md)."""
    session.install("-e", ".[postgres]", "httpx")  # httpx: the overhead benchmark's comparison client
    every = (
        "fake",
        "rate",
        "faults",
        "memory",
        "overhead",
        "soak",
        "receiver",
        "governor",
        "receiver_soak",
        "scrub",
        "inbox_queries",
        "console",
    )
    which = session.posargs or list(every)
    if "fake" in which:
        session.run("python", "bench/fake_server_throughput.py")
    for name in ("rate", "faults", "memory"):
        if name in which:
            session.run("python", "bench/provision.py", name)
    if "overhead" in which:
        session.run("python", "bench/overhead.py")
    if "soak" in which:
        session.run("python", "bench/soak.py")
        session.run("python", "bench/soak.py", "--mode", "ensure")
    if "receiver" in which:
        session.run("python", "bench/receiver.py")
    if "governor" in which:
        session.run("python", "bench/governor.py")
    if "scrub" in which:
        session.run("python", "bench/scrub.py")
    if "inbox_queries" in which:  # 1,000,000 events on SQLite and PostgreSQL (as receiver_soak finds one)
        session.run("python", "bench/inbox_queries.py")
    if "console" in which:  # 1,000,000 events; PostgreSQL too when FULLSTORY_TEST_POSTGRES_DSN is set
        session.run("python", "bench/console.py")
    if "receiver_soak" in which:  # SQLite and PostgreSQL (FULLSTORY_TEST_POSTGRES_DSN, or a throwaway server)
        session.run("python", "bench/receiver_soak.py", *(["--no-ratio"] if "receiver" in which else []))
