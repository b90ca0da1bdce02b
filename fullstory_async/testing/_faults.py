"""Fault injection: `Fault` records, `FaultRule` and the per-fake registry `Faults`.

::

    fake.faults.add(Fault.server_error_after_commit(), route="create_endpoint", times=2)
    fake.faults.add(Fault.latency(5.0), route="GET /webhooks/v1/endpoints/*", probability=0.1)
    fake.faults.clear()

For each request the rules are tried in the order they were added. Every matching
latency rule that triggers adds its delay; the first other rule that triggers decides
the fault, and later non-latency rules are not tried (nor counted). A rule with
``probability`` draws from the fake's random generator, seeded by ``seed``, so a given
sequence of requests always meets the same faults. A rule with ``times`` is removed
after triggering that many times.
"""

from __future__ import annotations

import enum
import random
from fnmatch import fnmatchcase

import attrs

from fullstory_async.testing._responses import (
    BAD_GATEWAY_HTML,
    SERVER_ERROR,
    TOO_MANY_REQUESTS,
    dumps,
)
from fullstory_async.testing._routes import OPERATION_NAMES


class FaultKind(enum.Enum):
    """What a `Fault` does."""

    ERROR = "error"
    """Answer with an API error (status, ``{message, code}``)."""
    HTML = "html"
    """Answer with a non-JSON HTML page (a proxy's 502)."""
    RESET = "reset"
    """Close the connection (TCP reset) without a response."""
    LATENCY = "latency"
    """Wait before handling the request."""
    INVALID_JSON = "invalid_json"
    """Answer 200 with a body that is not JSON."""
    WRONG_SHAPE = "wrong_shape"
    """Answer 200 with JSON of the wrong shape."""


_STATUS = attrs.validators.and_(attrs.validators.ge(100), attrs.validators.le(599))


@attrs.frozen
class Fault:
    """One fault; build it with the class methods, e.g. ``Fault.server_error()``."""

    kind: FaultKind
    """What it does."""

    after_commit: bool = False
    """Whether the request is handled (state changed) before the fault replaces the response."""

    status: int = attrs.field(default=500, validator=_STATUS)
    """HTTP status of the response (ERROR, HTML, INVALID_JSON, WRONG_SHAPE)."""

    code: str = SERVER_ERROR[1]
    """Error ``code`` (ERROR)."""

    message: str = SERVER_ERROR[2]
    """Error ``message`` (ERROR)."""

    retry_after: str | None = None
    """``Retry-After`` header value to send, if any."""

    seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    """Delay (LATENCY)."""

    body: bytes = attrs.field(default=b"", repr=False)
    """Response body (HTML, INVALID_JSON, WRONG_SHAPE)."""

    @classmethod
    def error(
        cls,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        after_commit: bool = False,
    ) -> Fault:
        """Answer with any API error, e.g. ``Fault.error(503, "unavailable", "try later", retry_after=2)``."""
        header = None if retry_after is None else f"{retry_after:g}"
        return cls(FaultKind.ERROR, after_commit, status, code, message, header)

    @classmethod
    def server_error(cls, status: int = 500, *, retry_after: float | None = None) -> Fault:
        """Answer a 5xx ``server_error`` BEFORE the change is applied: nothing happened."""
        return cls.error(status, SERVER_ERROR[1], SERVER_ERROR[2], retry_after=retry_after)

    @classmethod
    def server_error_after_commit(cls, status: int = 500) -> Fault:
        """Answer a 5xx ``server_error`` AFTER the change is applied: the ambiguous case."""
        return cls.error(status, SERVER_ERROR[1], SERVER_ERROR[2], after_commit=True)

    @classmethod
    def too_many_requests(cls, retry_after: float = 1) -> Fault:
        """Answer 429 ``too_many_requests`` with ``Retry-After`` (whatever the rate limit)."""
        return cls.error(*TOO_MANY_REQUESTS, retry_after=retry_after)

    @classmethod
    def connection_reset(cls) -> Fault:
        """Close the connection without a response, BEFORE the change is applied."""
        return cls(FaultKind.RESET)

    @classmethod
    def connection_reset_after_commit(cls) -> Fault:
        """Close the connection without a response, AFTER the change is applied."""
        return cls(FaultKind.RESET, after_commit=True)

    @classmethod
    def latency(cls, seconds: float, *, after_commit: bool = False) -> Fault:
        """Wait ``seconds`` (cancellable; cut short when the fake stops).

        By default the wait comes first; with ``after_commit`` the change is applied and
        then the answer is delayed, so a client timing out meanwhile faces the ambiguous case.
        """
        return cls(FaultKind.LATENCY, after_commit, seconds=seconds)

    @classmethod
    def bad_gateway_html(cls, *, after_commit: bool = False) -> Fault:
        """Answer with a proxy's HTML ``502 Bad Gateway`` page (``text/html``, not JSON)."""
        return cls(FaultKind.HTML, after_commit, 502, body=BAD_GATEWAY_HTML)

    @classmethod
    def invalid_json(cls, body: bytes = b'{"id": "aHR0cHM6Ly9', status: int = 200) -> Fault:
        """Answer 200 (after the change) with a cut-off body that is not valid JSON."""
        return cls(FaultKind.INVALID_JSON, True, status, body=body)

    @classmethod
    def wrong_shape(cls, payload: object = ("not", "an", "object"), status: int = 200) -> Fault:
        """Answer 200 (after the change) with valid JSON of the wrong shape (default: a list)."""
        return cls(FaultKind.WRONG_SHAPE, True, status, body=dumps(payload))

    @classmethod
    def every_kind(cls, *, slow: float, quick: float = 0.01) -> tuple[Fault, ...]:
        """One fault of every kind, for soak tests: 5xx, 429, resets, latency, HTML 502, malformed 200s.

        Each comes before and after the change where both exist. ``slow`` is a latency
        meant to outlast the client's timeout, ``quick`` one that should not.
        """
        return (
            cls.server_error(500),
            cls.server_error(503),
            cls.server_error_after_commit(),
            cls.too_many_requests(retry_after=0.01),
            cls.connection_reset(),
            cls.connection_reset_after_commit(),
            cls.latency(slow),
            cls.latency(slow, after_commit=True),
            cls.latency(quick),
            cls.bad_gateway_html(),
            cls.bad_gateway_html(after_commit=True),
            cls.invalid_json(),
            cls.wrong_shape(),
        )


