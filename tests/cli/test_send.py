"""`send URL`: signed deliveries to a receiver (our own, and raw aiohttp apps shaped otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import subprocess
import sys

import pytest
from aiohttp import web

from fullstory_async.cli._send import DEFAULT_ORG_ID, Answer, Tally, _without_credentials
from fullstory_async.receiving import add_webhook_route, open_inbox, verify
from fullstory_async.testing._samples import SAMPLE_EVENT_NAMES
from tests.cli.conftest import ROOT

SECRET = "send-test-secret-4tQm9"


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("SEND_SECRET", SECRET)
    return "SEND_SECRET"


@pytest.fixture
def receiver(served, tmp_path):
    """Our receiver with a SQLite inbox, on the served loop; yields (url, stats())."""
    stack = contextlib.AsyncExitStack()

    async def start():
        inbox = await stack.enter_async_context(open_inbox(f"sqlite:///{tmp_path}/inbox.db"))
        app = web.Application()
        add_webhook_route(app, "/hooks", [SECRET], inbox=inbox)
        return inbox, app

    inbox, app = served.run(start())
    url = served.serve(app) + "/hooks"
    yield url, lambda: served.run(inbox.stats())
    served.run(stack.aclose())


class Recorder:
    """A raw app: records each request and answers ``status`` (with ``headers``)."""

    def __init__(self, status=200, headers=None):
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.status = status
        self.headers = headers or {}

    def app(self):
        async def handle(request):
            self.requests.append((await request.read(), dict(request.headers)))
            return web.Response(status=self.status, headers=self.headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


def test_count_stores_that_many_events_in_our_receiver(cli, receiver, secret):
    """--count 25 makes 25 different events (new id and time each): the de-duplicating inbox stores 25."""
    url, stats = receiver
    run = cli("send", url, "--secret-env", secret, "--count", "25", "--concurrency", "4")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert len(lines) == 25
    assert all(" 202 " in line for line in lines)
    assert stats().pending == 25
    summary = run.err.strip().splitlines()[-1]
    assert "25 sent: 25 2xx, 0 other, 0 no answer" in summary
    for name in ("p50", "p90", "p99", "max"):
        assert f"{name} " in summary
    assert SECRET not in run.out + run.err


def test_every_documented_event_type_is_signed_and_unique(cli, served, secret):
    """Each documented event type is sent as a verifiable delivery of that type, with a fresh id."""
    recorder = Recorder(202)
    url = served.serve(recorder.app())
    for name in SAMPLE_EVENT_NAMES:
        run = cli("send", url, "--secret-env", secret, "--event-type", name, "--count", "2", "--json")
        assert run.code == 0, run.err
        assert [r["status"] for r in run.json_lines()] == [202, 202]
    assert len(recorder.requests) == 2 * len(SAMPLE_EVENT_NAMES)
    ids = set()
    for body, headers in recorder.requests:
        assert headers["Content-Type"] == "application/json"
        event = verify(body, headers["Fullstory-Signature"], SECRET, org_id=DEFAULT_ORG_ID)
        ids.add(json.loads(body)["data"]["id"])
        assert event.event_name in SAMPLE_EVENT_NAMES
    assert len(ids) == len(recorder.requests)


def test_body_file_is_sent_as_is(cli, served, secret, tmp_path):
    """--body FILE: those exact bytes, signed for --org-id, every time."""
    recorder = Recorder(204)
    url = served.serve(recorder.app())
    body = b'{"eventName":"note.created","version":1,"data":{"text":"caf\xc3\xa9"}}  \n'
    (tmp_path / "body.json").write_bytes(body)
    run = cli(
        "send", url, "--secret-env", secret, "--body", str(tmp_path / "body.json"), "--org-id", "o-X", "--count", "3"
    )
    assert run.code == 0, run.err
    assert [b for b, _ in recorder.requests] == [body] * 3
    for sent, headers in recorder.requests:
        verify(sent, headers["Fullstory-Signature"], SECRET, org_id="o-X")


def test_a_refusal_exits_1(cli, receiver, monkeypatch):
    """Signed with the wrong secret, our receiver answers 401: printed, exit 1, nothing stored."""
    url, stats = receiver
    monkeypatch.setenv("WRONG", "not-the-secret")
    run = cli("send", url, "--secret-env", "WRONG", "--json")
    assert run.code == 1
    [answer] = run.json_lines()
    assert answer["status"] == 401
    assert answer["error"] is None
    assert stats().pending == 0


def test_one_bad_answer_among_good_ones_exits_1(cli, served, secret):
    """Exit 0 only when every answer is 2xx: a 500 on the second of three is exit 1."""
    answers = iter([202, 500, 202])

    async def handle(request):
        await request.read()
        return web.Response(status=next(answers))

    app = web.Application()
    app.router.add_post("/", handle)
    run = cli("send", served.serve(app) + "/", "--secret-env", secret, "--count", "3", "--concurrency", "1")
    assert run.code == 1
    assert [line.split()[1] for line in run.out.splitlines()] == ["202", "500", "202"]
    assert "3 sent: 2 2xx, 1 other, 0 no answer" in run.err


def test_redirects_are_not_followed(cli, served, secret):
    """A 307 is the answer (exit 1); the place it points to gets nothing."""
    elsewhere = Recorder(202)
    target = served.serve(elsewhere.app())
    redirector = Recorder(307, {"Location": target + "/moved"})
    run = cli("send", served.serve(redirector.app()) + "/", "--secret-env", secret, "--json")
    assert run.code == 1
    assert run.json_lines()[0]["status"] == 307
    assert len(redirector.requests) == 1
    assert elsewhere.requests == []


def test_receiver_down_exits_1(cli, secret):
    """Nothing listening: each delivery is a failed line naming why, exit 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    run = cli("send", f"http://127.0.0.1:{port}/", "--secret-env", secret, "--count", "2", "--json")
    assert run.code == 1
    answers = run.json_lines()
    assert [a["status"] for a in answers] == [None, None]
    assert all(a["error"] for a in answers)
    assert "2 sent: 0 2xx, 0 other, 2 no answer" in run.err


