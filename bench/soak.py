"""Fault soak (issue 7): 10,000 creates through FakeFullstory on 127.0.0.1 with 10% injected faults of every kind.

    python bench/soak.py                            # 10,000 create_endpoint calls, concurrency 64
    python bench/soak.py --mode ensure              # the same through ensure_endpoint: no duplicates
    python bench/soak.py --creates 500 --seed 7

Every call must end in an `Endpoint` or a typed `FullstoryError` before a global deadline
(``asyncio.timeout``), the client's pool must hold no connection at the end, every
created endpoint must be stored, and (``--mode ensure``) no URL may have two endpoints.
Retries do not sleep (``RetryPolicy(wait=False)``): the soak is about outcomes, not pacing
(``bench/provision.py faults`` measures that). Prints one JSON line; exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any, Literal

from fullstory_async import (
    APIConnectionError,
    CreateEndpointRequest,
    Endpoint,
    FullstoryError,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
)
from fullstory_async.testing import FakeFullstory, Fault, FaultKind

TIMEOUT = 0.25  # seconds per attempt; the latency faults last longer
FAULTS = Fault.every_kind(slow=2 * TIMEOUT, quick=TIMEOUT / 10)
# The errors a create may end in under these faults (after the retry policy gave up).
EXPECTED = (ServerError, APIConnectionError, ResponseDecodeError, RateLimitError)


def fault_name(fault: Fault) -> str:
    name = fault.kind.value
    if fault.kind is FaultKind.ERROR:
        name += f"_{fault.status}"
    if fault.kind is FaultKind.LATENCY and fault.seconds < TIMEOUT:
        name += "_in_time"
    return name + ("_after_commit" if fault.after_commit else "")


def inject(fake: FakeFullstory, rate: float) -> None:
    """Spread ``rate`` of the requests over every fault kind, each equally likely."""
    for fault in FAULTS:
        fake.faults.add(fault, probability=rate / len(FAULTS))


async def soak(
    creates: int, *, concurrency: int = 64, seed: int = 0, rate: float = 0.1, mode: str = "create", soak_timeout: float
) -> dict[str, Any]:
    """Run the soak; return the figures (``"ok"`` says whether every check passed)."""
    outcomes: list[object] = [None] * creates
    requests = [
        CreateEndpointRequest(
            url=f"https://soak.example.com/hooks/{i}", event_types=["note.created"], secret=f"soak-secret-{i:05d}"
        )
        for i in range(creates)
    ]
    # ensure must prevent the duplicates this fake would allow
    policy: Literal["allow", "error"] = "allow" if mode == "ensure" else "error"
    async with FakeFullstory(seed=seed, duplicate_url=policy, request_log_size=4 * creates) as fake:
        inject(fake, rate)
        async with fake.client(retry=RetryPolicy(wait=False, max_attempts=4), timeout=TIMEOUT) as client:
            queue = iter(range(creates))

            async def worker() -> None:
                for i in queue:
                    try:
                        if mode == "ensure":
                            outcomes[i], _ = await client.webhooks.ensure_endpoint(requests[i])
                        else:
                            outcomes[i] = await client.webhooks.create_endpoint(requests[i])
                    except Exception as exc:  # the soak's question: is every failure typed?
                        outcomes[i] = exc

            started = time.perf_counter()
            hung = False
            try:
                async with asyncio.timeout(soak_timeout), asyncio.TaskGroup() as group:
                    for _ in range(min(concurrency, creates)):
                        group.create_task(worker())
            except TimeoutError:
                hung = True
            elapsed = time.perf_counter() - started
            session = client._transport._session
            acquired = len(session.connector._acquired) if session is not None and session.connector else 0
        await asyncio.sleep(2 * TIMEOUT)  # let requests the fake still delays finish before it stops
        injected = Counter(fault_name(f) for record in fake.requests for f in record.faults)
        stored = list(fake.endpoints.values())

    succeeded = [o for o in outcomes if isinstance(o, Endpoint)]
    errors = Counter(type(o).__name__ for o in outcomes if isinstance(o, BaseException))
    untyped = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, FullstoryError)]
    unexpected = [o for o in outcomes if isinstance(o, FullstoryError) and not isinstance(o, EXPECTED)]
    unfinished = sum(o is None for o in outcomes)
    stored_ids = {e.id: e.url for e in stored}
    lost = sum(stored_ids.get(e.id) != e.url for e in succeeded)
    per_url = Counter(e.url for e in stored)
    duplicates = sum(n - 1 for n in per_url.values() if n > 1)
    requests_seen = len(fake.requests)
    report: dict[str, Any] = {
        "benchmark": "soak",
        "mode": mode,
        "creates": creates,
        "concurrency": concurrency,
        "seed": seed,
        "seconds": round(elapsed, 3),
        "calls_per_second": round(creates / elapsed, 1) if elapsed else None,
        "requests": requests_seen,
        "faults_injected": dict(sorted(injected.items())),
        "fault_rate": round(sum(injected.values()) / requests_seen, 4) if requests_seen else 0.0,
        "succeeded": len(succeeded),
        "errors": dict(sorted(errors.items())),
        "untyped_errors": len(untyped),
        "unexpected_errors": len(unexpected),
        "unfinished": unfinished,
        "hung": hung,
        "acquired_connections": acquired,
        "stored_endpoints": len(stored),
        "created_but_not_stored": lost,
        "duplicate_endpoints": duplicates,
        "examples": [repr(o)[:200] for o in (untyped + unexpected)[:3]],
    }
    report["ok"] = (
        not hung
        and unfinished == 0
        and not untyped
        and not unexpected
        and acquired == 0
        and lost == 0
        and duplicates == 0
        and len(succeeded) <= len(stored) <= creates
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.1, help="fraction of requests that fault (0.1)")
    parser.add_argument("--mode", choices=("create", "ensure"), default="create")
    parser.add_argument("--soak-timeout", type=float, default=120.0, help="seconds for the whole soak (120)")
    args = parser.parse_args(argv)
    report = asyncio.run(
        soak(
            args.creates,
            concurrency=args.concurrency,
            seed=args.seed,
            rate=args.rate,
            mode=args.mode,
            soak_timeout=args.soak_timeout,
        )
    )
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
