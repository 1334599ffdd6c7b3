"""Corrected materials reach only a case sent back for correction, and a case's
electronic notices are fetched by the platforms that may read it (issue 12,
items 1 and 2)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from bdchub.core import i18n

from .conftest import MATERIALS, PROVINCE_KEY, PROVINCE_SECRET, TENANT, SignedClient

CASE = "YWH2024000001"
MATERIALS_PATH = f"/api/v1/applications/{CASE}/materials"
NOTICE_ID = "0190a1b2-0000-7000-8000-000000000001"
PDF = b"%PDF-1.7\n% a notice\n"


@pytest.fixture(autouse=True)
def _default_language():
    i18n.set_language(None)  # the hub's default: Chinese


def _case(hub, stage: str, status: str = "in_progress", client: str = "county_window") -> None:
    hub.add_progress(TENANT, CASE, {"business_no": CASE, "stage": stage, "status": status},
                     client=client)


def _error(response) -> dict:
    return response.get_json()["error"]


def test_corrected_materials_for_a_case_awaiting_correction_are_taken(client, hub):
    _case(hub, "correction", "suspended")

    response = client.post(MATERIALS_PATH, MATERIALS)

    assert response.status_code == 202, response.get_json()
    assert [e.type for e in hub.published] == ["application.materials_updated"]


def test_corrected_materials_for_an_unknown_case_are_404_audited_and_go_nowhere(client, hub):
    response = client.post(MATERIALS_PATH, MATERIALS)

    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"
    assert CASE in _error(response)["message"] and "业务" in _error(response)["message"]
    [audit] = hub.audited("inbound.rejected")
    assert audit["reason"] == "correction_unknown_case" and audit["status"] == 404
    assert hub.published == []


@pytest.mark.parametrize("stage, status", [("refusal", "completed"), ("archive", "completed"),
                                           ("refusal_to_register", "completed")])
def test_corrected_materials_for_a_closed_case_are_409(client, hub, stage, status):
    _case(hub, stage, status)

    response = client.post(MATERIALS_PATH, MATERIALS)

    assert response.status_code == 409
    assert _error(response)["code"] == "case_closed"
    assert "办结" in _error(response)["message"]  # Chinese by default
    assert hub.audited("inbound.rejected")[0]["stage"] == stage
    assert hub.published == []


def test_corrected_materials_for_a_case_not_sent_back_are_409_in_english_when_asked(client, hub):
    _case(hub, "acceptance")

    response = client.post(MATERIALS_PATH + "?lang=en", MATERIALS)

    assert response.status_code == 409
    assert _error(response)["code"] == "not_awaiting_correction"
    assert "not awaiting correction" in _error(response)["message"]
    assert hub.published == []


def test_corrected_materials_after_the_deadline_the_notice_stated_are_409_audited(client, hub):
    _case(hub, "correction", "suspended")
    hub.deadlines[(TENANT, CASE)] = "2020-01-31"

    response = client.post(MATERIALS_PATH, MATERIALS)

    assert response.status_code == 409
    assert _error(response)["code"] == "correction_deadline_passed"
    assert "2020-01-31" in _error(response)["message"] and "补正" in _error(response)["message"]
    [audit] = hub.audited("inbound.rejected")
    assert (audit["reason"], audit["deadline"]) == ("correction_deadline_passed", "2020-01-31")
    assert hub.published == []


def test_corrected_materials_on_the_last_day_are_still_taken(client, hub):
    import time

    _case(hub, "correction", "suspended")
    hub.deadlines[(TENANT, CASE)] = time.strftime("%Y-%m-%d", time.localtime())

    response = client.post(MATERIALS_PATH, MATERIALS)

    assert response.status_code == 202, response.get_json()


def test_another_platforms_case_is_as_unknown_as_a_missing_one(app, hub):
    _case(hub, "correction", client="county_window")

    response = SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET).post(MATERIALS_PATH, MATERIALS)

    assert response.status_code == 404
    assert hub.published == []


def test_a_correction_sent_again_after_the_case_moved_on_gets_its_first_answer(client, hub):
    _case(hub, "correction")
    first = client.post(MATERIALS_PATH, MATERIALS, headers={"Idempotency-Key": "c-1"})
    _case(hub, "application")  # the registration system took it back in

    again = client.post(MATERIALS_PATH, MATERIALS, headers={"Idempotency-Key": "c-1"})

    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(hub.published) == 1


def _notice(hub, client: str = "county_window") -> None:
    _case(hub, "refusal", "completed", client=client)
    hub.add_notice(TENANT, CASE, {
        "id": NOTICE_ID, "tenant": TENANT, "business_no": CASE, "kind": "refusal",
        "name": f"{CASE}-refusal.pdf", "media_type": "application/pdf",
        "sha256": hashlib.sha256(PDF).hexdigest(), "size": len(PDF), "created_at": 1.0,
        "message_id": "m", "content": base64.b64encode(PDF).decode()})


def test_a_notice_is_fetched_as_its_pdf_with_its_digest(client, hub):
    _notice(hub)

    listed = client.get(f"/api/v1/applications/{CASE}/notices")
    response = client.get(listed.get_json()["notices"][0]["url"])

    assert listed.status_code == 200
    assert listed.get_json()["notices"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert "content" not in listed.get_json()["notices"][0]
    assert response.status_code == 200
    assert response.data == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Content-SHA256"] == hashlib.sha256(PDF).hexdigest()
    [audit] = hub.audited("inbound.notice_fetched")
    assert audit["notice_id"] == NOTICE_ID and audit["found"] is True


def test_another_platforms_notice_and_an_unknown_one_are_404(app, client, hub):
    _notice(hub, client="county_window")
    province = SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET)

    theirs = province.get(f"/api/v1/applications/{CASE}/notices/{NOTICE_ID}")
    their_list = province.get(f"/api/v1/applications/{CASE}/notices")
    unknown = client.get(f"/api/v1/applications/{CASE}/notices/{NOTICE_ID[:-1]}2")
    malformed = client.get(f"/api/v1/applications/{CASE}/notices/..%2Fetc")

    assert [r.status_code for r in (theirs, their_list, unknown, malformed)] == [404] * 4
