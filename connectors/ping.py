"""``hub check --ping``: probe every connector of a config and show a table.

::

    rows = ping_all(config, base_dir=Path("config.yaml").parent)
    console.print(render(rows))
    sys.exit(0 if all(row.status == "up" for row in rows) else 1)

``config`` is the parsed config.yaml; its ``connectors:`` mapping is name ->
block. Each connector is built as the hub would build it, opened (SOAP loads
its WSDL here and caches a remote one in the data folder, where ``hub check``
reads it to check the calls made of it), probed with its ``health()`` and
closed; probes run in parallel, each bounded by its block's ``timeout``. A
block that cannot even be built (unknown type, missing file) gives a ``down``
row saying why instead of stopping the others. Endpoints are shown without
passwords. ``hub check --ping`` exits 1 when a row is down; a call of an
operation or parameter the WSDL does not have is a configuration problem
(exit 2), found by the check that follows the probes, not a down row.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdchub.core.i18n import _

from .base import Connector


@dataclass(frozen=True)
class PingRow:
    name: str
    type: str
    endpoint: str
    status: str  # "up" | "down"
    latency_ms: float
    circuit: str
    detail: str


def ping_one(name: str, block: dict[str, Any], *, base_dir: str | Path | None = None,
             connector: Connector | None = None) -> PingRow:
    """Probe one connector (a live one if given, so its circuit state shows)."""
    from .resilience import build

    kind = str(block.get("type", "?"))
    started = time.monotonic()
    own = connector is None
    endpoint = ""
    try:
        if connector is None:
            connector = build(name, block, base_dir=base_dir)
        endpoint = connector.endpoint
        health = connector.health()
        return PingRow(name, kind, endpoint, "up" if health.up else "down",
                       round(health.latency_ms, 1), health.circuit, health.detail)
    except Exception as exc:  # noqa: BLE001 - one broken block must not hide the others
        return PingRow(name, kind, endpoint or str(block.get("base_url") or block.get("wsdl")
                                                   or ""),
                       "down", round((time.monotonic() - started) * 1000, 1), "-",
                       str(exc) or type(exc).__name__)
    finally:
        if own and connector is not None:
            connector.close()


def ping_all(config: dict[str, Any], *, base_dir: str | Path | None = None,
             live: dict[str, Connector] | None = None, workers: int = 8) -> list[PingRow]:
    """One row per connector of ``config['connectors']``, in name order."""
    blocks: dict[str, Any] = (config or {}).get("connectors") or {}
    live = live or {}
    if not blocks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(blocks))),
                            thread_name_prefix="ping") as pool:
        futures = {name: pool.submit(ping_one, name, block or {}, base_dir=base_dir,
                                     connector=live.get(name))
                   for name, block in blocks.items()}
        return [futures[name].result() for name in sorted(futures)]


def render(rows: list[PingRow]) -> Any:
    """A ``rich.table.Table`` of the rows."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=_("Connector health"), show_lines=False)
    table.add_column(_("name"), style="bold")
    table.add_column(_("type"))
    table.add_column(_("endpoint"), overflow="fold")
    table.add_column(_("status"))
    table.add_column(_("latency ms"), justify="right")
    table.add_column(_("circuit"))
    table.add_column(_("detail"), overflow="fold")
    for row in rows:
        status = Text(_("up") if row.status == "up" else _("down"),
                      style="green" if row.status == "up" else "bold red")
        circuit = Text(row.circuit, style={"closed": "green", "half-open": "yellow",
                                           "open": "red"}.get(row.circuit, ""))
        table.add_row(row.name, row.type, row.endpoint, status, f"{row.latency_ms:.1f}",
                      circuit, row.detail)
    return table
