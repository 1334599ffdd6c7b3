"""Who may do what in the console: the one permission table.

Every console page and action names an action of ``ACTIONS`` and asks
``allowed(roles, action)`` (through ``console.api.require``); nothing else in the
hub decides what an operator may do.

The three administrator roles are separated as 等保 level 3 (GB/T 22239-2019,
安全管理中心: 系统管理、审计管理、安全管理) asks, so that no one account both
runs the hub and governs the accounts, or both acts and reviews the record:

- ``system_admin`` (系统管理员) runs the hub: overview, messages, dead letters and
  parked messages (replay, drop, retry now), channels (suspend, resume), statistics;
- ``security_admin`` (安全管理员) manages operator accounts and roles; it cannot
  replay anything or read message content;
- ``audit_admin`` (审计管理员) reads and exports the audit log; it changes nothing;
- ``viewer`` (只读) reads the overview, messages (masked), channels and statistics.

An account holds one administrator role at most (``check_roles``).
"""

from __future__ import annotations

from collections.abc import Iterable

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

#: Every action a console page or endpoint may ask for, in the order they are shown.
ACTIONS: tuple[str, ...] = (
    "overview.read", "messages.read", "dead_letters.replay", "dead_letters.drop",
    "parked.retry", "channels.read", "channels.suspend", "statistics.read",
    "statistics.export", "audit.read", "audit.export", "operators.read", "operators.manage",
)

#: role -> the actions it may take.
ROLES: dict[str, frozenset[str]] = {
    "system_admin": frozenset({
        "overview.read", "messages.read", "dead_letters.replay", "dead_letters.drop",
        "parked.retry", "channels.read", "channels.suspend", "statistics.read",
        "statistics.export"}),
    "security_admin": frozenset({"overview.read", "operators.read", "operators.manage"}),
    "audit_admin": frozenset({"audit.read", "audit.export", "operators.read"}),
    "viewer": frozenset({"overview.read", "messages.read", "channels.read", "statistics.read"}),
}

ADMINISTRATORS = frozenset({"system_admin", "security_admin", "audit_admin"})


def allowed(roles: Iterable[str], action: str) -> bool:
    """Whether an operator holding ``roles`` may take ``action``."""
    if action not in ACTIONS:
        raise KeyError(action)  # a page asking for an action nobody declared is a bug
    return any(action in ROLES[r] for r in roles if r in ROLES)


def actions_of(roles: Iterable[str]) -> list[str]:
    """Every action ``roles`` allow, in the table's order."""
    held = set(roles)
    return [a for a in ACTIONS if any(a in ROLES[r] for r in held if r in ROLES)]


def label(role: str) -> str:
    """The role's name in the current language."""
    return {"system_admin": _("system administrator"),
            "security_admin": _("security administrator"),
            "audit_admin": _("audit administrator"),
            "viewer": _("viewer")}.get(role, role)


def describe(action: str) -> str:
    """What ``action`` lets an operator do, in the current language."""
    return {
        "overview.read": _("see connectors, breakers, queues and recent warnings"),
        "messages.read": _("search messages and read their trace and content (masked)"),
        "dead_letters.replay": _("replay a dead letter"),
        "dead_letters.drop": _("drop a dead letter"),
        "parked.retry": _("retry a parked message now"),
        "channels.read": _("see each channel's and client's volume, refusals and errors"),
        "channels.suspend": _("suspend or resume a client or channel"),
        "statistics.read": _("see statistics"),
        "statistics.export": _("export statistics (CSV, XLSX)"),
        "audit.read": _("read and verify the audit log"),
        "audit.export": _("export the audit log"),
        "operators.read": _("list operator accounts"),
        "operators.manage": _("add, disable and enable operator accounts; set their "
                              "passwords, roles and tenants"),
    }.get(action, action)


def check_roles(roles: Iterable[str]) -> list[str]:
    """``roles`` as a sorted list, or ``ConfigError``: unknown names, none at all, or
    two administrator roles in one account (the separation of duties)."""
    found = sorted(set(roles))
    unknown = [r for r in found if r not in ROLES]
    if unknown:
        raise ConfigError(_("unknown role {role}; roles: {known}", role=", ".join(unknown),
                            known=", ".join(ROLES)))
    if not found:
        raise ConfigError(_("give the account a role: {known}", known=", ".join(ROLES)))
    admins = [r for r in found if r in ADMINISTRATORS]
    if len(admins) > 1:
        raise ConfigError(_("one account holds one administrator role: {roles} must be "
                            "separate accounts (separation of duties, 等保 level 3)",
                            roles=", ".join(f"{label(r)} ({r})" for r in admins)))
    return found
