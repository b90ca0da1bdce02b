"""The command line: every command and option of ``fullstory-async`` (stdlib argparse).

Global options may come before or after the command (``fullstory-async --json endpoints
list`` and ``fullstory-async endpoints list --json`` are the same): they are declared on
the top-level parser with their defaults and again on each command with
``argparse.SUPPRESS``, so a command never resets what was given before it.
"""

from __future__ import annotations

import argparse

from fullstory_async._version import __version__

PROG = "fullstory-async"
DEFAULT_API_KEY_ENV = "FULLSTORY_API_KEY"
DEFAULT_CONCURRENCY = 16


class UsageError(Exception):
    """Bad command-line input found after parsing (a missing key, an unreadable file): exit 2."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be from 1 to 1000, got {value}")
    return value


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Declare the global options; on commands (``top=False``) they default to "not given"."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--base-url", default=default(None), metavar="URL", help="API root (default: from the key's region)"
    )
    group.add_argument(
        "--api-key-env",
        default=default(None),
        metavar="VAR",
        help=f"environment variable that holds the API key (default: {DEFAULT_API_KEY_ENV}); "
        "the key itself is never taken on the command line",
    )
    group.add_argument(
        "--fake",
        action="store_true",
        default=default(False),
        help="use the embedded fake server even when an API key is set",
    )
    group.add_argument(
        "--timeout", type=_positive_float, default=default(30.0), metavar="SECONDS", help="per attempt (30)"
    )
    group.add_argument(
        "--concurrency",
        type=_concurrency,
        default=default(DEFAULT_CONCURRENCY),
        metavar="N",
        help=f"items in flight for provision and apply ({DEFAULT_CONCURRENCY})",
    )
    group.add_argument("--output", choices=("text", "json"), default=default("text"), help="output format (text)")
    group.add_argument(
        "--json", dest="output", action="store_const", const="json", default=default("text"), help="--output json"
    )
    group.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=default(True),
        help="no progress bar (it is shown only when stderr is a terminal)",
    )
    group.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="log requests to stderr (-vv: debug)"
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    _add_globals(parser, top=False)
    return parser


def _add_endpoint_fields(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--url", required=required, help="destination URL (absolute http or https)")
    parser.add_argument(
        "--event-type",
        dest="event_types",
        action="append",
        required=required,
        metavar="NAME[:SUBCATEGORY]",
        help="an event type to deliver (repeat for several); SUBCATEGORY is the opaque value from `subcategories`",
    )
    parser.add_argument("--secret-env", metavar="VAR", help="environment variable that holds the signing secret")


def _add_sync_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="desired-state file (.toml, or .json)")
    parser.add_argument("--prune", action="store_true", help="also delete endpoints that are not in FILE")
    parser.add_argument(
        "--rotate-secrets", action="store_true", help="send every secret again (secrets cannot be compared)"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``fullstory-async``; ``args.command`` (and ``args.action``) name the command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Manage Fullstory webhook endpoints. Without an API key in the environment "
        "it runs against an embedded fake server: nothing leaves the machine.",
        epilog="Exit status: 0 ok, 1 some items or the API call failed, 2 bad usage or bad file, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_globals(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    endpoints = commands.add_parser("endpoints", help="list, get, create, update or delete endpoints")
    actions = endpoints.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(actions, "list", "list every endpoint")
    _command(actions, "get", "show one endpoint").add_argument("id", metavar="ID")
    _add_endpoint_fields(_command(actions, "create", "create an endpoint"), required=True)
    update = _command(actions, "update", "change an endpoint (only the options given)")
    update.add_argument("id", metavar="ID")
    _add_endpoint_fields(update, required=False)
    state = update.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True, help="enable it")
    state.add_argument("--disable", dest="enabled", action="store_const", const=False, help="disable it")
    _command(actions, "delete", "delete an endpoint").add_argument("id", metavar="ID")

    _command(commands, "event-types", "list the event types you can subscribe to")
    _command(commands, "subcategories", "list the subcategories of an event type").add_argument(
        "event", metavar="EVENT"
    )

    provision = _command(commands, "provision", "ensure many endpoints exist (JSON Lines in, JSON Lines out)")
    provision.add_argument("file", metavar="FILE", help="JSON Lines, one endpoint a line; - reads stdin")
    provision.add_argument(
        "--on-exists",
        choices=("update", "skip", "error"),
        default="update",
        help="what to do with an endpoint that exists (update)",
    )

    _add_sync_options(_command(commands, "plan", "show what apply would change"))
    apply = _command(commands, "apply", "make the endpoints match a desired-state file")
    _add_sync_options(apply)
    apply.add_argument("-y", "--yes", action="store_true", help="apply without asking")

    fake = commands.add_parser("fake-server", help="serve the embedded fake API until Ctrl-C")
    fake.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    fake.add_argument("--port", type=int, default=8080, help="port (8080; 0 = a free one)")
    fake.add_argument("--rate", type=float, help="rate limit in requests per second (off)")
    fake.add_argument("--burst", type=int, default=10, help="rate limit burst (10)")
    fake.add_argument("--endpoints", type=int, default=0, help="pre-create this many endpoints (0)")
    from fullstory_async.cli import _receiving  # receive, inbox (issue 13)

    _receiving.add_parsers(commands)
    return parser
