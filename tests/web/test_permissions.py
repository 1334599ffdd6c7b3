"""Who may say what, and who may read what (issue 10, findings 1 and 10).

A client sends only the types its block (or its channel) allows; hub events (what
the hub's own routes emit) come in only from a client that owns them; progress
is answered only for cases the client may read, and another's case answers as
an unknown one does.
"""

from __future__ import annotations

import copy
import json

import pytest
from prometheus_client import CollectorRegistry

from bdchub.core.errors import ConfigError
from bdchub.web.app import create_app
from bdchub.web.metrics import InboundMetrics

from .conftest import (
    APP_KEY,
    APPLICATION,
    APPOINTMENT,
    BANK_KEY,
    BANK_SECRET,
    ID_NUMBER,
    LEGACY_KEY,
    LEGACY_SECRET,
    PROVINCE_KEY,
    PROVINCE_SECRET,
    SECRET,
    TENANT,
    SignedClient,
    config,
)

ORGANISATION = {"name": "海门区不动产登记中心", "division_code": TENANT}
REFUSAL = {"business_no": "YWH2024000001", "refused_at": "2024-05-02T10:00:00+08:00",
           "organisation": ORGANISATION, "reason": "该不动产已被查封，不予受理",
           "legal_basis": "《不动产登记暂行条例》第十七条"}
REGISTRATION = {"business_no": "YWH2024000001", "tenant": TENANT, "registration_type": "100",
                "right_type": "4", "unit_codes": ["320684413219GB00029F00010002"],
                "registered_at": "2024-05-10T15:00:00+08:00", "organisation": ORGANISATION,
                "right_holders": [{"name": "张三", "id_type": "1", "id_number": ID_NUMBER}]}
PROGRESS = {"business_no": "YWH2024000001", "tenant": TENANT, "stage": "refusal",
            "status": "completed", "time": "2024-05-12T10:00:00+08:00",
            "organisation": ORGANISATION}


def error_of(response) -> dict:
    return response.get_json()["error"]


def app_with(hub, clients: dict | None = None, *, routes: dict | None = None, **inbound):
    block = {**config(**inbound), "routes": routes or {}}
    if clients is not None:
        block["inbound"]["clients"] = clients
    return create_app(hub, block, metrics=InboundMetrics(CollectorRegistry()))


def client_block(key: str, channel: str, **extra) -> dict:
    return {"app_key": key, "app_secret": f"{key}-secret-0123456789", "tenants": [TENANT],
            "channel": channel, **extra}


# -- the forged events of the issue are refused at intake -------------------------------

@pytest.mark.parametrize("key, secret, type_, body", [
    (BANK_KEY, BANK_SECRET, "refusal.notified", REFUSAL),
    (BANK_KEY, BANK_SECRET, "registration.recorded", REGISTRATION),
    (APP_KEY, SECRET, "progress.reported", PROGRESS),
], ids=["bank-refusal-notice", "bank-register-entry", "county-window-progress"])
def test_forged_hub_events_are_refused_403_published_nowhere_and_audited(
        app, hub, key, secret, type_, body):
    response = SignedClient(app, key, secret).post(f"/api/v1/messages/{type_}", body)

    assert response.status_code == 403
    assert error_of(response)["code"] == "type_forbidden"
    assert hub.published == [] and hub.submitted == []
    [record] = hub.audited("inbound.rejected")
    assert (record["code"], record["reason"], record["type"]) == (
        "type_forbidden", "hub_event", type_)


def test_a_pattern_in_sends_never_reaches_a_hub_event(app, hub):
    # The county window may send "#" (anything) in these tests' config.
    window = SignedClient(app)

    refused = window.post("/api/v1/messages/refusal.notified", REFUSAL)
    accepted = window.post("/api/v1/applications", copy.deepcopy(APPLICATION))

    assert (refused.status_code, accepted.status_code) == (403, 202)
    assert [e.type for e in hub.published] == ["application.submitted"]


def test_the_client_that_owns_an_event_may_send_it_and_only_that_one(app, hub):
    registry = SignedClient(app, LEGACY_KEY, LEGACY_SECRET)

    owned = registry.post("/api/v1/messages/registration.recorded", REGISTRATION)
    not_owned = registry.post("/api/v1/messages/refusal.notified", REFUSAL)

    assert (owned.status_code, not_owned.status_code) == (202, 403)
    [envelope] = hub.published
    assert (envelope.type, envelope.headers["inbound.client"]) == (
        "registration.recorded", "registration_system")


