"""bdc-hub command line: ``hub …`` or ``python hub.py …``.

Thin by design: each command parses its arguments, calls into the package
that owns the work, and prints. Commands of other areas (sandbox, bridge,
ferry, routes) are imported only when used, so ``hub check`` stays quick and
works even where an optional part cannot load. Every known error is a
``core.errors.HubError`` and is printed as ``错误: …`` / ``Error: …`` without a
traceback; its ``exit_code`` becomes the process's.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path

import click

from bdchub import __version__
from bdchub.core.cliopts import CONFIG_OPTION, LANG_OPTION
from bdchub.core.errors import ConfigError, HubError, MessageError
from bdchub.core.i18n import _

# name -> "module:attribute" of a click command, imported on first use.
LAZY_COMMANDS = {
    "sandbox": "bdchub.sandbox.cli:sandbox_command",
    "bridge": "bdchub.bridge.cli.diode:bridge_group",
    "ferry": "bdchub.bridge.cli.ferry:ferry_group",
    "dlq": "bdchub.routes.cli:dlq_group",
    "parked": "bdchub.routes.cli:parked_group",
    "status": "bdchub.app.status_cli:status_command",
    "trace": "bdchub.routes.cli:trace_command",
    "send": "bdchub.routes.cli:send_command",
    "run": "bdchub.app.cli:run_command",
    "reload": "bdchub.app.cli:reload_command",
    "audit": "bdchub.app.audit_cli:audit_group",
    "stuck": "bdchub.app.reconciler:stuck_command",
    "test": "bdchub.app.configtest_cli:test_command",
    "demo": "bdchub.demo.cli:demo_command",
    "channel": "bdchub.app.channels_cli:channel_group",
    "stats": "bdchub.app.stats_cli:stats_command",
    "user": "bdchub.console.cli:user_group",
    "store": "bdchub.app.store_copy:store_group",
}


class HubGroup(click.Group):
    """Lazy subcommands, and HubError printed as one translated line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None or name not in LAZY_COMMANDS:
            return command
        module_name, _sep, attr = LAZY_COMMANDS[name].partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            missing = click.Command(name, help=_("not available in this installation"),
                                    callback=functools.partial(_fail_unavailable, name, exc))
            return missing

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if len(exc.problems) > 1:
                click.echo(f"{_('Error')}: " + _("{n} problems in the configuration:",
                                                 n=len(exc.problems)), err=True)
                for problem in exc.problems:
                    click.echo(f"  {problem}", err=True)
            else:
                click.echo(f"{_('Error')}: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except HubError as exc:
            click.echo(f"{_('Error')}: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(_("interrupted"), err=True)
            ctx.exit(130)


def _fail_unavailable(name: str, exc: Exception) -> None:
    raise HubError(_("command '{name}' is not available: {error}", name=name, error=exc))


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bdc-hub")
@LANG_OPTION
def cli() -> None:
    """bdc-hub: integration hub for Internet + real-estate registration (互联网+不动产登记)."""


@cli.command()
@CONFIG_OPTION
@click.option("--ping", is_flag=True,
              help="also load every connector (a SOAP connector's WSDL is fetched, cached in "
                   "the data folder and every call checked against it) and probe its health")
def check(config_path: str, ping: bool) -> None:
    """Check the configuration: exit 0 when it is valid, 2 with every problem
    found (file:line), and with --ping 1 when a connector is down."""
    from bdchub.connectors.registry import check_notices
    from bdchub.core import config

    report = config.check(config_path)
    rows = []
    if ping:
        from rich.console import Console

        from bdchub.connectors import ping as pinger

        loaded = dict(report.config, __dir__=str(Path(config_path).resolve().parent))
        rows = pinger.ping_all(loaded, base_dir=Path(loaded["__dir__"]))
        Console(width=None if sys.stdout.isatty() else 160).print(pinger.render(rows))
        # Again, now against what the connectors fetched (remote WSDLs, cached).
        report = config.check(config_path)
    click.echo(_("{file}: configuration is valid — tenant {tenant}, {connectors} connectors, "
                 "{routes} routes ({steps} steps)",
                 file=config_path, tenant=report.config.get("tenant"),
                 connectors=len(report.connectors), routes=len(report.routes),
                 steps=sum(n for _name, n in report.routes)))
    for name, type_name in report.connectors:
        click.echo(f"  {_('connector')} {name} ({type_name})")
    for name, steps in report.routes:
        click.echo(f"  {_('route')} {name}: {_('{n} steps', n=steps)}")
    for notice in check_notices(report.config.get("connectors"),
                                Path(config_path).resolve().parent):
        click.echo(f"  {notice}")
    if report.demo_secrets:
        # Valid, but hub run will refuse it (core.secrets): say so before the start does.
        click.echo(_("warning: {n} secrets still hold the published demo values written in "
                     "the file; hub run refuses to start with them (hub demo does not):",
                     n=len(report.demo_secrets)), err=True)
        for secret in report.demo_secrets:
            click.echo(f"  {secret}", err=True)
    down = [row.name for row in rows if row.status != "up"]
    if down:
        raise HubError(_("connectors down: {names}", names=", ".join(down)))


@cli.command()
@click.argument("schema")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(schema: str, files: tuple[str, ...]) -> None:
    """Validate JSON message FILES against the canonical SCHEMA; exit 0, or 1."""
    from bdchub.schemas import catalog

    catalog.load(schema)  # unknown names fail here, with a suggestion
    failed = 0
    for file in files:
        try:
            instance = json.loads(Path(file).read_text(encoding="utf-8"))
        except OSError as exc:
            failed += 1
            click.echo(_("{file}: cannot read: {error}", file=file, error=exc.strerror))
            continue
        except json.JSONDecodeError as exc:
            failed += 1
            click.echo(_("{file}:{line}:{col}: not valid JSON: {error}", file=file,
                         line=exc.lineno, col=exc.colno, error=exc.msg))
            continue
        except UnicodeDecodeError:
            failed += 1
            click.echo(_("{file}: not UTF-8 text", file=file))
            continue
        violations = catalog.validate(schema, instance)
        if not violations:
            click.echo(_("{file}: valid ({schema})", file=file, schema=schema))
            continue
        failed += 1
        click.echo(_("{file}: {n} violations of {schema}", file=file, n=len(violations),
                     schema=schema))
        for v in violations:
            click.echo(f"  {v.path}: {v.message}")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("kind")
@click.argument("values", nargs=-1, required=True)
def code(kind: str, values: tuple[str, ...]) -> None:
    """Check domain codes. KIND: unit, unit-lenient, id, uscc, cert, proof, division, business-no."""
    from bdchub.schemas import formats

    if kind not in formats.KINDS:
        from bdchub.core.suggest import did_you_mean

        raise MessageError(_("unknown code kind '{kind}'{hint}; kinds: {kinds}", kind=kind,
                             hint=did_you_mean(kind, formats.KINDS),
                             kinds=", ".join(formats.KINDS)))
    bad = 0
    for value in values:
        reason = formats.check(kind, value)
        if reason is None:
            detail = formats.describe(kind, value)
            click.echo(f"{value}: {_('valid')}" + (f" — {detail}" if detail else ""))
        else:
            bad += 1
            click.echo(f"{value}: {_('invalid')} — {reason}")
    if bad:
        sys.exit(1)


@cli.command(name="schemas")
def list_schemas() -> None:
    """List the canonical message schemas."""
    from bdchub.schemas import catalog

    names = catalog.names()
    width = max(map(len, names), default=0) + 2
    for name in names:
        click.echo(f"{name:{width}}{catalog.describe(name)}")


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="hub", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
