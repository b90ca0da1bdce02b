"""``bench/receiver_soak.py`` in its quickest form: one fault of each kind, and nothing acknowledged is lost.

A 3-second soak at 50 valid deliveries/s (plus duplicates, forged, oversized and stalled
senders) against a real ``fullstory-async receive`` process on SQLite, whose inbox another
process locks once (``BEGIN EXCLUSIVE``) and which is SIGKILLed and restarted once. The
PostgreSQL run (a paused TCP proxy) takes 9 s here, so only the benchmark runs it. The latency,
memory and descriptor targets are the benchmark's to print, not this test's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_soak() -> ModuleType:
    path = Path(__file__).parents[2] / "bench" / "receiver_soak.py"
    spec = importlib.util.spec_from_file_location("receiver_soak", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_quick_soak_loses_no_acknowledged_delivery() -> None:
    report = await load_soak().soak("sqlite", 3.0, rate=50, cycles=1, hold=0.5)

    assert [kind for kind, _, _ in report["windows"]] == ["database", "kill"]
    assert (report["restarts"], report["unexpected_exits"], report["final_exit_code"]) == (1, 0, 0)
    assert report["valid_sent"] == 150
    assert report["acknowledged"] == 150  # each retried after a 503 or the kill until acknowledged
    assert report["lost"] == 0  # every 202'd delivery is in the inbox after the kill
    assert report["refused_but_stored"] == 0  # no forged or oversized delivery was stored
    assert report["stored_twice"] == 0
    assert report["duplicates_acknowledged"] > 0
    statuses = report["statuses"]
    assert statuses.get("forged 401", 0) > 0
    assert set(statuses) <= {
        *(f"{kind} {status}" for kind in ("valid", "duplicate") for status in (202, 503, "no answer")),
        *(f"forged {status}" for status in (401, 503, "no answer")),
        *(f"oversized {status}" for status in (413, 503, "no answer")),
    }
    assert report["stalls"]["head"]["opened"] > 0
    assert report["stalls"]["body"]["opened"] > 0
