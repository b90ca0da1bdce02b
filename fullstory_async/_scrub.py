"""Scrubbing server text: the API key and the endpoint secrets the client holds never come back in it.

A server can put anything it was sent into what it answers: the ``Authorization`` value
in a 401 message, an HTML title or a ``Location``, an endpoint's secret in a 400 that
repeats the request. Every error that leaves the client's middleware chain passes
`scrub_error` first (one call site, in the response decoder), so its message, code,
reason, request id, kept body and headers hold no secret when they reach an exception,
a log record or the CLI.

`Secrets` is the one registry of what the client holds: the API key's secret part (the
key is ``region.<secret>/<orgId>``; the region and the org id alone are not secrets), the
endpoint secrets of the requests in flight, and those of the last `RECENT` handled.

Algorithm: seed-and-extend over an index of 8-character windows (the seeding step of
BLAST). Each secret is indexed in every spelling a server is likely to echo (as is,
percent-encoded in upper and lower case hex and form-encoded, JSON-escaped once and twice): a hash map
from each window of `SEED` characters of the secret part to the spellings and offsets
where it occurs. A text is scanned once; each window found in the map is a seed, extended
left and right along its diagonal to the longest run the text shares with that spelling
(so a whole key, region and org id included, goes at once), and every character covered
by a run is replaced by ``<redacted>``. Any fragment of `SEED` or more characters of a
secret part contains a window, so none escapes; a secret part shorter than `SEED` is
removed only whole. Cost: one hash lookup per window of the text (only runs of characters
that occur in some secret are looked at) plus the length of what is removed, each
(spelling, diagonal) extended once; the index changes by a secret's windows when the
secret is added or dropped, never rebuilt.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, quote_plus

SEED = 8
"""The shortest fragment of a secret that is removed (shorter ones occur in ordinary text too often)."""
RECENT = 1024
"""How many endpoint secrets are remembered after their requests ended (a late echo of an earlier one)."""
REDACTED = "<redacted>"
_HEX = re.compile(r"%[0-9A-F]{2}")
_SECRET = re.compile(rb'"secret"\s*:\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
"""A ``secret`` key (any case) and its string value, whose literal is group 1."""


_INVISIBLE = (
    "\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff"
)
_IGNORABLE = re.compile(f"[{_INVISIBLE}]")
"""Control characters and Unicode's default-ignorable code points: a terminal shows nothing for them."""
_VISIBLE = re.compile(f"[^{_INVISIBLE}]+")


def _unskip(find: Callable[[str], list[tuple[int, int]]], text: str) -> list[tuple[int, int]]:
    """Run ``find`` on ``text`` without its invisible characters; return its spans as spans of ``text``."""
    starts, skipped, pieces = [], [], []  # per visible run: start in the skeleton, characters dropped before it
    length = 0
    for run in _VISIBLE.finditer(text):
        starts.append(length)
        skipped.append(run.start() - length)
        pieces.append(run.group())
        length += run.end() - run.start()
    spans = []
    for start, end in find("".join(pieces)):
        first, last = bisect_right(starts, start) - 1, bisect_right(starts, end - 1) - 1
        spans.append((start + skipped[first], end + skipped[last]))
    return spans


def key_parts(api_key: str) -> tuple[str, str, str]:
    """Split an API key into ``(prefix, secret part, suffix)``: ``("na1.", "<secret>", "/ORG")``.

    A key without a region (made before 2022) or without an org id keeps the rest as its secret part.
    """
    prefix, secret, suffix = "", api_key, ""
    region, dot, rest = secret.partition(".")
    if dot and rest and 0 < len(region) <= 4 and region.isalnum():
        prefix, secret = region + dot, rest
    head, slash, org = secret.rpartition("/")
    if slash and head and org:
        secret, suffix = head, slash + org
    return prefix, secret, suffix


