"""`provision FILE`: JSON Lines in, one JSON result a line out, bad lines reported in the stream."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading

import pytest

from fullstory_async.cli import main

SECRET = "provision-secret-Hq7Ww2"


def _line(url: str, *event_types: object, **extra: object) -> str:
    return json.dumps({"url": url, "event_types": list(event_types or ["note.created"]), **extra})


def _write(tmp_path, *lines: str):
    path = tmp_path / "endpoints.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_bad_line_in_the_middle_is_reported_and_the_rest_created(cli, served, tmp_path):
    """A bad line 3 of 5 gets an error result naming line and field; the other 4 are created; exit 1."""
    bad = json.dumps({"url": "https://example.com/3", "event_types": ["note.created", {"event_name": ""}]})
    lines = [_line(f"https://example.com/{n}") for n in (1, 2)] + [bad]
    lines += [_line(f"https://example.com/{n}") for n in (4, 5)]
    run = cli("--base-url", served.url, "provision", str(_write(tmp_path, *lines)))
    assert run.code == 1
    results = sorted(run.json_lines(), key=lambda r: r["line"])
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5]
    assert [r["outcome"] for r in results] == ["created", "created", "failed", "created", "created"]
    assert results[2] == {
        "line": 3,
        "index": 2,
        "url": "https://example.com/3",
        "outcome": "failed",
        "endpoint_id": None,
        "error": {
            "type": "InvalidArgumentError",
            "message": "line 3: event_types[1].event_name: must not be empty",
            "field": "event_types[1].event_name",
        },
        "attempts": 0,
    }
    assert all(r["error"] is None and r["endpoint_id"] for r in results if r["line"] != 3)
    assert served.urls() == {f"https://example.com/{n}" for n in (1, 2, 4, 5)}
    assert "2 item(s)" not in run.err
    assert "5 item(s)" in run.err
    assert "4 created, 0 updated, 0 unchanged, 0 skipped, 0 deleted, 1 failed" in run.err


BAD_LINES = [
    ('{"url": "https://e.com/a", ', "line 1: invalid JSON: Expecting property name enclosed in double quotes", None),
    ('["https://e.com/a"]', "line 1: expected a JSON object, got array", None),
    ('{"event_types": ["note.created"]}', "line 1: url: is required", "url"),
    ('{"url": "/relative"}', "line 1: url: must be an absolute http(s) URL", "url"),
    ('{"url": "https://e.com/a", "event_types": "x"}', "line 1: event_types: must be an array", "event_types"),
    (
        '{"url": "https://e.com/a", "event_types": [3]}',
        "line 1: event_types[0]: must be an event name",
        "event_types[0]",
    ),
    ('{"url": "https://e.com/a", "secret": "s3cr3t-in-file"}', "line 1: secret: secrets do not belong", "secret"),
    ('{"url": "https://e.com/a", "enabled": true}', "line 1: enabled: provision creates enabled endpoints", "enabled"),
    (
        '{"url": "https://e.com/a", "event_type": ["note.created"]}',
        'line 1: event_type: unknown key (did you mean "event_types"?)',
        "event_type",
    ),
]


@pytest.mark.parametrize(("text", "message", "field"), BAD_LINES)
def test_each_kind_of_bad_line_names_the_line_and_field(cli, served, tmp_path, text, message, field):
    """Invalid JSON, a missing or invalid field or a literal secret: one error result."""
    served.call(lambda: None)
    run = cli("--base-url", served.url, "provision", str(_write(tmp_path, text)))
    assert run.code == 1
    [result] = run.json_lines()
    assert result["outcome"] == "failed"
    assert result["error"]["message"].startswith(message)
    assert result["error"].get("field") == field
    assert "s3cr3t-in-file" not in run.out + run.err
    assert served.urls() == set()


def test_api_failure_of_one_item_is_reported_with_its_type_and_status(cli, served, tmp_path):
    """An item the API rejects (unknown event type) fails alone, with the typed error; exit 1."""
    path = _write(tmp_path, _line("https://e.com/a"), _line("https://e.com/b", "note.gone"), _line("https://e.com/c"))
    run = cli("--base-url", served.url, "provision", str(path))
    assert run.code == 1
    by_line = {r["line"]: r for r in run.json_lines()}
    assert by_line[2]["error"]["type"] == "BadRequestError"
    assert by_line[2]["error"]["status"] == 400
    assert "unknown event type 'note.gone'" in by_line[2]["error"]["message"]
    assert by_line[2]["attempts"] >= 1
    assert served.urls() == {"https://e.com/a", "https://e.com/c"}


def test_blank_lines_are_skipped_but_counted(cli, clean_env, tmp_path):
    """Blank lines produce no result; line numbers still match the file."""
    path = _write(tmp_path, "", _line("https://e.com/a"), "   ", _line("https://e.com/b"))
    run = cli("provision", str(path))
    assert run.code == 0
    assert sorted((r["line"], r["index"]) for r in run.json_lines()) == [(2, 0), (4, 1)]


def test_stdin_dash_and_rerun_is_unchanged(cli, served, monkeypatch):
    """`provision -` reads stdin; provisioning the same lines again reports every one unchanged."""
    text = _line("https://e.com/a") + "\n" + _line("https://e.com/b", "segment.created") + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    first = cli("--base-url", served.url, "provision", "-")
    assert first.code == 0
    assert {r["outcome"] for r in first.json_lines()} == {"created"}
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    again = cli("--base-url", served.url, "provision", "-")
    assert again.code == 0
    assert {r["outcome"] for r in again.json_lines()} == {"unchanged"}
    assert "0 created, 0 updated, 2 unchanged" in again.err


def test_on_exists_skip_leaves_existing_endpoints(cli, served, tmp_path):
    """--on-exists skip reports an existing endpoint as skipped and does not update it."""
    served.call(lambda: served.fake.add_endpoint("https://e.com/a", ["note.created"]))
    path = _write(tmp_path, _line("https://e.com/a", "segment.created"))
    run = cli("--base-url", served.url, "provision", str(path), "--on-exists", "skip")
    assert run.code == 0
    assert [r["outcome"] for r in run.json_lines()] == ["skipped"]
    [stored] = served.call(lambda: served.fake.endpoints_with_url("https://e.com/a"))
    assert [e.event_name for e in stored.event_types] == ["note.created"]


def test_secret_env_is_sent_and_never_printed(cli, served, tmp_path, monkeypatch):
    """A line's secret_env value reaches the server and appears nowhere in the output, even with -vv."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = _write(tmp_path, _line("https://e.com/a", secret_env="HOOK_SECRET"))
    run = cli("-vv", "--base-url", served.url, "provision", str(path))
    assert run.code == 0
    [stored] = served.call(lambda: served.fake.endpoints_with_url("https://e.com/a"))
    assert stored.secret == SECRET
    assert SECRET not in run.out + run.err
    assert served.api_key not in run.out + run.err


