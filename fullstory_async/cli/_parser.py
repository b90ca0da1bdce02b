"""The parser of ``fullstory-async`` (stdlib argparse).

Global options, each command's arguments, and `build_parser` over the command table
(``_registry.COMMANDS``). Usage errors exit 2 with a did-you-mean for a misspelt command
or option.

Global options may come before or after the command (``fullstory-async --json endpoints
list`` and ``fullstory-async endpoints list --json`` are the same): they are declared on
the top-level parser with their defaults and again on each command with
``argparse.SUPPRESS``, so a command never resets what was given before it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol

from fullstory_async._bulk.desired import did_you_mean
from fullstory_async._results import DEFAULT_MAX_DELETES
from fullstory_async._version import __version__
from fullstory_async.cli._types import integer, positive

PROG = "fullstory-async"
DEFAULT_API_KEY_ENV = "FULLSTORY_API_KEY"
DEFAULT_CONCURRENCY = 16


class UsageError(Exception):
    """Bad command-line input found after parsing (a missing key, an unreadable file): exit 2."""


class Parser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors suggest the closest command or option of the command given.

    With ``--json`` (or ``--output json``) anywhere on the line, a usage error is one
    ``{"error": {"type": "UsageError", "message": ...}}`` object on stderr, like every other error.
    """

    root: Parser | None = None
    """The top-level parser (``None`` on the top-level parser itself), which saw the whole command line."""
    _argv: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._argv, namespace)

    def error(self, message: str) -> NoReturn:
        """Print usage and ``message`` (with a did-you-mean) on stderr, or with ``--json`` one JSON object; exit 2."""
        argv = (self.root or self)._argv
        message = _CREDENTIALS.sub("://<redacted>@", message) + self._suggestion(message, argv)
        if _wants_json(argv):
            self.exit(2, json.dumps({"error": {"type": "UsageError", "message": message}}, ensure_ascii=False) + "\n")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _suggestion(self, message: str, argv: Sequence[str]) -> str:
        choice = re.search(r"invalid choice: '([^']*)'", message)
        if choice:
            names = [name for action in self._actions if action.choices for name in action.choices]
            return did_you_mean(choice.group(1), names)
        unknown = re.search(r"unrecognized arguments: (\S+)", message)
        if unknown:  # the flags of the command given, and the global ones
            flags = {
                flag for parser in (self, _command_of(self, argv)) for a in parser._actions for flag in a.option_strings
            }
            return did_you_mean(unknown.group(1).partition("=")[0], sorted(flags))
        return ""


_CREDENTIALS = re.compile(r"://[^/@\s]*@")  # the user and password of a URL echoed in a usage error


def _command_of(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """Return the parser of the command ``argv`` names (``endpoints list``), or ``parser`` when it names none."""
    for token in argv:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and token in action.choices:
                parser = action.choices[token]
                break
    return parser


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the line asks for JSON output as argparse reads it: the last ``--json``/``--output`` before ``--``."""
    output = "text"
    for token, following in itertools.pairwise([*argv, ""]):
        if token == "--":
            break
        if token == "--json":
            output = "json"
        elif token == "--output":
            output = following
        elif token.startswith("--output="):
            output = token.partition("=")[2]
    return output == "json"


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Declare the global options; on commands (``top=False``) they default to "not given"."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--base-url",
        default=default(None),
        metavar="URL",
        help="API root (default: $FULLSTORY_BASE_URL, else from the key's region)",
    )
    group.add_argument(
        "--api-key-env",
        default=default(None),
        metavar="VAR",
        help=f"environment variable that holds the API key (default: {DEFAULT_API_KEY_ENV}); "
        "the key itself is never taken on the command line",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=default(False),
        help="allow a plain http base URL to a host that is not loopback (the key crosses the network unencrypted)",
    )
    group.add_argument(
        "--fake",
        action="store_true",
        default=default(False),
        help="use the embedded fake server even when an API key is set",
    )
    group.add_argument("--timeout", type=positive, default=default(30.0), metavar="SECONDS", help="per attempt (30)")
    group.add_argument(
        "--concurrency",
        type=integer(1, 1000),
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


def add_endpoint_fields(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """Declare ``--url``, ``--event-type`` (repeatable) and ``--secret-env``."""
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


def endpoint_ref(parser: argparse.ArgumentParser) -> None:
    """Declare the ``ID_OR_URL`` argument of ``endpoints get|update|delete``: an endpoint id or its URL."""
    parser.add_argument("id", metavar="ID_OR_URL", help="the endpoint's id, or its URL")


def endpoint_update(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``endpoints update``."""
    endpoint_ref(parser)
    add_endpoint_fields(parser, required=False)
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True, help="enable it")
    state.add_argument("--disable", dest="enabled", action="store_const", const=False, help="disable it")


