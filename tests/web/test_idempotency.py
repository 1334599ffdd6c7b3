"""Idempotent intake (issue #11, item 4): a platform that sends a write again gets
its first answer and the hub forwards nothing more; a key reused for something
else, or a business number submitted again with other content, is a 409."""

from __future__ import annotations

import copy
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from openapi_spec_validator import validate as validate_openapi
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from bdchub.core.errors import StoreError
from bdchub.core.sealing import Sealer
from bdchub.core.store import Store, inbound_requests
from bdchub.web.app import create_app
from bdchub.web.fake import FakeHub
from bdchub.web.loopserver import start
from bdchub.web.metrics import InboundMetrics
from bdchub.web.signing import signed_headers

from .conftest import (
    APP_KEY,
    APPOINTMENT,
    LEGACY_KEY,
    LEGACY_SECRET,
    MATERIALS,
    PROVINCE_KEY,
    PROVINCE_SECRET,
    SECRET,
    TENANT,
    SignedClient,
    config,
)
from .test_soap import STAGE_CHANGE, envelope, username_token

CALLBACK = "/api/v1/inbound/legacy/stage-changes"
EVENT = {"XH": 17, "YWH": "YWH2024000001", "ZT": "02", "ZTMC": "受理"}


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def forwarded(hub: FakeHub) -> list[str]:
    return [e.id for e in hub.published] + [e.id for _r, e in hub.submitted]


def app_with(hub: FakeHub, clock=None, **inbound):
    options = {"clock": clock} if clock else {}
    return create_app(hub, config(**inbound), metrics=InboundMetrics(CollectorRegistry()),
                      **options)


# -- the Idempotency-Key header ------------------------------------------------

def test_the_same_key_twice_forwards_once_and_answers_the_first_answer_again(
        client, hub, application):
    first = client.post("/api/v1/applications", application, headers=key("k-001"))
    again = client.post("/api/v1/applications", application, headers=key("k-001"))

    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.get_json()["id"] == hub.published[0].id
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(hub.published) == 1
    [replayed] = hub.audited("inbound.replayed")
    assert replayed["message_id"] == hub.published[0].id
    assert replayed["client"] == "county_window"


def test_a_key_reused_with_another_body_is_409_and_forwards_nothing(client, hub, application):
    client.post("/api/v1/applications", application, headers=key("k-002"))
    changed = {**application, "submitted_at": "2024-05-01T09:31:00+08:00"}

    response = client.post("/api/v1/applications", changed, headers=key("k-002"))

    assert response.status_code == 409
    assert error_code(response) == "idempotency_key_reused"
    assert len(hub.published) == 1
    assert hub.audited("inbound.rejected")[-1]["code"] == "idempotency_key_reused"


def test_a_key_reused_on_another_endpoint_is_409(client, hub):
    client.post("/api/v1/appointments", APPOINTMENT, headers=key("k-003"))

    response = client.post("/api/v1/messages/appointment.requested", APPOINTMENT,
                           headers=key("k-003"))

    assert response.status_code == 409
    assert error_code(response) == "idempotency_key_reused"
    assert len(hub.published) == 1


def test_the_same_key_from_another_client_is_another_request(app, hub, application):
    county = SignedClient(app)
    province = SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET)

    first = county.post("/api/v1/applications", application, headers=key("k-004"))
    other = province.post("/api/v1/applications", application, headers=key("k-004"))

    assert first.status_code == other.status_code == 202
    assert first.get_json()["id"] != other.get_json()["id"]
    assert len(hub.published) == 2


def test_the_same_key_for_another_tenant_is_another_request(app, hub):
    province = SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET)
    elsewhere = {**APPOINTMENT, "tenant": "320681"}

    province.post("/api/v1/appointments", APPOINTMENT, headers=key("k-005"))
    response = province.post("/api/v1/appointments", elsewhere, headers=key("k-005"))

    assert response.status_code == 202
    assert len(hub.published) == 2


@pytest.mark.parametrize("path, body", [
    ("/api/v1/appointments", APPOINTMENT),
    ("/api/v1/applications/YWH2024000001/materials", MATERIALS),
    ("/api/v1/messages/appointment.requested", APPOINTMENT),
])
def test_every_submission_honours_the_key(client, hub, path, body):
    hub.add_progress(TENANT, "YWH2024000001", {"stage": "correction"}, client="county_window")
    first = client.post(path, body, headers=key("k-006"))
    again = client.post(path, body, headers=key("k-006"))

    assert first.status_code == again.status_code == 202, first.get_json()
    assert again.get_json() == first.get_json()
    assert len(hub.published) == 1


