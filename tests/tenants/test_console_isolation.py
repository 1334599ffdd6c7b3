"""A console operator of 海门 (A) in the hub of both counties tries 如东's (B) dead
letter, parked message, case trace, channel and audit records: refused 403
``tenant_forbidden`` (Chinese by default), the refusal audited, nothing changed;
the same actions on A's own data go through."""

from __future__ import annotations

import pytest

from bdchub.console.api import ConsoleApp
from bdchub.console.pages import install
from bdchub.core.errors import PermanentError, RecoverableError
from tests.console.conftest import Browser, Clock, cheap_passwords

from .conftest import CONFIG, ID_A, ID_B, A, B, application

PASSWORD = "Xitong-Guanli-2024"


@pytest.fixture
def cases(hub, calls):
    """Each county: one case dead-lettered at forwarding, one parked at archiving
    (如东's own route) or at the shared forwarding (海门)."""
    calls.failing = {"submit_shared": PermanentError("如东 shared system refused", connector="x"),
                     "keep": RecoverableError("archive down", connector="archive"),
                     "submit_application": RecoverableError("海门 system down", connector="x")}
    hub.send("application.submitted", application("A-1", A, ID_A), tenant=A)
    hub.send("application.submitted", application("B-1", B, ID_B), tenant=B)
    hub.run_until_idle()
    return hub


@pytest.fixture
def console(cases):
    app = ConsoleApp(cases, {**CONFIG, "console": {}}, clock=Clock(), passwords=cheap_passwords())
    install(app)
    app.operators.add("wang", PASSWORD, roles=["system_admin"], tenants=[A], by="root")
    app.operators.add("qian", PASSWORD, roles=["audit_admin"], tenants=[A], by="root")
    cases.audit.clear()
    return app


@pytest.fixture
def wang(console) -> Browser:
    browser = Browser(console)
    assert browser.login("wang", PASSWORD).status_code == 200
    return browser


def _of(rows, tenant):
    [row] = [r for r in rows if r["tenant"] == tenant]
    return row


def _refused(answer) -> None:
    assert answer.status_code == 403
    if answer.is_json:
        assert answer.json["error"]["code"] == "tenant_forbidden"
    assert ID_B not in answer.text and ID_B[-4:] not in answer.text


def test_the_operator_of_a_cannot_open_replay_or_drop_b_dead_letter(cases, wang):
    theirs = _of(cases.store.dead_letters(), B)
    _refused(wang.get(f"/dead-letters/show?id={theirs['id']}"))
    for action in ("replay", "drop"):
        _refused(wang.post(f"/api/dead-letters/{action}", {"id": theirs["id"], "reason": "x"}))
    assert cases.store.dead_letter(theirs["id"])["status"] == "dead"
    refused = cases.audit.events("console.refused")
    assert [(r["reason"], r["tenant"]) for r in refused] == [("tenant", B)] * 3


def test_the_operator_of_a_cannot_open_or_retry_b_parked_message(cases, wang):
    theirs, mine = _of(cases.store.parked_list(), B), _of(cases.store.parked_list(), A)
    _refused(wang.get(f"/parked/show?id={theirs['id']}"))
    _refused(wang.post("/api/parked/retry", {"id": theirs["id"], "reason": "再试"}))
    assert cases.store.parked_message(theirs["id"])["due_at"] == theirs["due_at"]
    # Its own county's it may retry.
    assert wang.post("/api/parked/retry", {"id": mine["id"], "reason": "再试"}).status_code == 200
    assert [r["tenant"] for r in cases.audit.events("console.refused")] == [B, B]


def test_the_operator_of_a_cannot_open_b_case_trace_or_find_it(cases, wang):
    _refused(wang.get(f"/messages/show?tenant={B}&business_no=B-1"))
    found = wang.get("/messages?by=business_no&q=B-1")
    assert found.status_code == 200 and "B-1" not in found.text.split("<tbody>", 1)[-1]
    message_id = cases.trace("B-1", B)[0]["message_id"]
    assert "B-1" not in wang.get(f"/messages?by=message_id&q={message_id}").text.split(
        "<tbody>", 1)[-1]
    assert wang.get(f"/messages/show?tenant={A}&business_no=A-1").status_code == 200


def test_the_operator_of_a_cannot_suspend_b_window(cases, wang):
    answer = wang.post("/api/channels/suspend", {"kind": "client", "name": "window_b",
                                                  "reason": "误报"})
    assert answer.status_code == 403
    assert cases.store.suspensions() == []
    assert wang.post("/api/channels/suspend", {"kind": "client", "name": "window_a",
                                               "reason": "测试"}).status_code == 200


def test_the_auditor_of_a_sees_no_call_b_case_made(cases, console):
    """The audit page's calls (read from the store's trace) are narrowed to A."""
    qian = Browser(console)
    assert qian.login("qian", PASSWORD).status_code == 200
    answer = qian.get("/api/audit/export?source=calls&format=jsonl")
    assert answer.status_code == 200, answer.text
    assert "A-1" in answer.text and "B-1" not in answer.text


def test_the_refusal_is_in_chinese_by_default(cases, wang, monkeypatch):
    from bdchub.core import i18n

    monkeypatch.delenv("HUB_LANG", raising=False)
    i18n.set_language(None)
    theirs = _of(cases.store.parked_list(), B)
    answer = wang.post("/api/parked/retry", {"id": theirs["id"], "reason": "再试"})
    assert answer.json["error"]["message"] == f"您的账号无权访问租户 {B}"
