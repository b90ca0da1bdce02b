"""``fullstory-async forward``: a worker that POSTs every stored delivery to an internal service.

Each event of the inbox goes to ``--to`` with its body exactly as Fullstory sent it, signed in
the Standard Webhooks format with the ``--sign-secret-env`` secret (`verify_forwarded` checks
it), at least once and in no particular order across events. The worker's verdicts decide
what happens to an event that is not delivered (see `fullstory_async.receiving.ForwardHandler`).
It prints one line when it starts, logs each failure on stderr, and on SIGTERM or SIGINT stops
claiming, lets the attempts in progress end (at most ``--timeout`` seconds) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.cli._local import INBOX_URL_HELP, env_secret, local, stderr_log
from fullstory_async.cli._types import integer, positive
from fullstory_async.receiving import (
    Forwarder,
    ForwardHandler,
    ForwardTarget,
    Inbox,
    InboxWorker,
    ReceivingHooks,
    open_inbox,
)
from fullstory_async.receiving._forward import shown_url
from fullstory_async.receiving._postgres import redact

_FIELDS = {"timeout": "--timeout", "ca_file": "--ca-file", "client_cert": "--client-cert"}
_DRAIN_MARGIN = 5.0  # seconds a handler may outlive its attempt's --timeout (recording the outcome)


def forward_options(forward: argparse.ArgumentParser) -> None:
    """Declare the options of ``forward``."""
    forward.description = (
        "Forward every stored delivery to an internal service, signed in the Standard Webhooks format "
        "(webhook-id is the event's inbox key, stable across retries); at least once, no ordering across events."
    )
    forward.add_argument("--inbox", required=True, metavar="URL", help=INBOX_URL_HELP)
    forward_target_options(forward, to="--to", required=True)


def forward_target_options(parser: argparse.ArgumentParser, *, to: str, required: bool) -> None:
    """Declare the service and worker options shared by ``forward`` and ``receive --forward-to``."""
    group = parser.add_argument_group("forwarding", "where and how each stored delivery is forwarded")
    group.add_argument(
        to, dest="forward_to", required=required, metavar="URL", help="the internal service's http(s) URL"
    )
    group.add_argument(
        "--sign-secret-env",
        required=required,
        metavar="VAR",
        help="environment variable holding the Standard Webhooks secret (whsec_ and base64) to sign with",
    )
    group.add_argument("--concurrency", type=integer(1, 1024), default=16, metavar="N", help="events at once (16)")
    group.add_argument("--timeout", type=positive, default=10.0, metavar="SECONDS", help="one attempt's limit (10)")
    group.add_argument(
        "--max-attempts", type=integer(1), default=12, metavar="N", help="attempts before a dead letter (12)"
    )
    group.add_argument(
        "--max-delay", type=positive, default=3600.0, metavar="SECONDS", help="longest wait between attempts (3600)"
    )
    group.add_argument("--ca-file", metavar="PEM", help="CA bundle to trust for the service (a private CA)")
    group.add_argument("--client-cert", metavar="PEM", help="client certificate for mutual TLS")
    group.add_argument("--client-key", metavar="PEM", help="the client certificate's private key")
    group.add_argument(
        "--allow-insecure-http", action="store_true", help="allow plain http to a host other than loopback"
    )


def forwarder_from(args: argparse.Namespace, *, to: str = "--to") -> Forwarder:
    """Build the `Forwarder` the options describe (usage problems as `InvalidArgumentError` naming the flag).

    ``to`` is the flag of the service's URL (``--to``; ``receive`` calls it ``--forward-to``).
    """
    name = args.sign_secret_env
    if not name:
        raise InvalidArgumentError("--sign-secret-env", "is required: the variable holding the whsec_ signing secret")
    secret = env_secret("--sign-secret-env", name)
    try:
        target = ForwardTarget(
            args.forward_to,
            timeout=args.timeout,
            ca_file=args.ca_file,
            client_cert=args.client_cert,
            client_key=args.client_key,
            allow_insecure_http=args.allow_insecure_http,
        )
        return Forwarder(target, secret=secret, concurrency=args.concurrency)
    except InvalidArgumentError as exc:
        fields = {**_FIELDS, "url": to, "sign secret": f"--sign-secret-env ({name})"}
        field = fields.get(exc.field, exc.field)
        raise InvalidArgumentError(field, exc.problem) from None


def forward_worker(
    inbox: Inbox, forwarder: Forwarder, args: argparse.Namespace, *, hooks: Sequence[ReceivingHooks] = ()
) -> InboxWorker:
    """Build the `InboxWorker` that runs ``forwarder`` with the options' attempts and delays."""
    return InboxWorker(
        inbox,
        ForwardHandler(forwarder),
        concurrency=args.concurrency,
        max_attempts=args.max_attempts,
        max_delay=args.max_delay,
        handler_timeout=args.timeout + _DRAIN_MARGIN,
        drain_timeout=args.timeout + _DRAIN_MARGIN,
        hooks=hooks,
    )


async def _forward(args: argparse.Namespace) -> int:
    forwarder = forwarder_from(args)
    with stderr_log():
        async with open_inbox(args.inbox, create=False) as inbox, forwarder:
            worker = forward_worker(inbox, forwarder, args)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, lambda: asyncio.ensure_future(worker.stop()))
            print(f"forwarding from {redact(args.inbox)} to {shown_url(args.forward_to)}", flush=True)
            await worker.run()
    return 0


forward = local(_forward)
"""``fullstory-async forward``."""