def _check_probability(_: object, __: object, value: float | None) -> None:
    if value is not None and not 0 < value <= 1:
        raise ValueError(f"probability must be in (0, 1], got {value}")


def _check_times(_: object, __: object, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"times must be at least 1, got {value}")


def _check_route(_: object, __: object, value: str | None) -> None:
    if value is None:
        return
    method, sep, pattern = value.partition(" ")
    if not sep:
        if value not in OPERATION_NAMES:
            known = ", ".join(sorted(OPERATION_NAMES))
            raise ValueError(f"unknown operation {value!r}; use one of {known} or 'METHOD /path'")
    elif not method or not pattern.startswith("/"):
        raise ValueError(f"route must be an operation name or 'METHOD /path', got {value!r}")


@attrs.frozen(eq=False)
class FaultRule:
    """When a `Fault` applies; returned by `Faults.add` (compared by identity)."""

    fault: Fault
    """The fault."""

    route: str | None = attrs.field(default=None, validator=_check_route)
    """None (every request), an operation name (``"create_endpoint"``) or ``"METHOD
    /path"``: method (or ``*``) and an fnmatch pattern of the path (``*`` spans ``/``),
    or the route template itself (``"POST /webhooks/v1/endpoints/{id}"``)."""

    times: int | None = attrs.field(default=None, validator=_check_times)
    """Trigger at most this many times (None: unlimited)."""

    probability: float | None = attrs.field(default=None, validator=_check_probability)
    """Trigger with this probability per matching request (None: always)."""

    def matches(self, operation: str | None, method: str, path: str, template: str) -> bool:
        """Whether the rule is about this request."""
        route = self.route
        if route is None:
            return True
        if route == operation:
            return True
        rule_method, _, pattern = route.partition(" ")
        if rule_method != "*" and rule_method.upper() != method:
            return False
        return pattern == template or fnmatchcase(path, pattern)


class Faults:
    """The fault rules of one fake (``fake.faults``)."""

    __slots__ = ("_random", "_remaining", "_rules", "_seed")

    def __init__(self, seed: int | None = 0) -> None:
        self._seed = seed
        self._random = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._remaining: dict[FaultRule, int] = {}

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"Faults({self._rules!r})"

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The active rules, in the order they are tried."""
        return tuple(self._rules)

    def add(
        self,
        fault: Fault,
        *,
        route: str | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> FaultRule:
        """Add a rule: ``fault`` for requests matching ``route`` (see `FaultRule`)."""
        rule = FaultRule(fault, route, times, probability)
        self._rules.append(rule)
        if times is not None:
            self._remaining[rule] = times
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Remove ``rule`` (no error if it is already gone)."""
        if rule in self._rules:
            self._rules.remove(rule)
        self._remaining.pop(rule, None)

    def remaining(self, rule: FaultRule) -> int | None:
        """How many more times ``rule`` may trigger (None: unlimited; 0: used up)."""
        if rule.times is None:
            return None if rule in self._rules else 0
        return self._remaining.get(rule, 0)

    def clear(self, *, reseed: bool = False) -> None:
        """Remove every rule; with ``reseed`` also restart the random sequence."""
        self._rules.clear()
        self._remaining.clear()
        if reseed:
            self._random.seed(self._seed)

    def select(
        self, operation: str | None, method: str, path: str, template: str
    ) -> tuple[float, Fault | None, tuple[Fault, ...]]:
        """Decide the faults of one request: (total delay, the fault, every triggered fault)."""
        delay = 0.0
        chosen: Fault | None = None
        triggered: list[Fault] = []
        for rule in tuple(self._rules):
            is_latency = rule.fault.kind is FaultKind.LATENCY
            if chosen is not None and not is_latency:
                continue
            if not rule.matches(operation, method, path, template):
                continue
            if rule.probability is not None and self._random.random() >= rule.probability:
                continue
            if rule.times is not None:
                left = self._remaining[rule] - 1
                self._remaining[rule] = left
                if left <= 0:
                    self._rules.remove(rule)
            triggered.append(rule.fault)
            if is_latency:
                delay += rule.fault.seconds
            else:
                chosen = rule.fault
        return delay, chosen, tuple(triggered)