def test_example_jsonl_on_the_embedded_fake(cli, clean_env, examples):
    """examples/endpoints.jsonl provisions on the embedded fake with no setup; throwaway secrets said once."""
    run = cli("provision", str(examples / "endpoints.jsonl"))
    assert run.code == 0, run.out
    results = run.json_lines()
    assert len(results) == 5
    assert {r["outcome"] for r in results} == {"created"}
    assert sum("throwaway" in line for line in run.err.splitlines()) == 1


def test_missing_file_is_a_usage_error(cli, clean_env, tmp_path):
    """A FILE that cannot be opened exits 2 naming it."""
    run = cli("provision", str(tmp_path / "nope.jsonl"))
    assert run.code == 2
    assert f"error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory" in run.err
    folder = cli("provision", str(tmp_path))  # opened (a directory can be), then refused, not read by the job
    assert folder.code == 2
    assert f"error: cannot read {tmp_path}: Is a directory" in folder.err


def test_no_progress_bar_when_stderr_is_not_a_terminal(cli, clean_env, tmp_path):
    """With stderr captured (not a tty) there is no carriage-return bar, only the summary."""
    run = cli("provision", str(_write(tmp_path, _line("https://e.com/a"))))
    assert run.code == 0
    assert "\r" not in run.err
    assert run.err.splitlines()[-2].startswith("fullstory-async: 1 item(s) in ")


def test_progress_bar_on_a_terminal(clean_env, tmp_path, monkeypatch, capsys, terminal):
    """On a terminal stderr a carriage-return bar shows done/?, rate and failures, cleared before the summary."""
    stderr = terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    path = _write(tmp_path, _line("https://e.com/a"), "not json", _line("https://e.com/b"))
    assert main(["provision", str(path)]) == 1
    err = stderr.getvalue()
    assert "\r" in err
    assert "] 0/3  0.0/s  0 failed" in err  # a regular file is counted first: not 0/?
    assert "/s  1 failed" in err
    summary = err.splitlines()[-2]
    assert summary.lstrip("\r ").startswith("fullstory-async: 3 item(s) in ")
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_no_progress_flag_turns_the_bar_off_on_a_terminal(clean_env, tmp_path, monkeypatch, capsys, terminal):
    """--no-progress draws no bar even when stderr is a terminal."""
    stderr = terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["provision", "--no-progress", str(_write(tmp_path, _line("https://e.com/a")))]) == 0
    assert "\r" not in stderr.getvalue()


