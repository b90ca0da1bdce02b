"""The de-duplication memory: a window from first sight, bounded size, an injectable clock."""

from __future__ import annotations

from fullstory_async.receiving._duplicates import DuplicateFilter


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_second_sight_within_the_window_is_a_duplicate() -> None:
    """A body seen again within the window is reported; the first sight is not."""
    clock = Clock()
    seen = DuplicateFilter(60, max_entries=10, clock=clock)
    assert seen.check(b"a") is False
    clock.now += 60
    assert seen.check(b"a") is True


def test_window_counts_from_the_first_sight() -> None:
    """Repeats do not extend the window: past it, the body is new again."""
    clock = Clock()
    seen = DuplicateFilter(60, max_entries=10, clock=clock)
    seen.check(b"a")
    clock.now += 59
    assert seen.check(b"a") is True
    clock.now += 2
    assert seen.check(b"a") is False


def test_expired_entries_are_forgotten() -> None:
    """Entries older than the window are dropped, so memory follows the delivery rate."""
    clock = Clock()
    seen = DuplicateFilter(10, max_entries=1000, clock=clock)
    for index in range(100):
        seen.check(b"%d" % index)
    assert len(seen) == 100
    clock.now += 11
    seen.check(b"new")
    assert len(seen) == 1


def test_memory_is_bounded_by_max_entries() -> None:
    """Past max_entries the oldest bodies are forgotten first."""
    seen = DuplicateFilter(3600, max_entries=3, clock=Clock())
    for body in (b"a", b"b", b"c", b"d"):
        assert seen.check(body) is False
    assert len(seen) == 3
    assert seen.check(b"d") is True
    assert seen.check(b"a") is False  # evicted, so new again


def test_bodies_are_compared_by_content() -> None:
    """Only byte-identical bodies are duplicates."""
    seen = DuplicateFilter(60, max_entries=10, clock=Clock())
    seen.check(b'{"a":1}')
    assert seen.check(b'{"a": 1}') is False
    assert seen.check(bytes(bytearray(b'{"a":1}'))) is True