def test_a_type_a_route_of_the_config_publishes_is_a_hub_event_too(hub):
    routes = {"clearance": {"from": "tax.clearance_pushed",
                            "steps": [{"publish": {"type": "tax.cleared"}}]}}
    app = app_with(hub, routes=routes, message_types={"tax.cleared": "progress"})

    response = SignedClient(app).post("/api/v1/messages/tax.cleared", PROGRESS)

    assert response.status_code == 403
    assert error_of(response)["code"] == "type_forbidden"
    assert hub.published == []


def test_a_type_the_client_does_not_list_is_refused_as_not_permitted(app, hub):
    # The bank lists only application.submitted.
    bank = SignedClient(app, BANK_KEY, BANK_SECRET)

    response = bank.post("/api/v1/appointments", APPOINTMENT)

    assert response.status_code == 403
    assert error_of(response)["code"] == "type_forbidden"
    assert hub.audited("inbound.rejected")[0]["reason"] == "not_permitted"


def test_route_endpoints_take_only_clients_that_may_send_their_type(hub):
    clients = {"tax": client_block("tk-tax", "department", sends=["tax.clearance_pushed"]),
               "bank": client_block("bk-bank", "bank")}
    app = app_with(hub, clients, endpoints=[
        {"method": "POST", "path": "/api/v1/inbound/tax/clearances",
         "route": "tax_clearance_inbound", "reply": False, "type": "tax.clearance_pushed"}])
    clearance = {"business_no": "YWH2024000001", "status": "CLEARED"}

    by_bank = SignedClient(app, "bk-bank", "bk-bank-secret-0123456789").post(
        "/api/v1/inbound/tax/clearances", clearance)
    by_tax = SignedClient(app, "tk-tax", "tk-tax-secret-0123456789").post(
        "/api/v1/inbound/tax/clearances", clearance)

    assert (by_bank.status_code, by_tax.status_code) == (403, 202)
    assert [route for route, _env in hub.submitted] == ["tax_clearance_inbound"]


# -- defaults by channel ---------------------------------------------------------------

@pytest.mark.parametrize("channel, path, body, status", [
    ("county", "/api/v1/applications", APPLICATION, 202),
    ("county", "/api/v1/appointments", APPOINTMENT, 202),
    ("bank", "/api/v1/bank/batches", {"business_no": "PL1", "applications": []}, 202),
    ("bank", "/api/v1/applications", APPLICATION, 403),
    ("department", "/api/v1/applications", APPLICATION, 403),
    ("other", "/api/v1/applications", APPLICATION, 403),
])
def test_a_client_that_lists_nothing_may_send_what_its_channel_does(hub, channel, path, body,
                                                                    status):
    hub.endpoints = lambda: [{"route": "bank_batch", "path": "/api/v1/bank/batches",
                              "method": "POST", "reply": False, "type": "bank.batch_submitted"}]
    app = app_with(hub, {"c": client_block("ck-c", channel)})

    response = SignedClient(app, "ck-c", "ck-c-secret-0123456789").post(path,
                                                                         copy.deepcopy(body))

    assert response.status_code == status, response.get_json()


# -- the config check ----------------------------------------------------------------------

YAML = """
tenant: "320684"
connectors: {{}}
routes:
  decisions:
    from: legacy.stage_changed
    steps:
      - publish: {{type: tax.cleared}}
inbound:
  clients:
    c:
      app_key: ck-c
      app_secret: "0123456789abcdef"
      tenants: ["320684"]
{client}
"""


@pytest.mark.parametrize("client, where, says", [
    ("      channel: bank\n      sends: [bank.*, refusal.notified]",
     "inbound.clients.c.sends[1]", "refusal.notified"),
    ("      channel: department\n      sends: [tax.cleared]",
     "inbound.clients.c.sends[0]", "decisions"),
    ("      channel: county\n      owns: [progress.reported]",
     "inbound.clients.c.owns", "county"),
    ("      channel: legacy\n      owns: [appointment.requested]",
     "inbound.clients.c.owns[0]", "appointment.requested"),
], ids=["bank-sends-a-notice", "sends-what-a-route-publishes", "window-owns",
        "owns-a-submission"])
def test_hub_check_refuses_a_client_given_a_hub_event_it_does_not_own(client, where, says):
    from bdchub.core.config import check_text

    with pytest.raises(ConfigError) as refused:
        check_text(YAML.format(client=client), "hub.yaml")

    [problem] = refused.value.problems
    assert problem.startswith("hub.yaml:") and f" {where}: " in problem and says in problem


