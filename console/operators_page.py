"""The operators page (issue #13, item 2): the security administrator manages the
console's accounts; the audit administrator reads them::

    GET  {path}/operators                 every account the operator's tenants cover: roles
                                          (by name), tenants, enabled or not, locked until,
                                          last login, made and last changed by whom
    POST {path}/api/operators/add         {"username", "roles", "tenants", "password" or
                                           "generate": true, "reason"}
    POST {path}/api/operators/disable     {"username", "reason"}
    POST {path}/api/operators/enable      {"username", "reason"}
    POST {path}/api/operators/unlock      {"username", "reason"}
    POST {path}/api/operators/password    {"username", "password" or "generate": true,
                                           "reason"}: a generated password is answered once
    POST {path}/api/operators/access      {"username", "roles", "tenants", "reason"}

Reading needs ``operators.read``, every change ``operators.manage`` (the security
administrator alone), the session's CSRF token, a reason, and accounts (their
tenants now and as asked) within the operator's own tenants. The changes are
``console.accounts.Operators``' own, so the console and ``hub user`` write the same
audit events (``operator.added``, ``operator.disabled`` …) with who (``by``), why
(``reason``) and, from here, the caller's address (``remote``); the policy (password,
name, roles, tenants) is that module's, and so is the guard keeping a security
administrator from disabling their own account or taking their own role away.
Every refusal is audited as ``console.refused``, with the account it was about.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.web.http import Answer, ApiError, json_answer, read_json

from .accounts import Operator, OwnAccount, check_tenants
from .api import ConsoleApp, ConsoleHandler, ConsoleRequest, require
from .frame import MAX_REASON, e, layout, page, when
from .passwords import MAX_LENGTH, MIN_LENGTH, generate
from .roles import ROLES, check_roles, label

#: Most tenants one account is given at once (a province's counties fit).
MAX_TENANTS = 200


def install(app: ConsoleApp) -> None:
    """The page and its actions (registered by ``console.pages.install``)."""
    app.add("GET", "/operators", page("operators.read")(_operators_page))
    for action, change in (("add", _add), ("disable", _disable), ("enable", _enable),
                           ("unlock", _unlock), ("password", _password),
                           ("access", _access)):
        app.add("POST", f"/api/operators/{action}",
                require("operators.manage")(_refusals_audited(change)))


def _covers(operator: Operator | None, tenants: Iterable[str]) -> bool:
    return operator is not None and all(operator.sees(t) for t in tenants)


# ------------------------------------------------------------------ the page

def _operators_page(req: ConsoleRequest) -> str:
    operator, prefix = req.operator, req.console.prefix
    assert operator is not None
    manage = operator.may("operators.manage")
    now = req.console.clock()
    rows = [r for r in req.console.operators.all() if _covers(operator, r["tenants"])]
    body = "".join(_row(r, now, manage, operator.username) for r in rows)
    heads = [_("account"), _("roles"), _("tenants"), _("state"), _("locked until"),
             _("last login"), _("created"), _("last changed")] + ([_("actions")] if manage
                                                                 else [])
    add = (f'<p><button type="button" id="add-operator" data-action="add">'
           f'{e(_("Add an account"))}</button></p>' if manage else "")
    return layout(req, _("Operators"), f"""
