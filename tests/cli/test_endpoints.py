"""`endpoints list|get|create|update|delete`, `event-types` and `subcategories`."""

from __future__ import annotations

import re

from fullstory_async.testing._catalogue import opaque_subcategory

ALERT = opaque_subcategory("segment.trend.alert", "Checkout errors above 5%")
SECRET = "cli-test-secret-Zq81vXw"


def test_endpoint_lifecycle_against_a_served_fake(cli, served, monkeypatch):
    """Create, get, list, update and delete one endpoint with --json; the fake sees each change."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    base = ("--base-url", served.url, "--json")
    url = "https://example.com/hooks/notes"
    created = cli(
        *base, "endpoints", "create", "--url", url, "--event-type", "note.created", "--secret-env", "HOOK_SECRET"
    )
    assert created.code == 0, created.err
    [record] = created.json_lines()
    assert record["url"] == url
    assert record["enabled"] is True
    assert record["event_types"] == [{"event_name": "note.created"}]
    endpoint_id = record["id"]
    assert served.call(lambda: served.fake.endpoints[endpoint_id].secret) == SECRET

    got = cli(*base, "endpoints", "get", endpoint_id)
    assert got.code == 0
    assert got.json_lines() == [record]

    listed = cli(*base, "endpoints", "list")
    assert [r["id"] for r in listed.json_lines()] == [endpoint_id]

    updated = cli(
        *base, "endpoints", "update", endpoint_id, "--event-type", f"segment.trend.alert:{ALERT}", "--disable"
    )
    assert updated.code == 0, updated.err
    [after] = updated.json_lines()
    assert after["enabled"] is False
    assert after["event_types"] == [{"event_name": "segment.trend.alert", "subcategory": ALERT}]

    deleted = cli(*base, "endpoints", "delete", endpoint_id)
    assert deleted.code == 0
    assert deleted.json_lines() == [{"deleted": endpoint_id}]
    assert served.urls() == set()
    for run in (created, got, listed, updated, deleted):
        assert SECRET not in run.out + run.err
        assert run.err == ""


def test_list_prints_an_aligned_table(cli, served):
    """`endpoints list` prints a header and one row per endpoint, columns aligned."""
    served.call(lambda: served.fake.add_endpoint("https://example.com/a", ["note.created", "segment.created"]))
    served.call(lambda: served.fake.add_endpoint("https://example.com/longer/path", enabled=False))
    run = cli("--base-url", served.url, "endpoints", "list")
    assert run.code == 0
    header, first, second = run.out.splitlines()
    assert header.split() == ["ID", "ENABLED", "URL", "EVENT", "TYPES"]
    assert re.split(r"\s{2,}", first)[1:] == ["yes", "https://example.com/a", "note.created, segment.created"]
    assert re.split(r"\s{2,}", second)[1:] == ["no", "https://example.com/longer/path", "note.created"]
    assert header.index("URL") == first.index("https://") == second.index("https://")


def test_list_of_nothing_says_so(cli, clean_env):
    """`endpoints list` on the (empty) embedded fake prints `No endpoints.` and exits 0."""
    run = cli("endpoints", "list")
    assert run.code == 0
    assert run.out == "No endpoints.\n"


def test_get_prints_fields_as_text(cli, served):
    """`endpoints get ID` prints one `key: value` line per field."""
    stored = served.call(lambda: served.fake.add_endpoint("https://example.com/a"))
    run = cli("--base-url", served.url, "endpoints", "get", stored.id)
    assert run.code == 0
    assert f"id:          {stored.id}" in run.out
    assert "url:         https://example.com/a" in run.out
    assert "event types: note.created" in run.out


def test_get_missing_endpoint_is_exit_1(cli, served):
    """A 404 prints `error: 404 ...` naming the call and exits 1."""
    run = cli("--base-url", served.url, "endpoints", "get", "bm9wZQ")
    assert run.code == 1
    assert run.err.startswith("error: 404 resource_not_found:")
    assert "(GET /webhooks/v1/endpoints/bm9wZQ)" in run.err


def test_create_never_duplicates_an_existing_url(cli, served):
    """`endpoints create` for a URL that exists fails with exit 1 and creates nothing."""
    served.call(lambda: served.fake.add_endpoint("https://example.com/a"))
    run = cli(
        "--base-url", served.url, "endpoints", "create", "--url", "https://example.com/a", "--event-type", "x.y",
        "--no-secret",
    )  # fmt: skip
    assert run.code == 1
    assert "already exists" in run.err
    assert len(served.call(lambda: served.fake.endpoints_with_url("https://example.com/a"))) == 1


def test_create_with_a_misspelt_event_type_is_exit_1_with_a_did_you_mean(cli, served):
    """The API's 400 is printed in one line with exit 1, then a did-you-mean from the catalogue, fetched only then."""
    base = ("--base-url", served.url, "endpoints", "create", "--no-secret")
    run = cli(*base, "--url", "https://e.com/a", "--event-type", "note.craeted", "--event-type", "segment.created")
    assert run.code == 1
    [line] = run.err.splitlines()
    assert line.startswith("error: 400 invalid_argument: eventTypes[0].eventName: unknown event type")
    assert line.endswith("""; 'note.craeted' is not an event type of this account (did you mean "note.created"?)""")
    operations = served.call(lambda: [r.operation for r in served.fake.requests])
    assert operations[-1] == "list_event_types"  # after the refusal
    served.call(served.fake.requests.clear)
    good = cli(*base, "--url", "https://e.com/b", "--event-type", "note.created")
    assert good.code == 0, good.err
    assert "list_event_types" not in served.call(lambda: [r.operation for r in served.fake.requests])


