"""Operator accounts: adding, changing and logging in, each change audited.

``Operators`` is what both ``hub user …`` and the console's login use::

    ops = Operators(OperatorStore(hub.store), hub.audit)
    ops.add("wang", password, roles=["system_admin"], tenants=["320684"], by="root")
    operator = ops.login("wang", password)          # or LoginRefused

A login is refused the same way whether the account is unknown or the password
wrong (``bad_credentials``), so the console does not tell which names exist.
Failed logins are counted per account in the store (every process counts into
one number); the ``lockout.after``-th in a row locks the account for
``lockout.for`` seconds, during which even the right password is refused
(``locked``). A good login clears the count. Every failure, lock-out and change
is audited with who did it (``by``), why (``reason``) and, from the console, the
caller's address (``remote``): ``hub user`` and the console write the same events.
No password, hash or token ever reaches the audit log or the log.

A security administrator cannot disable their own account nor take the
security_admin role from it (``OwnAccount``): the hub could be left with nobody
to manage accounts. Another security administrator, or ``hub user`` on the
host, can.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bdchub.core.errors import ConfigError, HubError
from bdchub.core.i18n import _
from bdchub.core.operators import OperatorStore

from .passwords import Passwords, check_policy
from .roles import actions_of, allowed, check_roles

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: As inbound clients' ``tenants``: '320684' exactly, '3206*' a city, '*' all.
TENANT = re.compile(r"^(\*|\d{2,6}\*?)$")

Audit = Callable[..., None]


@dataclass(frozen=True)
class Operator:
    """A logged-in (or listed) operator: what the console checks."""

    username: str
    roles: tuple[str, ...]
    tenants: tuple[str, ...]

    def may(self, action: str) -> bool:
        return allowed(self.roles, action)

    def sees(self, tenant: str) -> bool:
        """Whether this operator may see or act on ``tenant``'s data."""
        for scope in self.tenants:
            if scope == "*" or scope == tenant:
                return True
            if scope.endswith("*") and tenant.startswith(scope[:-1]):
                return True
        return False

    def as_dict(self) -> dict[str, Any]:
        return {"username": self.username, "roles": list(self.roles),
                "tenants": list(self.tenants), "actions": actions_of(self.roles)}


class LoginRefused(HubError):
    """A refused login: ``reason`` is bad_credentials, locked or disabled."""

    def __init__(self, reason: str, message: str, *, locked_until: float | None = None):
        self.reason = reason
        self.locked_until = locked_until
        super().__init__(message)


class OwnAccount(ConfigError):
    """A security administrator's change that would lock themself out of managing
    accounts: disabling their own account, or taking their own role away."""


def check_username(username: str) -> str:
    if not USERNAME.match(username or ""):
        raise ConfigError(_("'{name}' is not a valid account name: letters, digits, '.', "
                            "'_' and '-', at most 64, starting with a letter or digit",
                            name=(username or "")[:64]))
    return username


def check_tenants(tenants: Iterable[str]) -> list[str]:
    found = sorted(set(tenants))
    bad = [t for t in found if not TENANT.match(t)]
    if bad or not found:
        raise ConfigError(_("tenants are division codes or patterns: '320684', '3206*', "
                            "'*'; not {bad}", bad=", ".join(bad) or "-"))
    return found


