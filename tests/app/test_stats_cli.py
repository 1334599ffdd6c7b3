"""``hub stats``: Chinese tables by default, JSON with English keys, CSV and XLSX exports
with the same numbers, and known errors as one ``Error:`` line with exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bdchub.core.store import Store
from bdchub.hub import cli as hub_cli
from tests.app.test_stats import HM, QD, _case


@pytest.fixture
def config(tmp_path: Path) -> Path:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "tenant": HM, "broker": {"url": "memory://"}, "store": {"url": store_url},
        "inbound": {"enabled": False},
        "connectors": {"legacy": {"type": "fake", "responses": {"submit": {"ok": True}}}},
        "routes": {"archive": {"from": "application.archived", "steps": [
            {"to": {"connector": "legacy", "operation": "submit"}}]}}}))
    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub

    Hub.from_config(load(path)).close()  # the store as the hub makes it
    store = Store(store_url, group_commit=False)
    _case(store, HM, "A1", "200", "bank", [("application", 0), ("acceptance", 3600),
                                            ("archive", 7200)])
    _case(store, HM, "A2", "100", "agency", [("application", 0), ("refusal", 600)])
    _case(store, QD, "B1", "200", "bank", [("application", 0)])
    store.close()
    return path


RANGE = ("--since", "2026-03-01", "--until", "2026-03-31")


def _stats(config: Path, *args: str, lang: str = "en") -> tuple[int, str]:
    result = CliRunner().invoke(hub_cli, ["--lang", lang, "stats", "-c", str(config), *args])
    return result.exit_code, result.output


def test_json_has_english_keys_and_the_counts(config):
    code, out = _stats(config, *RANGE, "--by", "type", "--by", "outcome", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["since"] == "2026-03-01T00:00:00+08:00"
    assert doc["until"] == "2026-04-01T00:00:00+08:00"
    assert doc["applications"] == [
        {"type": "100", "outcome": "refused", "applications": 1},
        {"type": "200", "outcome": "closed", "applications": 1},
        {"type": "200", "outcome": "in_progress", "applications": 1},
    ]
    assert {r["stage"]: r["p50_s"] for r in doc["stage_times"]} == {
        "acceptance": 3600.0, "application": 600.0}


def test_the_tenant_option_scopes_every_table(config):
    doc = json.loads(_stats(config, *RANGE, "--tenant", QD, "--json")[1])
    assert doc["applications"] == [{"outcome": "in_progress", "applications": 1}]
    assert doc["stage_times"] == []


def test_tables_name_types_and_outcomes_in_chinese(config):
    code, out = _stats(config, *RANGE, "--by", "division", "--by", "type", "--by", "outcome",
                       lang="zh_CN")
    assert code == 0, out
    assert "登记类型" in out and "申请数" in out
    assert "200 转移登记" in out and "100 首次登记" in out and "已办结（归档）" in out
    assert "320684 海门市" in out


def test_exports_read_back_with_the_same_numbers(config, tmp_path):
    doc = json.loads(_stats(config, *RANGE, "--by", "channel", "--json")[1])
    xlsx, csv_file = tmp_path / "s.xlsx", tmp_path / "s.csv"
    assert _stats(config, *RANGE, "--by", "channel", "--export", str(xlsx))[0] == 0
    assert _stats(config, *RANGE, "--by", "channel", "--export", str(csv_file))[0] == 0
    from openpyxl import load_workbook

    book = load_workbook(xlsx, read_only=True)
    assert book.sheetnames == ["Applications", "Time at each stage", "Department calls"]
    rows = list(book["Applications"].iter_rows(values_only=True))
    assert rows[0] == ("channel", "applications")
    assert {r[0].split()[0]: r[1] for r in rows[1:]} == {
        r["channel"]: r["applications"] for r in doc["applications"]} == {"agency": 1, "bank": 2}
    stage_rows = list(book["Time at each stage"].iter_rows(values_only=True))[1:]
    assert {r[0].split()[0]: r[2] for r in stage_rows} == {
        r["stage"]: r["p50_s"] for r in doc["stage_times"]}
    with csv_file.open(encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f))
    body = lines[2:lines.index([])]
    assert {r[0].split()[0]: int(r[1]) for r in body} == {"agency": 1, "bank": 2}


@pytest.mark.parametrize("args, message", [
    (("--since", "2026-03-10", "--until", "2026-03-01"), "--until must be later than --since"),
    (("--since", "yesterday"), "'yesterday' is not a date"),
    (("--export", "out.pdf"), "give a .csv or .xlsx file"),
])
def test_known_errors_are_one_line_and_exit_2(config, args, message):
    code, out = _stats(config, *args)
    assert code == 2
    assert out.startswith("Error: ") and message in out and "Traceback" not in out


def test_channels_are_named_as_the_console_names_them(config):
    code, out = _stats(config, *RANGE, "--by", "channel", lang="zh_CN")
    assert code == 0, out
    assert "bank 银行网点" in out and "agency 房地产经纪（中介）机构" in out
    code, out = _stats(config, *RANGE, "--by", "channel", lang="en")
    assert "bank bank branch" in out and "agency real-estate agency" in out
