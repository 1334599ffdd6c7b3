"""Pollers (app.pollers): inbound by polling a department that cannot push."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"


def test_a_poller_naming_an_unknown_connector_is_a_config_error():
    text = CONFIG.read_text(encoding="utf-8").replace("    connector: court\n",
                                                      "    connector: cuort\n", 1)
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(text, "config.yaml", environ={})
    assert "pollers.court_orders.connector: no connector named 'cuort'" in str(err.value)
    assert "did you mean 'court'" in str(err.value)


class Court:
    """A department that can only be pulled: orders after a cursor, a page at a time."""

    def __init__(self, n: int):
        self.orders = [{"OrderId": f"FY{i:03d}", "Sequence": i} for i in range(1, n + 1)]
        self.calls: list[dict] = []

    def call(self, operation, payload, context=None):
        self.calls.append(dict(payload))
        cursor = int(payload.get("Cursor") or 0)
        page = [o for o in self.orders if o["Sequence"] > cursor][:2]
        more = len([o for o in self.orders if o["Sequence"] > cursor]) > len(page)
        return {"Order": page, "NextCursor": str(page[-1]["Sequence"] if page else cursor),
                "HasMore": more}


SPEC = {"connector": "court", "operation": "PullJudgments", "every": 0.01,
        "cursor": {"param": "Cursor", "next": "NextCursor", "more": "HasMore"},
        "items": "Order", "key": "OrderId", "business_no": "OrderId",
        "publish": "court.order_received"}


def test_poller_publishes_each_item_once_and_resumes_from_its_stored_cursor(tmp_path):
    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    court = Court(5)
    published = []
    poller = Poller("court_orders", SPEC, connector=court, publish=published.append,
                    tenant="320684", cursors=CursorStore(store.engine))
    while poller.poll_once():
        pass
    assert [e.business_no for e in published] == ["FY001", "FY002", "FY003", "FY004", "FY005"]
    assert {e.type for e in published} == {"court.order_received"}
    assert [c.get("Cursor") for c in court.calls] == [None, "2", "4"]
    # A restarted hub (a new poller over the same store) goes on from the cursor.
    court.orders.append({"OrderId": "FY006", "Sequence": 6})
    again = Poller("court_orders", SPEC, connector=court, publish=published.append,
                   tenant="320684", cursors=CursorStore(store.engine))
    again.poll_once()
    assert court.calls[-1]["Cursor"] == "5"
    assert [e.business_no for e in published][-1] == "FY006" and len(published) == 6
    store.close()


def test_an_item_pulled_twice_gets_the_same_message_id(tmp_path):
    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store

    ids = []
    for folder in ("a", "b"):  # two stores: the cursor is lost, the order is pulled again
        (tmp_path / folder).mkdir()
        store = Store(f"sqlite:///{tmp_path / folder / 'store.db'}")
        published = []
        Poller("court_orders", SPEC, connector=Court(1), publish=published.append,
               tenant="320684", cursors=CursorStore(store.engine)).poll_once()
        ids.append(published[0].id)
        store.close()
    assert ids[0] == ids[1]


# -- kind: per_case ------------------------------------------------------------

TENANT = "320684"
STAGE = ("(ZT=='01' && 'application') || (ZT=='02' && 'acceptance') || (ZT=='03' && 'review')"
         " || (ZT=='06' && 'archive')")
PER_CASE = {"kind": "per_case", "connector": "legacy", "operation": "QueryProgress",
            "every": 60, "payload": {"YWH": "business_no"}, "events": "HJ",
            "event_stage": STAGE, "key": "XH", "publish": "legacy.stage_changed"}
T0 = 1_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Legacy:
    """A registration system that answers "progress of case N": its history so far."""

    def __init__(self, history: dict[str, list[dict]] | None = None, during_call=None):
        self.history = history or {}
        self.calls: list[str] = []
        self.during_call = during_call

    def event(self, ywh: str, zt: str) -> dict:
        xh = sum(len(h) for h in self.history.values()) + 1
        event = {"XH": xh, "YWH": ywh, "ZT": zt, "BGSJ": "2026-03-01T10:00:00+08:00"}
        self.history.setdefault(ywh, []).append(event)
        return event

    def call(self, operation, payload, context=None):
        assert operation == "QueryProgress"
        self.calls.append(payload["YWH"])
        if self.during_call is not None:
            hook, self.during_call = self.during_call, None
            hook()
        events = self.history[payload["YWH"]]
        return {"YWH": payload["YWH"], "ZT": events[-1]["ZT"], "HJ": events}


def case(store, business_no: str, at: float, *, message: str = "", **progress) -> None:
    """What a route leaves of a message of the case: its hop and its progress."""
    from bdchub.core.envelope import Hop
    from bdchub.core.store import Finish

    store.finish(Finish(message_id=message or f"m-{business_no}-{at}", route="r",
                        outcome="completed", tenant=TENANT, business_no=business_no,
                        type="legacy.stage_changed", hops=[Hop("r", "0:map", at, 1.0)],
                        progress=progress, at=at))


def per_case(store, legacy, clock, published=None, name="legacy_progress", **spec):
    from bdchub.app.pollers import CasePoller, CaseSchedule

    published = [] if published is None else published
    poller = CasePoller(name, {**PER_CASE, **spec}, connectors={"legacy": legacy},
                        publish=published.append, schedule=CaseSchedule(store.engine),
                        clock=clock)
    return poller, published


@pytest.fixture
def store(tmp_path):
    from bdchub.core.store import Store

    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def test_per_case_poller_asks_about_each_open_application_and_publishes_what_the_hub_missed(store):
    clock = Clock()
    legacy = Legacy()
    for no in ("B-1", "B-2"):
        legacy.event(no, "01")
        legacy.event(no, "02")
    case(store, "B-1", T0, registration_type="200", stage="application", status="in_progress")
    case(store, "B-2", T0, registration_type="200")  # submitted, nothing heard yet
    case(store, "B-3", T0, registration_type="200", stage="archive", status="completed")
    case(store, "BATCH-1", T0, status="accepted")  # a bank batch: no case of the system
    poller, published = per_case(store, legacy, clock)
    assert poller.run_once() == 0  # each falls due at its own time within the interval
    clock.now += 60
    assert poller.run_once() == 2
    assert sorted(legacy.calls) == ["B-1", "B-2"]
    assert sorted((e.business_no, e.body["ZT"]) for e in published) == [
        ("B-1", "02"), ("B-2", "01"), ("B-2", "02")]
    assert {(e.type, e.source, e.tenant) for e in published} == {
        ("legacy.stage_changed", "poller:legacy_progress", TENANT)}
    assert poller.schedule.states("legacy_progress") == {
        (TENANT, "B-1"): "open", (TENANT, "B-2"): "open", (TENANT, "B-3"): "ended",
        (TENANT, "BATCH-1"): "ignored"}


def test_a_case_is_asked_about_every_interval_until_its_end_state(store):
    clock = Clock()
    legacy = Legacy()
    legacy.event("B-1", "01")
    case(store, "B-1", T0, registration_type="200", stage="application", status="in_progress")
    poller, published = per_case(store, legacy, clock,
                                 until="stage == 'archive' || stage == 'refusal'")
    poller.run_once()
    for _interval in range(3):  # the system holds the case at its stage: asked each interval
        clock.now += 60
        poller.run_once()
    assert legacy.calls == ["B-1"] * 3 and published == []
    legacy.event("B-1", "06")
    clock.now += 60
    poller.run_once()
    assert [e.body["ZT"] for e in published] == ["06"]
    case(store, "B-1", clock.now, stage="archive", status="completed")  # the route took it
    for _interval in range(3):
        clock.now += 60
        poller.run_once()
    assert len(legacy.calls) == 4  # ended: asked no more
    assert poller.schedule.states("legacy_progress") == {(TENANT, "B-1"): "ended"}


def test_a_case_past_its_deadline_is_asked_about_no_more_and_said_so(store, caplog):
    import logging

    clock = Clock()
    legacy = Legacy()
    legacy.event("B-1", "01")
    case(store, "B-1", T0, registration_type="200", stage="application", status="suspended")
    poller, _published = per_case(store, legacy, clock, deadline=300)
    clock.now += 100
    poller.run_once()  # first seen now; the deadline counts from the case's first message
    asked_at = []
    with caplog.at_level(logging.WARNING, logger="bdchub.pollers"):
        for _interval in range(10):
            clock.now += 60
            calls = len(legacy.calls)
            poller.run_once()
            asked_at += [clock.now] * (len(legacy.calls) - calls)
    assert len(asked_at) == 3 and max(asked_at) < T0 + 300
    assert poller.schedule.states("legacy_progress") == {(TENANT, "B-1"): "expired"}
    [warning] = [r.getMessage() for r in caplog.records if "B-1" in r.getMessage()]
    assert "legacy_progress" in warning


def test_calls_are_spread_over_the_interval_and_each_case_keeps_its_place(store):
    clock = Clock()
    legacy = Legacy()
    numbers = [f"320684-2026-{i:06d}" for i in range(200)]
    for no in numbers:
        legacy.event(no, "01")
        case(store, no, T0, registration_type="200", stage="application", status="in_progress")
    poller, _published = per_case(store, legacy, clock, every=100)
    assert poller.run_once() == 0  # submitted at once, not asked at once
    per_tenth = []
    for _step in range(20):  # two intervals, a tenth at a time
        clock.now += 10
        per_tenth.append(poller.run_once())
    assert sum(per_tenth[:10]) == sum(per_tenth[10:]) == 200
    assert max(per_tenth) <= 40 and min(per_tenth) >= 5  # 20 a tenth on average
    first, second = legacy.calls[:200], legacy.calls[200:]
    assert sorted(first) == sorted(numbers) and first == second  # the same order each time


def _two_processes(store, other_store):
    """Two pollers on one store, as two hub processes: the second passes while the
    first is in the middle of its first call."""
    clock = Clock()
    legacy = Legacy()
    for no in ("B-1", "B-2", "B-3", "B-4"):
        legacy.event(no, "01")
        legacy.event(no, "02")
        case(store, no, T0, registration_type="200", stage="application", status="in_progress")
    first, published = per_case(store, legacy, clock)
    second, _ = per_case(other_store, legacy, clock, published=published)
    first.run_once()
    second.run_once()
    clock.now += 60
    legacy.during_call = second.run_once
    first.run_once()
    second.run_once()
    return legacy, first, second, published


def test_each_case_is_asked_about_by_one_process_at_a_time(store, tmp_path):
    from bdchub.core.store import Store

    other = Store(store.url)
    try:
        legacy, first, second, published = _two_processes(store, other)
    finally:
        other.close()
    assert sorted(legacy.calls) == ["B-1", "B-2", "B-3", "B-4"]  # each once
    assert first.polls >= 1 and second.polls >= 1 and first.polls + second.polls == 4
    assert len(published) == 4


@pytest.mark.integration
def test_each_case_is_asked_about_by_one_process_at_a_time_on_postgresql(postgres_url):
    import uuid

    import psycopg2

    from bdchub.core.store import Store

    name = f"bdchub_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    one, two = Store(url), Store(url)
    try:
        legacy, first, second, _published = _two_processes(one, two)
        assert sorted(legacy.calls) == ["B-1", "B-2", "B-3", "B-4"]
        assert first.polls >= 1 and second.polls >= 1
    finally:
        one.close()
        two.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


STAGE_ROUTE = {"legacy_stage_change": {"from": "legacy.stage_changed", "steps": [
    {"set": {"business_no": "YWH"}},
    {"map": {"business_no": "YWH", "stage": STAGE, "sequence": "XH",
             "status": "(ZT=='06' && 'completed') || 'in_progress'"}}]}}


def polled_hub(legacy, clock, **progress):
    """A hub whose route takes what a per-case poller publishes about case B-1, after
    the poller's first interval."""
    from tests.routes.helpers import make_hub

    hub = make_hub(STAGE_ROUTE)
    case(hub.store, "B-1", T0, registration_type="200", **progress)
    poller, published = per_case(hub.store, legacy, clock)
    poller.publish = lambda env: (published.append(env), hub.publish(env))
    poller.run_once()
    clock.now += 60
    poller.run_once()
    hub.run_until_idle()
    return hub, poller, published