def test_a_queued_endpoint_honours_the_key_besides_its_content_derived_id(make_app, hub):
    client = SignedClient(make_app(endpoints=[
        {"method": "POST", "path": CALLBACK, "route": "legacy_stage_change", "reply": False,
         "type": "legacy.stage_changed"}]))

    first = client.post(CALLBACK, EVENT, headers=key("cb-17"))
    again = client.post(CALLBACK, EVENT, headers=key("cb-17"))
    unkeyed = client.post(CALLBACK, EVENT)

    assert again.get_json() == first.get_json()
    assert len(hub.submitted) == 2  # the keyed repeat stays here; the unkeyed one goes on
    assert unkeyed.get_json()["id"] == first.get_json()["id"]  # and the routes absorb it


def test_a_soap_call_honours_the_key(app, hub):
    registration_system = SignedClient(app, LEGACY_KEY, LEGACY_SECRET)

    def report():
        return registration_system.request(
            "POST", "/soap/inbound", data=envelope(STAGE_CHANGE, username_token()), sign=False,
            content_type="text/xml; charset=utf-8", headers=key("soap-1"))

    first, again = report(), report()

    assert first.status_code == again.status_code == 200
    assert again.data == first.data
    assert again.headers["Content-Type"].startswith("text/xml")
    assert len(hub.published) == 1


def test_a_quoted_key_is_the_same_key(client, hub):
    client.post("/api/v1/appointments", APPOINTMENT, headers=key("k-007"))
    again = client.post("/api/v1/appointments", APPOINTMENT, headers=key('"k-007"'))

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(hub.published) == 1


@pytest.mark.parametrize("bad", ["with space", "k" * 256, "", '"unterminated'])
def test_a_malformed_key_is_400_and_forwards_nothing(client, hub, bad):
    response = client.post("/api/v1/appointments", APPOINTMENT, headers=key(bad))

    assert response.status_code == 400
    assert error_code(response) == "bad_request"
    assert hub.published == []


# -- only what was accepted is remembered --------------------------------------

def test_a_request_the_hub_could_not_take_may_be_sent_again_with_its_key(client, hub):
    hub.fail_publish = StoreError("broker down")
    refused = client.post("/api/v1/appointments", APPOINTMENT, headers=key("k-008"))
    hub.fail_publish = None

    retried = client.post("/api/v1/appointments", APPOINTMENT, headers=key("k-008"))

    assert refused.status_code == 503
    assert retried.status_code == 202
    assert "Idempotent-Replayed" not in retried.headers
    assert len(hub.published) == 1


def test_a_refused_body_leaves_the_key_free_for_the_corrected_one(client, hub, application):
    broken = {k: v for k, v in application.items() if k != "applicants"}

    refused = client.post("/api/v1/applications", broken, headers=key("k-009"))
    fixed = client.post("/api/v1/applications", application, headers=key("k-009"))

    assert refused.status_code == 422
    assert fixed.status_code == 202
    assert len(hub.published) == 1


class _Unreachable:
    def claim_request(self, *a, **kw):
        raise StoreError("store down")


def test_without_its_records_the_hub_answers_503_and_forwards_nothing():
    hub = FakeHub()
    hub.request_records = lambda: _Unreachable()
    client = SignedClient(app_with(hub))

    response = client.post("/api/v1/appointments", APPOINTMENT, headers=key("k-010"))

    assert response.status_code == 503
    assert error_code(response) == "unavailable"
    assert response.headers["Retry-After"]
    assert hub.published == []


# -- applications by (client, business number) ---------------------------------

def test_an_application_sent_again_without_a_key_answers_the_first_answer(
        client, hub, application):
    first = client.post("/api/v1/applications", application)
    again = client.post("/api/v1/applications", application)

    assert again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(hub.published) == 1
    assert hub.audited("inbound.replayed")[0]["by"] == "business_no"


def test_an_application_through_the_generic_endpoint_is_the_same_application(
        client, hub, application):
    first = client.post("/api/v1/applications", application)
    again = client.post("/api/v1/messages/application.submitted", application)

    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(hub.published) == 1