<h1>{e(_("Operators"))}</h1>{add}
<p class="ok" id="operators-message" role="status"></p>
<table id="operators"><thead><tr>{"".join(f"<th>{e(h)}</th>" for h in heads)}</tr></thead>
<tbody>{body}</tbody></table>
{_dialog() if manage else ""}""", script=(f'<script src="{e(prefix)}/static/operators.js" '
                                          'defer></script>\n' if manage else ""))


def _row(row: dict[str, Any], now: float, manage: bool, me: str) -> str:
    name = row["username"]
    locked = row["locked_until"] is not None and row["locked_until"] > now
    state = _("disabled") if row["disabled"] else _("enabled")
    cells = [e(name), e(", ".join(label(r) for r in row["roles"])),
             e(", ".join(row["tenants"])), e(state),
             e(when(row["locked_until"]) if locked else "-"), e(when(row.get("last_login_at"))),
             f'{e(when(row["created_at"]))} · {e(row["created_by"])}',
             f'{e(when(row["updated_at"]))} · {e(row.get("updated_by") or "-")}']
    if manage:
        cells.append(_buttons(row, locked, me))
    tds = "".join(f"<td>{c}</td>" for c in cells)
    return (f'<tr data-username="{e(name)}" data-roles="{e(",".join(row["roles"]))}" '
            f'data-tenants="{e(" ".join(row["tenants"]))}" '
            f'data-state="{"disabled" if row["disabled"] else "enabled"}"'
            f'{" data-locked" if locked else ""}>{tds}</tr>')


def _buttons(row: dict[str, Any], locked: bool, me: str) -> str:
    shown = []
    if row["disabled"]:
        shown.append(("enable", _("Enable")))
    elif row["username"] != me:  # refused anyway for one's own (see Operators.disable)
        shown.append(("disable", _("Disable")))
    if locked:
        shown.append(("unlock", _("Unlock")))
    shown += [("password", _("Reset password")), ("access", _("Roles and tenants"))]
    return " ".join(f'<button type="button" data-action="{a}" data-username="{e(row["username"])}"'
                    f'{" class=danger" if a == "disable" else ""}>{e(text)}</button>'
                    for a, text in shown)


def _dialog() -> str:
    """One confirmation for every action; the script shows the fields it needs."""
    questions = {
        "add": _("Add this account?"),
        "disable": _("Disable the account {name}? Its sessions end at once."),
        "enable": _("Enable the account {name} again? A lock-out is lifted too."),
        "unlock": _("Unlock the account {name} before its lock-out ends?"),
        "password": _("Set a new password for {name}? Its sessions end at once."),
        "access": _("Change the roles and tenants of {name}? Its sessions end at once."),
        "generated": _("The new password of {name}, shown this once: hand it over in "
                       "person; it is kept nowhere but as a hash."),
    }
    options = "".join(f'<option value="{e(r)}">{e(label(r))}</option>' for r in ROLES)
    boxes = "".join(f'<label class="check"><input type="checkbox" name="role" value="{e(r)}">'
                    f'{e(label(r))}</label>' for r in ROLES)
    policy = _("at least {n} characters mixing three of: upper-case letters, lower-case "
               "letters, digits, other characters; not the account name", n=MIN_LENGTH)
    return f"""<dialog id="operator-dialog" data-questions="{e(json.dumps(questions,
                                                                   ensure_ascii=False))}">
<form method="dialog" id="operator-form"><p id="operator-question"></p>
<fieldset id="account-fields"><label>{e(_("Account"))}<input id="new-username"
 maxlength="64" autocomplete="off"></label>
<label>{e(_("Role"))}<select id="new-role">{options}</select></label></fieldset>
<fieldset id="access-fields"><legend>{e(_("Roles (one administrator role at most)"))}</legend>
{boxes}</fieldset>
<fieldset id="tenant-fields"><label>{e(_("Tenants (division codes or patterns such as "
                                        "320684, 3206*, *; separated by spaces)"))}<input
 id="operator-tenants" maxlength="2000" autocomplete="off"></label></fieldset>
<fieldset id="password-fields">
<label class="check"><input type="radio" name="password-kind" value="given" checked>
{e(_("Give the password"))}</label>
<label class="check"><input type="radio" name="password-kind" value="generate" id="generate">
{e(_("Generate one (shown once)"))}</label>
<label>{e(_("Password"))}<input id="operator-password" type="password" maxlength="{MAX_LENGTH}"
 autocomplete="new-password"></label><p class="hint">{e(policy)}</p></fieldset>
<label>{e(_("Reason (kept in the audit log)"))}<textarea id="operator-reason" required
 maxlength="{MAX_REASON}"></textarea></label>