class Operators:
    """The accounts in ``store``; see the module docstring. ``clock`` is Unix seconds."""

    def __init__(self, store: OperatorStore, audit: Audit, *,
                 passwords: Passwords | None = None, clock: Callable[[], float] | None = None,
                 lockout_after: int = 5, lockout_for: float = 900.0):
        import time

        self.store = store
        self.audit = audit
        self.passwords = passwords or Passwords()
        self.clock = clock or time.time
        self.lockout_after = lockout_after
        self.lockout_for = lockout_for

    # -- reading
    def get(self, username: str) -> dict[str, Any] | None:
        """The account without its hash, or None."""
        row = self.store.get(username)
        return _public(row) if row is not None else None

    def all(self) -> list[dict[str, Any]]:
        return [_public(r) for r in self.store.all()]

    def _existing(self, username: str) -> dict[str, Any]:
        row = self.store.get(username)
        if row is None:
            raise ConfigError(_("no operator account named '{name}'", name=username[:64]))
        return row

    # -- changes, each audited (``by`` who, ``reason`` why, ``remote`` the console's caller)
    def add(self, username: str, password: str, *, roles: Iterable[str],
            tenants: Iterable[str], by: str, reason: str = "",
            remote: str = "") -> dict[str, Any]:
        check_username(username)
        roles, tenants = check_roles(roles), check_tenants(tenants)
        check_policy(password, username)
        now = self.clock()
        if not self.store.add(username=username, password_hash=self.passwords.hash(password),
                              roles=roles, tenants=tenants, disabled=0, failures=0,
                              locked_until=None, created_at=now, created_by=by, updated_at=now,
                              updated_by=by, password_changed_at=now):
            raise ConfigError(_("an operator account named '{name}' exists already",
                                name=username))
        self.audit("operator.added", username=username, roles=roles, tenants=tenants, by=by,
                   **_why(reason, remote))
        return self.get(username) or {}

    def set_password(self, username: str, password: str, *, by: str, reason: str = "",
                     remote: str = "", generated: bool = False) -> None:
        """A new password; every session of the account ends and its lock is lifted."""
        self._existing(username)
        check_policy(password, username)
        now = self.clock()
        self.store.change(username, password_hash=self.passwords.hash(password),
                          password_changed_at=now, updated_at=now, updated_by=by, failures=0,
                          locked_until=None)
        ended = self.store.close_sessions([username])
        self.audit("operator.password_changed", username=username, by=by, sessions_ended=ended,
                   **({"generated": True} if generated else {}), **_why(reason, remote))

    def disable(self, username: str, *, by: str, reason: str = "", remote: str = "") -> None:
        row = self._existing(username)
        if by == username and "security_admin" in row["roles"]:
            raise OwnAccount(_("you cannot disable your own account: the hub would be left "
                               "without a security administrator to manage accounts; "
                               "another security administrator can"))
        self.store.change(username, disabled=1, updated_at=self.clock(), updated_by=by)
        ended = self.store.close_sessions([username])
        self.audit("operator.disabled", username=username, by=by, sessions_ended=ended,
                   **_why(reason, remote))

    def enable(self, username: str, *, by: str, reason: str = "", remote: str = "") -> None:
        """Enable the account again; a lock-out in force is lifted too."""
        self._existing(username)
        self.store.change(username, disabled=0, failures=0, locked_until=None,
                          updated_at=self.clock(), updated_by=by)
        self.audit("operator.enabled", username=username, by=by, **_why(reason, remote))

    def unlock(self, username: str, *, by: str, reason: str = "", remote: str = "") -> None:
        """Lift a lock-out (and the count of failures) before its time is up."""
        row = self._existing(username)
        self.store.change(username, failures=0, locked_until=None, updated_at=self.clock(),
                          updated_by=by)
        self.audit("operator.unlocked", username=username, by=by,
                   locked_until=row["locked_until"], **_why(reason, remote))

    def set_roles(self, username: str, roles: Iterable[str], *, by: str, reason: str = "",
                  remote: str = "") -> None:
        found = check_roles(roles)
        if by == username and "security_admin" in self._existing(username)["roles"] \
                and "security_admin" not in found:
            raise OwnAccount(_("you cannot take the security administrator role from your "
                               "own account: the hub would be left without a security "
                               "administrator to manage accounts; another security "
                               "administrator can"))
        self._set_list(username, "roles", found, by, _why(reason, remote))

    def set_tenants(self, username: str, tenants: Iterable[str], *, by: str, reason: str = "",
                    remote: str = "") -> None:
        self._set_list(username, "tenants", check_tenants(tenants), by, _why(reason, remote))

    def _set_list(self, username: str, key: str, values: list[str], by: str,
                  why: dict[str, str]) -> None:
        row = self._existing(username)
        self.store.change(username, **{key: values}, updated_at=self.clock(), updated_by=by)
        # Sessions carry what was allowed when they began: they begin again.
        ended = self.store.close_sessions([username])
        self.audit(f"operator.{key}_changed", username=username, by=by, previous=row[key],
                   sessions_ended=ended, **{key: values}, **why)

    # -- logging in
    def login(self, username: str, password: str, *, remote: str = "") -> Operator:
        """The operator, or ``LoginRefused`` (audited as ``console.login_failed``; the
        failure that locks the account also as ``operator.locked``)."""
        now = self.clock()
        row = self.store.get(username) if USERNAME.match(username or "") else None
        # Verified even for an unknown, locked or disabled account: all take as long.
        good = self.passwords.verify(row["password_hash"] if row else None, password)
        name = (username or "")[:64]
        if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
            self.audit("console.login_failed", username=name, reason="locked", remote=remote,
                       locked_until=row["locked_until"])
            raise LoginRefused("locked", _(
                "the account is locked after repeated failed logins; try again later or ask "
                "the security administrator"), locked_until=row["locked_until"])
        if row is None or not good:
            failures, locked_until = ((0, None) if row is None else self.store.count_failure(
                username, now=now, after=self.lockout_after, lock_for=self.lockout_for))
            self.audit("console.login_failed", username=name, reason="bad_credentials",
                       remote=remote, known=row is not None, failures=failures)
            if locked_until is not None:
                self.audit("operator.locked", username=username, by="console",
                           failures=self.lockout_after, locked_until=locked_until,
                           remote=remote)
            raise LoginRefused("bad_credentials", _("wrong account name or password"))
        if row["disabled"]:
            self.audit("console.login_failed", username=name, reason="disabled", remote=remote)
            raise LoginRefused("disabled", _("the account is disabled; ask the security "
                                             "administrator"))
        changes: dict[str, Any] = {"last_login_at": now}
        if row["failures"] or row["locked_until"] is not None:
            changes.update(failures=0, locked_until=None)
        if self.passwords.needs_rehash(row["password_hash"]):
            changes["password_hash"] = self.passwords.hash(password)
        self.store.change(username, **changes)
        return Operator(username, tuple(row["roles"]), tuple(row["tenants"]))

    def operator(self, username: str) -> Operator | None:
        """The enabled account ``username`` as an ``Operator`` (a session's owner)."""
        row = self.store.get(username)
        if row is None or row["disabled"]:
            return None
        return Operator(username, tuple(row["roles"]), tuple(row["tenants"]))


def _why(reason: str, remote: str) -> dict[str, str]:
    """The audit's ``reason`` (as ``hub user`` has always written it) and, for a change
    made in the console, the caller's address."""
    return {"reason": reason, **({"remote": remote} if remote else {})}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "password_hash"}
