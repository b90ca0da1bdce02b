"""`plan FILE` and `apply FILE`: desired-state files, confirmation, re-runs, bad files, secrets."""

from __future__ import annotations

import io
import sys

import pytest

from tests.cli.conftest import SECRET_VARS

EXAMPLE_URLS = {
    "https://hooks.example-shop.com/fullstory/notes",
    "https://hooks.example-shop.com/fullstory/alerts",
    "https://hooks.example-shop.com/fullstory/checkout",
    "https://mobile.example-shop.com/fullstory/crashes",
}
SECRETS = {
    "NOTES_WEBHOOK_SECRET": "notes-secret-V8kq2",
    "ALERTS_WEBHOOK_SECRET": "alerts-secret-Rr51x",
    "CHECKOUT_WEBHOOK_SECRET": "checkout-secret-Lp0Zt",
    "MOBILE_WEBHOOK_SECRET": "mobile-secret-Nn4Ee",
}


@pytest.fixture
def secrets_set(clean_env):
    """Put the example's secret variables in the environment."""
    for name, value in SECRETS.items():
        clean_env.setenv(name, value)


def test_example_applies_on_the_embedded_fake_with_no_setup(cli, clean_env, examples):
    """`apply examples/endpoints.toml --yes` with nothing set creates the 4 example endpoints; exit 0."""
    run = cli("apply", str(examples / "endpoints.toml"), "--yes")
    assert run.code == 0, run.err
    assert "Plan for the embedded fake server (http://127.0.0.1:" in run.out
    assert "4 to create, 0 to update, 0 to delete, 0 unchanged." in run.out
    assert sum(line.startswith("  created   https://") for line in run.out.splitlines()) == 4
    err = run.err.splitlines()
    assert len(err) == 4
    assert err[3].startswith("fullstory-async: next: set FULLSTORY_API_KEY")
    assert "using the embedded fake server" in err[0]
    assert err[1].startswith(
        "fullstory-async: NOTES_WEBHOOK_SECRET, ALERTS_WEBHOOK_SECRET, CHECKOUT_WEBHOOK_SECRET, MOBILE_WEBHOOK_SECRET "
        "are not set; the embedded fake gets a throwaway random secret"
    )
    assert "4 created, 0 updated, 0 unchanged, 0 skipped, 0 deleted, 0 failed" in err[2]


