r"""The text of a decoded 2xx body is valid: no lone surrogate, no NUL or other control character.

JSON can spell what no record should hold: ``"\ud800"`` (half a surrogate pair, which no
UTF-8 text can carry) and ``"\u0000"``. Decoded as is, such a string makes a record that
cannot be printed, saved or sent back (the CLI crashed with ``UnicodeEncodeError`` on
it). `check_text` runs on the parsed JSON value, once, before it is structured into a
record: any string (a key or a value) holding a lone surrogate, a C0 control character
(U+0000-U+001F), DEL or a C1 control character (U+007F-U+009F) raises
`ResponseDecodeError` naming its path, spelt as the converter spells field paths
(``$.event_defs[0].display_name``). The same bytes fail the same way on every attempt:
it is not retried.

Cost: a few byte searches over the body (``memchr`` speed; a regular expression only where
a backslash or a ``0xC2`` byte occurs); the value tree is walked only when they find a raw DEL
or C1 character or an escape that spells one of these (or half of a valid surrogate pair).
"""

from __future__ import annotations

import re

from fullstory_async._exceptions import ResponseDecodeError

_UPPER = re.compile("[A-Z]")
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_ESCAPE = re.compile(rb"\\(?:[bfnrt]|u(?:00[01]|007f|00[89]|d[89a-f]))", re.IGNORECASE)
"""An escape that spells a control character (``\\n``, ``\\u001b``...) or a surrogate (half of a
valid pair matches too: the walk then finds nothing wrong)."""
_RAW_C1 = re.compile(rb"\xc2[\x80-\x9f]")
"""A C1 character written raw, in UTF-8 (raw C0 characters are refused by the JSON parser)."""


def check_text(body: bytes, value: object) -> None:
    """Raise `ResponseDecodeError` naming the first string of ``value`` that is not valid text.

    ``body`` is the UTF-8 JSON ``value`` was parsed from. Only an escape or a raw DEL or C1
    character can spell a bad character, so the body is searched for those first (byte
    searches: usually nothing to walk).
    """
    if not ((b"\\" in body and _ESCAPE.search(body)) or b"\x7f" in body or (b"\xc2" in body and _RAW_C1.search(body))):
        return
    stack: list[tuple[str, object]] = [("$", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            _check(path, item)
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                _check(f"{path} (key)", key)
                stack.append((f"{path}.{_snake(key)}", child))
        elif isinstance(item, list):
            stack += [(f"{path}[{index}]", child) for index, child in reversed(list(enumerate(item)))]


def _snake(key: str) -> str:
    """``eventDefs`` -> ``event_defs``: the record's field name, as the converter's paths say it."""
    return _UPPER.sub(lambda m: "_" + m.group().lower(), key) if key[:1].islower() else key


def _check(path: str, text: str) -> None:
    bad = _BAD.search(text)
    if bad is not None:
        char = bad.group()
        what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise ResponseDecodeError(f"the string holds {what} (U+{ord(char):04X})", field=path)
