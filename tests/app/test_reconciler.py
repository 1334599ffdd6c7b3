"""The reconciler (app.reconciler): cases stuck at a stage are asked about, what
the hub missed is published, and whatever stays stuck is warned about."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from bdchub.app.reconciler import ReconcileMetrics, Reconciler, stuck_command
from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError
from bdchub.core.store import Finish, Store

ROOT = Path(__file__).resolve().parents[2]
TENANT = "320684"
EVENT_STAGE = "(ZT=='01' && 'application') || (ZT=='02' && 'acceptance') || (ZT=='03' && 'review')"
QUERY = {"connector": "legacy", "operation": "QueryProgress", "payload": {"YWH": "business_no"},
         "events": "HJ", "event_stage": EVENT_STAGE, "key": "XH",
         "publish": "legacy.stage_changed"}


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Legacy:
    """The registration system's progress query: the case's history as it stands."""

    def __init__(self, history: dict[str, list[dict]]):
        self.history = history
        self.calls: list[dict] = []

    def call(self, operation, payload, context=None):
        self.calls.append(dict(payload))
        events = self.history[payload["YWH"]]
        return {"YWH": payload["YWH"], "ZT": events[-1]["ZT"], "HJ": events}


def event(xh: int, ywh: str, zt: str) -> dict:
    return {"XH": xh, "YWH": ywh, "ZT": zt, "BGSJ": "2026-03-01T10:00:00+08:00"}


def at_stage(store: Store, business_no: str, stage: str, at: float, **progress) -> None:
    store.finish(Finish(message_id=f"m-{business_no}-{stage}", route="r", outcome="completed",
                        tenant=TENANT, business_no=business_no, type="legacy.stage_changed",
                        progress={"stage": stage, "status": "in_progress", **progress}, at=at))


@pytest.fixture
def store():
    s = Store("sqlite://")
    yield s
    s.close()


def reconciler(store, clock, block, **kw):
    published = []
    rec = Reconciler(block, store=store, connectors=kw.pop("connectors", {}),
                     publish=published.append, clock=clock,
                     metrics=ReconcileMetrics(CollectorRegistry()))
    return rec, published


def test_a_stuck_case_without_a_query_is_warned_about_once_and_counted(store, caplog):
    clock = Clock()
    at_stage(store, "B-1", "review", clock.now)
    at_stage(store, "B-2", "review", clock.now - 10, status="completed")  # finished: not stuck
    rec, published = reconciler(store, clock, {"stages": {"review": 3600}})
    clock.now += 3599
    assert rec.run_once() == []
    clock.now += 2
    with caplog.at_level(logging.WARNING, logger="bdchub.reconcile"):
        [case] = rec.run_once()
        rec.run_once()
    assert (case.business_no, case.stage, case.expected) == ("B-1", "review", 3600)
    assert rec.metrics.stuck.labels("review")._value.get() == 1
    warnings = [r.getMessage() for r in caplog.records if "B-1" in r.getMessage()]
    assert len(warnings) == 1 and "review" in warnings[0]
    assert published == []
    at_stage(store, "B-1", "registration", clock.now)  # the case moves on
    assert rec.run_once() == []
    assert rec.metrics.stuck.labels("review")._value.get() == 0


def test_missed_stage_changes_are_asked_for_and_published_once_each(store):
    clock = Clock()
    at_stage(store, "B-3", "application", clock.now)
    legacy = Legacy({"B-3": [event(7, "B-3", "01"), event(9, "B-3", "02"),
                             event(12, "B-3", "03")]})
    rec, published = reconciler(store, clock, {"stages": {"application": 600}, **QUERY},
                                connectors={"legacy": legacy})
    clock.now += 601
    assert rec.run_once() == []  # reconciled: not stuck any more
    assert legacy.calls == [{"YWH": "B-3"}]
    assert [(e.type, e.body["ZT"], e.business_no, e.source) for e in published] == [
        ("legacy.stage_changed", "02", "B-3", "reconciler"),
        ("legacy.stage_changed", "03", "B-3", "reconciler")]
    assert rec.metrics.published._value.get() == 2
    # The ids the callbacks of these events get (dedupe_key XH): a late one is absorbed.
    from bdchub.core.ids import event_id
    assert [e.id for e in published] == [event_id("legacy.stage_changed", TENANT, xh)
                                         for xh in (9, 12)]
    # Asked again before the route caught up: the same events under the same ids.
    first = [e.id for e in published]
    rec._asked.clear()
    rec.run_once()
    assert [e.id for e in published[2:]] == first


def test_a_case_the_system_still_holds_at_that_stage_stays_on_the_list(store):
    clock = Clock()
    at_stage(store, "B-4", "acceptance", clock.now)
    legacy = Legacy({"B-4": [event(1, "B-4", "01"), event(2, "B-4", "02")]})
    rec, published = reconciler(store, clock, {"stages": {"acceptance": 600}, **QUERY},
                                connectors={"legacy": legacy})
    clock.now += 601
    [case] = rec.run_once()
    assert case.business_no == "B-4" and published == []
    clock.now += 300
    rec.run_once()
    assert len(legacy.calls) == 1  # not asked again before the stage's time has passed
    clock.now += 301
    rec.run_once()
    assert len(legacy.calls) == 2
    assert rec.metrics.queries.labels("unchanged")._value.get() == 2


def test_an_application_nothing_was_heard_of_is_submitted_and_gets_every_change(store):
    clock = Clock()
    store.finish(Finish(message_id="m-5", route="online_application", outcome="completed",
                        tenant=TENANT, business_no="B-5", type="application.submitted",
                        progress={"registration_type": "200"}, at=clock.now))
    store.finish(Finish(message_id="m-6", route="bank_batch", outcome="completed",
                        tenant=TENANT, business_no="BATCH-1", type="bank.batch_submitted",
                        progress={"status": "accepted"}, at=clock.now))
    legacy = Legacy({"B-5": [event(3, "B-5", "01"), event(4, "B-5", "02")]})
    rec, published = reconciler(store, clock, {"stages": {"submitted": 600}, **QUERY},
                                connectors={"legacy": legacy})
    clock.now += 601
    rec.run_once()
    assert legacy.calls == [{"YWH": "B-5"}]  # the batch is no case of the system
    assert [e.body["ZT"] for e in published] == ["01", "02"]


def test_a_failed_query_leaves_the_case_stuck_and_the_pass_going(store):
    clock = Clock()
    for no in ("B-7", "B-8"):
        at_stage(store, no, "review", clock.now)
    legacy = Legacy({"B-8": [event(1, "B-8", "03"), event(2, "B-8", "04")]})
    rec, published = reconciler(store, clock, {"stages": {"review": 60}, **QUERY},
                                connectors={"legacy": legacy})
    clock.now += 61
    [case] = rec.run_once()  # B-7 is unknown there (KeyError): a failure, not the end
    assert case.business_no == "B-7" and [e.business_no for e in published] == ["B-8"]
    assert rec.metrics.queries.labels("failed")._value.get() == 1


def _config(tmp_path: Path) -> Path:
    config = {"tenant": TENANT,
              "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
              "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
              "connectors": {}, "routes": {},
              "reconcile": {"stages": {"review": 3600}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_hub_stuck_lists_the_stuck_cases_as_text_and_json(tmp_path):
    import time

    path = _config(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    at_stage(store, "B-9", "review", time.time() - 7200)
    at_stage(store, "B-10", "review", time.time())
    store.close()
    runner = CliRunner()
    text = runner.invoke(stuck_command, ["-c", str(path)])
    assert text.exit_code == 0, text.output
    assert "1 stuck case(s)" in text.output and "B-9" in text.output and "B-10" not in text.output
    as_json = runner.invoke(stuck_command, ["-c", str(path), "--json"])
    [line] = as_json.output.splitlines()
    row = json.loads(line)
    assert (row["business_no"], row["stage"], row["expected"]) == ("B-9", "review", 3600)
    assert row["stuck_for"] >= 7200


def test_the_reconcile_section_is_checked():
    import re

    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    start = text.index("\nreconcile:\n")
    head, block = text[:start], text[start:]
    bad = head + block.replace("  connector: legacy\n", "  connector: legasy\n", 1)
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(bad, "config.yaml", environ={})
    assert "reconcile.connector: no connector named 'legasy'" in str(err.value)
    bad = head + re.sub(r"\n  operation: .*\n", "\n", block, count=1)
    with pytest.raises(ConfigError, match="operation"):
        config_mod.check_text(bad, "config.yaml", environ={})


def test_the_reconciler_runs_in_the_first_process_only(tmp_path):
    from bdchub.app.service import HubService
    from bdchub.core.config import load

    config = load(_config(tmp_path))
    with_it = HubService.from_config(config, web=False)
    without = HubService.from_config(config, web=False, pollers=False)
    try:
        assert [i.name for i in with_it.inputs] == ["metrics", "reconciler"]
        assert [i.name for i in without.inputs] == ["metrics"]
    finally:
        with_it.hub.close()
        without.hub.close()