def test_embedded_fake_apply_needs_no_confirmation(cli, clean_env, examples, monkeypatch):
    """Against the embedded fake (nothing real), apply without --yes and without a terminal proceeds."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    run = cli("apply", str(examples / "endpoints.toml"))
    assert run.code == 0
    assert "4 created" in run.err


def test_plan_then_apply_then_rerun_changes_nothing(cli, served, secrets_set, examples):
    """Plan shows 4 creates, apply makes them (secrets and enabled state included), a re-run is all unchanged."""
    file = str(examples / "endpoints.toml")
    base = ("--base-url", served.url)
    plan = cli(*base, "plan", file)
    assert plan.code == 0
    assert plan.out.splitlines()[0] == (f"Plan for {served.url}: 4 to create, 0 to update, 0 to delete, 0 unchanged.")
    assert (
        "  + create  https://mobile.example-shop.com/fullstory/crashes  "
        "event types [nativemobile.event.crash, segment.created]; disabled" in plan.out
    )
    assert served.urls() == set()

    applied = cli(*base, "apply", file, "--yes")
    assert applied.code == 0, applied.err
    assert served.urls() == EXAMPLE_URLS
    stored = served.call(lambda: {e.url: e for e in served.fake.endpoints.values()})
    assert stored["https://hooks.example-shop.com/fullstory/notes"].secret == SECRETS["NOTES_WEBHOOK_SECRET"]
    assert stored["https://mobile.example-shop.com/fullstory/crashes"].enabled is False

    again = cli(*base, "apply", file, "--yes", "--json")
    assert again.code == 0
    assert [r["outcome"] for r in again.json_lines()] == ["unchanged"] * 4
    assert f"No changes at {served.url}: 4 endpoint(s) already match." in again.err
    assert "0 created, 0 updated, 4 unchanged, 0 skipped, 0 deleted, 0 failed" in again.err
    text_again = cli(*base, "apply", file)  # nothing to change: no confirmation needed
    assert text_again.code == 0
    assert text_again.out == f"No changes at {served.url}: 4 endpoint(s) already match.\n"


def test_plan_json(cli, served, secrets_set, examples):
    """`plan --json` prints one object: target, counts and the pending changes only (secret_env names only)."""
    served.call(lambda: served.fake.add_endpoint("https://hooks.example-shop.com/fullstory/notes", ["note.created"]))
    run = cli("--base-url", served.url, "--json", "plan", str(examples / "endpoints.toml"))
    assert run.code == 0
    [plan] = run.json_lines()
    assert plan["target"] == served.url
    assert plan["embedded_fake"] is False
    assert plan["summary"] == {"create": 3, "update": 0, "delete": 0, "unchanged": 1, "outside_scope": 0}
    assert [c["action"] for c in plan["changes"]] == ["create"] * 3
    alerts = next(c for c in plan["changes"] if c["url"].endswith("/alerts"))
    assert alerts["secret_env"] == "ALERTS_WEBHOOK_SECRET"


def test_updates_and_prune(cli, served, secrets_set, examples):
    """A drifted endpoint is updated; with --prune an endpoint not in the file is deleted."""
    served.call(lambda: served.fake.add_endpoint("https://hooks.example-shop.com/fullstory/notes", ["segment.created"]))
    served.call(lambda: served.fake.add_endpoint("https://hooks.example-shop.com/fullstory/old"))
    served.call(lambda: served.fake.add_endpoint("https://old.example-shop.com/hook"))  # outside the scope
    file = str(examples / "endpoints.toml")
    plan = cli("--base-url", served.url, "plan", file, "--prune")
    assert "3 to create, 1 to update, 1 to delete, 0 unchanged." in plan.out
    assert "1 endpoint(s) outside the scope left alone" in plan.out
    assert (
        "  ~ update  https://hooks.example-shop.com/fullstory/notes  "
        "event types [segment.created] -> [note.created]" in plan.out
    )
    assert "  - delete  https://hooks.example-shop.com/fullstory/old" in plan.out
    no_prune = cli("--base-url", served.url, "plan", file)
    assert "0 to delete" in no_prune.out

    applied = cli("--base-url", served.url, "apply", file, "--prune", "--yes")
    assert applied.code == 0, applied.err
    assert "3 created, 1 updated, 0 unchanged, 0 skipped, 1 deleted, 0 failed" in applied.err
    assert served.urls() == EXAMPLE_URLS | {"https://old.example-shop.com/hook"}


def test_apply_without_yes_and_without_a_terminal_is_refused(cli, served, secrets_set, examples, monkeypatch):
    """Without --yes and with stdin not a terminal, a plan that changes a real server is refused: exit 2."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    run = cli("--base-url", served.url, "apply", str(examples / "endpoints.toml"))
    assert run.code == 2
    assert f"error: refusing to make 4 change(s) to {served.url} without confirmation" in run.err
    assert "pass --yes" in run.err
    assert served.urls() == set()


@pytest.mark.parametrize(("answer", "code", "created"), [("y\n", 0, 4), ("yes\n", 0, 4), ("n\n", 1, 0), ("\n", 1, 0)])
def test_apply_asks_on_a_terminal(cli, served, secrets_set, examples, monkeypatch, terminal, answer, code, created):
    """On a terminal, apply asks on stderr and goes ahead only on y/yes."""
    monkeypatch.setattr(sys, "stdin", terminal(answer))
    run = cli("--base-url", served.url, "apply", str(examples / "endpoints.toml"))
    assert run.code == code
    assert f"Apply 4 change(s) to {served.url}? [y/N] " in run.err
    assert len(served.urls()) == created
    if not created:
        assert "apply cancelled; nothing was changed" in run.err


def test_prompt_mentions_deletes(cli, served, secrets_set, examples, monkeypatch, terminal):
    """The confirmation question says how many endpoints would be deleted."""
    served.call(lambda: served.fake.add_endpoint("https://hooks.example-shop.com/fullstory/old"))
    monkeypatch.setattr(sys, "stdin", terminal("n\n"))
    run = cli("--base-url", served.url, "apply", str(examples / "endpoints.toml"), "--prune")
    assert f"Apply 5 change(s) to {served.url}, deleting 1? [y/N] " in run.err
    assert len(served.urls()) == 1


