"""The inbox console: a web page and a JSON API over an inbox (``fullstory-async inbox serve``).

::

    from fullstory_async.console import ConsoleSettings, console_app
    from fullstory_async.receiving import open_inbox

    async with open_inbox("sqlite:///inbox.db", create=False) as inbox:
        app = console_app(inbox, ConsoleSettings(read_only=True))
        ...  # serve app on 127.0.0.1 (aiohttp's AppRunner), or run `fullstory-async inbox serve`

It shows every stored delivery (filtered, keyset-paged), one delivery's body and attempts,
the last day's activity, and replays through the one replay path of ``inbox replay``. It
guards itself (`ConsoleSettings`): ``Host`` and ``Origin`` checks, a bearer token and login
sessions, CSRF tokens, a strict Content-Security-Policy. docs/gateway.md shows how to run it.
"""

from fullstory_async.console._app import console_app
from fullstory_async.console._security import ConsoleSettings

__all__ = ["ConsoleSettings", "console_app"]
