"""Every command of ``fullstory-async``, registered once: its name, help, arguments and handler.

To add a command, add one `Command` to `COMMANDS` (a name of two words is an action of a
group, like ``endpoints list``). ``run`` takes the parsed arguments and a `Target` (an open
client); ``local`` commands (``fake-server``, ``completion``) take the arguments only.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

import attrs

from fullstory_async.cli import (
    _commands,
    _completion,
    _console,
    _forward,
    _import,
    _jobs,
    _parser,
    _receiving,
    _replay,
    _send,
)
from fullstory_async.cli._target import Target


@attrs.frozen
class Command:
    """One command: what the parser declares and what runs it."""

    name: str
    help: str
    configure: _parser.Configure | None = None
    run: Callable[[argparse.Namespace, Target], Awaitable[int]] | None = None
    local: Callable[[argparse.Namespace], int] | None = None

    @property
    def uses_server(self) -> bool:
        """True when the command talks to a server (it gets the global options and a `Target`)."""
        return self.run is not None


def _event(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", metavar="EVENT")


def _create(parser: argparse.ArgumentParser) -> None:
    _parser.add_endpoint_fields(parser, required=True)
    parser.add_argument(
        "--no-secret", action="store_true", help="create it without a secret (its deliveries cannot be verified)"
    )


def _fake_server_options(parser: argparse.ArgumentParser) -> None:
    # On use: the fake server's options import this package's argument types.
    from fullstory_async.testing._options import add_fake_server_options

    add_fake_server_options(parser)


COMMANDS: tuple[Command, ...] = (
    Command("endpoints list", "list every endpoint", None, _commands.endpoints_list),
    Command("endpoints get", "show one endpoint", _parser.endpoint_ref, _commands.endpoints_get),
    Command("endpoints create", "create an endpoint", _create, _commands.endpoints_create),
    Command(
        "endpoints update",
        "change an endpoint (only the options given)",
        _parser.endpoint_update,
        _commands.endpoints_update,
    ),
    Command("endpoints delete", "delete an endpoint", _parser.endpoint_ref, _commands.endpoints_delete),
    Command("event-types", "list the event types you can subscribe to", None, _commands.event_types),
    Command("subcategories", "list the subcategories of an event type", _event, _commands.subcategories),
    Command(
        "provision",
        "ensure many endpoints exist (JSON Lines in, JSON Lines out)",
        _jobs.provision_options,
        _jobs.provision,
    ),
    Command("plan", "show what apply would change", _parser.plan_options, _jobs.plan),
    Command(
        "apply", "make the endpoints match a desired-state file or a saved plan", _parser.apply_options, _jobs.apply
    ),
    Command("import", "write the desired-state file of the endpoints inside a scope", _import.options, _import.run),
    Command(
        "fake-server", "serve the embedded fake API until Ctrl-C", _fake_server_options, local=_commands.fake_server
    ),
    Command("completion", "print a shell completion script", _completion.options, local=_completion.run),
    Command(
        "receive", "serve webhook deliveries into a durable inbox", _receiving.receive_options, local=_receiving.receive
    ),
    Command("send", "send signed webhook deliveries to a receiver", _send.options, local=_send.run),
    Command(
        "forward",
        "forward every stored delivery to an internal service, signed (Standard Webhooks)",
        _forward.forward_options,
        local=_forward.forward,
    ),
    Command(
        "inbox export",
        "every stored event, dead letters included, one JSON object a line",
        _receiving.inbox_options,
        local=_receiving.inbox_export,
    ),
    Command(
        "inbox stats",
        "how many events are pending, done and dead",
        _receiving.inbox_options,
        local=_receiving.inbox_stats,
    ),
    Command(
        "inbox replay",
        "make the done and dead events a filter matches pending again (a new series of attempts)",
        _replay.replay_options,
        local=_replay.inbox_replay,
    ),
    Command(
        "inbox requeue",
        "make dead letters pending again (inbox replay --status dead --all)",
        _replay.requeue_options,
        local=_replay.inbox_requeue,
    ),
    Command(
        "inbox serve",
        "serve the inbox console: deliveries, bodies, attempts, activity, replay; and its JSON API",
        _console.serve_options,
        local=_console.inbox_serve,
    ),
)
"""Every command, in the order of ``--help``."""

BY_NAME = {command.name: command for command in COMMANDS}
