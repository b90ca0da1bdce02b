"""Every Python sample of docs/receiving.md runs: the aiohttp and FastAPI receivers are driven end to end."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fullstory_async.receiving import open_inbox, sign, signed_delivery
from fullstory_async.testing import sample_event_data

DOC = Path(__file__).parents[2] / "docs" / "receiving.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
ORG = "o-1A2B3C-na1"


def block(first_line: str) -> str:
    [source] = [b for b in BLOCKS if b.startswith(first_line)]
    return source


def load(source: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import a sample written as a module, with its environment set up (secrets, an inbox in tmp_path)."""
    monkeypatch.setenv("FULLSTORY_WEBHOOK_SECRETS", "new-secret,old-secret")
    monkeypatch.setenv("FULLSTORY_INBOX", f"sqlite:///{tmp_path}/{name}.db")
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"docs_sample_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a worker running in the background to get there."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def test_the_samples_are_found() -> None:
    """The module samples and the snippets are all there (a renamed sample fails here, not silently)."""
    assert len(BLOCKS) == 7


async def test_the_aiohttp_sample_stores_processes_and_deduplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """receiver.py: a note is stored, handled once by the worker, and its repeat is acknowledged but not stored."""
    module = load(block('"""receiver.py:'), "receiver", tmp_path, monkeypatch)
    body, headers = signed_delivery("note.created", sample_event_data("note.created"), secret="old-secret", org_id=ORG)
    async with TestClient(TestServer(await module.make_app())) as client:
        assert (await client.post("/fullstory/webhooks", data=body, headers=headers)).status == 202
        assert (await client.get("/fullstory/webhooks/health")).status == 200
        await eventually(lambda: len(module.done) == 1)
        assert (await client.post("/fullstory/webhooks", data=body, headers=headers)).status == 202
    assert "note by ada@example.com: Checkout button does nothing on Safari" in capsys.readouterr().out
    async with open_inbox(f"sqlite:///{tmp_path}/receiver.db") as inbox:
        stats = await inbox.stats()
    assert (stats.done, stats.pending) == (1, 0)


async def test_the_fastapi_sample_stores_and_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """app.py: mounted under /fullstory/webhooks/, a delivery is acknowledged, then handled in a thread."""
    module = load(block('"""app.py:'), "app", tmp_path, monkeypatch)
    body, headers = signed_delivery("test", sample_event_data("test"), secret="new-secret", org_id=ORG)
    async with module.lifespan(module.app):
        transport = httpx.ASGITransport(app=module.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/fullstory/webhooks/", content=body, headers=headers)).status_code == 202
            assert (await client.get("/fullstory/webhooks/health")).json() == {"status": "ok"}
        await eventually(lambda: module.received == ["test"])


async def run_snippet(source: str, namespace: dict[str, Any]) -> None:
    code = compile(source, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result


async def test_the_inbox_snippet_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The open_inbox snippet runs as written (the test sample runs in tests/docs/test_samples.py)."""
    await run_snippet(block("import tempfile"), {})
    assert "InboxStats(pending=1" in capsys.readouterr().out


async def test_the_verify_snippet_answers_like_the_receiver(tmp_path: Path) -> None:
    """on_delivery: 202 and stored for a genuine delivery, 401 for a forged one, 400 for a signed non-event."""
    namespace: dict[str, Any] = {}
    await run_snippet(block("from fullstory_async.receiving import Inbox, SignatureVerificationError"), namespace)
    on_delivery = namespace["on_delivery"]
    body, headers = signed_delivery("test", {}, secret="old-secret", org_id=ORG)
    async with open_inbox(f"sqlite:///{tmp_path}/v.db") as inbox:
        assert await on_delivery(inbox, body, headers["Fullstory-Signature"]) == 202
        assert await on_delivery(inbox, body, sign(body, "forged", ORG)) == 401
        assert await on_delivery(inbox, b"[]", sign(b"[]", "new-secret", ORG)) == 400
        assert (await inbox.stats()).pending == 1


async def test_the_forwarded_verification_snippet_runs() -> None:
    """The Standard Webhooks test vector snippet verifies as written."""
    namespace: dict[str, Any] = {}
    await run_snippet(block("from fullstory_async.receiving import verify_forwarded"), namespace)
    assert namespace["secret"].startswith("whsec_")
