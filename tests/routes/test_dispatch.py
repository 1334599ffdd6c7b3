"""``dispatch``: a province hub sends each message to its county by division code."""

from __future__ import annotations

import pytest

from bdchub.core import i18n
from bdchub.core.config import check_text
from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError

from .helpers import Sleeps, echo, fake, make_hub

HAIMEN_OLD, HAIMEN = "320684", "320614"   # 海门市 became 海门区 in 2020
RUGAO, QIDONG = "320682", "320681"
UNIT_HAIMEN_OLD = "320684001002GB00105F00010001"   # a unit code issued under 320684
UNIT_RUGAO = "320682103005GB00217F00030012"


def dispatch_hub(hubs, division, counties=None, **extra):
    connectors = {"county_haimen": fake("county_haimen", echo),
                  "county_rugao": fake("county_rugao", echo),
                  "shared_djxt": fake("shared_djxt", echo)}
    counties = counties or {
        HAIMEN: {"connector": "county_haimen"},
        RUGAO: {"connector": "county_rugao"},
        QIDONG: {"connector": "shared_djxt", "params": {"county": QIDONG}},
    }
    hub = make_hub({"down": {"from": "court.order_received", "steps": [
        {"dispatch": {"division": division, "operation": "deliver", "counties": counties,
                      **extra}},
        {"set": {"headers": {"seen-tenant": "_tenant"}}},
    ]}}, connectors)
    hubs.append(hub)
    return hub, connectors


def dead_letter(hub):
    [row] = hub.dlq_list()
    return row


def test_unit_code_picks_the_county_and_retired_code_goes_to_its_successor(hubs):
    hub, conn = dispatch_hub(hubs, "unit_code")
    hub.send("court.order_received", {"unit_code": UNIT_HAIMEN_OLD}, tenant="320000",
             business_no="FY-1")
    hub.run_until_idle()
    [(op, payload, ctx)] = conn["county_haimen"].calls
    assert op == "deliver" and payload["unit_code"] == UNIT_HAIMEN_OLD
    # The county is the message's tenant from here on: the call, the store and the trace.
    assert ctx.tenant == HAIMEN
    assert not conn["county_rugao"].calls and not hub.dlq_list()
    [hop] = [h for h in hub.trace("FY-1", HAIMEN) if h["step"].endswith(":dispatch")]
    assert f"{HAIMEN_OLD} -> {HAIMEN}" in hop["detail"] and "county_haimen" in hop["detail"]


def test_business_number_prefix_picks_the_county(hubs):
    hub, conn = dispatch_hub(hubs, "_business_no")
    hub.send("court.order_received", {"case": "x"}, tenant="320000",
             business_no=f"{RUGAO}2026000123")
    hub.run_until_idle()
    assert len(conn["county_rugao"].calls) == 1 and not conn["county_haimen"].calls


def test_envelope_tenant_picks_the_county_and_later_steps_see_it(hubs):
    hub, conn = dispatch_hub(hubs, "_tenant")
    hub.send("court.order_received", {"case": "x"}, tenant=RUGAO, business_no="FY-3")
    hub.run_until_idle()
    [(_op, _payload, ctx)] = conn["county_rugao"].calls
    assert ctx.tenant == RUGAO and ctx.headers == {}   # hub headers are not passed on
    assert [h["step"] for h in hub.trace("FY-3", RUGAO)] == ["0:dispatch", "1:set"]


def test_shared_system_is_called_with_the_county_parameter(hubs):
    hub, conn = dispatch_hub(hubs, "county")
    hub.send("court.order_received", {"county": QIDONG, "case": "y"}, tenant="320000",
             business_no="FY-4")
    hub.run_until_idle()
    [(op, payload, ctx)] = conn["shared_djxt"].calls
    assert (op, payload["county"], payload["case"], ctx.tenant) == ("deliver", QIDONG, "y", QIDONG)


def test_a_county_configured_under_its_former_code_gets_its_current_code(hubs):
    hub, conn = dispatch_hub(hubs, "unit_code",
                             counties={HAIMEN_OLD: {"connector": "county_haimen"}})
    hub.send("court.order_received", {"unit_code": HAIMEN + UNIT_HAIMEN_OLD[6:]},
             tenant="320000", business_no="FY-5")
    hub.send("court.order_received", {"unit_code": UNIT_HAIMEN_OLD}, tenant="320000",
             business_no="FY-6")
    hub.run_until_idle()
    assert [c[2].tenant for c in conn["county_haimen"].calls] == [HAIMEN_OLD, HAIMEN_OLD]


