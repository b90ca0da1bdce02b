"""``fullstory-async inbox serve``: the inbox console (`fullstory_async.console`) on a port of this machine.

On loopback (127.0.0.1, ::1, ``localhost``: the default) it needs nothing else: the console
checks ``Host`` and ``Origin``, so another site cannot reach it through DNS rebinding. Any
other address (``0.0.0.0`` included) needs ``--token-env`` and TLS (``--tls-cert/--tls-key``,
or ``--behind-tls-proxy`` when a proxy in front terminates it), and ``--behind-tls-proxy``
needs ``--token-env`` on loopback too; without them the command exits 2 naming the flag.
Served within the connection limits of ``receive`` (`ConnectionLimits`). Like every ``inbox``
command it never creates nor migrates an inbox. It prints one line, ``console at URL``, on
stderr once it listens, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys

import attrs

from fullstory_async._auth import _is_loopback as is_loopback
from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.cli._local import INBOX_URL_HELP, env_secret, local
from fullstory_async.cli._types import integer
from fullstory_async.console import ConsoleSettings, console_app
from fullstory_async.console._security import LOOPBACK_NAMES, MIN_TOKEN
from fullstory_async.receiving import open_inbox
from fullstory_async.receiving._limits import ConnectionLimits, descriptor_room, serve

_WILDCARDS = ("0.0.0.0", "::", "")


def serve_options(action: argparse.ArgumentParser) -> None:
    """Declare the options of ``inbox serve``."""
    action.description = (
        "Serve the inbox console: every delivery, its body and attempts, the last day's activity, replay; "
        "and its JSON API under /api/. Loopback only unless given a token and TLS."
    )
    action.add_argument("--inbox", required=True, metavar="URL", help=INBOX_URL_HELP)
    action.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    action.add_argument("--port", type=integer(0, 65535), default=8081, help="port (8081; 0 = a free one)")
    action.add_argument(
        "--token-env",
        metavar="VAR",
        help=f"environment variable holding the token (>= {MIN_TOKEN} characters) for the API "
        "(Authorization: Bearer) and the login; required off loopback",
    )
    action.add_argument("--read-only", action="store_true", help="hide and refuse every action (replay, requeue)")
    action.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain (with --tls-key)")
    action.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    action.add_argument(
        "--behind-tls-proxy",
        action="store_true",
        help="a proxy in front terminates TLS (cookies are Secure; needs --token-env)",
    )


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        flag = "--tls-key" if args.tls_key is None else "--tls-cert"
        raise InvalidArgumentError(flag, "--tls-cert and --tls-key go together")
    if args.tls_cert is None:
        return None
    if args.behind_tls_proxy:
        raise InvalidArgumentError("--behind-tls-proxy", "give either it or --tls-cert/--tls-key, not both")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgumentError("--tls-cert", f"cannot be loaded with --tls-key: {exc.strerror or exc}") from None
    return context


def _name(host: str) -> str:
    """Return ``host`` as a ``Host`` header names it (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host.lower()


def _settings(args: argparse.Namespace, tls: bool) -> ConsoleSettings:
    token = None if args.token_env is None else env_secret("--token-env", args.token_env)
    secure = tls or args.behind_tls_proxy
    if token is None and args.behind_tls_proxy:  # on loopback too: whoever reaches the proxy reaches the console
        raise InvalidArgumentError(
            "--token-env", "--behind-tls-proxy: anyone who reaches the proxy could read and replay the inbox"
        )
    if not is_loopback(args.host):
        if token is None:
            raise InvalidArgumentError(
                "--token-env", f"{args.host} is not loopback: anyone who reaches it could read and replay the inbox"
            )
        if not secure:
            raise InvalidArgumentError(
                "--tls-cert",
                f"{args.host} is not loopback: the token and the session would cross the network in clear; "
                "give --tls-cert/--tls-key, or --behind-tls-proxy when a proxy terminates TLS",
            )
    hosts: frozenset[str] | None
    if args.behind_tls_proxy or args.host in _WILDCARDS:
        hosts = None  # behind a proxy Host is the proxy's public name; on every address, any of them
    elif is_loopback(args.host):
        hosts = LOOPBACK_NAMES | {_name(args.host)}
    else:
        hosts = frozenset({_name(args.host)})
    try:
        return ConsoleSettings(token=token, read_only=args.read_only, secure=secure, hosts=hosts)
    except InvalidArgumentError as exc:  # the token's length
        raise InvalidArgumentError("--token-env", f"the token in {args.token_env} {exc.problem}") from None


def console_limits() -> ConnectionLimits:
    """Return the connection limits of ``receive``, the cap lowered to fit the file-descriptor limit."""
    limits, room = ConnectionLimits(), descriptor_room()
    if room is not None and room < limits.max_connections:
        return attrs.evolve(limits, max_connections=max(room, 1))
    return limits


async def _serve(args: argparse.Namespace) -> int:
    context = _tls(args)
    settings = _settings(args, context is not None)
    async with open_inbox(args.inbox, retention=None, create=False) as inbox:
        app = console_app(inbox, settings)
        async with serve(app, args.host, args.port, console_limits(), ssl=context) as port:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            scheme = "https" if context is not None else "http"
            print(f"console at {scheme}://{_name(args.host)}:{port}/", file=sys.stderr, flush=True)
            await stop.wait()
    return 0


inbox_serve = local(_serve)
"""``fullstory-async inbox serve``."""