def test_update_with_a_misspelt_event_type_gets_the_did_you_mean_too(cli, served):
    """`endpoints update --event-type segment.craeted`: the server's 400, then the closest catalogue name."""
    endpoint = served.call(lambda: served.fake.add_endpoint("https://e.com/a"))
    run = cli("--base-url", served.url, "endpoints", "update", endpoint.id, "--event-type", "segment.craeted")
    assert run.code == 1
    assert run.err.startswith("error: 400 ")
    assert run.err.rstrip().endswith("""(did you mean "segment.created"?)""")


def test_create_without_a_secret_is_refused_unless_no_secret(cli, served):
    """No --secret-env: exit 2 naming --no-secret, nothing created; with --no-secret it is created."""
    base = ("--base-url", served.url, "endpoints", "create", "--url", "https://e.com/a", "--event-type", "note.created")
    run = cli(*base)
    assert run.code == 2
    assert "--secret-env VAR is required" in run.err
    assert "--no-secret" in run.err
    assert served.urls() == set()
    assert cli(*base, "--no-secret").code == 0
    assert served.urls() == {"https://e.com/a"}


def test_bad_flags_are_usage_errors(cli, clean_env):
    """A relative --url, an empty event name or an update that changes nothing exit 2 naming the option."""
    relative = cli("endpoints", "create", "--url", "/hooks", "--event-type", "note.created")
    assert relative.code == 2
    assert "error: --url: must be an absolute http(s) URL" in relative.err
    empty = cli("endpoints", "create", "--url", "https://e.com/a", "--event-type", ":abc")
    assert empty.code == 2
    assert "error: --event-type ':abc': event_name: must not be empty" in empty.err
    nothing = cli("endpoints", "update", "abc")
    assert nothing.code == 2
    assert "error: nothing to change" in nothing.err
    both = cli("endpoints", "update", "abc", "--enable", "--disable")
    assert both.code == 2


def test_secret_env_unset_against_a_real_server_is_a_usage_error(cli, served):
    """--secret-env naming an unset variable exits 2 (never a made-up secret for a real server)."""
    run = cli(
        "--base-url", served.url, "endpoints", "create", "--url", "https://e.com/a", "--event-type", "note.created",
        "--secret-env", "UNSET_HOOK_SECRET",
    )  # fmt: skip
    assert run.code == 2
    assert "error: --secret-env: environment variable UNSET_HOOK_SECRET is not set" in run.err
    assert served.urls() == set()