def test_publish_target_emits_to_the_countys_queue_with_the_county_as_tenant(hubs):
    hub, _conn = dispatch_hub(hubs, "unit_code", counties={
        RUGAO: {"publish": "court.order_dispatched", "queue": "county.320682"}})
    hub.broker.declare_queue("county.320682", [])
    hub.send("court.order_received", {"unit_code": UNIT_RUGAO}, tenant="320000",
             business_no="FY-7")
    hub.run_until_idle()
    [env] = [Envelope.from_json(b) for b in hub.broker.peek("county.320682")]
    assert (env.type, env.tenant, env.body["unit_code"]) == ("court.order_dispatched", RUGAO,
                                                             UNIT_RUGAO)
    assert env.headers["x-hub-county"] == RUGAO and env.headers["x-hub-division"] == RUGAO


@pytest.mark.parametrize(("body", "expected"), [
    ({"unit_code": "999999001002GB00105F00010001"}, "999999"),           # unknown
    ({"unit_code": "320623001002GB00105F00010001"}, "320623"),           # 如东县: not ours
    ({"unit_code": "330104001002GB00105F00010001"}, "330102"),           # 江干区: split
    ({"unit_code": "371200001002GB00105F00010001"}, "371200"),           # 莱芜市: none named
    ({"unit_code": "X-20260001"}, "X-20260001"),                         # no code at all
])
def test_undeliverable_codes_are_dead_lettered_at_once_with_the_reason(hubs, body, expected):
    hub, conn = dispatch_hub(hubs, "unit_code")
    hub.send("court.order_received", body, tenant="320000", business_no="FY-8")
    hub.run_until_idle()
    row = dead_letter(hub)
    assert row["reason"] == "invalid" and row["step"] == "0:dispatch"
    assert expected in row["last_error"]
    assert not any(c.calls for c in conn.values())


def test_reasons_are_in_chinese_and_say_what_was_tried(hubs):
    i18n.set_language("zh_CN")   # the hub's default; tests otherwise read English
    hub, _ = dispatch_hub(hubs, "unit_code")
    hub.send("court.order_received", {"unit_code": "330104001002GB00105F00010001"},
             tenant="320000", business_no="FY-9")
    hub.send("court.order_received", {"unit_code": "320623001002GB00105F00010001"},
             tenant="320000", business_no="FY-10")
    hub.run_until_idle()
    errors = {r["business_no"]: r["last_error"] for r in hub.dlq_list()}
    assert "已撤销" in errors["FY-9"] and "330102" in errors["FY-9"] and "330114" in errors["FY-9"]
    assert "320623" in errors["FY-10"] and "320614" in errors["FY-10"]


def test_retired_refuse_dead_letters_a_retired_code_even_with_a_successor(hubs):
    hub, conn = dispatch_hub(hubs, "unit_code", retired="refuse")
    hub.send("court.order_received", {"unit_code": UNIT_HAIMEN_OLD}, tenant="320000",
             business_no="FY-11")
    hub.run_until_idle()
    assert not conn["county_haimen"].calls
    assert "retired: refuse" in dead_letter(hub)["last_error"]


def test_a_dead_lettered_dispatch_is_neither_retried_nor_parked(hubs):
    sleeps = Sleeps()
    hub = make_hub({"down": {"from": "court.order_received",
                             "on_error": {"retry": {"attempts": 5, "backoff": 1}},
                             "steps": [{"dispatch": {"division": "unit_code", "counties": {
                                 RUGAO: {"publish": "court.order_dispatched"}}}}]}},
                   sleep=sleeps)
    hubs.append(hub)
    hub.send("court.order_received", {"unit_code": "999999001002GB00105F00010001"},
             tenant="320000", business_no="FY-12")
    hub.run_until_idle()
    assert dead_letter(hub)["reason"] == "invalid"
    assert sleeps == [] and not hub.store.due_parked(float("inf"), 10)


CONFIG = """
tenant: "320000"
level: province
connectors:
  county_haimen: {{type: fake, responses: {{deliver: {{}}}}}}
routes:
  down:
    from: court.order_received
    steps:
      - dispatch:
          division: unit_code
          operation: deliver
          counties:
            {county}: {{connector: county_haimen}}
"""


@pytest.mark.parametrize(("county", "message"), [
    ('"32061"', "must be a 6-digit GB/T 2260 division code"),
    ('"320699"', "is not a GB/T 2260 division code"),
    ('"330106"', "is not under the hub's province 320000"),
])
def test_bad_county_codes_are_config_errors_at_their_line(county, message):
    with pytest.raises(ConfigError) as caught:
        check_text(CONFIG.format(county=county), file="province.yaml")
    text = str(caught.value)
    assert message in text and "province.yaml:14" in text


def test_a_mistyped_county_code_gets_a_did_you_mean():
    with pytest.raises(ConfigError, match=r"did you mean '320614'"):
        check_text(CONFIG.format(county='"320615"'))