def sync_options(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments shared by ``plan`` and ``apply``."""
    parser.add_argument(
        "file", metavar="FILE", help="desired-state file (.toml or .json), or for apply a plan saved by plan --out"
    )
    parser.add_argument(
        "--prune", action="store_true", help="also delete endpoints inside the file's scope that it does not list"
    )
    parser.add_argument(
        "--max-deletes",
        type=integer(0),
        default=None,  # not given: DEFAULT_MAX_DELETES, or a saved plan's value (`_planfile.restore`)
        metavar="N",
        help=f"refuse a plan that deletes more than N endpoints ({DEFAULT_MAX_DELETES})",
    )
    parser.add_argument(
        "--allow-unlisted-event-types",
        action="store_true",
        help="accept event types and subcategories the server's catalogue does not list (warns instead of failing)",
    )
    parser.add_argument(
        "--rotate-secrets", action="store_true", help="send every secret again (secrets cannot be compared)"
    )


def plan_options(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``plan``."""
    sync_options(parser)
    parser.add_argument(
        "--exit-code", action="store_true", help="exit 3 when changes are pending, 0 when there are none"
    )
    parser.add_argument("--out", metavar="PLAN_FILE", help="also save the plan, for `apply PLAN_FILE`")


def apply_options(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``apply``."""
    sync_options(parser)
    parser.add_argument("-y", "--yes", action="store_true", help="apply without asking")


Configure = Callable[[argparse.ArgumentParser], None]


class CommandLike(Protocol):
    """What the parser needs of a registered command (see ``cli/_registry.py``)."""

    @property
    def name(self) -> str: ...
    @property
    def help(self) -> str: ...
    @property
    def configure(self) -> Configure | None: ...
    @property
    def uses_server(self) -> bool: ...


def build_parser(commands: Sequence[CommandLike]) -> argparse.ArgumentParser:
    """Return the parser of ``fullstory-async`` for the registered ``commands``.

    A name of two words (``endpoints list``) is an action of a command group. Commands
    that talk to a server get the global options; ``args.command`` is the full name.
    """
    parser = Parser(
        prog=PROG,
        description="Manage Fullstory webhook endpoints. Without an API key in the environment "
        "it runs against an embedded fake server: nothing leaves the machine.",
        epilog="Exit status: 0 ok, 1 some items or the API call failed, 2 bad usage or bad file, "
        "3 plan --exit-code with changes pending, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_globals(parser, top=True)
    top = parser.add_subparsers(dest="group", required=True, metavar="COMMAND", parser_class=Parser)
    groups: dict[str, argparse._SubParsersAction[Parser]] = {}
    for spec in commands:
        name, help_text, configure = spec.name, spec.help, spec.configure
        group, _, action = name.rpartition(" ")
        if group and group not in groups:
            holder = top.add_parser(group, help=f"{group}: see `{PROG} {group} --help`")
            holder.root = parser
            groups[group] = holder.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
        command = (groups[group] if group else top).add_parser(action, help=help_text, description=help_text)
        command.root = parser
        command.set_defaults(command=name)
        if spec.uses_server:
            _add_globals(command, top=False)
        if configure is not None:
            configure(command)
    return parser