def test_secret_env_unset_on_the_embedded_fake_gets_a_throwaway(cli, clean_env):
    """On the embedded fake an unset --secret-env variable gets a throwaway secret, said in one line."""
    clean_env.delenv("UNSET_HOOK_SECRET", raising=False)
    run = cli(
        "endpoints", "create", "--url", "https://e.com/a", "--event-type", "note.created",
        "--secret-env", "UNSET_HOOK_SECRET",
    )  # fmt: skip
    assert run.code == 0, run.err
    notices = [line for line in run.err.splitlines() if "throwaway" in line]
    assert notices == [
        "fullstory-async: UNSET_HOOK_SECRET is not set; the embedded fake gets a throwaway random secret "
        "for each unset secret_env variable (never a real server)"
    ]


def test_event_types_table_and_json(cli, clean_env):
    """`event-types` lists the catalogue as a table, or as one JSON object a line."""
    text = cli("event-types")
    assert text.code == 0
    assert text.out.splitlines()[0].split() == ["EVENT", "NAME", "DISPLAY", "NAME", "SUBCATEGORIES"]
    assert "segment.trend.alert       Segment Alert        yes" in text.out
    as_json = cli("event-types", "--json")
    assert {"event_name": "note.created", "display_name": "Note Created", "has_subcategories": False} in (
        as_json.json_lines()
    )


def test_subcategories(cli, served):
    """`subcategories EVENT` lists the opaque values to use in NAME:SUBCATEGORY."""
    run = cli("--base-url", served.url, "--json", "subcategories", "segment.trend.alert")
    assert run.code == 0
    assert run.json_lines()[0] == {"subcategory": ALERT, "display_name": "Checkout errors above 5%"}
    text = cli("--base-url", served.url, "subcategories", "segment.trend.alert")
    assert f"{ALERT}  Checkout errors above 5%" in text.out
    none = cli("--base-url", served.url, "subcategories", "note.created")
    assert none.out == "note.created has no subcategories.\n"
    unknown = cli("--base-url", served.url, "subcategories", "no.such.event")
    assert unknown.code == 1
    assert unknown.err.startswith("error: 404")


def test_a_secret_the_server_echoes_in_an_error_never_reaches_the_output(cli, clean_env, served):
    """A raw server answering 400 with the request body repeated: the CLI prints <redacted>, not the secret."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        if request.method == "GET":  # create looks for an endpoint with that URL first
            return web.json_response({"endpoints": []})
        sent = await request.text()
        return web.json_response({"code": "invalid_argument", "message": f"invalid request: {sent}"}, status=400)

    app = web.Application()
    app.router.add_route("*", "/webhooks/v1/endpoints", echo)
    url = served.serve(app)
    clean_env.setenv("HOOK_SECRET", SECRET)
    for extra in ((), ("--json",)):
        run = cli(
            "--base-url", url, *extra, "endpoints", "create", "--url", "https://example.com/h",
            "--event-type", "note.created", "--secret-env", "HOOK_SECRET",
        )  # fmt: skip
        assert run.code == 1
        assert "invalid request" in run.err
        assert "<redacted>" in run.err
        assert SECRET not in run.out + run.err


def test_secret_env_and_no_secret_together_are_refused(cli, served, monkeypatch):
    """--secret-env with --no-secret: exit 2, nothing created (the secret used to win silently)."""
    monkeypatch.setenv("BOTH_SECRET", "both-secret-value-7")
    run = cli(
        "--base-url", served.url, "endpoints", "create", "--url", "https://e.com/a", "--event-type", "note.created",
        "--secret-env", "BOTH_SECRET", "--no-secret",
    )  # fmt: skip
    assert run.code == 2
    assert "--no-secret" in run.err
    assert "--secret-env" in run.err
    assert served.urls() == set()