<p class="message" id="operator-error" role="alert"></p>
<button type="button" id="operator-ok">{e(_("Confirm"))}</button>
<button type="button" id="operator-cancel">{e(_("Cancel"))}</button></form></dialog>
<dialog id="password-shown"><p id="password-note"></p><p><code id="new-password"></code></p>
<button type="button" id="password-done">{e(_("Done"))}</button></dialog>"""


# ------------------------------------------------------------------ the actions

def _refusals_audited(change: ConsoleHandler) -> ConsoleHandler:
    """ConsoleApp audits its 401 and 403 refusals; a change the policy refuses (400,
    404, 409) is audited here the same way, so every refused change is on record."""
    @functools.wraps(change)
    def audited(req: ConsoleRequest) -> Answer:
        try:
            return change(req)
        except ApiError as err:
            if err.status not in (401, 403):
                req.console.audit("console.refused", {
                    "operator": req.operator.username if req.operator else "",
                    "action": req.action, "method": req.method, "endpoint": req.endpoint,
                    "status": err.status, "code": err.code, "reason": err.reason,
                    "remote": req.remote, **err.audit_fields})
            raise
    return audited


class _Change:
    """A change's form: the account it is about, the reason, and the body's other fields."""

    def __init__(self, req: ConsoleRequest, *, new: bool = False):
        self.req = req
        self.body = read_json(req)
        name = self.body.get("username")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "bad_request", _("give the account's name"), reason="form")
        self.username = name.strip()[:64]
        self.seen = {"account": self.username}
        reason = self.body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ApiError(400, "reason_required", _("give a reason; it is kept in the audit "
                                                     "log"), reason="form",
                           audit_fields=self.seen)
        self.reason = reason.strip()[:MAX_REASON]
        self.by = req.operator.username if req.operator else ""
        operators = req.console.operators
        self.row = operators.get(self.username)
        if new and self.row is not None:
            raise ApiError(409, "account_exists", _("an operator account named '{name}' "
                                                    "exists already", name=self.username),
                           reason="exists", audit_fields=self.seen)
        if not new:
            if self.row is None:
                raise ApiError(404, "not_found", _("no operator account named '{name}'",
                                                   name=self.username),
                               reason="no_account", audit_fields=self.seen)
            self.tenants_allowed(self.row["tenants"])

    @property
    def said(self) -> dict[str, str]:
        """What each change of ``Operators`` is told: who, why, from where."""
        return {"by": self.by, "reason": self.reason, "remote": self.req.remote}

    def tenants_allowed(self, tenants: Iterable[str]) -> None:
        """An account within the operator's tenants only, as it is and as it is to be."""
        for tenant in tenants:
            self.req.console.authorize_tenant(self.req, tenant)

    def names(self, key: str, limit: int) -> list[str]:
        """A list of names from the body (roles, tenants), bounded."""
        value = self.body.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) \
                or not 0 < len(value) <= limit:
            raise ApiError(400, "bad_request", _("give {key} as a list of at most {n} names",
                                                 key=key, n=limit),
                           reason="form", audit_fields=self.seen)
        return [v.strip()[:16] for v in value]

    def password(self) -> tuple[str, bool]:
        """(the password given, False) or (one generated, True)."""
        if self.body.get("generate") is True:
            return generate(self.username), True
        given = self.body.get("password")
        if not isinstance(given, str) or not given:
            raise ApiError(400, "bad_request", _("give the password, or ask for one to be "
                                                 "generated"), reason="form",
                           audit_fields=self.seen)
        return given[:MAX_LENGTH + 1], False  # one over the limit: the policy says so

    def refused(self, err: ConfigError) -> ApiError:
        if isinstance(err, OwnAccount):
            return ApiError(403, "own_account", str(err), reason="own_account",
                            audit_fields=self.seen)
        return ApiError(400, "policy", str(err), reason="policy", audit_fields=self.seen)

    def done(self, status: str, message: str, **more: Any) -> Answer:
        return json_answer(200, {"status": status, "username": self.username,
                                 "message": message, **more},
                           [("Cache-Control", "no-store")])


def _add(req: ConsoleRequest) -> Answer:
    change = _Change(req, new=True)
    roles, tenants = change.names("roles", len(ROLES)), change.names("tenants", MAX_TENANTS)
    change.tenants_allowed(tenants)
    password, generated = change.password()
    try:
        req.console.operators.add(change.username, password, roles=roles, tenants=tenants,
                                  **change.said)
    except ConfigError as err:
        raise change.refused(err) from None
    return change.done("added", _("operator {name} added", name=change.username),
                       **({"password": password} if generated else {}))


def _disable(req: ConsoleRequest) -> Answer:
    change = _Change(req)
    try:
        req.console.operators.disable(change.username, **change.said)
    except ConfigError as err:
        raise change.refused(err) from None
    return change.done("disabled", _("operator {name} disabled", name=change.username))


def _enable(req: ConsoleRequest) -> Answer:
    change = _Change(req)
    req.console.operators.enable(change.username, **change.said)
    return change.done("enabled", _("operator {name} enabled", name=change.username))


def _unlock(req: ConsoleRequest) -> Answer:
    change = _Change(req)
    req.console.operators.unlock(change.username, **change.said)
    return change.done("unlocked", _("operator {name} unlocked", name=change.username))


def _password(req: ConsoleRequest) -> Answer:
    change = _Change(req)
    password, generated = change.password()
    try:
        req.console.operators.set_password(change.username, password, generated=generated,
                                           **change.said)
    except ConfigError as err:
        raise change.refused(err) from None
    return change.done("password_changed", _("password of {name} changed",
                                             name=change.username),
                       **({"password": password} if generated else {}))


def _access(req: ConsoleRequest) -> Answer:
    change = _Change(req)
    roles, tenants = change.names("roles", len(ROLES)), change.names("tenants", MAX_TENANTS)
    change.tenants_allowed(tenants)
    row, operators = change.row or {}, req.console.operators
    try:
        # Both checked before either is saved: a refusal changes nothing.
        roles, tenants = check_roles(roles), check_tenants(tenants)
        if roles != row["roles"]:
            operators.set_roles(change.username, roles, **change.said)
        if tenants != row["tenants"]:
            operators.set_tenants(change.username, tenants, **change.said)
    except ConfigError as err:
        raise change.refused(err) from None
    if roles == row["roles"] and tenants == row["tenants"]:
        return change.done("unchanged", _("the roles and tenants of {name} were already "
                                          "these", name=change.username))
    return change.done("access_changed", _("roles and tenants of {name} saved",
                                           name=change.username))