def test_misspelt_event_name_fails_the_plan_before_any_change(cli, served, tmp_path):
    """`note.craeted` in one entry: no plan, exit 2, the entry, value and a suggestion named; nothing created."""
    file = tmp_path / "desired.toml"
    file.write_text(
        '[[endpoints]]\nurl = "https://e.com/good"\nevent_types = ["note.created"]\n\n'
        '[[endpoints]]\nurl = "https://e.com/bad"\nevent_types = ["note.craeted"]\n'
    )
    for command in (("plan",), ("apply", "--yes")):
        run = cli("--base-url", served.url, *command, str(file))
        assert run.code == 2, run.err
        assert "endpoints[1].event_types[0].event_name" in run.err
        assert "'note.craeted'" in run.err
        assert 'did you mean "note.created"?' in run.err
    assert served.urls() == set()


BAD_FILES = [
    ("[[endpoints]\nurl = 1", "invalid TOML"),
    (
        '[[endpoints]]\nurl = "https://e.com/a"\nevent_types = [""]\n',
        "endpoints[0].event_types[0].event_name: must not be empty",
    ),
    (
        '[[endpoints]]\nurl = "https://e.com/a"\nsecret = "s3cr3t-literal"\n',
        "endpoints[0].secret: secrets do not belong in the file",
    ),
    ('[[endpoints]]\nurl = "ftp://e.com/a"\n', "endpoints[0].url: must be an absolute http(s) URL"),
]


@pytest.mark.parametrize(("content", "problem"), BAD_FILES)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_malformed_file_exits_2_naming_the_problem(cli, clean_env, tmp_path, content, problem, command):
    """A malformed desired-state file exits 2 with the DesiredStateError message (file and field)."""
    file = tmp_path / "bad.toml"
    file.write_text(content)
    run = cli(command, str(file), "--yes") if command == "apply" else cli(command, str(file))
    assert run.code == 2
    assert run.out == ""
    last = run.err.splitlines()[-1]
    assert last.startswith(f"error: {file}")
    assert problem in last
    assert "s3cr3t-literal" not in run.err


def test_missing_file_exits_2(cli, clean_env, tmp_path):
    """A desired-state file that does not exist exits 2 naming it."""
    run = cli("plan", str(tmp_path / "nope.toml"))
    assert run.code == 2
    assert f"error: {tmp_path / 'nope.toml'}: cannot read" in run.err


def test_secrets_never_appear_in_any_output(cli, served, secrets_set, examples):
    """Plan, apply, re-apply with --rotate-secrets and listings, even at -vv, never print a secret or the key."""
    file = str(examples / "endpoints.toml")
    base = ("-vv", "--base-url", served.url)
    runs = [
        cli(*base, "plan", file),
        cli(*base, "apply", file, "--yes", "--json"),
        cli(*base, "plan", file, "--rotate-secrets", "--json"),
        cli(*base, "plan", file, "--rotate-secrets"),
        cli(*base, "apply", file, "--rotate-secrets", "--yes"),
        cli(*base, "endpoints", "list", "--json"),
    ]
    assert all(run.code == 0 for run in runs), [run.err for run in runs]
    assert "rotate secret (from NOTES_WEBHOOK_SECRET)" in runs[3].out
    assert "4 updated" in runs[4].err
    everything = "".join(run.out + run.err for run in runs)
    for secret in (*SECRETS.values(), served.api_key):
        assert secret not in everything


def test_every_unset_secret_env_is_named_at_once(cli, served, examples):
    """Against a real server, the four unset variables of the example are one error naming each, exit 2.

    Not one rerun at a time: nothing is created before it.
    """
    run = cli("--base-url", served.url, "apply", str(examples / "endpoints.toml"), "--yes")
    assert run.code == 2
    [line] = run.err.splitlines()
    assert "4 environment variable(s) are not set" in line
    for number, name in enumerate(SECRET_VARS):
        assert f"{name} (endpoints[{number}])" in line
    assert served.urls() == set()