def test_hub_check_takes_an_owner_of_the_events_it_reports():
    from bdchub.core.config import check_text

    check_text(YAML.format(client="      channel: legacy\n"
                                  "      owns: [progress.reported, tax.cleared]"))


def test_the_inbound_app_refuses_such_a_config_too(hub):
    clients = {"bank": client_block("bk-bank", "bank", sends=["registration.recorded"])}

    with pytest.raises(ConfigError) as refused:
        app_with(hub, clients)

    assert "inbound.clients.bank.sends.0" in str(refused.value)


def test_the_shipped_config_gives_every_client_only_what_it_needs():
    from pathlib import Path

    from bdchub.core.config import load
    from bdchub.web.config_schema import with_defaults
    from bdchub.web.permissions import Permissions, hub_events

    config = load(Path(__file__).resolve().parents[2] / "config.yaml")
    events = hub_events(config["routes"])
    clients = with_defaults(config["inbound"])["clients"]
    may = {name: {t for t in ("application.submitted", "bank.batch_submitted",
                              "developer.batch_submitted", "agency.batch_submitted",
                              "legacy.stage_changed", "tax.clearance_pushed",
                              "progress.reported", "registration.recorded", "refusal.notified",
                              "payment.notified")
                  if Permissions.of(block).may_send(t, events)}
           for name, block in clients.items()}

    assert may == {"county_window": {"application.submitted"},
                   "province_window": {"application.submitted"},
                   "national_window": {"application.submitted"},
                   "bank_jhrcb": {"bank.batch_submitted"},
                   "developer_hm": {"developer.batch_submitted"},
                   "agency_hm": {"agency.batch_submitted"},
                   "legacy": {"legacy.stage_changed"},
                   "tax": {"tax.clearance_pushed"},
                   "payment": {"payment.notified"}}
    assert {name: block["reads"] for name, block in clients.items()} == {
        "county_window": "own", "province_window": "own", "national_window": "own",
        "bank_jhrcb": "own", "developer_hm": "own", "agency_hm": "own", "legacy": "none",
        "tax": "none", "payment": "none"}


# -- who may read what ------------------------------------------------------------------

OTHER_ID = "11010519800101" + "0018"  # a citizen whose case the bank did not submit


@pytest.fixture
def cases(hub):
    """The county window's case (of the citizen ID_NUMBER) and the bank's own."""
    hub.add_progress(TENANT, "YWH2024000001", {"business_no": "YWH2024000001", "stage": "review",
                                               "applicants": [{"id_number": ID_NUMBER}]},
                     client="county_window", channel="county")
    hub.add_progress(TENANT, "DY2024000001", {"business_no": "DY2024000001", "stage": "review",
                                              "applicants": [{"id_number": OTHER_ID}]},
                     client="bank", channel="bank")
    return hub


def test_the_bank_reads_another_clients_case_by_business_number_as_an_unknown_one(app, cases):
    bank = SignedClient(app, BANK_KEY, BANK_SECRET)

    other = bank.get("/api/v1/progress/YWH2024000001")
    unknown = bank.get("/api/v1/progress/YWH2099999999")

    assert (other.status_code, error_of(other)["code"]) == (404, "not_found")
    assert (unknown.status_code, error_of(unknown)["code"]) == (404, "not_found")
    assert "review" not in other.get_data(as_text=True)


def test_the_bank_finds_nothing_by_the_id_number_of_a_citizen_whose_case_it_did_not_submit(
        app, cases):
    bank = SignedClient(app, BANK_KEY, BANK_SECRET)

    response = bank.get(f"/api/v1/progress?id_number={ID_NUMBER}")

    assert (response.status_code, error_of(response)["code"]) == (404, "not_found")
    assert ID_NUMBER[-4:] not in response.get_data(as_text=True)


def test_each_client_still_reads_the_cases_it_submitted(app, cases):
    county = SignedClient(app).get("/api/v1/progress/YWH2024000001")
    by_id = SignedClient(app).get(f"/api/v1/progress?id_number={ID_NUMBER}")
    bank = SignedClient(app, BANK_KEY, BANK_SECRET).get("/api/v1/progress/DY2024000001")

    assert (county.status_code, by_id.status_code, bank.status_code) == (200, 200, 200)
    assert [r["business_no"] for r in by_id.get_json()["progress"]] == ["YWH2024000001"]


