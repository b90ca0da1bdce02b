"""``fullstory-async inbox serve``: refusals before anything is served (exit 2), and real processes (plain and TLS)."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from fullstory_async.cli import main
from fullstory_async.cli._console import console_limits
from fullstory_async.receiving import open_inbox
from fullstory_async.receiving._limits import FD_RESERVE
from tests.fakes import Pki, make_pki

TOKEN = "cli-console-token-0123456789"


@pytest.fixture
def inbox_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/inbox.db"

    async def create() -> None:
        async with open_inbox(url) as inbox:
            await inbox.put(b'{"eventName": "note.created"}', org_id="org-1")

    asyncio.run(create())
    return url


@pytest.mark.parametrize(
    ("args", "env", "flag"),
    [
        (("--host", "0.0.0.0"), {}, "--token-env"),
        (("--host", "10.1.2.3"), {}, "--token-env"),
        (("--host", "0.0.0.0", "--token-env", "T"), {"T": TOKEN}, "--tls-cert"),
        (("--host", "::", "--token-env", "T"), {"T": TOKEN}, "--tls-cert"),
        (("--token-env", "T"), {}, "--token-env"),  # unset
        (("--token-env", "T"), {"T": "short"}, "--token-env"),
        (("--tls-cert", "x.pem"), {}, "--tls-key"),
        (("--tls-key", "x.key"), {}, "--tls-cert"),
        (("--tls-cert", "missing.pem", "--tls-key", "missing.key"), {}, "--tls-cert"),
        (("--port", "70000"), {}, "--port"),
    ],
)
def test_an_unsafe_or_broken_setup_exits_2_naming_the_flag(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    flag: str,
) -> None:
    monkeypatch.delenv("T", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    missing = tmp_path / "inbox.db"
    assert main(["inbox", "serve", "--inbox", f"sqlite:///{missing}", *args]) == 2
    captured = capsys.readouterr()
    assert flag in captured.err
    assert TOKEN not in captured.err + captured.out
    assert not missing.exists()  # refused before the inbox is opened


def test_tls_with_a_proxy_flag_too_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_pki(tmp_path)
    args = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--behind-tls-proxy"]
    assert main(["inbox", "serve", "--inbox", f"sqlite:///{tmp_path}/i.db", *args]) == 2
    assert "--behind-tls-proxy" in capsys.readouterr().err


def test_it_never_creates_an_inbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.db"
    assert main(["inbox", "serve", "--inbox", f"sqlite:///{missing}", "--port", "0"]) == 1
    assert not missing.exists()
    assert "error:" in capsys.readouterr().err


class Served:
    """A real ``inbox serve`` process and the URL it printed."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> str:
        """SIGTERM it; return its stderr after asserting it exited 0."""
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=10)
        assert self.process.returncode == 0, err
        return err


@pytest.fixture
def start() -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, env: dict[str, str] | None = None) -> Served:
        process = subprocess.Popen(
            [sys.executable, "-m", "fullstory_async", "inbox", "serve", "--port", "0", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})},
        )
        started.append(process)
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.fullmatch(r"console at (https?://\S+/)\n", line)
        assert match, line
        return Served(process, match[1])

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def _get(url: str, **kwargs: object) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session,
        session.get(url, allow_redirects=False, **kwargs) as response,  # type: ignore[arg-type]
    ):
        return response.status, await response.text(), dict(response.headers)


async def test_a_real_process_serves_on_loopback_and_stops_on_sigterm(inbox_url: str, start: object) -> None:
    served = start("--inbox", inbox_url)  # type: ignore[operator]
    assert served.url.startswith("http://127.0.0.1:")
    status, text, _ = await _get(served.url)
    assert status == 200
    assert "note.created" in text
    port = served.url.rsplit(":", 1)[1].rstrip("/")
    status, _, _ = await _get(served.url, headers={"Host": f"evil.example:{port}"})
    assert status == 421
    served.stop()


async def test_tls_with_a_token_over_a_real_process(inbox_url: str, tmp_path: Path, start: object) -> None:
    pki: Pki = make_pki(tmp_path)
    served = start(  # type: ignore[operator]
        "--inbox", inbox_url, "--token-env", "CONSOLE_TOKEN", "--tls-cert", str(pki.server_cert),
        "--tls-key", str(pki.server_key), env={"CONSOLE_TOKEN": TOKEN},
    )  # fmt: skip
    assert served.url.startswith("https://127.0.0.1:")
    context = pki.client_context()
    status, _, headers = await _get(served.url, ssl=context)
    assert (status, headers["Location"]) == (303, "/login")
    status, _, _ = await _get(served.url + "api/stats", ssl=context)
    assert status == 401
    status, text, _ = await _get(served.url + "api/stats", ssl=context, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, '"pending": 1' in text) == (200, True)
    async with (
        aiohttp.ClientSession() as session,
        session.post(served.url + "login", data={"token": TOKEN}, ssl=context, allow_redirects=False) as response,
    ):
        assert response.status == 303
        assert "; Secure" in response.headers["Set-Cookie"]
        assert TOKEN not in response.headers["Set-Cookie"]
    with pytest.raises(aiohttp.ClientError):  # plain http to the TLS port: no answer
        await _get(served.url.replace("https", "http"))
    err = served.stop()
    assert TOKEN not in err


async def test_a_wildcard_bind_behind_a_tls_proxy_needs_the_login(inbox_url: str, start: object) -> None:
    """0.0.0.0 with --behind-tls-proxy, reached through 127.0.0.1 as a proxy would: any Host, a token, Secure."""
    served = start(  # type: ignore[operator]
        "--inbox", inbox_url, "--host", "0.0.0.0", "--token-env", "CONSOLE_TOKEN", "--behind-tls-proxy",
        env={"CONSOLE_TOKEN": TOKEN},
    )  # fmt: skip
    port = served.url.rsplit(":", 1)[1].rstrip("/")
    url = f"http://127.0.0.1:{port}/"
    status, _, headers = await _get(url, headers={"Host": "console.example.com"})
    assert (status, headers["Location"]) == (303, "/login")
    status, _, _ = await _get(url + "api/deliveries", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    served.stop()


@pytest.mark.parametrize(("soft", "cap"), [(256, 256 - FD_RESERVE), (FD_RESERVE, 1), (1 << 20, 512)])
def test_the_connection_cap_fits_the_file_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, cap: int
) -> None:
    """Before: 512 connections whatever ``ulimit -n`` (256 on macOS): a flood ran the process out of descriptors."""
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (soft, 1 << 20))
    assert console_limits().max_connections == cap
