"""The frame every console page shares: the HTML answer with its security headers,
the ``page(action)`` guard, the layout with its navigation, the operator's language
and the static files.

A page module (``console.pages``, ``console.messages`` …) renders its body with
``layout`` and guards its handler with ``page("…")``; ``NAV`` lists the pages in the
order the navigation shows them, each with the action an operator needs to see
the link. Every file under ``static/`` whose name ends in .js, .css or .png is
served under ``{path}/static/`` and nothing else is.
"""

from __future__ import annotations

import contextlib
import functools
import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from bdchub.core import i18n
from bdchub.core.i18n import _
from bdchub.web.http import Answer, ApiError

from .api import ConsoleRequest

STATIC = Path(__file__).resolve().parent / "static"
_KINDS = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".png": "image/png"}
#: URL under the prefix -> (file under static/, content type). Nothing else is served.
STATIC_FILES = {f"/static/{p.relative_to(STATIC).as_posix()}":
                (p.relative_to(STATIC).as_posix(), _KINDS[p.suffix])
                for p in sorted(STATIC.rglob("*")) if p.suffix in _KINDS}
#: The navigation: (path under the prefix, its label, the action that shows the link).
NAV: list[tuple[str, Callable[[], str], str]] = [
    ("overview", lambda: _("Overview"), "overview.read"),
    ("messages", lambda: _("Messages"), "messages.read"),
    ("dead-letters", lambda: _("Dead letters"), "messages.read"),
    ("parked", lambda: _("Parked"), "messages.read"),
    ("statistics", lambda: _("Statistics"), "statistics.read"),
    ("channels", lambda: _("Channels and clients"), "channels.read"),
    ("audit", lambda: _("Audit"), "audit.read"),
    ("operators", lambda: _("Operators"), "operators.read"),
]
LANG_COOKIE = "bdchub_console_lang"
LIST_LIMIT = 200
MAX_REASON = 500

e = html.escape


# ------------------------------------------------------------------ plumbing

def html_answer(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> Answer:
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
               # Only the hub's own scripts and styles run, whatever a value smuggles in.
               ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                           "frame-ancestors 'none'"),
               ("X-Content-Type-Options", "nosniff"), *(extra or [])]
    return status, headers, text.encode("utf-8")


def redirect(location: str) -> Answer:
    return 303, [("Location", location), ("Content-Length", "0")], b""


def language_of(req: ConsoleRequest) -> str | None:
    """The page's language: ``?lang=`` (ConsoleApp already chose it), else the cookie."""
    if req.has_arg("lang"):
        return None
    chosen = req.cookie(LANG_COOKIE)
    return chosen if chosen in ("en", "zh_CN") else None


def with_language(handler: Callable[[ConsoleRequest], Answer]) -> Callable[..., Answer]:
    @functools.wraps(handler)
    def served(req: ConsoleRequest) -> Answer:
        # ?lang= keeps what ConsoleApp chose from it; otherwise the cookie or the default.
        with (contextlib.nullcontext() if req.has_arg("lang")
              else i18n.use_language(language_of(req))):
            status, headers, body = handler(req)
        if req.has_arg("lang"):
            headers = [*headers, ("Set-Cookie", f"{LANG_COOKIE}={i18n.language()}; "
                                                f"Path={req.console.prefix}; SameSite=Strict")]
        return status, headers, body
    return served


def page(action: str) -> Callable[[Callable[[ConsoleRequest], str]], Callable[..., Answer]]:
    """A page guarded by ``action``: no session sends the browser to the login page;
    a role without the action gets a 403 page; both audited as any refusal."""
    def decorate(render: Callable[[ConsoleRequest], str]) -> Callable[..., Answer]:
        @with_language
        @functools.wraps(render)
        def served(req: ConsoleRequest) -> Answer:
            try:
                req.console.authorize(req, action)
            except ApiError as err:
                req.console._refuse(req, err)  # audited as every refusal of the console
                if err.status == 401:
                    target = req.console.prefix + req.path + (f"?{req.query}" if req.query else "")
                    return redirect(f"{req.console.prefix}/login?"
                                     + urlencode({"next": target}))
                return html_answer(err.status, layout(req, _("Not allowed"), f"""
<section class="refused"><h1>{e(_("Not allowed"))}</h1><p id="refusal">{e(err.message)}</p>
</section>"""))
            return html_answer(200, render(req))
        return served
    return decorate


def static(req: ConsoleRequest) -> Answer:
    name, kind = STATIC_FILES[req.path]
    body = (STATIC / name).read_bytes()
    return 200, [("Content-Type", kind), ("Cache-Control", "max-age=3600"),
                 ("X-Content-Type-Options", "nosniff")], body


def html_lang() -> str:
    return "en" if i18n.language().startswith("en") else "zh-CN"


def layout(req: ConsoleRequest, title: str, body: str, *, script: str = "") -> str:
    """The frame of every page: navigation, language switch, the operator."""
    prefix = req.console.prefix
    operator = req.operator
    csrf = req.session.csrf if req.session is not None else ""
    other = "zh_CN" if html_lang() == "en" else "en"
    switch = "中文" if other == "zh_CN" else "English"
    here = req.console.prefix + req.path + "?" + urlencode(
        [(k, v) for k, v in args(req) if k != "lang"] + [("lang", other)])
    nav = ""
    if operator is not None:
        nav = "".join(f'<a href="{e(prefix)}/{href}">{e(label())}</a>'
                      for href, label, action in NAV if operator.may(action))
        nav += (f'<span class="who" id="operator">{e(operator.username)}</span>'
                f'<button type="button" id="logout">{e(_("Log out"))}</button>')
    return f"""<!doctype html>
<html lang="{html_lang()}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="console-prefix" content="{e(prefix)}">
<meta name="csrf-token" content="{e(csrf)}">
<title>{e(title)} · {e(_("bdc-hub console"))}</title>
<link rel="stylesheet" href="{e(prefix)}/static/console.css">
{script}<script src="{e(prefix)}/static/console.js" defer></script>
</head><body>
<header><span class="brand">{e(_("bdc-hub console"))}</span><nav>{nav}</nav>
<a class="lang" id="lang-switch" href="{e(here)}">{e(switch)}</a></header>
<main>{body}</main></body></html>"""


def args(req: ConsoleRequest) -> list[tuple[str, str]]:
    return parse_qsl(req.query, keep_blank_values=True)


def text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def when(ts: Any) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))
