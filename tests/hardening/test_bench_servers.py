"""The benchmarks' loopback servers end with the process that started them, however it ends.

`bench/overhead.py` starts its servers as child processes and stops them in ``finally``; a
bench killed by a signal (SIGKILL, or SIGTERM, which runs no ``finally``) used to leave the
server running for good, holding its port and a core's wakeups on a shared machine.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench" / "overhead.py"

# A stand-in for the bench: starts a server as the bench does, says its pid, then dies at once (no finally).
PARENT = f"""
import importlib.util, os
spec = importlib.util.spec_from_file_location("overhead", {str(BENCH)!r})
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
server, base = bench.start_server(0.0)
print(server.pid, base, flush=True)
os._exit(1)
"""


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on a pidfd (Linux)")
def test_an_overhead_server_ends_when_the_bench_is_killed() -> None:
    """The bench dies without running its ``finally``: its orphaned server notices and exits within seconds."""
    parent = subprocess.Popen(  # the server inherits stderr: read stdout's line, not to EOF
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert parent.stdout is not None
    with parent.stdout:
        pid_text, base = parent.stdout.readline().split()
    assert parent.wait(timeout=30) == 1
    pid = int(pid_text)
    assert base.startswith("http://127.0.0.1:")
    try:
        watch = os.pidfd_open(pid)  # readable once the process has ended
    except ProcessLookupError:
        return  # it has ended (and been reaped) already
    try:
        ended, _, _ = select.select([watch], [], [], 10)
        assert ended, "the server outlived the bench that started it"
    finally:
        if not select.select([watch], [], [], 0)[0]:
            os.kill(pid, signal.SIGKILL)  # ours: the server this test started
        os.close(watch)
