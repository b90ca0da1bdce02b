"""Suite-wide fixtures: secret hygiene, ``serve`` (raw servers), ``served`` (a threaded fake), ``cli`` (main()).

``cli`` runs the command line in-process: a usage error needs no new interpreter.

No API key or endpoint secret used in a test may reach a log record.

Every test runs with every logger enabled at DEBUG (aiohttp's, the fake server's and the
SDK's included), captured by one handler on the root logger. The secrets are learned as
the SDK meets them: the key `Client` resolves, the ``secret`` of every
`CreateEndpointRequest`, `UpdateEndpointRequest` and `DesiredEndpoint`, the keys of every
`FakeFullstory`, the secrets of `WebhookReceiver`, ``sign`` and ``verify``, the password
of every proxy URL the client reads, and the token of every `ConsoleSettings`. At teardown,
a record whose message, exception text, stack or extra attributes contain one of them
fails the test. Strings shorter than six characters are not tracked (too many false alarms).
A test that logs a secret on purpose opts out with ``@pytest.mark.secrets_in_logs``.

The hooks are installed once per session (a wrapper call per construction); CLI output is
checked by ``tests/hardening/test_secret_hygiene.py``, not here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.fakes import Gate, Pki, Serve, ServedFake, make_pki

MARKER = "secrets_in_logs"
MIN_SECRET_LENGTH = 6
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class SecretWatch:
    """The secrets seen in the current test, the log records it produced, and the check between them."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        """Secrets learned while the current test ran (from its fixtures' setup on)."""
        self.ambient: set[str] = set()
        """Secrets learned outside any test (module constants at import time); checked in every test."""
        self.records: list[logging.LogRecord] = []
        self.in_test = False
        self._lock = threading.Lock()

    def learn(self, *values: object) -> None:
        """Remember every string value long enough to be a real secret."""
        found = [v for v in values if isinstance(v, str) and len(v.strip()) >= MIN_SECRET_LENGTH]
        if found:
            with self._lock:
                (self.secrets if self.in_test else self.ambient).update(v.strip() for v in found)

    def start(self) -> None:
        with self._lock:
            self.secrets.clear()
            self.records.clear()
            self.in_test = True

    def stop(self) -> None:
        with self._lock:
            self.in_test = False

    def leaks(self) -> list[str]:
        """Describe each (record, secret) pair where the secret appears in the record's text."""
        with self._lock:
            secrets = sorted(self.secrets | self.ambient)
            records = list(self.records)
        found = []
        for record in records:
            text = "\n".join(record_texts(record))
            for secret in secrets:
                if secret in text:
                    shown = f"{secret[:3]}...({len(secret)} chars)"
                    found.append(f"{record.name} {record.levelname} {record.pathname}:{record.lineno}: {shown}")
        return found


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    """Every text a handler could print for a record: message, exception, stack and extra string fields."""
    try:
        yield record.getMessage()
    except Exception:  # a broken %-format in some library: check the parts instead
        yield str(record.msg)
        yield repr(record.args)
    if record.exc_info and record.exc_info[1] is not None:
        yield logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        yield record.exc_text
    if record.stack_info:
        yield record.stack_info
    for name, value in vars(record).items():
        if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
            yield value


WATCH = SecretWatch()


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if WATCH.in_test:
            WATCH.records.append(record)


_CAPTURE = _Capture(logging.DEBUG)
_ORIGINALS: list[tuple[object, str, object]] = []


def _replace(owner: object, name: str, replacement: object) -> None:
    _ORIGINALS.append((owner, name, getattr(owner, name)))
    setattr(owner, name, replacement)


def _learn_after_init(cls: type[Any], read: Callable[[Any], Iterable[object]]) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        WATCH.learn(*read(self))

    _replace(cls, "__init__", __init__)


def _install_hooks() -> None:
    from fullstory_async import CreateEndpointRequest, DesiredEndpoint, UpdateEndpointRequest, _auth, _client
    from fullstory_async.receiving import WebhookReceiver, _signature
    from fullstory_async.testing._server import FakeFullstory

    resolve = _auth.resolve_api_key

    @functools.wraps(resolve)
    def resolve_api_key(api_key: str | None) -> str:
        key = resolve(api_key)
        WATCH.learn(key)
        return key

    for module in (_auth, _client):
        if getattr(module, "resolve_api_key", None) is resolve:
            _replace(module, "resolve_api_key", resolve_api_key)

    digest = _signature._digest

    @functools.wraps(digest)
    def _digest(body: bytes, secret: str, *args: Any) -> bytes:
        WATCH.learn(secret)
        return digest(body, secret, *args)

    _replace(_signature, "_digest", _digest)

    from urllib.parse import unquote, urlsplit

    from fullstory_async import _network

    parse_proxy = _network._parse_proxy

    @functools.wraps(parse_proxy)
    def _parse_proxy(value: str, field: str) -> Any:
        with contextlib.suppress(ValueError):  # a bad URL: the parser refuses it
            WATCH.learn(unquote(urlsplit(value.strip()).password or ""))
        return parse_proxy(value, field)

    _replace(_network, "_parse_proxy", _parse_proxy)
    for cls in (CreateEndpointRequest, UpdateEndpointRequest, DesiredEndpoint):
        _learn_after_init(cls, lambda request: (request.secret,))
    _learn_after_init(FakeFullstory, lambda fake: (fake.api_key, fake.read_only_api_key))
    _learn_after_init(WebhookReceiver, lambda receiver: receiver._secrets)

    from fullstory_async.console import ConsoleSettings

    _learn_after_init(ConsoleSettings, lambda settings: (settings.token,))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: the test logs an API key or endpoint secret on purpose (no secret-hygiene check)"
    )
    _install_hooks()


