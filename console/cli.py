"""``hub user …``: operator accounts of the console from the command line::

    hub user add wang --role system_admin --tenant 320684     # password prompted twice
    printf '%s\\n' "$PW" | hub user add li --role viewer --password-stdin
    hub user passwd wang                                      # prompted, or --password-stdin
    hub user disable wang --reason "调岗"
    hub user enable wang
    hub user list [--json]
    hub user roles [--json]                                   # the permission table
    hub user roles wang --role audit_admin                    # set an account's roles
    hub user roles wang --tenant 3206*                        # ... or its tenants

A password is never an argument (it would stay in the shell's history and in
``ps``): it is prompted for without echo, or read as one line from standard input
with ``--password-stdin``. Every change is written to the hub's audit log with who
made it (``--by``, default the login name). Tenants default to the hub's own.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from bdchub.core.cliopts import CONFIG_OPTION
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

from .roles import ACTIONS, ROLES, describe, label

BY_OPTION = click.option("--by", default=None,
                         help="who makes the change (audited; default: the login name)")
STDIN_OPTION = click.option("--password-stdin", "from_stdin", is_flag=True,
                            help="read the password as one line from standard input")


@click.group("user", help=_("Operator accounts of the web console: add, passwd, disable, "
                             "enable, list, roles."))
def user_group() -> None:
    pass


@contextmanager
def _operators(config_path: str, *, create_key: bool = False
               ) -> Iterator[tuple[Any, dict[str, Any]]]:
    from bdchub.core.config import load
    from bdchub.core.operators import OperatorStore
    from bdchub.routes.runtime import Hub

    from .accounts import Operators
    from .config import DEFAULTS, settings

    config = load(config_path)
    # Only ``add`` makes the data key when there is none, as ``hub run`` would: the
    # first operator is added before the hub first runs. Elsewhere a new key could
    # not open what the hub sealed.
    hub = Hub.from_config(config, build_connectors=False, create_key=create_key)
    try:
        lockout = (settings(config) or DEFAULTS)["lockout"]
        yield Operators(OperatorStore(hub.store), hub.audit, lockout_after=int(lockout["after"]),
                        lockout_for=float(lockout["for"])), config
    finally:
        hub.close()


def _password(username: str, from_stdin: bool) -> str:
    from .passwords import check_policy

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(_("password of {name}", name=username), hide_input=True,
                                confirmation_prompt=_("repeat the password"))
    check_policy(password, username)  # before the store is opened: a typo costs nothing
    return password


def _by(by: str | None) -> str:
    if by:
        return by
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "-"


@user_group.command("add", help=_("Add an operator account (the password is prompted for, "
                                  "or read with --password-stdin)."))
@click.argument("username")
@CONFIG_OPTION
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(list(ROLES)),
              help="a role (repeat for more; one administrator role at most)")
@click.option("--tenant", "tenants", multiple=True,
              help="division code or pattern it is scoped to ('320684', '3206*', '*'; "
                   "repeat for more; default: the hub's tenant)")
@STDIN_OPTION
@BY_OPTION
def add_command(username: str, config_path: str, roles: tuple[str, ...],
                tenants: tuple[str, ...], from_stdin: bool, by: str | None) -> None:
    from .accounts import check_tenants, check_username
    from .roles import check_roles

    check_username(username)
    check_roles(roles)
    if tenants:
        check_tenants(tenants)
    password = _password(username, from_stdin)
    with _operators(config_path, create_key=True) as (operators, config):
        found = operators.add(username, password, roles=roles,
                              tenants=tenants or [str(config.get("tenant") or "*")], by=_by(by))
    click.echo(_("operator {name} added: {roles}; tenants {tenants}", name=username,
                 roles=", ".join(label(r) for r in found["roles"]),
                 tenants=", ".join(found["tenants"])))


@user_group.command("passwd", help=_("Set an operator's password; their sessions end and a "
                                     "lock-out is lifted."))
@click.argument("username")
@CONFIG_OPTION
@STDIN_OPTION
@BY_OPTION
def passwd_command(username: str, config_path: str, from_stdin: bool, by: str | None) -> None:
    password = _password(username, from_stdin)
    with _operators(config_path) as (operators, _config):
        operators.set_password(username, password, by=_by(by))
    click.echo(_("password of {name} changed", name=username))


@user_group.command("disable", help=_("Disable an operator account; its sessions end."))
@click.argument("username")
@CONFIG_OPTION
@click.option("--reason", default="", help="why (audited)")
@BY_OPTION
def disable_command(username: str, config_path: str, reason: str, by: str | None) -> None:
    with _operators(config_path) as (operators, _config):
        operators.disable(username, by=_by(by), reason=reason.strip())
    click.echo(_("operator {name} disabled", name=username))


@user_group.command("enable", help=_("Enable an operator account again (and lift a "
                                     "lock-out)."))
@click.argument("username")
@CONFIG_OPTION
@click.option("--reason", default="", help="why (audited)")
@BY_OPTION
def enable_command(username: str, config_path: str, reason: str, by: str | None) -> None:
    with _operators(config_path) as (operators, _config):
        operators.enable(username, by=_by(by), reason=reason.strip())
    click.echo(_("operator {name} enabled", name=username))


def _state(row: dict[str, Any], now: float) -> str:
    if row["disabled"]:
        return "disabled"
    if row["locked_until"] is not None and row["locked_until"] > now:
        return "locked"
    return "active"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


@user_group.command("list", help=_("Every operator account: roles, tenants, state."))
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def list_command(config_path: str, as_json: bool) -> None:
    with _operators(config_path) as (operators, _config):
        rows = operators.all()
    now = time.time()
    accounts = [{"username": r["username"], "roles": r["roles"], "tenants": r["tenants"],
                 "state": _state(r, now), "locked_until": r["locked_until"]
                 if _state(r, now) == "locked" else None,
                 "failures": r["failures"], "created_at": r["created_at"],
                 "created_by": r["created_by"], "password_changed_at": r["password_changed_at"]}
                for r in rows]
    if as_json:
        click.echo(json.dumps({"operators": accounts}, ensure_ascii=False, indent=2))
        return
    if not accounts:
        click.echo(_("no operator accounts; add one with hub user add"))
        return
    from rich.console import Console
    from rich.table import Table

    states = {"active": _("active"), "disabled": _("disabled"), "locked": _("locked")}
    table = Table(title=_("Operator accounts"))
    for header in (_("account"), _("roles"), _("tenants"), _("state"),
                   _("password changed")):
        table.add_column(header)
    for a in accounts:
        state = states[a["state"]]
        if a["state"] == "locked":
            state += " " + _("until {when}", when=_when(a["locked_until"]))
        table.add_row(a["username"], ", ".join(label(r) for r in a["roles"]),
                      ", ".join(a["tenants"]), state, _when(a["password_changed_at"]))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@user_group.command("roles", help=_("Without an account: the roles and what each may do. "
                                    "With one: its roles, or set them (--role) or its "
                                    "tenants (--tenant)."))
@click.argument("username", required=False)
@CONFIG_OPTION
@click.option("--role", "roles", multiple=True, type=click.Choice(list(ROLES)),
              help="set the account's roles to these (repeat for more)")
@click.option("--tenant", "tenants", multiple=True,
              help="set the account's tenants to these (repeat for more)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
@BY_OPTION
def roles_command(username: str | None, config_path: str, roles: tuple[str, ...],
                  tenants: tuple[str, ...], as_json: bool, by: str | None) -> None:
    if username is None:
        if roles or tenants:
            raise ConfigError(_("name the account whose roles or tenants to set"))
        _print_table(as_json)
        return
    from .roles import actions_of

    with _operators(config_path) as (operators, _config):
        if roles:
            operators.set_roles(username, roles, by=_by(by))
        if tenants:
            operators.set_tenants(username, tenants, by=_by(by))
        row = operators.get(username)
    if row is None:
        raise ConfigError(_("no operator account named '{name}'", name=username[:64]))
    shown = {"username": username, "roles": row["roles"], "tenants": row["tenants"],
             "actions": actions_of(row["roles"])}
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
        return
    click.echo(_("{name}: {roles}; tenants {tenants}", name=username,
                 roles=", ".join(label(r) for r in row["roles"]),
                 tenants=", ".join(row["tenants"])))
    for action in shown["actions"]:
        click.echo(f"  {action}: {describe(action)}")


def _print_table(as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"roles": {r: {"name": label(r), "actions": sorted(a)}
                                         for r, a in ROLES.items()},
                               "actions": {a: describe(a) for a in ACTIONS}},
                              ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_("Roles and what each may do"))
    table.add_column(_("action"))
    for role in ROLES:
        table.add_column(label(role), justify="center")
    for action in ACTIONS:
        table.add_row(f"{action}\n{describe(action)}",
                      *("✓" if action in ROLES[r] else "" for r in ROLES))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