def test_the_province_window_does_not_read_the_county_windows_cases(app, cases):
    province = SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET)

    assert province.get("/api/v1/progress/YWH2024000001").status_code == 404


@pytest.mark.parametrize("reads, readable", [
    ("channel", {"YWH2024000001"}),
    ("tenant", {"YWH2024000001", "DY2024000001"}),
])
def test_reads_channel_and_tenant_widen_what_a_client_reads(hub, cases, reads, readable):
    app = app_with(hub, {"supervisor": client_block("sk-super", "county", reads=reads)})
    supervisor = SignedClient(app, "sk-super", "sk-super-secret-0123456789")

    found = {no for no in ("YWH2024000001", "DY2024000001")
             if supervisor.get(f"/api/v1/progress/{no}").status_code == 200}

    assert found == readable


def test_a_client_that_may_read_nothing_is_refused_403(app, cases):
    registry = SignedClient(app, LEGACY_KEY, LEGACY_SECRET)

    response = registry.get("/api/v1/progress/YWH2024000001")

    assert (response.status_code, error_of(response)["code"]) == (403, "read_forbidden")


# -- the submitter, as the hub records it -------------------------------------------------

def test_the_hub_records_who_submitted_a_case_and_answers_only_them(tmp_path):
    from tests.routes.helpers import make_hub

    hub = make_hub({
        "apply": {"from": "application.submitted", "steps": [{"filter": "`true`"}]},
        # A bank batch's items become applications in a route: still the bank's.
        "items": {"from": "bank.batch_item",
                  "steps": [{"set": {"business_no": "application.business_no"}},
                            {"publish": {"type": "application.submitted",
                                         "body": "application"}}]},
    })
    try:
        app = create_app(hub, {"tenant": TENANT, "inbound": config()["inbound"],
                               "routes": {}}, metrics=InboundMetrics(CollectorRegistry()))
        county, bank = SignedClient(app), SignedClient(app, BANK_KEY, BANK_SECRET)
        assert county.post("/api/v1/applications", copy.deepcopy(APPLICATION)).status_code == 202
        item = {**copy.deepcopy(APPLICATION), "business_no": "DY2024000001"}
        hub.send("bank.batch_item", {"application": item},
                 headers={"inbound.client": "bank", "inbound.channel": "bank"})
        # A later submission under the same number does not take the case over.
        hub.send("application.submitted", APPLICATION,
                 headers={"inbound.client": "bank", "inbound.channel": "bank"})
        hub.run_until_idle()

        assert county.get("/api/v1/progress/YWH2024000001").status_code == 200
        assert bank.get("/api/v1/progress/YWH2024000001").status_code == 404
        assert bank.get("/api/v1/progress/DY2024000001").status_code == 200
        assert county.get("/api/v1/progress/DY2024000001").status_code == 404
        by_id = bank.get(f"/api/v1/progress?id_number={ID_NUMBER}")
        assert [r["business_no"] for r in by_id.get_json()["progress"]] == ["DY2024000001"]
        assert "county_window" not in json.dumps(county.get(
            "/api/v1/progress/YWH2024000001").get_json())
    finally:
        hub.kill()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request, tmp_path):
    from bdchub.core.store import Store
    from tests.integration.test_reliability import _pg_database

    url = (f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite"
           else _pg_database(request.getfixturevalue("postgres_url")))
    s = Store(url)
    yield s
    s.close()


def test_the_store_keeps_the_first_submitter_of_a_case_and_reads_by_it(store):
    from bdchub.core.store import Finish

    def opened(message_id: str, client: str, channel: str, at: float) -> Finish:
        return Finish(message_id=message_id, route="apply", outcome="completed", tenant=TENANT,
                      business_no="YWH1", type="application.submitted", at=at,
                      progress={"registration_type": "200", "applicant_key": "k1",
                                "submitted_by": client, "submitted_channel": channel})

    store.finish(opened("m1", "county_window", "county", 1.0))
    store.finish(opened("m2", "bank", "bank", 2.0))

    assert store.progress(TENANT, "YWH1", client="county_window")["registration_type"] == "200"
    assert store.progress(TENANT, "YWH1", channel="county") is not None
    assert store.progress(TENANT, "YWH1", client="bank") is None
    assert store.progress(TENANT, "YWH1", channel="bank") is None
    assert store.progress(TENANT, "YWH1") is not None
    assert [r["business_no"] for r in store.progress_by_key(TENANT, "k1", client="county_window")
            ] == ["YWH1"]
    assert store.progress_by_key(TENANT, "k1", client="bank") == []
