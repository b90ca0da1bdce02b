"""The inbox URL on the command line: printed as given, checked, never a new inbox by mistake.

``receive`` and the ``inbox`` commands that reach an inbox run as real processes; those refused
before that run in-process (``main()``, the ``cli`` fixture): a new interpreter costs more than the check.

``inbox stats|export|requeue`` never create nor migrate an inbox; a malformed URL is a usage
error (exit 2) naming what is wrong, its password redacted, never a traceback; a held SQLite
lock does not stop ``inbox stats``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run

from .conftest import reset_postgres
from .test_inbox_bounds import locked
from .test_receive_command import Receiver, deliveries, run_cli, send_all


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgres://u:hunter2@127.0.0.1:99999/db", "port '99999' is not a port number (1-65535)"),
        ("postgresql://u:hunter2@127.0.0.1:5x/db", "port '5x' is not a port number"),
        ("postgresql://u:hunter2@[::1/db", "malformed PostgreSQL URL"),
        ("mysql://u:hunter2@h/db", "unsupported inbox URL scheme 'mysql' in 'mysql://u:***@h/db'"),
        ("postgresql://u:hunter2@127.0.0.1:5432/db?sslmode=sometimes", "sslmode"),
        # A generated password with an unencoded '/', '?' or '#' cuts the authority short for a URL
        # parser ("u:hunter2/x@h" reads as host u, port hunter2): refused, and the password never shown.
        ("postgresql://u:hunter2/x@127.0.0.1/db", "holds an unencoded '/', '?' or '#'"),
        ("postgresql://u:hunter2?x@127.0.0.1/db", "holds an unencoded '/', '?' or '#'"),
        ("postgresql://u:hunter2#x@127.0.0.1:5432/db", "holds an unencoded '/', '?' or '#'"),
        ("sqlite://u:hunter2@127.0.0.1/x.db", "a SQLite URL has no host"),
    ],
)
@pytest.mark.parametrize("command", ["stats", "export"])
def test_a_malformed_inbox_url_is_a_usage_error_naming_the_field(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, problem: str, command: str
) -> None:
    """Exit 2 naming the field, password redacted; in-process, as the check runs before any I/O.

    A real process's exit status for a refused URL: ``test_a_parameter_the_postgres_server_refuses_is_named``.
    """
    monkeypatch.chdir(tmp_path)
    run = cli("inbox", command, "--inbox", url)
    assert (run.code, run.out) == (2, "")
    assert problem in run.err
    if problem.startswith("port") or "unencoded" in problem:
        assert "u:***@127.0.0.1" in run.err  # the URL is shown, its password redacted
    assert "hunter2" not in run.err
    assert "Traceback" not in run.err


async def test_a_parameter_the_postgres_server_refuses_is_named(postgres_url: str) -> None:
    code, _, err = await run_cli("inbox", "stats", "--inbox", postgres_url + "?no_such_setting=1")
    assert code == 2
    assert 'unrecognized configuration parameter "no_such_setting"' in err


def test_a_mistyped_path_is_an_error_not_an_empty_inbox(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (("stats",), ("export",), ("requeue", "--dead")):
        run = cli("inbox", *command, "--inbox", "sqlite:///typo.db")
        assert (run.code, run.out) == (1, "")
        assert "no inbox at 'typo.db': the file does not exist" in run.err
    assert os.listdir(tmp_path) == []


def test_someone_elses_database_is_refused_and_left_untouched(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "app.db")) as conn, conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    before = (tmp_path / "app.db").read_bytes()
    monkeypatch.chdir(tmp_path)
    for command in (("stats",), ("export",), ("requeue", "--dead")):
        run = cli("inbox", *command, "--inbox", "sqlite:///app.db")
        assert (run.code, run.out) == (1, "")
        assert "'app.db' is not a fullstory-async inbox" in run.err
    assert (tmp_path / "app.db").read_bytes() == before


async def test_someone_elses_postgres_database_gets_no_inbox_tables(postgres_url: str) -> None:
    import asyncpg

    code, _, err = await run_cli("inbox", "stats", "--inbox", postgres_url)
    assert code == 1
    assert "has no fullstory-async inbox" in err
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('fullstory_inbox_schema')") is None
    finally:
        await conn.close()
    await reset_postgres(postgres_url)


@pytest.mark.parametrize("form", ["relative", "absolute"])
async def test_the_printed_inbox_url_is_the_one_given_and_inbox_stats_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///inbox.db" if form == "relative" else f"sqlite:///{tmp_path}/inbox.db"
    receiver = await Receiver.start(url)
    try:
        printed = receiver.banner.split(" into ", 1)[1].strip()
        assert printed == url
        assert await send_all(receiver.url, deliveries(2, "banner"), concurrency=2) == [202, 202]
    finally:
        code, _ = await receiver.stop(signal.SIGTERM)
    assert code == 0
    code, out, err = await run_cli("inbox", "stats", "--inbox", printed, cwd=tmp_path)
    assert (code, json.loads(out)["pending"]) == (0, 2), err


async def test_inbox_stats_answers_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    receiver = await Receiver.start(url, "--commit-timeout", "0.5")
    try:
        assert await send_all(receiver.url, deliveries(3, "stats"), concurrency=3) == [202] * 3
        with locked(tmp_path / "inbox.db"):
            started = time.monotonic()
            assert await send_all(receiver.url, deliveries(3, "locked"), concurrency=3) == [503] * 3
            assert time.monotonic() - started < 2.0
            code, out, err = await run_cli("inbox", "stats", "--inbox", url)
            assert (code, json.loads(out)["pending"]) == (0, 3), err
    finally:
        code, _ = await receiver.stop(signal.SIGTERM)
    assert code == 0


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
async def test_a_bad_commit_timeout_is_a_usage_error(tmp_path: Path, value: str) -> None:
    code, _, err = await run_cli(
        "receive",
        "--inbox",
        "sqlite:///x.db",
        "--secret-env",
        "FS_TEST_SECRET",
        "--commit-timeout",
        value,
        cwd=tmp_path,
    )
    assert code == 2
    assert "--commit-timeout" in err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:hun@ter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:hun%40ter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:hun:ter2@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        ("postgresql://u:hünter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:hun/ter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:hun?ter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:hun#ter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?sslmode=require&password=hunter2", "postgresql://u@h/db?sslmode=require&password=***"),
        ("postgresql://u:hun@t/er2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:12?ter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://h:5432/db?application_name=ter2@x", "postgresql://h:5432/db?application_name=ter2@x"),
        ("sqlite:////srv/a:b@c/inbox.db", "sqlite:////srv/a:b@c/inbox.db"),  # a path, shown as given
    ],
)
def test_the_printed_url_never_shows_the_password(url: str, shown: str) -> None:
    """Whatever the password holds ('@', ':', '/', '?', '#', non-ASCII), the URL is shown as given but for it."""
    from fullstory_async.receiving._postgres import hide, redact

    assert redact(url) == shown
    if url.startswith("postgresql") and "application_name" not in url:
        assert "ter2" not in hide(f"could not connect to {url}", url)