def test_a_callback_after_a_poll_is_the_same_message_and_is_absorbed():
    from bdchub.core.envelope import Envelope
    from bdchub.web.dedupe import ContentId

    clock = Clock()
    legacy = Legacy()
    legacy.event("B-1", "01")
    called_back = legacy.event("B-1", "02")
    hub, _poller, published = polled_hub(legacy, clock, stage="application",
                                         status="in_progress")
    assert hub.store.progress(TENANT, "B-1")["stage"] == "acceptance"
    # The registration system's callback of the same change, as the inbound endpoint
    # names it (dedupe_key XH): the id the poll gave it.
    scope = ("legacy", "POST", "/api/v1/inbound/legacy/stage-changes", TENANT)
    callback_id = ContentId("XH").message_id("legacy.stage_changed", TENANT, scope, called_back)
    assert [e.id for e in published] == [callback_id]
    hops = len(hub.trace("B-1"))
    hub.publish(Envelope(type="legacy.stage_changed", tenant=TENANT, business_no="B-1",
                         body=dict(called_back), source="web:legacy", id=callback_id))
    hub.run_until_idle()
    assert len(hub.trace("B-1")) == hops  # absorbed: the route did not run again
    hub.close()


def test_a_poll_that_finds_the_stage_the_hub_knows_writes_nothing_new():
    clock = Clock()
    legacy = Legacy()
    legacy.event("B-1", "01")
    legacy.event("B-1", "03")
    hub, poller, published = polled_hub(legacy, clock)
    before = (hub.store.progress(TENANT, "B-1"), len(hub.trace("B-1")), len(published))
    assert before[0]["stage"] == "review"
    for _interval in range(3):
        clock.now += 60
        poller.run_once()
        hub.run_until_idle()
    assert len(legacy.calls) == 4
    assert (hub.store.progress(TENANT, "B-1"), len(hub.trace("B-1")), len(published)) == before
    # A system that answers only the case's state: the same stage again is no change.
    current, again = per_case(hub.store, legacy, clock, name="current_state", events="@",
                              key="[YWH, ZT]")
    current.run_once()
    clock.now += 60
    current.run_once()
    assert again == []
    hub.close()


