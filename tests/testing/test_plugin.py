"""The pytest plugin: its fixtures, its cheap import, and its use without pytest-asyncio."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fullstory_async import Client
from fullstory_async.testing import FakeFullstory, Fault


async def test_fake_fullstory_fixture_is_a_started_fake(fake_fullstory: FakeFullstory) -> None:
    """`fake_fullstory` is a FakeFullstory already serving on 127.0.0.1."""
    assert isinstance(fake_fullstory, FakeFullstory)
    assert fake_fullstory.url.startswith("http://127.0.0.1:")


async def test_fullstory_client_is_bound_and_its_retries_do_not_sleep(
    fake_fullstory: FakeFullstory, fullstory_client: Client
) -> None:
    """`fullstory_client` talks to the fixture's fake and retries 5xx without waiting."""
    fake_fullstory.faults.add(Fault.server_error(503), route="list_event_types", times=2)
    assert fullstory_client.retry.wait is False
    async with asyncio.timeout(0.5):  # a hang guard: the default backoff would wait >= 0.5 s
        event_types = await fullstory_client.webhooks.list_event_types()
    assert len(event_types) == 6
    assert [r.status for r in fake_fullstory.requests] == [503, 503, 200]


def test_importing_the_plugin_does_not_load_the_server() -> None:
    """Loading the plugin (done in every pytest session) imports neither aiohttp.web nor the fake."""
    code = (
        "import sys, fullstory_async.testing._plugin\n"
        "heavy = ['aiohttp.web', 'fullstory_async.testing._server', 'fullstory_async.testing._app']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_fixtures_work_with_anyio_and_without_pytest_asyncio(tmp_path: Path) -> None:
    """With pytest-asyncio unavailable, the fixtures are plain async fixtures that anyio runs."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            @pytest.mark.anyio
            async def test_user_code(fake_fullstory, fullstory_client):
                assert len(await fullstory_client.webhooks.list_event_types()) == 6
                assert len(fake_fullstory.requests) == 1
            """
        )
    )
    runner = textwrap.dedent(
        """
        import sys, pytest

        class Uninstalled:  # as if pytest-asyncio were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "pytest_asyncio":
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, Uninstalled())
        plugins = ["-p", "anyio", "-p", "fullstory_async.testing._plugin", "-p", "no:cacheprovider"]
        sys.exit(pytest.main(["-q", *plugins, "test_user.py"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", runner],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # only anyio and ours
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_plugin_is_registered_as_a_pytest11_entry_point(pytestconfig: pytest.Config) -> None:
    """The installed package's pytest11 entry point loaded the plugin into this session."""
    names = [name for name, _ in pytestconfig.pluginmanager.list_name_plugin()]
    assert "fullstory_async" in names
