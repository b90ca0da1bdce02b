"""CLI polish: usage errors (exit 2, did-you-mean), JSON errors, URLs for ids, completion, fake-server options."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from fullstory_async.cli import main


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["endpoint", "list"], 'did you mean "endpoints"?'),
        (["endpoints", "lst"], 'did you mean "list"?'),
        (["plan", "x.toml", "--prnue"], 'did you mean "--prune"?'),
        (["--jsn", "event-types"], 'did you mean "--json"?'),
    ],
)
def test_misspelt_commands_and_flags_suggest(cli, clean_env, argv, suggestion):
    """A misspelt command, action or flag: exit 2 and a did-you-mean."""
    run = cli(*argv)
    assert run.code == 2
    assert suggestion in run.err


def test_a_misspelt_flag_is_matched_against_its_own_command(cli, clean_env):
    """`endpoints list --brust` suggests nothing of fake-server's (--burst): only flags `endpoints list` takes."""
    run = cli("endpoints", "list", "--brust")
    assert run.code == 2
    assert "--burst" not in run.err
    assert 'did you mean "--json"?' in cli("endpoints", "list", "--jsno").err


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "endpoints", "lst"],
        ["endpoints", "list", "--jsno", "--json"],
        ["--output", "json", "plan"],
        ["plan", "x.toml", "--prnue", "--output=json"],
    ],
)
def test_usage_errors_under_json_are_one_json_object(cli, clean_env, argv):
    """With --json (or --output json) anywhere, a usage error is one {"error": ...} object on stderr, nothing else."""
    run = cli(*argv)
    assert run.code == 2
    assert run.out == ""
    [line] = run.err.splitlines()
    error = json.loads(line)["error"]
    assert error["type"] == "UsageError"
    assert error["message"]


@pytest.mark.parametrize("json_mode", [False, True])
def test_a_usage_error_never_echoes_the_credentials_of_a_url(cli, clean_env, json_mode):
    """A misspelt option followed by a URL with a password: the error shows the URL without them."""
    run = cli("endpoints", "list", "--baseurl", "https://user:s3cretpw@api.example.com", *(["--json"] * json_mode))
    assert run.code == 2
    assert "s3cretpw" not in run.err
    assert "api.example.com" in run.err


@pytest.mark.parametrize(
    ("argv", "json_error"),
    [
        (["--json", "--output", "text", "endpoints", "lst"], False),  # the last one wins, as argparse reads it
        (["--output", "text", "--output=json", "endpoints", "lst"], True),
        (["endpoints", "list", "--", "--json"], False),  # after --, --json is not an option
    ],
)
def test_usage_errors_follow_the_output_argparse_would_choose(cli, clean_env, argv, json_error):
    """JSON usage errors exactly when argparse would have chosen JSON output (the last choice, none after --)."""
    run = cli(*argv)
    assert run.code == 2
    assert run.err.startswith('{"error"') is json_error


@pytest.mark.parametrize(
    "argv",
    [
        ["fake-server", "--port", "99999"],
        ["fake-server", "--port", "http"],
        ["fake-server", "--endpoints", "-1"],
        ["fake-server", "--host", "256.256.256.256", "--port", "0"],
    ],
)
def test_fake_server_bad_options_are_usage_errors(cli, clean_env, argv):
    """A bad --port, count or an unbindable host: exit 2 with one line, never a traceback."""
    run = cli(*argv)
    assert run.code == 2
    assert "Traceback" not in run.err
    assert "error" in run.err


def test_fake_server_options_are_defined_once(cli, clean_env):
    """`fake-server --help` lists the options of `python -m fullstory_async.testing` (one definition)."""
    from fullstory_async.testing.__main__ import _parser

    run = cli("fake-server", "--help")
    expected = {f for a in _parser()._actions for f in a.option_strings}
    assert expected <= set(run.out.replace(",", " ").split())


def test_fake_server_on_every_interface_prints_a_connectable_url(clean_env):
    """`--host 0.0.0.0` prints a loopback URL a client can use, not http://0.0.0.0:PORT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fullstory_async", "fake-server", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
    finally:
        process.kill()
        process.communicate()
    assert line.startswith("FULLSTORY_BASE_URL=http://127.0.0.1:")


def test_json_mode_errors_are_json_on_stderr(cli, clean_env, tmp_path):
    """With --json, an error is one JSON object on stderr (type, message, field)."""
    file = tmp_path / "desired.toml"
    file.write_text("[[endpoint]]\n")
    run = cli("--json", "plan", str(file))
    assert run.code == 2
    [line] = [line for line in run.err.splitlines() if line.startswith("{")]
    error = json.loads(line)["error"]
    assert error["type"] == "DesiredStateError"
    assert "endpoint" in error["message"]


def test_provision_given_a_toml_file_is_one_usage_error(cli, clean_env, examples):
    """`provision examples/endpoints.toml`: exit 2, one error line pointing to apply; no per-line failures."""
    run = cli("provision", str(examples / "endpoints.toml"))
    assert run.code == 2
    assert run.out == ""
    errors = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "fullstory-async apply" in errors[0]


def test_endpoints_get_update_delete_accept_a_url(cli, served):
    """A URL works where an id does; an unknown URL is exit 1."""
    url = "https://hooks.example.com/a"
    served.call(lambda: served.fake.add_endpoint(url))
    base = ("--base-url", served.url)
    assert f"url:         {url}" in cli(*base, "endpoints", "get", url).out
    assert cli(*base, "endpoints", "update", url, "--disable").code == 0
    assert cli(*base, "endpoints", "delete", url).code == 0
    assert served.urls() == set()
    missing = cli(*base, "endpoints", "get", url)
    assert missing.code == 1
    assert f"no endpoint has the URL {url}" in missing.err


def test_progress_line_is_cleared_before_stdout_lines(clean_env, tmp_path, monkeypatch, terminal):
    """Stdout and stderr on one terminal: no JSON line starts on the progress bar's line."""
    screen = terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"url": f"https://e.com/{n}"}) + "\n" for n in range(30)))
    assert main(["provision", str(path)]) == 0
    for line in screen.getvalue().split("\n"):
        shown = line.split("\r")[-1]  # what the terminal shows after carriage returns
        assert not ("failed" in shown and "{" in shown), line


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(cli, clean_env, shell):
    """`completion SHELL` prints a script naming the commands and their flags; bash parses it."""
    run = cli("completion", shell)
    assert run.code == 0
    for word in ("endpoints", "apply", "--prune", "--max-deletes", "completion"):
        assert word in run.out
    if shell == "bash" and shutil.which("bash"):
        assert subprocess.run(["bash", "-n"], input=run.out, text=True, check=False).returncode == 0


def test_bash_completion_completes_actions_and_flags(cli, clean_env):
    """Sourced in bash, the script completes `endpoints l` to `list` and `apply x --pr` to `--prune`."""
    if not shutil.which("bash"):
        pytest.skip("bash is not installed")
    script = cli("completion", "bash").out
    probe = script + (
        'COMP_WORDS=(fullstory-async endpoints l); COMP_CWORD=2; _fullstory_async; echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(fullstory-async apply x.toml --pr); COMP_CWORD=3; _fullstory_async; echo "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(["bash"], input=probe, text=True, capture_output=True, check=True).stdout.splitlines()
    assert out == ["list", "--prune"]


def test_each_command_is_registered_once():
    """The command table names each command once, and the parser knows exactly those."""
    from fullstory_async.cli._registry import COMMANDS

    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    assert {"endpoints list", "plan", "apply", "fake-server", "completion"} <= set(names)
