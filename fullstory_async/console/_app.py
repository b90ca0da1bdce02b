"""The console's aiohttp application: routes, and the one middleware that guards them all (`_security`).

A request meets, in order: the ``Host`` check (``421``), the ``Origin`` check of a
state-changing request (``403``), who is asking (a page without a session is sent to
``/login``, an API call answered ``401``; a client past its failed logins ``429``),
``--read-only`` (``403`` to every action), its body read (within the head deadline of
`serve`; ``408`` when the connection closes first), an API call's body that is not JSON
(``400``), the CSRF token of a state-changing request from a page (``403``); then its handler.
Refusals and errors are JSON under ``/api/`` and a page elsewhere; every response carries
`_security.HEADERS`.
"""

from __future__ import annotations

import math
import secrets
from importlib import resources
from typing import Any

import attrs
from aiohttp import web

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.console import _api, _pages
from fullstory_async.console._api import FILTER_FIELDS, INBOX, NO_DELIVERY
from fullstory_async.console._security import (
    SESSION_COOKIE,
    ConsoleSettings,
    LoginThrottle,
    Sessions,
    bearer,
    check_host,
    check_origin,
    set_headers,
    token_matches,
)
from fullstory_async.receiving import Inbox, InboxError, InboxFilter
from fullstory_async.receiving._replaying import parse_filter, replay

MAX_REQUEST = 64 * 1024
"""Bytes a request body may have (a form or a replay's JSON is a few hundred)."""

SETTINGS: web.AppKey[ConsoleSettings] = web.AppKey("settings", ConsoleSettings)
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("throttle", LoginThrottle)
ANONYMOUS_CSRF: web.AppKey[str] = web.AppKey("anonymous_csrf", str)
_ACTIONS = ("/replay", "/api/replay")
_STATIC = {"console.js": "text/javascript", "console.css": "text/css"}


@attrs.frozen
class Caller:
    """Who is asking: by ``bearer`` token, by ``session`` (``sid``), or ``anonymous`` (loopback without a token)."""

    kind: str
    csrf: str | None = attrs.field(default=None, repr=False)
    sid: str | None = attrs.field(default=None, repr=False)


CALLER: web.RequestKey[Caller | None] = web.RequestKey("caller")


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _caller(request: web.Request) -> Caller | None:
    settings = request.app[SETTINGS]
    if settings.token is None:
        return Caller("anonymous", request.app[ANONYMOUS_CSRF])
    if (given := bearer(request)) is not None:  # a guess costs what a login costs: one throttle for both ways in
        _throttled(request)
        if token_matches(given, settings.token):
            return Caller("bearer")
        request.app[THROTTLE].failed(request.remote or "?")
        return None
    sid = request.cookies.get(SESSION_COOKIE)
    session = request.app[SESSIONS].find(sid)
    return None if session is None else Caller("session", session.csrf, sid)


def _throttled(request: web.Request) -> None:
    """Refuse (``429``) a client past its failed logins, whatever it sends now."""
    if wait := request.app[THROTTLE].wait(request.remote or "?"):
        message = f"token: too many failed logins: try again in {math.ceil(wait)} s"
        raise _Refused(429, message, {"Retry-After": str(math.ceil(wait))})


def _is_action(request: web.Request) -> bool:
    return request.method == "POST" and (
        request.path in _ACTIONS or (request.path.startswith("/deliveries/") and request.path.endswith("/replay"))
    )


def _needs_csrf(caller: Caller, request: web.Request) -> bool:
    """Tell whether a request needs the CSRF token: a page's does, and an API call made with a session."""
    if request.path == "/login" or caller.kind == "bearer":
        return False
    return caller.kind == "session" or not request.path.startswith("/api/")


async def _csrf_given(request: web.Request) -> str | None:
    if given := request.headers.get("X-CSRF-Token"):
        return given
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get("csrf")
        return value if isinstance(value, str) else None
    return None


