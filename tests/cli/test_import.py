"""`import --scope PREFIX...`: the desired-state file of the endpoints inside a scope."""

from __future__ import annotations

import json
import os
import stat
import tomllib

from aiohttp import web

from fullstory_async import load_desired_state
from fullstory_async.cli._import import secret_env_names
from fullstory_async.testing import StoredEventType
from fullstory_async.testing._catalogue import opaque_subcategory

HOOKS = "https://hooks.example-shop.com/fullstory/"
ALERT = opaque_subcategory("segment.trend.alert", "Checkout errors above 5%")


def _written(path, text):
    path.write_text(text)
    return path


def _populate(served):
    fake = served.fake
    served.call(lambda: fake.add_endpoint(HOOKS + "notes", ["note.created"], secret="kept-secret-1"))
    served.call(
        lambda: fake.add_endpoint(
            HOOKS + "alerts",
            [StoredEventType("segment.trend.alert", ALERT), "segment.created"],
            enabled=False,
        )
    )
    served.call(lambda: fake.add_endpoint("https://other.example.com/fullstory/x", ["note.created"]))
    served.call(lambda: fake.add_endpoint("https://hooks.example-shop.com/fullstory-old/y", ["note.created"]))


def test_import_then_plan_shows_no_change(cli, served, tmp_path):
    """The imported TOML lists the endpoints inside the scope, sorted, and plan on it changes nothing."""
    _populate(served)
    out = tmp_path / "imported.toml"
    run = cli("--base-url", served.url, "import", "--scope", HOOKS, "--out", str(out))
    assert run.code == 0, run.err
    assert "imported 2 endpoint(s); 2 outside the scope left out" in run.err
    text = out.read_text()
    document = tomllib.loads(text)
    assert document["scope"] == [HOOKS]
    assert [e["url"] for e in document["endpoints"]] == [HOOKS + "alerts", HOOKS + "notes"]
    assert document["endpoints"][0]["enabled"] is False
    assert "enabled" not in document["endpoints"][1]
    assert "secret_env" not in document["endpoints"][0]  # commented out: secrets cannot be read back
    for name in (
        "FS_WEBHOOK_SECRET_HOOKS_EXAMPLE_SHOP_COM_FULLSTORY_ALERTS",
        "FS_WEBHOOK_SECRET_HOOKS_EXAMPLE_SHOP_COM_FULLSTORY_NOTES",
    ):
        assert f'# secret_env = "{name}"  # uncomment once {name} holds the secret' in text
    # uncommented (the variable set), the file is still a desired state, and the secret is managed
    uncommented = text.replace("# secret_env", "secret_env")
    names = {
        "FS_WEBHOOK_SECRET_HOOKS_EXAMPLE_SHOP_COM_FULLSTORY_ALERTS": "a",
        "FS_WEBHOOK_SECRET_HOOKS_EXAMPLE_SHOP_COM_FULLSTORY_NOTES": "n",
    }
    managed = load_desired_state(_written(tmp_path / "managed.toml", uncommented), environ=names)
    assert {e.secret_env for e in managed.endpoints} == set(names)
    assert "Secrets cannot be read back" in text
    state = load_desired_state(out, environ={})
    assert {e.url for e in state.endpoints} == {HOOKS + "alerts", HOOKS + "notes"}

    plan = cli("--base-url", served.url, "plan", str(out), "--prune", "--exit-code")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes" in plan.out
    assert served.call(lambda: served.fake.endpoints_with_url(HOOKS + "notes")[0].secret) == "kept-secret-1"


def test_import_json_and_stdout(cli, served, tmp_path):
    """--out FILE.json writes JSON (suggested names on stderr); without --out the TOML goes to stdout."""
    _populate(served)
    out = tmp_path / "imported.json"
    run = cli("--base-url", served.url, "import", "--scope", HOOKS, "https://other.example.com/", "--out", str(out))
    assert run.code == 0, run.err
    document = json.loads(out.read_text())
    assert document["scope"] == [HOOKS, "https://other.example.com/"]
    assert [e["url"] for e in document["endpoints"]] == [
        HOOKS + "alerts",
        HOOKS + "notes",
        "https://other.example.com/fullstory/x",
    ]
    assert document["endpoints"][0]["event_types"] == [
        {"event_name": "segment.trend.alert", "subcategory": ALERT},
        "segment.created",
    ]
    assert "FS_WEBHOOK_SECRET_OTHER_EXAMPLE_COM_FULLSTORY_X" in run.err
    plan = cli("--base-url", served.url, "plan", str(out), "--exit-code")
    assert plan.code == 0, plan.out + plan.err

    printed = cli("--base-url", served.url, "import", "--scope", HOOKS)
    assert printed.code == 0
    assert tomllib.loads(printed.out)["scope"] == [HOOKS]


