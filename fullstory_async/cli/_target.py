"""Which server the CLI talks to: the real API, or the fake embedded in this process.

The rule:

* ``--fake``: the embedded fake.
* ``--base-url URL`` (or ``FULLSTORY_BASE_URL``, which ``fake-server`` prints): that
  server, with the key from ``--api-key-env`` (default ``FULLSTORY_API_KEY``); an unset
  key is a usage error.
* ``--api-key-env VAR`` given and ``VAR`` unset: a usage error (you meant a real server).
* otherwise: the real API when ``FULLSTORY_API_KEY`` is set, else the embedded fake
  (``FakeFullstory`` on 127.0.0.1 in this process, empty at the start of each command),
  announced in one line on stderr.

The key is only ever read from the environment, never from the command line (where
shell history and ``ps`` would show it). For the embedded fake only, a ``secret_env``
variable that is unset reads as a throwaway random secret (`ThrowawaySecrets`), so the
examples run with no setup; against a real server an unset variable is an error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping

import attrs

from fullstory_async import Client, InvalidArgumentError
from fullstory_async._auth import BASE_URL_ENV
from fullstory_async.cli._output import Console
from fullstory_async.cli._parser import DEFAULT_API_KEY_ENV, PROG, UsageError


class ThrowawaySecrets(Mapping[str, str]):
    """The process environment, where an unset or empty variable reads as a new random secret.

    Used only with the embedded fake. The same variable reads as the same secret for the
    whole command; `newly_generated` tells which variables were filled in, so the CLI can
    say so (by name: the values are never shown).
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._generated: dict[str, str] = {}
        self._reported = 0

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(name)
        if value:
            return value
        if name not in self._generated:
            self._generated[name] = secrets.token_urlsafe(24)
        return self._generated[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)

    @property
    def reported(self) -> bool:
        """True once `newly_generated` returned a name."""
        return self._reported > 0

    def newly_generated(self) -> list[str]:
        """Names filled in since the last call."""
        names = list(self._generated)[self._reported :]
        self._reported = len(self._generated)
        return names


@attrs.frozen
class Target:
    """The server of this command, a client for it, and the environment to read secrets from."""

    client: Client
    where: str
    """The base URL, for messages."""
    fake: bool
    """True for the embedded fake server."""
    environ: Mapping[str, str] = attrs.field(repr=False)
    """Where ``secret_env`` variables are read: `ThrowawaySecrets` for the embedded fake."""
    console: Console = attrs.field(repr=False)

    def describe(self) -> str:
        """``https://api.fullstory.com`` or ``the embedded fake server (http://127.0.0.1:PORT)``."""
        return f"the embedded fake server ({self.where})" if self.fake else self.where

    def secret(self, variable: str, field: str) -> str:
        """Read a secret from ``variable``; an unset one is a `UsageError` (or throwaway, on the fake)."""
        value = self.environ.get(variable)
        if not value:
            raise UsageError(f"{field}: environment variable {variable} is not set")
        self.report_throwaway()
        return value

    def report_throwaway(self) -> None:
        """Say once, in one line, that unset secret variables get throwaway values (embedded fake only)."""
        if isinstance(self.environ, ThrowawaySecrets) and not self.environ.reported:
            names = self.environ.newly_generated()
            if names:
                verb = "is" if len(names) == 1 else "are"
                self.console.notice(
                    f"{', '.join(names)} {verb} not set; the embedded fake gets a throwaway random secret for "
                    "each unset secret_env variable (never a real server)"
                )


def _api_key(args: argparse.Namespace) -> tuple[str, str]:
    variable = args.api_key_env or DEFAULT_API_KEY_ENV
    return variable, os.environ.get(variable, "").strip()


@contextlib.asynccontextmanager
async def open_target(args: argparse.Namespace, console: Console) -> AsyncIterator[Target]:
    """Start the embedded fake if that is the target, and yield a `Target` with an open client."""
    variable, key = _api_key(args)
    base_url = args.base_url or os.environ.get(BASE_URL_ENV, "").strip() or None
    use_fake = args.fake or (not key and base_url is None and args.api_key_env is None)
    if not use_fake:
        if not key:
            given = "--base-url" if args.base_url else BASE_URL_ENV if base_url else "--api-key-env"
            raise UsageError(
                f"{variable} is not set ({given} names a real server): put the API key in it "
                "(the CLI never takes a key on the command line)"
            )
        try:
            client = Client(
                api_key=key, base_url=base_url, timeout=args.timeout, allow_insecure_http=args.allow_insecure_http
            )
        except InvalidArgumentError as exc:  # the refusal names the Python keyword: name the option here
            if "allow_insecure_http=True" not in exc.problem:
                raise
            given = "--base-url" if args.base_url else BASE_URL_ENV
            problem = exc.problem.replace("allow_insecure_http=True", "--allow-insecure-http")
            raise UsageError(f"{given}: {problem} (the API key would cross the network unencrypted)") from None
        async with client:
            yield Target(client, client.base_url, False, os.environ, console)
        return

    from fullstory_async.testing import FakeFullstory  # aiohttp's server: loaded only when needed

    async with FakeFullstory() as fake:
        reason = "--fake given" if args.fake else f"{variable} is not set"
        console.notice(
            f"{reason}; using the embedded fake server at {fake.url} (nothing leaves this machine; it starts empty)"
        )
        async with fake.client(timeout=args.timeout) as client:
            yield Target(client, fake.url, True, ThrowawaySecrets(os.environ), console)
        console.notice(
            f"next: set {DEFAULT_API_KEY_ENV} to run against your account, or run `{PROG} fake-server` in another "
            "terminal and export the lines it prints to keep endpoints between commands"
        )