def test_a_receiver_that_never_answers_times_out(cli, served, secret):
    """--timeout bounds each delivery: a receiver that holds the request is a timed-out failure."""

    async def hold(request):
        await asyncio.Event().wait()

    app = web.Application()
    app.router.add_post("/", hold)
    run = cli("send", served.serve(app) + "/", "--secret-env", secret, "--timeout", "0.2", "--json")
    assert run.code == 1
    assert run.json_lines()[0]["error"] == "timed out"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("http://127.0.0.1:1/", "--secret-env", "UNSET_SEND_SECRET"), "UNSET_SEND_SECRET is not set"),
        (
            ("http://127.0.0.1:1/", "--secret-env", "SEND_SECRET", "--event-type", "note.craeted"),
            'did you mean "note.created"',
        ),
        (("ftp://127.0.0.1/", "--secret-env", "SEND_SECRET"), "absolute http(s) URL"),
        (("http://127.0.0.1:1/", "--secret-env", "SEND_SECRET", "--body", "/no/such/file"), "--body: cannot read"),
        (("http://127.0.0.1:1/", "--secret-env", "SEND_SECRET", "--count", "0"), "--count"),
        (("http://127.0.0.1:1/",), "--secret-env"),
    ],
)
def test_usage_errors_exit_2_before_sending(cli, secret, args, message):
    """Bad usage: exit 2, the message names what is wrong, nothing is sent (port 1 would refuse)."""
    run = cli("send", *args)
    assert run.code == 2
    assert message in run.err
    assert run.out == ""


def test_json_usage_error_is_one_object(cli, secret):
    """With --json a usage error is one JSON object on stderr."""
    run = cli("send", "http://127.0.0.1:1/", "--secret-env", "UNSET_SEND_SECRET", "--json")
    assert run.code == 2
    assert json.loads(run.err)["error"]["type"] == "UsageError"


def _tally(latencies):
    tally = Tally()
    for number, latency in enumerate(latencies, 1):
        tally.add(Answer(number, 202, latency))
    return tally


def test_nearest_rank_percentiles():
    """p50 of 1..10 ms is 5 ms, p90 9 ms, p99 and max 10 ms (nearest rank, within the histogram's 0.1%)."""
    tally = _tally([v / 1000 for v in range(1, 11)])
    expected = [0.005, 0.009, 0.010, 0.010]
    for fraction, value in zip((0.5, 0.9, 0.99, 1.0), expected, strict=True):
        assert value <= tally.percentile(fraction) <= value * 1.001
    assert tally.percentile(1.0) == 0.010  # the maximum is exact
    assert _tally([0.003]).percentile(0.5) == 0.003


