"""``hub sandbox``: start every simulated department and wait for Ctrl-C."""

from __future__ import annotations

import ipaddress
import json
import signal
import threading
from pathlib import Path

import click

from bdchub.core.i18n import _

from .sandbox import Sandbox, SandboxError


@click.command("sandbox", help=_("Start the simulated departments on loopback until Ctrl-C."))
@click.option("--seed", type=int, default=42, show_default=True,
              help=_("seed of the simulated data and of injected faults"))
@click.option("--host", default="127.0.0.1", show_default=True, help=_("address to listen on"))
@click.option("--base-port", type=click.IntRange(1, 65535 - 16), default=None,
              help=_("first port; endpoints take consecutive ports (default: free ports)"))
@click.option("--auto-advance", type=float, default=3.0, show_default=True,
              help=_("seconds between legacy stages; 0 = stages move only by hand"))
@click.option("--legacy-callback", default=None, help=_("URL the legacy system POSTs stage changes to"))
@click.option("--tax-callback", default=None, help=_("URL the tax bureau POSTs clearances to"))
@click.option("--credentials-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_("write the endpoints' URLs and credentials as JSON to this file"))
def sandbox_command(seed: int, host: str, base_port: int | None, auto_advance: float,
                    legacy_callback: str | None, tax_callback: str | None,
                    credentials_out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        console.print(_("warning: {host} is not a loopback address; the sandbox has test credentials",
                        host=host), style="yellow")
    sb = Sandbox(seed=seed, host=host, base_port=base_port,
                 auto_advance=auto_advance if auto_advance > 0 else None)
    try:
        sb.start()
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        sb.legacy_set_callback(legacy_callback)
        sb.tax_set_callback(tax_callback)
        table = Table(title=_("bdc-hub sandbox (seed {seed})", seed=seed))
        table.add_column(_("name"))
        table.add_column(_("protocol"))
        table.add_column("URL")
        table.add_column("WSDL")
        for row in sb.table():
            table.add_row(row["name"], row["protocol"], row["url"], row["wsdl"])
        console.print(table)
        if credentials_out is not None:
            doc = {"seed": seed, "urls": {n: sb.url(n) for n in sb.names()},
                   "wsdl": {n: sb.wsdl_url(n) for n in sb.soap_names()},
                   "credentials": sb.credentials}
            credentials_out.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
            console.print(_("credentials written to {path}", path=credentials_out))
        console.print(_("running; press Ctrl-C to stop"))
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_a: done.set())
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        sb.stop()
        console.print(_("sandbox stopped"))