def test_a_business_number_sent_again_with_other_content_is_409_pointing_at_materials(
        client, hub, application):
    client.post("/api/v1/applications", application)
    changed = copy.deepcopy(application)
    changed["materials"][0]["sha256"] = "c" * 64

    response = client.post("/api/v1/applications", changed, headers={"Accept-Language": "en"})

    assert response.status_code == 409
    assert error_code(response) == "business_no_reused"
    assert "/api/v1/applications/YWH2024000001/materials" in response.get_json()["error"][
        "message"]
    assert len(hub.published) == 1


def test_corrected_materials_and_a_new_business_number_go_through(client, hub, application):
    client.post("/api/v1/applications", application)
    hub.add_progress(TENANT, "YWH2024000001", {"stage": "correction"}, client="county_window")

    materials = client.post("/api/v1/applications/YWH2024000001/materials", MATERIALS)
    anew = client.post("/api/v1/applications", {**application, "business_no": "YWH2024000002"})

    assert materials.status_code == anew.status_code == 202
    assert [e.type for e in hub.published] == ["application.submitted",
                                               "application.materials_updated",
                                               "application.submitted"]


def test_a_business_number_of_another_client_is_its_own(app, hub, application):
    SignedClient(app).post("/api/v1/applications", application)

    other = SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET).post("/api/v1/applications",
                                                                  application)

    assert other.status_code == 202
    assert len(hub.published) == 2


def test_keeping_applications_by_business_number_can_be_turned_off(hub, application):
    client = SignedClient(app_with(hub, idempotency={"business_no": False}))

    client.post("/api/v1/applications", application)
    client.post("/api/v1/applications", application)

    assert len(hub.published) == 2


def test_a_new_key_does_not_open_a_business_number_to_other_content(client, hub, application):
    client.post("/api/v1/applications", application, headers=key("k-011"))
    changed = {**application, "submitted_at": "2024-05-01T09:31:00+08:00"}

    response = client.post("/api/v1/applications", changed, headers=key("k-012"))

    assert error_code(response) == "business_no_reused"
    assert len(hub.published) == 1


# -- retention -----------------------------------------------------------------

class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_records_are_swept_after_the_retention_and_a_late_repeat_is_new(hub):
    clock = Clock(1_717_400_000.0)
    client = SignedClient(app_with(hub, clock, idempotency={"retention": 3600}))

    def post(k: str):
        return client.post("/api/v1/appointments", APPOINTMENT, headers=key(k),
                           timestamp=int(clock.now))

    post("k-old")
    clock.now += 3599
    assert post("k-old").headers.get("Idempotent-Replayed") == "true"
    clock.now += 2  # past the retention of the first answer
    late = post("k-old")
    clock.now += 3601
    post("k-new")

    assert late.status_code == 202 and "Idempotent-Replayed" not in late.headers
    assert len(hub.published) == 3
    assert hub.request_records().count("inbound_requests") == 1  # only k-new's is left


# -- at the same time ----------------------------------------------------------

class _Gate(FakeHub):
    """A hub whose publish waits until ``expected`` requests have reached their
    idempotency records: every duplicate is then in flight while the first one is
    being handed over."""

    def __init__(self, expected: int, scope: str):
        super().__init__()
        self.expected = expected
        self.scope = scope  # the first record each request asks for
        self.requests: set[str] = set()  # the records' owners: one per request
        self.arrived = threading.Condition()
        self.publishing = threading.Event()

    def request_records(self):
        store, gate = super().request_records(), self

        class Counting:
            def __getattr__(self, name):
                return getattr(store, name)

            def claim_request(self, *a, **kw):
                with gate.arrived:
                    if kw["scope"] == gate.scope:
                        gate.requests.add(kw["owner"])
                    gate.arrived.notify_all()
                return store.claim_request(*a, **kw)

        return Counting()

    def publish(self, envelope):
        self.publishing.set()
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= self.expected, timeout=10)
        super().publish(envelope)


