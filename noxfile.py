"""Development tasks: ``nox -s tests``, ``lint``, ``mypy``, ``docs``, ``bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "mypy", "docs"]
nox.options.reuse_existing_virtualenvs = True

RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (extra arguments go to pytest)."""
    session.install("-e", ".[tests]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def mypy(session: nox.Session) -> None:
    """Mypy strict on the package and on tests/typing (the public API as users write it)."""
    session.install("-e", ".[tests]", MYPY)
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; any warning fails the build."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against FakeFullstory on 127.0.0.1 (figures go to docs/benchmarks.md)."""
    session.install("-e", ".", "httpx")  # httpx: the overhead benchmark's comparison client
    which = session.posargs or ["fake", "rate", "faults", "memory", "overhead", "soak", "governor"]
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
    if "governor" in which:
        session.run("python", "bench/governor.py")