def _percent(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")  # a key is not checked for valid Unicode


def _form(text: str) -> str:
    return quote_plus(text.encode("utf-8", "surrogatepass"), safe="")  # a form body or query: space as +


def _percent_lower(text: str) -> str:
    return _HEX.sub(lambda m: m.group().lower(), _percent(text))


def _json(text: str) -> str:
    return json.dumps(text)[1:-1]


def _json_utf8(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _spellings(prefix: str, secret: str, suffix: str) -> set[tuple[str, int, int]]:
    """Each spelling of ``prefix + secret + suffix`` with where its secret part is: ``(text, start, end)``.

    As is, percent-encoded (upper and lower case hex; form-encoded, space as ``+``), JSON-escaped once
    and twice (an echo of an echo).
    """
    found = set()
    for encode in (str, _percent, _percent_lower, _form, _json, _json_utf8):
        for times in (1, 2) if encode in (_json, _json_utf8) else (1,):
            head, middle, tail = prefix, secret, suffix
            for _ in range(times):
                head, middle, tail = encode(head), encode(middle), encode(tail)
            found.add((head + middle + tail, len(head), len(head) + len(middle)))
    return found


class Secrets:
    """The secrets a client holds, indexed for `scrub` (see the module docstring).

    Owned by a `Client` and shared with its `with_options` copies. The constructor registers
    the permanent secret (the API key); `hold` registers a request's endpoint secrets while
    it is in flight, and `release` keeps them among the last `RECENT` handled.
    """

    def __init__(self, api_key: str | None = None) -> None:
        self._spellings: dict[int, tuple[str, list[tuple[str, int]]]] = {}  # id -> (text, windows)
        self._index: dict[str, set[tuple[int, int]]] = {}  # window -> {(spelling id, offset)}
        self._ids: dict[str, list[int]] = {}  # secret -> its spelling ids
        self._next = 0
        self._live: dict[str, int] = {}  # secret -> requests in flight holding it
        self._recent: dict[str, None] = {}  # released secrets, oldest first
        self._alphabet: Counter[str] = Counter()
        self._widths: Counter[int] = Counter()  # how many windows of each length (shorter than SEED: short secrets)
        self._runs: re.Pattern[str] | None = None
        self._invisible: set[str] = set()  # the secrets holding an invisible character (an odd key)
        if api_key is not None:
            self._add(api_key, key_parts(api_key))

    def __repr__(self) -> str:
        return f"Secrets(<{len(self._ids)} held>)"

    def __len__(self) -> int:
        return len(self._ids)

    def _add(self, secret: str, parts: tuple[str, str, str]) -> None:
        ids = self._ids[secret] = []
        if _IGNORABLE.search(secret) is not None:
            self._invisible.add(secret)
        for text, start, end in _spellings(*parts):
            sid, self._next = self._next, self._next + 1
            width = min(SEED, end - start)
            # each distinct window once, at its first offset: a periodic secret ("abcabc...") would
            # otherwise seed one diagonal per repeat at every window of an echo
            first = {text[at : at + width]: at for at in reversed(range(start, end - width + 1))} if width else {}
            windows = sorted(first.items(), key=lambda item: item[1])
            self._spellings[sid] = (text, windows)
            ids.append(sid)
            for window, at in windows:
                self._index.setdefault(window, set()).add((sid, at))
            self._widths[width] += len(windows)
            self._alphabet.update(set(text))
        self._runs = None

    def _drop(self, secret: str) -> None:
        self._invisible.discard(secret)
        for sid in self._ids.pop(secret):
            text, windows = self._spellings.pop(sid)
            for window, at in windows:
                places = self._index[window]
                places.discard((sid, at))
                if not places:
                    del self._index[window]
            self._widths.subtract({len(windows[0][0]): len(windows)} if windows else {})
            self._alphabet.subtract(set(text))
        self._alphabet += Counter()  # drop the characters no secret has any more
        self._widths += Counter()
        self._runs = None

    def hold(self, secrets: Iterable[str]) -> None:
        """Hold ``secrets`` (a request's endpoint secrets) until `release`: they are scrubbed meanwhile."""
        live = self._live
        for secret in secrets:
            if secret not in self._ids:
                self._add(secret, ("", secret, ""))
            live[secret] = live.get(secret, 0) + 1

    def release(self, secrets: Iterable[str]) -> None:
        """End a `hold`: the secrets stay among the last `RECENT` handled, then are forgotten."""
        live, recent = self._live, self._recent
        for secret in secrets:
            count = live[secret] - 1
            if count:
                live[secret] = count
            else:
                del live[secret]
            recent.pop(secret, None)  # to the end: the most recent (a dict keeps insertion order)
            recent[secret] = None
        while len(recent) > RECENT:
            old = next(iter(recent))
            del recent[old]
            if old not in live and old in self._ids:
                self._drop(old)

    def _pattern(self) -> re.Pattern[str]:
        if self._runs is None:
            shortest = min(self._widths, default=SEED)
            chars = "".join(sorted(self._alphabet))
            self._runs = re.compile(f"[{re.escape(chars)}]{{{shortest},}}" if chars else "(?!)")
        return self._runs

    def scrub(self, text: str) -> str:
        """Return ``text`` with every held secret, and every fragment of `SEED` or more characters of one, redacted.

        A secret interleaved with invisible characters (controls, zero-width and other format
        characters: a terminal shows the secret whole) is found too: the text is searched again
        without them, and what is found there is redacted in ``text`` with them.
        """
        if not self._index or not text:
            return text
        if _IGNORABLE.search(text) is None:
            spans = self._find(text)
        else:  # a fragment of a secret without invisible characters is whole in the text without them
            spans = _unskip(self._find, text) + (self._find(text) if self._invisible else [])
        if not spans:
            return text
        spans.sort()
        pieces, at = [], 0
        for start, end in spans:
            if end <= at:
                continue
            if start > at:
                pieces.append(text[at:start])
                pieces.append(REDACTED)
            elif not pieces or pieces[-1] != REDACTED:
                pieces.append(REDACTED)
            at = end
        pieces.append(text[at:])
        return "".join(pieces)

    def _find(self, text: str) -> list[tuple[int, int]]:
        """Return the spans of ``text`` that hold a secret or a fragment of `SEED` or more characters of one."""
        spans: list[tuple[int, int]] = []
        widths = set(self._widths)
        for run in self._pattern().finditer(text):
            spans += self._spans(text, run.start(), run.end(), widths)
        return spans

    def _spans(self, text: str, lo: int, hi: int, widths: set[int]) -> list[tuple[int, int]]:
        """Seed-and-extend inside ``text[lo:hi]`` (a run of secret characters)."""
        spans: list[tuple[int, int]] = []
        extended: dict[tuple[int, int], int] = {}  # (spelling, diagonal) -> end of its run
        index, spellings = self._index, self._spellings
        for width in widths:
            covered, at, last = lo, lo, hi - width  # covered: the furthest end of a run found in this pass
            while at <= last:
                if at + width <= covered:  # inside a run already found (its seed is at or before `at`)
                    at = covered - width + 1
                    continue
                for sid, offset in index.get(text[at : at + width], ()):
                    diagonal = at - offset
                    if extended.get((sid, diagonal), -1) >= at + width:
                        continue
                    spelling = spellings[sid][0]
                    start, end = at, at + width
                    while start > lo and start - diagonal > 0 and text[start - 1] == spelling[start - 1 - diagonal]:
                        start -= 1
                    while end < hi and end - diagonal < len(spelling) and text[end] == spelling[end - diagonal]:
                        end += 1
                    extended[sid, diagonal] = end
                    spans.append((start, end))
                    covered = max(covered, end)
                at += 1
        return spans

    def scrub_bytes(self, body: bytes) -> bytes:
        """`scrub` a body read as UTF-8 (bytes that are not are kept as they were)."""
        if not self._index or not body:
            return body
        text = body.decode("utf-8", "surrogateescape")
        scrubbed = self.scrub(text)
        return body if scrubbed == text else scrubbed.encode("utf-8", "surrogateescape")

    def scrub_headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """Return ``headers`` with names and values scrubbed (the same object when nothing changed).

        A changed one is read-only with lower-case names, like `ApiResponse.headers`.
        """
        items = [(str(k), str(v)) for k, v in headers.items()]
        scrubbed = [(self.scrub(k), self.scrub(v)) for k, v in items]
        if scrubbed == items:
            return headers
        return MappingProxyType({k.lower(): v for k, v in scrubbed})


def request_secrets(body: bytes | None) -> list[str]:
    """Return every string value of a ``secret`` key (any case, any depth) in a request's JSON body.

    Read with one regular-expression scan rather than a JSON parse (this runs on every
    attempt): a quote inside a JSON string is escaped, so ``"secret":"`` can only be a key
    and its value.
    """
    found = []
    for match in _SECRET.finditer(body or b""):
        literal = match.group(1)
        try:
            value = json.loads(b'"' + literal + b'"') if b"\\" in literal else literal.decode()
        except ValueError:  # not UTF-8, or a bad escape: not a body the API would take
            value = ""
        if value:
            found.append(value)
    return found


_TEXT_FIELDS = ("message", "code", "request_id", "reason")


def scrub_error(error: BaseException, secrets: Secrets) -> None:
    """Scrub, in place, every text of ``error`` that can hold what the server said."""
    args: Any = error.args
    error.args = tuple(secrets.scrub(a) if isinstance(a, str) else a for a in args)
    for name in _TEXT_FIELDS:
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, secrets.scrub(value))
    body = getattr(error, "body", None)
    if isinstance(body, bytes):
        error.body = secrets.scrub_bytes(body)  # type: ignore[attr-defined]
    headers = getattr(error, "headers", None)
    if isinstance(headers, Mapping):
        error.headers = secrets.scrub_headers(headers)  # type: ignore[attr-defined]
    _cut_leaking_causes(error, secrets)


def _cut_leaking_causes(error: BaseException, secrets: Secrets) -> None:
    """Drop the chained exceptions from the first whose text holds a secret (aiohttp's quote server bytes).

    A traceback prints every cause; the error itself already says what happened, scrubbed.
    """
    link = error
    for _ in range(8):  # chains are short; never loop on a cyclic one
        cause = link.__cause__ or link.__context__
        if cause is None:
            return
        try:
            text = f"{cause!s} {cause!r}"
        except Exception:  # a cause whose str() fails: it cannot be shown either way
            text = ""
        if secrets.scrub(text) != text:
            link.__cause__ = link.__context__ = None
            link.__suppress_context__ = True
            return
        link = cause
