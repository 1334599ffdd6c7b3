"""``hub check --ping``: one row per connector, up or down with the reason."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bdchub.connectors.ping import PingRow, ping_all, render

from .targets import LegacySandbox, MarketSandbox, TaxSandbox


def test_ping_all_probes_every_connector_and_says_why_one_is_down(clean_sandbox, tmp_path):
    clean_sandbox.down("court")
    config = {"connectors": {
        "market": MarketSandbox(clean_sandbox).block(timeout=2),
        "tax": TaxSandbox(clean_sandbox).block(timeout=2),
        "legacy": LegacySandbox(clean_sandbox).block(timeout=2),
        "court": {"type": "soap", "wsdl": clean_sandbox.wsdl_url("court"), "timeout": 2},
        "typo": {"type": "rset", "base_url": "http://127.0.0.1:9"},
        "local": {"type": "soap", "wsdl": "wsdl/missing.wsdl"},
    }}
    rows = {row.name: row for row in ping_all(config, base_dir=tmp_path)}
    assert list(rows) == sorted(config["connectors"])
    assert rows["market"].status == "up" and rows["market"].circuit == "closed"
    assert rows["tax"].status == "up" and "QueryClearance ok" in rows["tax"].detail
    assert rows["legacy"].detail.startswith("WSDL ok, SOAP 1.2")
    assert rows["court"].status == "down" and "connection" in rows["court"].detail
    assert rows["typo"].status == "down" and "did you mean 'rest'" in rows["typo"].detail
    assert rows["local"].status == "down" and "missing.wsdl" in rows["local"].detail
    assert all(row.latency_ms >= 0 for row in rows.values())


def test_render_gives_a_table_with_one_line_per_row():
    rows = [PingRow("tax", "soap", "http://127.0.0.1:1/tax.wsdl", "up", 12.5, "closed", "ok"),
            PingRow("gov", "rest", "http://127.0.0.1:2", "down", 3.0, "open", "refused")]
    table = render(rows)
    assert isinstance(table, Table)
    assert table.row_count == 2
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "tax" in text and "refused" in text and "12.5" in text


def test_no_connectors_no_rows():
    assert ping_all({}) == []