def test_a_fed_item_is_the_message_its_callback_would_be():
    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store
    from bdchub.web.dedupe import ContentId

    event = {"XH": 41, "YWH": "B-1", "ZT": "02"}

    class Feed:
        def call(self, operation, payload, context=None):
            return {"BGJL": [event], "ZXXH": 41, "SFYGD": False}

    store = Store("sqlite://")
    published = []
    spec = {"connector": "legacy", "operation": "ReportStageChanges", "items": "BGJL",
            "key": "XH", "business_no": "YWH", "publish": "legacy.stage_changed",
            "cursor": {"param": "QSXH", "next": "ZXXH", "more": "SFYGD"}}
    Poller("legacy_stage_changes", spec, connector=Feed(), publish=published.append,
           tenant=TENANT, cursors=CursorStore(store.engine)).poll_once()
    store.close()
    scope = ("legacy", "POST", "/api/v1/inbound/legacy/stage-changes", TENANT)
    assert [e.id for e in published] == [
        ContentId("XH").message_id("legacy.stage_changed", TENANT, scope, event)]


def _check(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(text, "config.yaml", environ={})
    return str(err.value)


def test_the_shipped_per_case_poller_is_checked_like_every_poller():
    import re

    text = CONFIG.read_text(encoding="utf-8")
    start = text.index("  legacy_progress:\n")
    head, tail = text[:start], text[start:]
    config_mod.check_text(head + tail.replace("    enabled: false\n", "", 1), "config.yaml",
                          environ={})
    assert ("pollers.legacy_progress.untill: unknown key 'untill' (did you mean 'until'?)"
            in _check(head + tail.replace("    until:", "    untill:", 1)))
    problem = _check(head + re.sub(r"    until: .*\n", "    until: \"status == \"\n", tail,
                                   count=1))
    assert "pollers.legacy_progress.until: 'status == ' is not a valid JMESPath" in problem
    assert "config.yaml:" in problem
    problem = _check(head + tail.replace("    kind: per_case", "    kind: per_kase", 1))
    assert "pollers.legacy_progress.kind" in problem and "per_case" in problem
    assert "'items'" not in problem  # not taken for a feed with its keys missing
    problem = _check(head + re.sub(r"    events: .*\n", "", tail, count=1))
    assert "pollers.legacy_progress" in problem and "events" in problem


def test_pollers_and_their_kinds_start_with_the_hub(tmp_path):
    from bdchub.app.pollers import CasePoller, Poller, Pollers
    from bdchub.core.store import Store

    config = {"tenant": TENANT, "pollers": {
        "court_orders": {**SPEC, "every": 10},
        "legacy_progress": PER_CASE,
        "off": {**PER_CASE, "enabled": False}}}
    store = Store("sqlite://")
    pollers = Pollers(config, connectors={"court": Court(0), "legacy": Legacy()},
                      publish=lambda env: None, store_engine=store.engine)
    assert [(type(p), p.name) for p in pollers.items] == [(Poller, "court_orders"),
                                                         (CasePoller, "legacy_progress")]
    assert pollers.items[1].every == 60 and pollers.items[1].deadline == 90 * 86400
    pollers.start()
    pollers.stop(timeout=5)
    store.close()


def test_the_pollers_reference_names_every_key_with_the_default_the_code_uses():
    import re

    from bdchub.app.pollers import FEED, PER_CASE

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("\n## Pollers\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (`[^|]*`) \|([^|]*)\|", section, re.M)
    documented = {}
    for keys, default in rows:
        for key in re.findall(r"`([a-z_.]+)`", keys):
            documented.setdefault(key, []).append(default.strip())
    for schema in (FEED, PER_CASE):
        for key, spec in schema["properties"].items():
            for sub in spec.get("properties") or ():  # cursor: its keys, one row each
                assert f"{key}.{sub}" in documented, f"{key}.{sub}"
            if "properties" in spec:
                continue
            assert key in documented, key
            if isinstance(spec.get("default"), int | float) and not isinstance(
                    spec["default"], bool):
                assert any(re.match(r"[\d.]+", d) and float(re.match(r"[\d.]+", d)[0])
                           == spec["default"] for d in documented[key]), key
            elif isinstance(spec.get("default"), str):
                assert any(f"`{spec['default']}`" in d for d in documented[key]), key
