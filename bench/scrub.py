"""Scrubbing cost (issue 19 review): seconds to scrub one error body, per shape; exit 1 when a target is missed.

    python bench/scrub.py

The scrubber runs on the event loop for every error (`fullstory_async._scrub`), so its cost
per byte must be bounded whatever the server sends and whatever secrets the client holds.
Shapes: a 1 MB body of random letters and digits with the key alone and with the key and
1,024 endpoint secrets held (every window of the body is looked up); a 1 MB echo of a
periodic endpoint secret (``"a" * 64``: each window of it occurs 57 times in the secret);
and the 1,024-secret body with a zero-width space every 80 characters (searched without them).
"""

from __future__ import annotations

import random
import string
import sys
import time

from fullstory_async._scrub import Secrets

MB = 1_000_000
TARGET = 0.5  # seconds per MB of error body: a 10 MiB body (the default cap) blocks the loop about 5 s at most


def main() -> int:
    rng = random.Random(19)
    alnum = string.ascii_letters + string.digits
    key = "na1." + "".join(rng.choices(alnum, k=40)) + "/o-ORG-na1"
    body = "".join(rng.choices(alnum, k=MB))
    many = Secrets(key)
    secrets = ["".join(rng.choices(alnum + "-_", k=32)) for _ in range(1024)]
    many.hold(secrets)
    many.release(secrets)
    periodic = Secrets(key)
    periodic.hold(["a" * 64])
    invisible = "\u200b".join(body[i : i + 80] for i in range(0, MB, 80))
    shapes = {
        "1 MB random, key only": (Secrets(key), body),
        "1 MB random, key + 1,024 secrets": (many, body),
        "1 MB echo of a periodic secret": (periodic, "a" * MB),
        "1 MB random with zero-width spaces, 1,024 secrets": (many, invisible),
    }
    missed = 0
    print(f"{'shape':<52} {'seconds':>8}  target < {TARGET}")
    for name, (held, text) in shapes.items():
        started = time.perf_counter()
        held.scrub(text)
        seconds = time.perf_counter() - started
        missed += seconds >= TARGET
        print(f"{name:<52} {seconds:>8.3f}  {'ok' if seconds < TARGET else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
