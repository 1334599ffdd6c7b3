"""An API client of 海门 (A) tries every read and write path on 如东's (B) data in
one hub of both: refused with a clear error (403, Chinese by default), audited,
nothing handed over or stored; guessing B's ids under its own tenant finds
nothing. A code the hub does not serve is refused whatever a client's pattern."""

from __future__ import annotations

import uuid

import pytest

from .conftest import ID_A, ID_B, A, B, application, signed

API = "/api/v1"


@pytest.fixture
def cases(hub, api):
    """One case of each county, submitted by its own window and run."""
    for name, no, tenant, id_number in (("window_a", "A-1", A, ID_A),
                                        ("window_b", "B-1", B, ID_B)):
        answer = signed(api, name).post(f"{API}/applications",
                                        application(no, tenant, id_number))
        assert answer.status_code == 202, answer.json
    hub.run_until_idle()
    hub.store.add_notice(id="n-b-1", tenant=B, business_no="B-1", message_id="m-b-1",
                         kind="refusal", name="不予受理告知书.pdf", media_type="application/pdf",
                         sha256="0" * 64, size=5, content="JVBERi0=", created_at=1.0)
    hub.audit.clear()
    return hub


def _refused(answer, code: str = "tenant_forbidden") -> None:
    assert answer.status_code == 403, answer.json
    assert answer.json["error"]["code"] == code


def _nothing_of_b_leaks(answer) -> None:
    assert "B-1" not in answer.text and ID_B not in answer.text and ID_B[-4:] not in answer.text


READS = [
    ("GET", f"{API}/progress/B-1", None),
    ("GET", f"{API}/progress?id_number={ID_B}", None),
    ("GET", f"{API}/applications/B-1/notices", None),
    ("GET", f"{API}/applications/B-1/notices/n-b-1", None),
    ("POST", f"{API}/queries/own-properties",
     {"query_no": "Q-1", "purpose": "办理继承", "person": {"id_number": ID_B}}),
    ("POST", f"{API}/e-certificates/download",
     {"licence_number": "苏(2024)如东县不动产权第0000001号"}),
]


@pytest.mark.parametrize("method,path,body", READS, ids=[p for _, p, _ in READS])
def test_a_client_of_a_cannot_read_b_by_asking_for_tenant_b(cases, api, calls, method,
                                                            path, body):
    client = signed(api, "window_a")
    made = len(calls.made)
    if method == "GET":
        answer = client.get(path, headers={"X-Tenant": B})
    else:
        answer = client.post(path, {**body, "tenant": B})
    _refused(answer)
    _nothing_of_b_leaks(answer)
    assert len(calls.made) == made  # nothing asked of any registration system
    [audited] = cases.audit.events("inbound.rejected")
    assert (audited["client"], audited["tenant"], audited["code"]) == (
        "window_a", B, "tenant_forbidden")


def test_b_ids_guessed_under_a_own_tenant_find_nothing(cases, api):
    client = signed(api, "window_a")
    for path in (f"{API}/progress/B-1", f"{API}/applications/B-1/notices",
                 f"{API}/applications/B-1/notices/n-b-1"):
        answer = client.get(path)
        # Answered as an unknown case: the error, naming what was asked, and nothing of B's.
        assert answer.status_code == 404, path
        assert list(answer.json) == ["error"] and ID_B[-4:] not in answer.text
    answer = client.get(f"{API}/progress?id_number={ID_B}", headers={"X-Tenant": A})
    assert answer.status_code == 404
    _nothing_of_b_leaks(answer)
    # Its own case it reads.
    assert client.get(f"{API}/progress/A-1").json["business_no"] == "A-1"


def _nothing_handed_over(hub, calls, made: int, business_no: str) -> None:
    assert hub.run_until_idle() == 0
    assert len(calls.made) == made
    assert hub.trace(business_no) == [] and hub.store.progress(B, business_no) is None


def test_a_client_of_a_cannot_submit_for_b(cases, api, calls):
    made = len(calls.made)
    answer = signed(api, "window_a").post(f"{API}/applications",
                                          application("B-9", B, ID_B))
    _refused(answer)
    _nothing_handed_over(cases, calls, made, "B-9")
    assert cases.audit.events("inbound.rejected")[0]["tenant"] == B


def test_a_client_of_a_cannot_correct_b_case(cases, api, calls):
    made = len(calls.made)
    materials = {"tenant": B, "reason": "补正", "materials": [
        {"name": "身份证明", "type": "identity_document", "sha256": "b" * 64, "size": 10}]}
    answer = signed(api, "window_a").post(f"{API}/applications/B-1/materials", materials)
    _refused(answer)
    _nothing_handed_over(cases, calls, made, "B-1-none")
    assert [h["type"] for h in cases.trace("B-1")] == ["application.submitted"] * len(
        cases.trace("B-1"))


def test_a_peer_hub_of_a_cannot_send_an_envelope_for_b(cases, api, calls):
    made = len(calls.made)
    envelope = {"id": str(uuid.uuid4()), "type": "application.submitted", "tenant": B,
                "business_no": "B-8", "headers": {}, "body": application("B-8", B, ID_B)}
    answer = signed(api, "hub_a").post(f"{API}/hub/envelopes", envelope,
                                       headers={"Idempotency-Key": envelope["id"]})
    _refused(answer)
    _nothing_handed_over(cases, calls, made, "B-8")
    assert cases.audit.events("inbound.rejected")[0]["code"] == "tenant_forbidden"


def test_a_code_the_hub_does_not_serve_is_refused_whatever_the_clients_pattern(cases, api,
                                                                              calls):
    made = len(calls.made)
    outside = "320682"  # 如皋: under the province client's "32*", not held by this hub
    answer = signed(api, "province").post(f"{API}/applications",
                                          application("R-1", outside, ID_A))
    _refused(answer, "tenant_not_served")
    _nothing_handed_over(cases, calls, made, "R-1")
    [audited] = cases.audit.events("inbound.rejected")
    assert (audited["tenant"], audited["code"]) == (outside, "tenant_not_served")
    # The same client acts for a county the hub holds.
    assert signed(api, "province").post(f"{API}/applications",
                                        application("A-7", A, ID_A)).status_code == 202


def test_the_refusal_is_in_chinese_by_default(cases, api, monkeypatch):
    from bdchub.core import i18n

    monkeypatch.delenv("HUB_LANG", raising=False)
    i18n.set_language(None)
    answer = signed(api, "window_a").get(f"{API}/progress/B-1", headers={"X-Tenant": B})
    _refused(answer)
    assert "不能代表" in answer.json["error"]["message"] or "租户" in answer.json["error"]["message"]
    served = signed(api, "province").get(f"{API}/progress/R-1", headers={"X-Tenant": "320682"})
    assert served.json["error"]["message"] == "本枢纽不服务租户 320682"
