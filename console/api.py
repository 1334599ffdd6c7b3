"""The console's HTTP side, independent of any page: login, logout, who am I, and
``require(action)`` for every console endpoint to come.

Served by ``hub run``'s inbound server under ``console.path`` (default
``/console``; ``web.mounts``, registered in ``console.parts``)::

    POST {path}/api/login    {"username", "password"} -> 200 {username, roles, tenants,
                             actions, csrf_token, expires_at} and the session cookie
    POST {path}/api/logout   ends the session (X-CSRF-Token needed)
    GET  {path}/api/me       the operator of the session, with the CSRF token again

The session cookie is HttpOnly, SameSite=Strict, limited to the console's path,
and Secure when the request came over HTTPS (directly, or through a proxy saying
``X-Forwarded-Proto: https``). A future endpoint is a function of a
``ConsoleRequest`` returning an ``Answer``, added with ``ConsoleApp.add`` and
guarded by ``require``::

    @require("dead_letters.replay")
    def replay(req: ConsoleRequest) -> Answer:
        req.console.authorize_tenant(req, letter["tenant"])
        ...

Without a live session it answers 401 ``unauthenticated``; a state-changing
request (not GET or HEAD) without the session's CSRF token 403 ``csrf_failed``;
an operator whose roles do not allow the action (``console.roles``) 403
``forbidden``; another tenant's data 403 ``tenant_forbidden``. Every refusal is in
the caller's language (Chinese by default; ``?lang=en`` or ``Accept-Language``)
and audited as ``console.refused`` with the operator, action, endpoint and why.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from bdchub.core import i18n
from bdchub.core.errors import ConfigError, HubError
from bdchub.core.i18n import _
from bdchub.core.operators import OperatorStore
from bdchub.web.http import (
    Answer,
    ApiError,
    Request,
    json_answer,
    read_json,
    request_language,
    status_line,
)

from .accounts import LoginRefused, Operator, Operators
from .config import settings
from .passwords import Passwords
from .roles import ACTIONS
from .sessions import Session, Sessions, csrf_matches

log = logging.getLogger("bdchub.console")

COOKIE = "bdchub_console"
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"
MAX_BODY = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ConsoleRequest(Request):
    """A request to the console: ``operator`` and ``session`` once ``require`` let it in."""

    __slots__ = ("console", "operator", "session", "action")

    def __init__(self, environ: dict[str, Any], method: str, path: str, started: float,
                 console: ConsoleApp):
        super().__init__(environ, method, path, started)
        self.console = console
        self.operator: Operator | None = None
        self.session: Session | None = None
        self.action = ""

    @property
    def remote(self) -> str:
        return self.header("REMOTE_ADDR")

    def cookie(self, name: str) -> str:
        from http.cookies import CookieError, SimpleCookie

        raw = self.header("HTTP_COOKIE")
        if not raw:
            return ""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return ""
        found = jar.get(name)
        return found.value if found is not None else ""


ConsoleHandler = Callable[[ConsoleRequest], Answer]


def require(action: str | None) -> Callable[[ConsoleHandler], ConsoleHandler]:
    """Guard a console endpoint: a live session, the CSRF token on a state-changing
    request, and (unless ``action`` is None: any operator) a role allowing ``action``."""
    if action is not None and action not in ACTIONS:
        raise ValueError(f"unknown console action {action!r}: add it to console.roles")

    def decorate(handler: ConsoleHandler) -> ConsoleHandler:
        @functools.wraps(handler)
        def guarded(req: ConsoleRequest) -> Answer:
            req.console.authorize(req, action)
            return handler(req)

        guarded.action = action  # type: ignore[attr-defined]
        return guarded

    return decorate


class ConsoleApp:
    """The console's WSGI application over ``hub`` (its store and audit log)."""

    def __init__(self, hub: Any, config: dict[str, Any], *,
                 clock: Callable[[], float] = time.time, passwords: Passwords | None = None):
        found = settings(config)
        if found is None:
            raise ConfigError(_("the console is not enabled (console: in the config)"))
        store = getattr(hub, "store", None)
        if store is None:
            raise ConfigError(_("the console needs the hub's store"))
        self.hub = hub
        self.settings = found
        self.prefix = str(found["path"]).rstrip("/")
        self.clock = clock
        operator_store = OperatorStore(store)
        self.operators = Operators(operator_store, hub.audit, passwords=passwords, clock=clock,
                                   lockout_after=int(found["lockout"]["after"]),
                                   lockout_for=float(found["lockout"]["for"]))
        self.sessions = Sessions(operator_store, ttl=float(found["session_ttl"]),
                                 max_age=float(found["session_max_age"]), clock=clock)
        self.language = (config.get("inbound") or {}).get("language")
        self.routes: dict[str, dict[str, ConsoleHandler]] = {}
        self.add("POST", "/api/login", self.login)
        self.add("POST", "/api/logout", require(None)(self.logout))
        self.add("GET", "/api/me", require(None)(self.me))

    def add(self, method: str, path: str, handler: ConsoleHandler) -> None:
        """Serve ``handler`` for ``method`` at ``path`` under the console's prefix."""
        methods = self.routes.setdefault(path, {})
        if method in methods:
            raise ConfigError(_("console endpoint {method} {path} is defined twice",
                                method=method, path=path))
        methods[method] = handler

    # -- WSGI
    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        req = ConsoleRequest(environ, environ.get("REQUEST_METHOD", "GET"),
                             path[len(self.prefix):] or "/", time.perf_counter(), self)
        with i18n.use_language(request_language(req, self.language)):
            status, headers, body = self._dispatch(req)
        if not isinstance(body, bytes):  # streamed (an audit export): sent as it comes
            start_response(status_line(status), headers)
            return body
        headers.append(("Content-Length", str(len(body))))
        start_response(status_line(status), headers)
        return [body]

    def _dispatch(self, req: ConsoleRequest) -> Answer:
        try:
            methods = self.routes.get(req.path)
            if methods is None:
                raise ApiError(404, "not_found", _("no such resource"), reason="no_route")
            req.endpoint = req.path
            handler = methods.get(req.method)
            if handler is None:
                allow = ", ".join(sorted(methods))
                raise ApiError(405, "method_not_allowed",
                               _("method {method} is not allowed here; use {allowed}",
                                 method=req.method, allowed=allow), headers=[("Allow", allow)])
            if req.method not in SAFE_METHODS:
                req.read_body(MAX_BODY)
            return handler(req)
        except ApiError as err:
            return self._refuse(req, err)
        except HubError as exc:
            log.warning("console %s %s failed: %s", req.method, req.path, exc)
            return self._refuse(req, ApiError(500, "internal_error", str(exc),
                                              reason="hub_error"))
        except Exception:  # noqa: BLE001 - one bad request must never take the server down
            log.exception("console request failed: %s %s", req.method, req.path)
            return self._refuse(req, ApiError(500, "internal_error",
                                              _("internal error; nothing was changed"),
                                              reason="exception"))

    def _refuse(self, req: ConsoleRequest, err: ApiError) -> Answer:
        if err.status in (401, 403):
            self.audit("console.refused", {
                "operator": req.operator.username if req.operator else "",
                "action": req.action, "method": req.method, "endpoint": req.endpoint,
                "status": err.status, "code": err.code, "reason": err.reason,
                "remote": req.remote, **err.audit_fields})
        return json_answer(err.status, {"error": {"code": err.code, "message": err.message}},
                           err.headers)

    def audit(self, event: str, fields: dict[str, Any]) -> None:
        try:
            self.hub.audit(event, **fields)
        except Exception:  # noqa: BLE001 - the answer must still go out; ops see the log
            log.exception("audit of %s failed", event)

    # -- the guard every endpoint passes
    def authorize(self, req: ConsoleRequest, action: str | None) -> Operator:
        """Let ``req`` in for ``action`` or raise the refusal (see the module docstring)."""
        req.action = action or ""
        token = req.cookie(COOKIE)
        session = self.sessions.find(token) if token else None
        operator = self.operators.operator(session.username) if session else None
        if session is None or operator is None:
            raise ApiError(401, "unauthenticated",
                           _("not logged in, or the session has expired; log in again"),
                           reason="expired_session" if token else "no_session",
                           headers=[_clear_cookie(self.prefix)] if token else None)
        req.session, req.operator = session, operator
        if req.method not in SAFE_METHODS and not csrf_matches(
                session.token, req.header(CSRF_HEADER)):
            raise ApiError(403, "csrf_failed", _("the request does not carry this session's "
                                                 "CSRF token; reload the page and try again"),
                           reason="missing_csrf" if not req.header(CSRF_HEADER)
                           else "wrong_csrf")
        if action is not None and not operator.may(action):
            raise ApiError(403, "forbidden", _("your role does not allow this: {action}",
                                               action=action), reason="role")
        return operator

    def authorize_tenant(self, req: ConsoleRequest, tenant: str) -> None:
        """Refuse (403 ``tenant_forbidden``, audited) data of a tenant the operator's
        account is not scoped to."""
        operator = req.operator
        if operator is None or not operator.sees(tenant):
            raise ApiError(403, "tenant_forbidden",
                           _("your account is not scoped to tenant {tenant}",
                             tenant=tenant[:6]), reason="tenant",
                           audit_fields={"tenant": tenant[:6]})

    # -- endpoints
    def login(self, req: ConsoleRequest) -> Answer:
        body = read_json(req)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "bad_request", _("give username and password as text"),
                           reason="login_form")
        try:
            operator = self.operators.login(username, password, remote=req.remote)
        except LoginRefused as refused:
            if refused.reason == "bad_credentials":
                raise ApiError(401, "login_failed", str(refused),
                               reason="bad_credentials") from None
            retry = ([("Retry-After", str(max(1, int(refused.locked_until - self.clock()))))]
                     if refused.locked_until else None)
            raise ApiError(403, f"account_{refused.reason}", str(refused),
                           reason=refused.reason, headers=retry) from None
        session = self.sessions.open(operator.username)
        self.audit("console.login", {"operator": operator.username, "remote": req.remote,
                                     "roles": list(operator.roles)})
        return json_answer(200, self._me(operator, session),
                           [self._cookie(req, session)])

    def logout(self, req: ConsoleRequest) -> Answer:
        assert req.session is not None and req.operator is not None
        self.sessions.close(req.session.token)
        self.audit("console.logout", {"operator": req.operator.username, "remote": req.remote})
        return json_answer(200, {"status": "logged_out"}, [_clear_cookie(self.prefix)])

    def me(self, req: ConsoleRequest) -> Answer:
        assert req.session is not None and req.operator is not None
        return json_answer(200, self._me(req.operator, req.session))

    @staticmethod
    def _me(operator: Operator, session: Session) -> dict[str, Any]:
        from .roles import label

        return {**operator.as_dict(), "role_names": [label(r) for r in operator.roles],
                "csrf_token": session.csrf, "expires_at": session.expires_at}

    def _cookie(self, req: ConsoleRequest, session: Session) -> tuple[str, str]:
        https = (req.environ.get("wsgi.url_scheme") == "https"
                 or req.header("HTTP_X_FORWARDED_PROTO").lower() == "https")
        max_age = int(self.settings["session_max_age"])
        return ("Set-Cookie", f"{COOKIE}={session.token}; Path={self.prefix}; "
                              f"Max-Age={max_age}; HttpOnly; SameSite=Strict"
                              + ("; Secure" if https else ""))


def _clear_cookie(prefix: str) -> tuple[str, str]:
    return ("Set-Cookie", f"{COOKIE}=; Path={prefix}; Max-Age=0; HttpOnly; SameSite=Strict")


def mount(hub: Any, config: dict[str, Any]) -> tuple[str, ConsoleApp] | None:
    """(prefix, application) for ``web.mounts``, or None when the console is off or
    ``hub`` keeps no store (the config tests' stand-in port, a test's fake hub)."""
    if settings(config) is None or getattr(hub, "store", None) is None:
        return None
    app = ConsoleApp(hub, config)
    return app.prefix, app