def test_the_tally_does_not_grow_with_the_count():
    """50,000 answers from 1 µs to 100 s: a few thousand buckets at most, each percentile within 0.1% of exact.

    Every answer used to be kept (136 bytes each: --count 10,000,000 held 1.4 GB).
    """
    rng = random.Random(7)
    latencies = [10 ** rng.uniform(-6, 2) for _ in range(50_000)]
    tally = _tally(latencies)
    assert len(tally.buckets) < 25_000
    exact = sorted(latencies)
    for fraction in (0.5, 0.9, 0.99, 1.0):
        value = exact[max(1, math.ceil(fraction * len(exact))) - 1]
        assert value <= tally.percentile(fraction) <= value * 1.001
    assert tally.summary().startswith("50000 sent: 50000 2xx, 0 other, 0 no answer; latency p50 ")


def test_closed_stdout_ends_quietly(served, secret, monkeypatch):
    """`send ... | head -1`: no traceback when stdout closes mid-run, exit 1 (not everything was written)."""
    recorder = Recorder(202)
    url = served.serve(recorder.app())
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fullstory_async",
            "send",
            url,
            "--secret-env",
            secret,
            "--count",
            "2000",
            "--rate",
            "500",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert b" 202 " in process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(30) == 1
    assert b"Traceback" not in stderr
    assert len(recorder.requests) < 2000


def test_concurrency_above_aiohttp_s_own_cap_is_in_flight_at_once(cli, served, secret):
    """--concurrency 120: all 120 are at the receiver together (aiohttp's default pool of 100 queued 20 unseen).

    The receiver answers only once 120 requests are held; with 100 at most it never does and every one times out.
    """
    held = 0
    everyone = asyncio.Event()

    async def gate(request):
        nonlocal held
        await request.read()
        held += 1
        if held >= 120:
            everyone.set()
        await everyone.wait()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/", gate)
    run = cli("send", served.serve(app) + "/", "--secret-env", secret, "--count", "120", "--concurrency", "120")
    assert run.code == 0, run.err[-500:]
    assert "120 sent: 120 2xx" in run.err


def test_an_endless_answer_body_is_not_read(cli, served, secret):
    """A receiver answering 200 with a body that never ends: the status is the answer (exit 0), not a timeout.

    The whole body used to be read into memory (a 600 MB answer took 1.8 GB) until --timeout ended it.
    """

    async def endless(request):
        await request.read()
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(b"x" * 65536)
        return response

    app = web.Application()
    app.router.add_post("/", endless)
    run = cli("send", served.serve(app) + "/", "--secret-env", secret, "--count", "2", "--timeout", "2", "--json")
    assert run.code == 0, run.out + run.err
    assert [(a["status"], a["error"]) for a in run.json_lines()] == [(200, None), (200, None)]


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("http://user:hunter2x@127.0.0.1:99999/", "hunter2x"),  # aiohttp quoted the whole URL in its error
        ("http://user:hun/ter2@127.0.0.1/", "ter2"),  # a / in the password: parsers see port "hun"
        ("http://user:hunter2x@[::1/", "hunter2x"),  # was a ValueError traceback
    ],
)
def test_an_unparsable_url_is_a_usage_error_that_hides_its_password(cli, secret, url, password):
    """An invalid port or bracket: exit 2 before sending, the password in neither the text nor the --json output."""
    for output in ((), ("--json",)):
        run = cli("send", url, "--secret-env", secret, *output)
        assert run.code == 2
        assert "not a valid URL" in run.err
        assert password not in run.out + run.err
        assert "Traceback" not in run.err


def test_a_client_error_quoting_the_url_hides_its_credentials():
    """The text of a failed delivery never carries the URL's user or password."""
    text = _without_credentials("InvalidUrlClientError: http://admin:s3cret@h/", "http://admin:s3cret@h/")
    assert text == "InvalidUrlClientError: http://***:***@h/"


def test_latency_counts_from_the_scheduled_time_when_the_receiver_stalls(cli, served, secret):
    """--rate 10 --concurrency 1, the first answer held 0.6 s: the three sends due meanwhile wait for the slot.

    Their latency is from when each was due (0.1, 0.2, 0.3 s), so it shows the stall (about 0.5, 0.4, 0.3 s):
    measured from when they left, it would read a few ms and hide it ("coordinated omission").
    """
    seen = 0

    async def stall_first(request):
        nonlocal seen
        await request.read()
        seen += 1
        if seen == 1:
            await asyncio.sleep(0.6)
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/", stall_first)
    url = served.serve(app) + "/"
    run = cli("send", url, "--secret-env", secret, "--count", "4", "--rate", "10", "--concurrency", "1", "--json")
    assert run.code == 0, run.err
    latency = {a["n"]: a["latency_ms"] for a in run.json_lines()}
    assert latency[1] >= 600
    for number in (2, 3, 4):
        assert latency[number] >= 600 - 100 * (number - 1) - 50, latency