@pytest.mark.parametrize("headers", [key("k-together"), {}], ids=["key", "business_no"])
def test_identical_posts_at_once_over_http_forward_exactly_one(application, headers):
    copies = 6
    hub = _Gate(copies, "key" if headers else "business_no")
    app = app_with(hub, idempotency={"wait": 20})
    body = json.dumps(application, ensure_ascii=False).encode()

    def post(_i: int) -> requests.Response:
        signed = signed_headers(APP_KEY, SECRET, "POST", "/api/v1/applications", body)
        return requests.post(server.url + "/api/v1/applications", data=body, timeout=30,
                             headers={"Content-Type": "application/json", **signed, **headers})

    with start(app, "127.0.0.1", 0, threads=copies) as server, \
            ThreadPoolExecutor(copies) as pool:
        answers = list(pool.map(post, range(copies)))

    assert len(hub.requests) == copies  # they were all there while the first was handed over
    assert len(hub.published) == 1
    assert {a.status_code for a in answers} == {202}
    assert {a.json()["id"] for a in answers} == {hub.published[0].id}
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == copies - 1


def test_a_repeat_while_the_first_is_handed_over_answers_409_in_progress(application):
    hub = FakeHub()
    app = app_with(hub, idempotency={"wait": 0})
    client = SignedClient(app)
    during: list = []
    publish = hub.publish

    def publish_and_repeat(envelope):
        # The repeat arrives while the first request is still with the broker.
        during.append(client.post("/api/v1/applications", application, headers=key("k-013")))
        publish(envelope)

    hub.publish = publish_and_repeat
    first = client.post("/api/v1/applications", application, headers=key("k-013"))
    hub.publish = publish
    after = client.post("/api/v1/applications", application, headers=key("k-013"))

    [repeat] = during
    assert repeat.status_code == 409
    assert error_code(repeat) == "in_progress"
    assert repeat.headers["Retry-After"] == "1"
    assert first.status_code == 202
    assert after.get_json() == first.get_json()
    assert len(hub.published) == 1


# -- at rest -------------------------------------------------------------------

def test_the_answer_is_sealed_in_the_store_and_the_key_is_not_kept_as_sent():
    store = Store("sqlite://", group_commit=False, sealer=Sealer(bytes(range(16))))
    hub = FakeHub()
    hub.request_records = lambda: store
    client = SignedClient(app_with(hub))

    client.post("/api/v1/appointments", APPOINTMENT, headers=key("secret-key-7"))

    with store.engine.connect() as conn:
        [row] = conn.execute(select(inbound_requests)).mappings().all()
    raw = store.engine.raw_connection()
    try:
        [(answer,)] = raw.cursor().execute("SELECT answer FROM inbound_requests").fetchall()
    finally:
        raw.close()
    assert answer.startswith("sm4g1:")
    assert hub.published[0].id in row["answer"]  # opened with the key
    assert "secret-key-7" not in json.dumps(dict(row), default=str)
    store.close()


# -- the contract ----------------------------------------------------------------

def test_openapi_offers_the_header_and_the_409_on_every_write(make_app):
    app = make_app(endpoints=[
        {"method": "POST", "path": CALLBACK, "route": "legacy_stage_change", "reply": False,
         "type": "legacy.stage_changed"},
        {"method": "POST", "path": "/api/v1/verify", "route": "verify"}])
    doc = SignedClient(app).raw.get("/openapi.json").get_json()

    validate_openapi(doc)
    header = doc["components"]["parameters"]["IdempotencyKey"]
    assert (header["in"], header["name"]) == ("header", "Idempotency-Key")
    for path in ("/api/v1/applications", "/api/v1/appointments",
                 "/api/v1/applications/{business_no}/materials", "/api/v1/messages/{type}",
                 CALLBACK, "/soap/inbound"):
        post = doc["paths"][path]["post"]
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in post["parameters"], path
        if path != "/soap/inbound":
            assert "409" in post["responses"], path
    assert "409" not in doc["paths"]["/api/v1/verify"]["post"]["responses"]  # request/reply
    codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert {"idempotency_key_reused", "business_no_reused", "in_progress"} <= set(codes["enum"])


def test_hub_check_takes_the_idempotency_block_and_refuses_a_short_retention():
    from bdchub.core.config import check_text
    from bdchub.core.errors import ConfigError

    text = "tenant: '320684'\nconnectors: {{}}\nroutes: {{}}\ninbound:\n  idempotency: {}\n"
    check_text(text.format("{retention: 172800, wait: 2, business_no: false}"))
    with pytest.raises(ConfigError, match="retention"):
        check_text(text.format("{retention: 5}"))