class _ClosedAfterOneLine(io.StringIO):
    """A stdout whose reader goes away after the first line (like `| head -1`)."""

    def write(self, text: str) -> int:
        if self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_closed_stdout_stops_the_job_cleanly(clean_env, tmp_path, monkeypatch, capsys, caplog):
    """When stdout is closed mid-job, provision stops with exit 1 and no asyncio error about unclosed streams."""
    monkeypatch.setattr(sys, "stdout", _ClosedAfterOneLine())
    path = _write(tmp_path, *(_line(f"https://e.com/{n}") for n in range(50)))
    with caplog.at_level(logging.ERROR):
        assert main(["--concurrency", "4", "provision", str(path)]) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in capsys.readouterr().err


UNSET_LINES = (
    _line("https://e.com/a", secret_env="UNSET_A"),
    _line("https://e.com/b"),
    _line("https://e.com/c", secret_env="UNSET_B"),
    _line("https://e.com/d", secret_env="UNSET_A"),
)


def test_unset_secret_env_in_a_file_exits_2_before_any_request(cli, served, tmp_path):
    """A regular file is surveyed first: every unset variable is named with its line count; no request, exit 2."""
    run = cli("--base-url", served.url, "provision", str(_write(tmp_path, *UNSET_LINES)))
    assert run.code == 2
    assert "UNSET_A (2 line(s)), UNSET_B (1 line(s))" in run.err
    assert "nothing was sent" in run.err
    assert run.out == ""
    assert served.call(lambda: len(served.fake.requests)) == 0


def test_unset_secret_env_on_stdin_fails_its_lines_and_counts_them(cli, served, monkeypatch):
    """Stdin cannot be read twice: each such line fails in its turn, the others run; one stderr line per variable."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in UNSET_LINES)))
    run = cli("--base-url", served.url, "provision", "-")
    assert run.code == 1
    by_line = {r["line"]: r for r in run.json_lines()}
    assert by_line[2]["outcome"] == "created"
    for number, name in ((1, "UNSET_A"), (3, "UNSET_B"), (4, "UNSET_A")):
        assert by_line[number]["error"]["message"] == (
            f"line {number}: secret_env: environment variable {name} is not set"
        )
    assert "fullstory-async: UNSET_A is not set: 2 line(s) failed for it" in run.err
    assert "fullstory-async: UNSET_B is not set: 1 line(s) failed for it" in run.err
    assert served.urls() == {"https://e.com/b"}


def test_unknown_key_hint_does_not_offer_enabled(cli, clean_env, tmp_path):
    """The hint lists the keys a line may have; `enabled`, which provision refuses, is not among them."""
    run = cli("provision", str(_write(tmp_path, '{"url": "https://e.com/a", "enable": true}')))
    [result] = run.json_lines()
    message = result["error"]["message"]
    assert message.startswith("line 1: enable: unknown key")
    assert message.endswith("expected one of url, event_types, secret_env")


def test_a_fifo_is_read_once_by_the_job_and_nothing_is_lost(cli, served, tmp_path):
    """A path that is a pipe (a FIFO, `provision <(command)`) is not read ahead: every line is provisioned.

    It used to be read first by the desired-state sniff and the survey, then opened again empty:
    0 items, exit 0.
    """
    fifo = tmp_path / "lines.jsonl"
    os.mkfifo(fifo)
    text = "".join(_line(f"https://e.com/{n}") + "\n" for n in range(300))  # over 8 KiB: past any read-ahead

    def write():
        with open(fifo, "w", encoding="utf-8") as pipe:  # blocks until provision opens it
            pipe.write(text)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    run = cli("--base-url", served.url, "provision", str(fifo))
    writer.join(5)
    assert run.code == 0, run.err
    assert sorted(r["line"] for r in run.json_lines()) == list(range(1, 301))
    assert len(served.urls()) == 300


def test_a_fifo_with_an_unset_secret_env_fails_its_lines_in_turn(cli, served, tmp_path):
    """A pipe cannot be surveyed: as on stdin, the line naming an unset variable fails and the others run."""
    fifo = tmp_path / "lines.jsonl"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "w", encoding="utf-8") as pipe:
            pipe.write("".join(line + "\n" for line in UNSET_LINES))

    threading.Thread(target=write, daemon=True).start()
    run = cli("--base-url", served.url, "provision", str(fifo))
    assert run.code == 1
    assert served.urls() == {"https://e.com/b"}
    assert "UNSET_A is not set: 2 line(s) failed for it" in run.err


def test_crlf_and_a_last_line_without_newline_survey_as_the_job_reads(cli, clean_env, tmp_path, terminal, monkeypatch):
    """CRLF line ends and no final newline: the survey's total is the number of results (the bar ends n/n)."""
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"\r\n".join(_line(f"https://e.com/{n}").encode() for n in range(5)) + b"\r\n\r\n" + b"   ")
    stderr = terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    run = cli("provision", str(path))
    assert run.code == 0
    assert len(run.json_lines()) == 5
    assert "5/5" in stderr.getvalue()
    assert "/?" not in stderr.getvalue()