async def _guard_request(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    changing = request.method not in ("GET", "HEAD", "OPTIONS")
    if changing and (why := check_origin(request)):
        raise _Refused(403, f"origin: {why} is refused")
    caller = _caller(request)
    request[CALLER] = caller
    public = request.path == "/login" or request.path.startswith("/static/")
    if caller is None and not public:
        if request.path.startswith("/api/"):
            bearer_needed = {"WWW-Authenticate": 'Bearer realm="fullstory-async console"'}
            raise _Refused(401, "authorization: send Authorization: Bearer with the console's token", bearer_needed)
        raise web.HTTPSeeOther("/login")
    if settings.read_only and _is_action(request):
        raise _Refused(403, "read-only: this console only shows the inbox")
    if not changing:
        return
    # Read the body here, before `serve`'s gate (an inner middleware) ends the head deadline:
    # a body sent slowly is then cut with its head, never holding the connection for ever.
    try:
        await request.read()
    except ConnectionResetError:  # closed at the deadline, or by the sender: nobody reads an answer
        raise _Refused(408, "body: the connection closed before the body was in") from None
    if request.path.startswith("/api/") and request.content_type != "application/json":
        # A page on another site can POST a form or text/plain without asking; JSON needs CORS, never granted here.
        raise _Refused(400, "content-type: must be application/json")
    if caller is not None and _needs_csrf(caller, request):
        given = await _csrf_given(request)
        if not given or caller.csrf is None or not token_matches(given, caller.csrf):
            raise _Refused(403, "csrf: the request lacks this page's CSRF token (reload the page)")


def _refusal(request: web.Request, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": message}, status=status, headers=headers)
    return _page(request, "Refused" if status < 500 else "Unavailable", _pages.error(message), status, headers)


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Guard every request (see the module), and turn refusals and errors into JSON or a page."""
    if not check_host(request, request.app[SETTINGS]):
        return web.Response(status=421, text="421 Misdirected Request: this console is not served under that name\n")
    try:
        await _guard_request(request)
        response: web.StreamResponse = await handler(request)
        return response
    except _Refused as exc:
        return _refusal(request, exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None  # a 405 says what is allowed
        return _refusal(request, exc.status, exc.reason, allow)
    except InvalidArgumentError as exc:
        return _refusal(request, 400, str(exc))
    except InboxError as exc:
        return _refusal(request, 503, f"the inbox did not answer: {exc}")


def _csrf(request: web.Request) -> str | None:
    caller: Caller | None = request.get(CALLER)
    return None if caller is None else caller.csrf


def _page(
    request: web.Request, title: str, main: str, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    caller: Caller | None = request.get(CALLER)
    text = _pages.layout(title, main, csrf=_csrf(request), logout=caller is not None and caller.kind == "session")
    return web.Response(text=text, status=status, content_type="text/html", headers=headers)


def _actions(request: web.Request) -> bool:
    return not request.app[SETTINGS].read_only


async def list_page(request: web.Request) -> web.Response:
    """``GET /``: the deliveries, newest first, filtered and paged."""
    try:
        filters, cursor, limit = _api.list_query(request.query)
        page = await request.app[INBOX].list(filters, cursor, limit)
    except InvalidArgumentError as exc:
        main = _pages.deliveries(request.query, None, problem=str(exc), csrf=_csrf(request), actions=False)
        return _page(request, "Deliveries", main, 400)
    main = _pages.deliveries(request.query, page, problem=None, csrf=_csrf(request), actions=_actions(request))
    return _page(request, "Deliveries", main)


async def delivery_page(request: web.Request) -> web.Response:
    """``GET /deliveries/{key}``: one delivery, its body as text and its attempts."""
    key = request.match_info["key"]
    try:
        entry = await request.app[INBOX].get(key)
    except InvalidArgumentError:  # not a key at all: no delivery either
        entry = None
    if entry is None:
        return _page(request, "Not found", _pages.error(NO_DELIVERY), 404)
    main = _pages.delivery(entry, csrf=_csrf(request), actions=_actions(request))
    return _page(request, f"Delivery {key[:12]}", main)


async def _replay_result(request: web.Request, filters: InboxFilter, fields: dict[str, str | None]) -> web.Response:
    form = await request.post()
    flags = {name: form.get(name) == "1" for name in ("all", "yes")}
    try:
        outcome = await replay(request.app[INBOX], filters, **flags)
    except InvalidArgumentError as exc:
        if exc.field not in flags:
            raise
        wanted = {**fields, **{name: "1" for name, on in flags.items() if on}, exc.field: "1"}
        question = (
            "No filter is set: replay every done and dead event?"
            if exc.field == "all"
            else f"{exc.problem.split(':')[0]}: replay them all?"
        )
        return _page(request, "Confirm the replay", _pages.confirm(wanted, question, csrf=_csrf(request) or ""))
    return _page(request, "Replayed", _pages.result(outcome))


async def replay_page(request: web.Request) -> web.Response:
    """``POST /replay``: replay the events a filter matches (the refusals of ``inbox replay`` as questions)."""
    form = await request.post()
    fields = {name: value if isinstance(value := form.get(name), str) else None for name in FILTER_FIELDS}
    return await _replay_result(request, parse_filter(**fields), fields)


async def replay_one_page(request: web.Request) -> web.Response:
    """``POST /deliveries/{key}/replay``: replay one event."""
    key = request.match_info["key"]
    return await _replay_result(request, InboxFilter(key=key), {"key": key})


async def activity_page(request: web.Request) -> web.Response:
    """``GET /activity``: the last day's chart and table."""
    return _page(request, "Activity", _pages.activity(await request.app[INBOX].activity()))


async def login_page(request: web.Request) -> web.Response:
    """``GET /login``: the login form (to ``/`` when no token is set)."""
    if request.app[SETTINGS].token is None:
        raise web.HTTPSeeOther("/")
    return _page(request, "Log in", _pages.login(problem=None))


async def login(request: web.Request) -> web.Response:
    """``POST /login``: a right token starts a session (its cookie); wrong ones are throttled per address."""
    settings = request.app[SETTINGS]
    if settings.token is None:
        raise web.HTTPSeeOther("/")
    token = (await request.post()).get("token")
    # No await from here to THROTTLE.failed: concurrent logins each see the failures of those before.
    try:
        _throttled(request)
    except _Refused as exc:
        return _page(request, "Log in", _pages.login(problem=exc.message), exc.status, exc.headers)
    if not isinstance(token, str) or not token_matches(token, settings.token):
        request.app[THROTTLE].failed(request.remote or "?")
        return _page(request, "Log in", _pages.login(problem="token: wrong token"), 401)
    if (caller := request.get(CALLER)) is not None:
        request.app[SESSIONS].end(caller.sid)  # a new login replaces the session it was made from
    sid, _session = request.app[SESSIONS].start()
    response = _see_other("/")
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(settings.session_ttl),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=settings.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /logout``: end the session."""
    caller: Caller | None = request.get(CALLER)
    if caller is not None:
        request.app[SESSIONS].end(caller.sid)
    response = _see_other("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _static_files() -> dict[str, bytes]:
    folder = resources.files("fullstory_async.console") / "static"
    return {name: (folder / name).read_bytes() for name in _STATIC}


def console_app(inbox: Inbox, settings: ConsoleSettings | None = None) -> web.Application:
    """Return the console of ``inbox`` as an aiohttp application (serve it with ``fullstory-async inbox serve``).

    ``settings`` says how it is guarded (`ConsoleSettings`: no token is for loopback only).
    The caller owns ``inbox`` (open it before, close it after).
    """
    settings = settings or ConsoleSettings()
    app = web.Application(middlewares=[guard], client_max_size=MAX_REQUEST)
    app[INBOX] = inbox
    app[SETTINGS] = settings
    app[SESSIONS] = Sessions(settings)
    app[THROTTLE] = LoginThrottle(settings.clock)
    app[ANONYMOUS_CSRF] = secrets.token_urlsafe(32)
    app.on_response_prepare.append(set_headers)
    files = _static_files()

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type=_STATIC[name], charset="utf-8")

    app.router.add_get("/", list_page)
    app.router.add_get("/deliveries/{key}", delivery_page)
    app.router.add_post("/deliveries/{key}/replay", replay_one_page)
    app.router.add_post("/replay", replay_page)
    app.router.add_get("/activity", activity_page)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/deliveries", _api.list_deliveries)
    app.router.add_get("/api/deliveries/{key}", _api.get_delivery)
    app.router.add_get("/api/stats", _api.stats)
    app.router.add_get("/api/activity", _api.get_activity)
    app.router.add_post("/api/replay", _api.post_replay)
    return app
