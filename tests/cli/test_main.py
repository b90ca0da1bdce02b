"""The command line as a whole: parsing, the choice of server, errors, logging, the process."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest

from fullstory_async import __version__
from fullstory_async.cli import main


def _env_without_key() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "FULLSTORY_API_KEY"}


def test_version(cli):
    """--version prints the package version and exits 0."""
    run = cli("--version")
    assert run.code == 0
    assert run.out.strip() == f"fullstory-async {__version__}"


def test_help_lists_every_command(cli):
    """--help exits 0 and names every command."""
    run = cli("--help")
    assert run.code == 0
    for command in ("endpoints", "event-types", "subcategories", "provision", "plan", "apply", "fake-server"):
        assert command in run.out


@pytest.mark.parametrize(
    "argv",
    [[], ["endpoints"], ["frobnicate"], ["--bogus", "event-types"], ["apply"], ["--concurrency", "0", "plan", "f"]],
)
def test_bad_usage_exits_2(cli, argv):
    """Argparse errors return 2 from main() instead of raising SystemExit."""
    run = cli(*argv)
    assert run.code == 2
    assert "usage:" in run.err


def test_global_options_work_after_the_command(cli, clean_env):
    """--json given after the command is honoured, and one given before it is not reset."""
    after = cli("event-types", "--json")
    before = cli("--json", "event-types")
    assert after.code == before.code == 0
    assert after.json_lines() == before.json_lines()
    assert after.json_lines()[0]["event_name"] == "note.created"


def test_embedded_fake_is_announced_in_one_line(cli, clean_env):
    """Without FULLSTORY_API_KEY and --base-url, one stderr line says the embedded fake is used; one says what next."""
    run = cli("event-types")
    assert run.code == 0
    lines = run.err.splitlines()
    assert len(lines) == 2
    assert lines[1] == (
        "fullstory-async: next: set FULLSTORY_API_KEY to run against your account, or run `fullstory-async "
        "fake-server` in another terminal and export the lines it prints to keep endpoints between commands"
    )
    assert lines[0].startswith("fullstory-async: FULLSTORY_API_KEY is not set; using the embedded fake server at ")
    assert "http://127.0.0.1:" in lines[0]
    assert "nothing leaves this machine" in lines[0]


def test_base_url_without_key_is_a_usage_error(cli, clean_env):
    """--base-url with no key in the environment exits 2 and never falls back to the fake."""
    run = cli("--base-url", "http://127.0.0.1:9", "endpoints", "list")
    assert run.code == 2
    assert run.err.startswith("error: FULLSTORY_API_KEY is not set")
    assert "embedded fake" not in run.err


def test_named_key_variable_unset_is_a_usage_error(cli, clean_env):
    """--api-key-env VAR with VAR unset exits 2 naming VAR (you meant a real server)."""
    run = cli("--api-key-env", "MY_FULLSTORY_KEY", "endpoints", "list")
    assert run.code == 2
    assert "MY_FULLSTORY_KEY is not set" in run.err


def test_api_key_env_reads_the_named_variable(cli, served, monkeypatch):
    """--api-key-env VAR takes the key from VAR."""
    monkeypatch.delenv("FULLSTORY_API_KEY")
    monkeypatch.setenv("MY_FULLSTORY_KEY", served.api_key)
    served.call(lambda: served.fake.add_endpoint("https://example.com/a"))
    run = cli("--api-key-env", "MY_FULLSTORY_KEY", "--base-url", served.url, "endpoints", "list", "--json")
    assert run.code == 0
    assert [r["url"] for r in run.json_lines()] == ["https://example.com/a"]
    assert run.err == ""


def test_fake_flag_uses_the_embedded_fake_even_with_a_key(cli, served):
    """--fake ignores the key in the environment and talks to an embedded fake."""
    served.call(lambda: served.fake.add_endpoint("https://example.com/a"))
    run = cli("--fake", "endpoints", "list")
    assert run.code == 0
    assert run.out.strip() == "No endpoints."
    assert "--fake given; using the embedded fake server" in run.err
    assert len(served.fake.requests) == 0


def test_api_error_is_one_line_and_exit_1(cli, served, monkeypatch):
    """A 401 prints one `error:` line naming the status and the call, without the key, and exits 1."""
    wrong_key = "na1.WrongKeyNobodyHas/FAKEORG"
    monkeypatch.setenv("FULLSTORY_API_KEY", wrong_key)
    run = cli("--base-url", served.url, "endpoints", "list")
    assert run.code == 1
    assert run.out == ""
    assert len(run.err.splitlines()) == 1
    assert run.err.startswith("error: 401")
    assert "(GET /webhooks/v1/endpoints)" in run.err
    assert wrong_key not in run.err


def test_insecure_base_url_is_a_usage_error(cli, served, clean_env):
    """A plain-http base URL to a non-loopback host is refused with exit 2 before any request."""
    run = cli("--base-url", "http://example.com", "endpoints", "list")
    assert run.code == 2
    assert run.err.startswith("error: --base-url: plain http is allowed only for loopback hosts")
    assert "pass --allow-insecure-http to override" in run.err  # the option, not the Python keyword
    assert "allow_insecure_http" not in run.err
    clean_env.setenv("FULLSTORY_BASE_URL", "http://example.com")
    from_env = cli("endpoints", "list")
    assert from_env.code == 2
    assert from_env.err.startswith("error: FULLSTORY_BASE_URL: plain http")


def test_verbose_logs_requests_to_stderr_and_restores_logging(cli, served):
    """-vv logs each request (method, path, status) on stderr; the handler is removed afterwards."""
    logger = logging.getLogger("fullstory_async")
    handlers, level = list(logger.handlers), logger.level
    run = cli("-vv", "--base-url", served.url, "endpoints", "list")
    assert run.code == 0
    assert "DEBUG fullstory_async: GET /webhooks/v1/endpoints -> 200" in run.err
    assert served.api_key not in run.err
    assert logger.handlers == handlers
    assert logger.level == level


def test_python_m_runs_the_fake_server_until_ctrl_c(cli, clean_env):
    """`python -m fullstory_async fake-server --port 0` serves until SIGINT, then exits 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fullstory_async", "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env_without_key(),
    )
    try:
        assert process.stdout is not None
        settings = dict(process.stdout.readline().strip().split("=", 1) for _ in range(3))
        clean_env.setenv("FULLSTORY_API_KEY", settings["FULLSTORY_API_KEY"])
        run = cli("--base-url", settings["FULLSTORY_BASE_URL"], "endpoints", "list", "--json")
        assert run.code == 0
        assert run.out == ""
        process.send_signal(signal.SIGINT)
        # Not communicate(): it closes stdin, and a job that reads the end of its input before the
        # signal lands ends normally (exit 0). With stdin open, only the signal can end it.
        process.wait(timeout=10)
        assert process.stderr is not None
        err = process.stderr.read()
    finally:
        process.kill()
        process.communicate()  # closes the pipes
    assert process.returncode == 0
    assert "stopped" in err


def test_ctrl_c_exits_130_with_a_summary(clean_env):
    """SIGINT in the middle of a streaming provision exits 130 after saying what was done."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fullstory_async", "provision", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env_without_key(),
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write('{"url": "https://example.com/a", "event_types": ["note.created"]}\n')
        process.stdin.flush()
        first = process.stdout.readline()  # the job is running and waiting for more input
        process.send_signal(signal.SIGINT)
        # Not communicate(): it closes stdin, and a job that reads the end of its input before the
        # signal lands ends normally (exit 0). With stdin open, only the signal can end it.
        process.wait(timeout=10)
        assert process.stderr is not None
        err = process.stderr.read()
    finally:
        process.kill()
        process.communicate()  # closes the pipes
    assert '"outcome": "created"' in first
    assert process.returncode == 130
    assert "interrupted after 1 item(s)" in err
    assert err.rstrip().endswith("fullstory-async: interrupted")
    assert "Traceback" not in err


def test_main_defaults_to_sys_argv(monkeypatch, capsys):
    """main() with no argv parses sys.argv[1:]."""
    monkeypatch.setattr(sys, "argv", ["fullstory-async", "--version"])
    assert main() == 0
    assert __version__ in capsys.readouterr().out