def test_existing_out_is_refused_without_force(cli, served, tmp_path):
    """An existing --out file is kept (exit 2) unless --force is given."""
    _populate(served)
    out = tmp_path / "mine.toml"
    out.write_text("# my own work\n")
    run = cli("--base-url", served.url, "import", "--scope", HOOKS, "--out", str(out))
    assert run.code == 2
    assert "exists; pass --force" in run.err
    assert out.read_text() == "# my own work\n"
    forced = cli("--base-url", served.url, "import", "--scope", HOOKS, "--out", str(out), "--force")
    assert forced.code == 0, forced.err
    assert len(tomllib.loads(out.read_text())["endpoints"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml"]  # no temporary file left


def test_unwritable_out_is_a_usage_error(cli, served, tmp_path):
    """--out in a missing folder, or --force over a folder: exit 2 naming the file, nothing left behind."""
    _populate(served)
    (tmp_path / "folder").mkdir()
    for out, extra in ((tmp_path / "missing" / "x.toml", ()), (tmp_path / "folder", ("--force",))):
        run = cli("--base-url", served.url, "import", "--scope", HOOKS, "--out", str(out), *extra)
        assert run.code == 2
        assert f"--out: cannot write {out}" in run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_scope_with_nothing_in_it_writes_nothing(cli, served, tmp_path):
    """A scope that holds no endpoint (a typo?) is exit 1 and no file, naming how many are outside it."""
    _populate(served)
    out = tmp_path / "empty.toml"
    run = cli(
        "--base-url", served.url, "import", "--scope", "https://hooks.example-shop.com/fulstory/", "--out", str(out)
    )
    assert run.code == 1
    assert "no endpoint" in run.err
    assert "4 outside it" in run.err
    assert not out.exists()


def test_bad_scope_is_a_usage_error(cli, served):
    """A scope prefix that is not an absolute http(s) URL: exit 2, naming scope."""
    run = cli("--base-url", served.url, "import", "--scope", "hooks.example.com/")
    assert run.code == 2
    assert "scope[0]" in run.err


def _raw_api(endpoints, status=200):
    async def listing(request):
        if status != 200:
            return web.json_response({"code": "unauthenticated", "message": "bad key"}, status=status)
        return web.json_response({"endpoints": endpoints})

    app = web.Application()
    app.router.add_get("/webhooks/v1/endpoints", listing)
    return app


def _endpoint(url, number):
    stamp = "2024-05-01T10:00:00Z"
    return {
        "id": f"id{number}",
        "url": url,
        "enabled": True,
        "eventTypes": [{"eventName": "note.created"}],
        "created": stamp,
        "modified": stamp,
    }


def test_ambiguous_urls_are_left_out_and_named_by_a_raw_server(cli, served, tmp_path):
    """URLs the scope rules call ambiguous are never imported; a comment names them (credentials hidden)."""
    urls = [
        HOOKS + "good",
        HOOKS + "two words",
        "https://admin:hunter2pass@hooks.example-shop.com/fullstory/x",
        HOOKS + "back\\slash",
    ]
    base = served.serve(_raw_api([_endpoint(url, i) for i, url in enumerate(urls)]))
    out = tmp_path / "raw.toml"
    run = cli("--base-url", base, "import", "--scope", HOOKS, "--out", str(out))
    assert run.code == 0, run.err
    text = out.read_text()
    state = load_desired_state(out, environ={})
    assert [e.url for e in state.endpoints] == [HOOKS + "good"]
    assert "# Left out" in text
    for shown in ("two words", "back\\\\slash", "https://***@hooks.example-shop.com/fullstory/x"):
        assert shown in text
    assert "hunter2pass" not in text + run.err + run.out
    assert run.err.count("left out") >= 3


def test_unauthorized_exits_1(cli, served):
    """A 401 from the API is exit 1 with the status named."""
    base = served.serve(_raw_api([], status=401))
    run = cli("--base-url", base, "import", "--scope", HOOKS)
    assert run.code == 1
    assert "401" in run.err


def test_secret_env_names_collide_into_suffixes():
    """Upper case, other characters `_`, a name already taken gets _2, _3."""
    assert secret_env_names(
        ["https://a.example.com/x-y", "https://a.example.com/x_y", "http://A.example.com/x.y", "https://b.io/"]
    ) == [
        "FS_WEBHOOK_SECRET_A_EXAMPLE_COM_X_Y",
        "FS_WEBHOOK_SECRET_A_EXAMPLE_COM_X_Y_2",
        "FS_WEBHOOK_SECRET_A_EXAMPLE_COM_X_Y_3",
        "FS_WEBHOOK_SECRET_B_IO",
    ]


def test_one_url_twice_is_imported_once_and_plan_shows_no_change(cli, served, tmp_path):
    """Two endpoints whose URLs are one (host case): the first is imported, the other named; plan changes nothing.

    Both used to be written, and the file was refused by plan ("the same endpoint as endpoints[0]").
    """
    fake = served.fake
    served.call(lambda: fake.add_endpoint(HOOKS + "notes", ["note.created"]))
    served.call(lambda: fake.add_endpoint("https://HOOKS.example-shop.com/fullstory/notes", ["segment.created"]))
    out = tmp_path / "imported.toml"
    run = cli("--base-url", served.url, "import", "--scope", HOOKS, "--out", str(out))
    assert run.code == 0, run.err
    assert "a second endpoint with the same URL" in run.err
    state = load_desired_state(out, environ={})
    assert [(e.url, [t.event_name for t in e.event_types]) for e in state.endpoints] == [
        (HOOKS + "notes", ["note.created"])
    ]
    plan = cli("--base-url", served.url, "plan", str(out), "--prune", "--exit-code")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes" in plan.out


def test_an_endpoint_listed_twice_is_imported_once_and_invalid_text_writes_nothing(cli, served, tmp_path):
    """A repeated id is imported once; invalid text in a URL is a decode error (exit 1), nothing written.

    A URL holding a lone surrogate or a control character names its field; no traceback.
    """
    good = _endpoint(HOOKS + "good", 1)
    base = served.serve(_raw_api([good, good]))
    for name in ("raw.toml", "raw.json"):
        out = tmp_path / name
        run = cli("--base-url", base, "import", "--scope", HOOKS, "--out", str(out))
        assert run.code == 0, run.err
        assert [e.url for e in load_desired_state(out, environ={}).endpoints] == [HOOKS + "good"]
    for bad, said in ((HOOKS + "a\ud800b", "lone surrogate"), (HOOKS + "line\nbreak", "control character")):
        base = served.serve(_raw_api([good, _endpoint(bad, 2)]))
        out = tmp_path / "refused.toml"
        run = cli("--base-url", base, "import", "--scope", HOOKS, "--out", str(out))
        assert run.code == 1
        assert "Traceback" not in run.err
        assert said in run.err
        assert "$.endpoints[1].url" in run.err
        assert not out.exists()


def test_out_gets_the_umask_s_mode_and_force_replaces_a_symlink_not_its_target(cli, served, tmp_path):
    """The file is 0644 under umask 022, as any new file (mkstemp's 0600 used to stick).

    --force on a symlink replaces the link itself: the file it points to is untouched. No temporary is left.
    """
    _populate(served)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "link.toml"
    link.symlink_to(victim)
    previous = os.umask(0o022)
    try:
        refused = cli("--base-url", served.url, "import", "--scope", HOOKS, "--out", str(link))
        run = cli("--base-url", served.url, "import", "--scope", HOOKS, "--out", str(link), "--force")
    finally:
        os.umask(previous)
    assert refused.code == 2
    assert run.code == 0, run.err
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink()
    assert stat.S_IMODE(link.stat().st_mode) == 0o644
    assert load_desired_state(link, environ={}).endpoints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.toml", "victim.txt"]
