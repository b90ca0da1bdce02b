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

Cost: one regular-expression search over the body's text; the value tree is walked only
when that search finds a raw DEL or C1 character or an escape that spells one of these (or
half of a valid surrogate pair).
"""

from __future__ import annotations

import re

from fullstory_async._exceptions import ResponseDecodeError

_UPPER = re.compile("[A-Z]")
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MAYBE = re.compile(r"[\x7f-\x9f]|\\(?:[bfnrt]|u(?:00[01]|007f|00[89]|d[89a-f]))", re.IGNORECASE)
"""In the JSON text: a raw DEL or C1 character, or an escape that spells a control character
(``\\n``, ``\\u001b``...) or a surrogate: the only ways to spell those (half of a valid
surrogate pair matches too; the walk then finds nothing wrong)."""


def check_text(document: str, value: object) -> None:
    """Raise `ResponseDecodeError` naming the first string of ``value`` that is not valid text.

    ``document`` is the JSON text ``value`` was parsed from (searched first: usually nothing to walk).
    """
    if _MAYBE.search(document) is None:
        return  # raw C0 characters in a string are refused by the JSON parser; nothing else can be bad
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