def pytest_unconfigure(config: pytest.Config) -> None:
    while _ORIGINALS:
        owner, name, original = _ORIGINALS.pop()
        setattr(owner, name, original)


@pytest.fixture(autouse=True)
def secret_watch(request: pytest.FixtureRequest) -> Iterator[SecretWatch]:
    """Capture every log record at DEBUG; fail the test if one holds a secret the test used."""
    root = logging.getLogger()
    level = root.level
    root.addHandler(_CAPTURE)
    root.setLevel(logging.DEBUG)
    WATCH.start()
    try:
        yield WATCH
    finally:
        WATCH.stop()
        root.removeHandler(_CAPTURE)
        root.setLevel(level)
    if request.node.get_closest_marker(MARKER) is None:
        leaks = WATCH.leaks()
        if leaks:
            pytest.fail("a secret used in this test reached a log record:\n  " + "\n  ".join(leaks), pytrace=False)


@pytest.fixture(autouse=True)
def _no_base_url_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset FULLSTORY_BASE_URL: one exported in the developer's shell must not redirect the suite's clients."""
    monkeypatch.delenv("FULLSTORY_BASE_URL", raising=False)


PROXY_VARIABLES = tuple(
    name for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in (base, base.upper())
)


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test without the machine's proxy variables: clients honour them, and tests talk to loopback."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Run aiohttp apps written in a test on 127.0.0.1 until teardown; awaiting the factory on an app gives its URL.

    With ``ssl_context`` the app is served over TLS (an ``https://`` URL).
    """
    async with contextlib.AsyncExitStack() as cleanups:  # every runner is cleaned up, even after one fails to

        async def start(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> str:
            runner = web.AppRunner(app, shutdown_timeout=0.5)
            await runner.setup()
            cleanups.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
            await site.start()
            host, port = runner.addresses[0][:2]
            return f"{'https' if ssl_context else 'http'}://{host}:{port}"

        yield start


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedFake]:
    """Serve a `FakeFullstory` from a thread (for code with its own loop); put its key in FULLSTORY_API_KEY."""
    served = ServedFake()
    monkeypatch.setenv("FULLSTORY_API_KEY", served.api_key)
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
async def gate(serve: Serve) -> AsyncIterator[Gate]:
    """Serve a `Gate` (every request held until ``gate.release`` is set); release it at teardown."""
    gate = Gate()
    gate.base_url = await serve(gate.app())
    try:
        yield gate
    finally:
        gate.release.set()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Make a private CA with a server certificate for 127.0.0.1 and a client certificate (PEM files)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


class Run:
    """What one ``main()`` call returned and printed."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json_lines(self) -> list[dict[str, Any]]:
        """Stdout parsed as JSON Lines."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Call ``main(args)`` and capture its exit status, stdout and stderr."""
    from fullstory_async.cli import main  # imported on use: conftest loads before every test

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
