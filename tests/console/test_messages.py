"""The console's messages pages: cases found by business number, message id or the
applicant's ID number (matched by its keyed hash only, never shown or kept in
clear), a case's trace with timings, verification records and bridge crossings,
parked messages and "retry now"; all narrowed to the operator's tenants, every
value escaped, the action for system administrators only and audited."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from bdchub.console.api import ConsoleApp
from bdchub.console.pages import install
from bdchub.core.errors import RecoverableError
from tests.routes.helpers import Clock, application, fake, make_hub

from .conftest import PASSWORDS, ROLE_OF, TENANT, Browser, cheap_passwords, console_config

OTHER = "320623"  # 如东: outside the operators' scope
ID_NUMBER = "110105199001011234"  # the first applicant of tests.routes.helpers.application
OTHERS_ID = "320623198805050021"


class Tax:
    """The tax department: down (its error quotes the ID number it was given) or up."""

    def __init__(self) -> None:
        self.down = True
        self.declared: list[str] = []

    def __call__(self, op: str, payload: Any, ctx: Any) -> Any:
        if self.down:
            raise RecoverableError(f"tax down while declaring for {ID_NUMBER}",
                                   connector="tax", operation=op)
        self.declared.append(ctx.business_no)
        return {"accepted": True}


ROUTES = {
    "intake": {"from": "application.submitted",
               "on_error": {"retry": {"attempts": 1}, "park_for": 600, "park_max": 5},
               "steps": [{"enrich": {"connector": "gov", "operation": "verify_identity",
                                     "into": "identity", "record": "identity"}},
                         {"to": {"connector": "tax", "operation": "declare"}}]},
    "gate_out": {"from": "application.forwarded",
                 "steps": [{"enrich": {"connector": "gate", "operation": "send_materials",
                                       "into": "gate", "record": "diode_transfer"}}]},
    "review_results": {"from": "bridge.message_received", "steps": [{"publish": "review.done"}]},
}
RECEIPT = {"business_no": "C-1", "manifest": {"name": "C-1-materials.json", "ref": "ab12/7"},
           "materials": [{"name": "测绘报告.pdf", "sha256": "f" * 64, "ref": "ab12/1"}]}


class Audits(list):
    def __call__(self, event: str, **fields: Any) -> None:
        self.append((event, fields))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f for e, f in self if e == name]


@pytest.fixture
def tax() -> Tax:
    return Tax()


@pytest.fixture
def hub(tax):
    """A real hub (in-memory broker, SQLite store, a clock tests move) with a case of
    海门 parked at tax, a case of 海门 that crossed the bridge both ways, and a case
    of 如东 parked too."""
    found = make_hub(ROUTES, {"gov": fake("gov", verify_identity={"match": True}),
                              "tax": fake("tax", tax),
                              "gate": fake("gate", send_materials=RECEIPT)},
                     clock=Clock(1_800_000_000.0))
    found.config["connectors"]["gate"] = {"type": "diode"}
    found.audit = Audits()
    found.send("application.submitted", application("C-1"))
    found.send("application.submitted", application(
        "B-1", tenant=OTHER, applicants=[{"name": "李四", "id_type": "1",
                                          "id_number": OTHERS_ID}]), tenant=OTHER)
    found.send("application.forwarded", {"business_no": "C-1"})
    found.send("bridge.message_received", {"business_no": "C-1", "kind": "review_result"})
    found.run_until_idle()
    yield found
    found.close()


@pytest.fixture
def console(hub) -> ConsoleApp:
    app = ConsoleApp(hub, console_config(), clock=Clock(), passwords=cheap_passwords())
    install(app)
    for name, password in PASSWORDS.items():
        app.operators.add(name, password, roles=[ROLE_OF[name]], tenants=[TENANT], by="root")
    hub.audit.clear()
    return app


def _as(console: ConsoleApp, name: str) -> Browser:
    browser = Browser(console)
    assert browser.login(name, PASSWORDS[name]).status_code == 200
    return browser


def _rows(page: str, table: str) -> list[str]:
    body = page.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", body.split("<tbody>", 1)[1], re.S)


def _parked(hub: Any, tenant: str = TENANT) -> dict[str, Any]:
    [row] = [r for r in hub.store.parked_list() if r["tenant"] == tenant]
    return row


# ------------------------------------------------------------------ search

def test_a_case_is_found_by_business_number_by_message_id_and_by_applicant_id(console, hub):
    wang = _as(console, "wang")
    by_no = wang.get("/messages?by=business_no&q=C-1").text
    [row] = _rows(by_no, "cases")
    assert 'data-business-no="C-1"' in row and TENANT in row
    assert "/messages/show?tenant=320684&amp;business_no=C-1" in row
    # The applicant masked as the hub keeps progress: name and ID number cut down.
    assert "张*" in row and ID_NUMBER not in by_no

    message_id = hub.trace("C-1")[0]["message_id"]
    [row] = _rows(wang.get(f"/messages?by=message_id&q={message_id}").text, "cases")
    assert 'data-business-no="C-1"' in row and f"message_id={message_id}" in row

    by_id = wang.get(f"/messages?by=applicant_id&q={ID_NUMBER}").text
    [row] = _rows(by_id, "cases")
    assert 'data-business-no="C-1"' in row
    # Never shown back in clear, not even in the search box or as what was searched.
    assert ID_NUMBER not in by_id
    assert re.search(r'<span id="searched">110105\*+1234</span>', by_id)
    assert _rows(wang.get("/messages?by=applicant_id&q=110105199001019999").text,
                 "cases") == []
    assert _rows(wang.get("/messages?by=business_no&q=C-9").text, "cases") == []


def test_the_applicant_id_number_is_matched_by_its_keyed_hash_and_kept_nowhere(console, hub):
    keys = hub.engine.applicant_keys
    row = hub.store.progress(TENANT, "C-1")
    assert row["applicant_key"] == keys.key(TENANT, ID_NUMBER)
    # A row whose key is not this ID's hash is not found, whatever else it holds.
    with hub.store.engine.begin() as conn:
        from bdchub.core.store import progress

        conn.execute(progress.update().where(progress.c.business_no == "C-1")
                     .values(applicant_key="0" * 64))
    wang = _as(console, "wang")
    assert _rows(wang.get(f"/messages?by=applicant_id&q={ID_NUMBER}").text, "cases") == []
    assert not any(ID_NUMBER in str(fields) for _e, fields in hub.audit)


def test_a_tenant_scoped_operator_never_finds_or_opens_another_tenants_case(console, hub):
    wang = _as(console, "wang")
    assert _rows(wang.get("/messages?by=business_no&q=B-1").text, "cases") == []
    assert _rows(wang.get(f"/messages?by=applicant_id&q={OTHERS_ID}").text, "cases") == []
    other_message = hub.trace("B-1")[0]["message_id"]
    assert _rows(wang.get(f"/messages?by=message_id&q={other_message}").text, "cases") == []

    # Guessing: the case by its tenant and number, or by its message id, is refused.
    for path in (f"/messages/show?tenant={OTHER}&business_no=B-1",
                 f"/messages/show?message_id={other_message}"):
        answer = wang.get(path)
        assert answer.status_code == 403, path
        assert "B-1" not in answer.text and OTHERS_ID not in answer.text
    refused = hub.audit.events("console.refused")
    assert [r["tenant"] for r in refused] == [OTHER, OTHER]
    assert {r["operator"] for r in refused} == {"wang"}


def test_a_search_holding_html_or_script_shows_as_text_and_is_bounded(console):
    wang = _as(console, "wang")
    attack = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    page = wang.get("/messages?q=" + quote(attack)).text
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    long = "9" * 5000
    page = wang.get(f"/messages?q={long}").text
    # What is searched and shown is cut to 64 characters.
    assert f'<span id="searched">{"9" * 64}</span>' in page
    assert f'value="{"9" * 64}"' in page


# ------------------------------------------------------------------ one case

def test_the_case_shows_every_hop_with_timings_its_records_and_its_bridge_crossings(console, hub):
    page = _as(console, "wang").get(f"/messages/show?tenant={TENANT}&business_no=C-1").text
    hops = _rows(page, "trace")
    assert len(hops) == len(hub.trace("C-1")) >= 4
    routes = [re.search(r'data-route="([^"]+)"', h).group(1) for h in hops]
    assert {"intake", "gate_out", "review_results"} <= set(routes)
    parked = next(h for h in hops if 'data-outcome="parked"' in h)
    assert "1101" in parked and ID_NUMBER not in page  # the error, masked
    assert "+0.000 s" in hops[1] or re.search(r"\+\d+\.\d{3} s", hops[1])
    records = _rows(page, "verifications")
    assert any('data-kind="identity"' in r for r in records)
    crossings = _rows(page, "crossings")
    out = next(c for c in crossings if 'data-way="out"' in c)
    assert "gate.send_materials" in out and "ab12/7" in out and "ffffffffffff" in out
    into = next(c for c in crossings if 'data-way="in"' in c)
    assert "review_results" in into and "bridge.message_received" in into
    # The case's parked message is a link away.
    assert f'/parked/show?id={_parked(hub)["id"]}' in page


def test_a_case_that_crossed_nothing_says_so_and_an_unknown_case_is_not_found(console, hub):
    wang = _as(console, "wang")
    hub.send("application.submitted", application("C-2"))
    hub.run_until_idle()
    page = wang.get(f"/messages/show?tenant={TENANT}&business_no=C-2").text
    assert 'id="crossings-none"' in page
    assert 'id="not-found"' in wang.get(f"/messages/show?tenant={TENANT}&business_no=X").text


# ------------------------------------------------------------------ parked

def test_parked_messages_show_route_step_masked_error_count_and_when_due(console, hub):
    wang = _as(console, "wang")
    page = wang.get("/parked").text
    [row] = _rows(page, "parked")  # 如东's parked message is not listed
    mine = _parked(hub)
    assert f'data-id="{mine["id"]}"' in row and "intake" in row and "1:to" in row
    assert "C-1" in row and "tax down while declaring" in row and ID_NUMBER not in page
    assert "<td>1</td>" in row  # parked once
    one = wang.get(f"/parked/show?id={mine['id']}").text
    assert 'id="retry-now"' in one and 'id="retry-dialog"' in one
    assert "张*" in one and ID_NUMBER not in one  # the message's content, masked
    assert wang.get(f"/parked/show?id={_parked(hub, OTHER)['id']}").status_code == 403


def test_retry_now_makes_the_parked_message_due_at_once_and_it_is_delivered(console, hub, tax):
    wang = _as(console, "wang")
    row = _parked(hub)
    assert row["due_at"] == hub.engine.clock() + 600
    tax.down = False
    answer = wang.post("/api/parked/retry", {"id": row["id"], "reason": "税务系统已恢复"})
    assert answer.status_code == 200, answer.text
    assert hub.store.parked_message(row["id"])["due_at"] == hub.engine.clock()
    # The scheduler's next tick republishes it: the clock has not moved a second.
    assert hub.tick()["parked"] == 1
    hub.run_until_idle()
    assert tax.declared == ["C-1"]
    assert hub.store.parked_message(row["id"]) is None
    assert [h["outcome"] for h in hub.trace("C-1") if h["step"] == "1:to"] == ["parked", "ok"]
    [audited] = hub.audit.events("parked.retried")
    assert audited == {"operator": "wang", "parked": row["id"], "route": "intake",
                       "step": "1:to", "business_no": "C-1", "tenant": TENANT,
                       "reason": "税务系统已恢复", "was_due_at": row["due_at"],
                       "remote": audited["remote"]}
    # Again: it was delivered already.
    again = wang.post("/api/parked/retry", {"id": row["id"], "reason": "再试"})
    assert again.status_code == 409 and again.json["error"]["code"] == "already_delivered"


def test_retry_now_refuses_unknown_ids_other_tenants_no_reason_and_no_csrf(console, hub):
    wang = _as(console, "wang")
    mine, theirs = _parked(hub), _parked(hub, OTHER)
    assert wang.post("/api/parked/retry", {"id": "nope", "reason": "x"}).status_code == 404
    assert wang.post("/api/parked/retry", {"id": mine["id"]}).status_code == 400
    assert wang.post("/api/parked/retry", {"id": mine["id"], "reason": "x"},
                     csrf="forged").status_code == 403
    guessed = wang.post("/api/parked/retry", {"id": theirs["id"], "reason": "x"})
    assert guessed.status_code == 403 and guessed.json["error"]["code"] == "tenant_forbidden"
    assert hub.store.parked_message(theirs["id"])["due_at"] == theirs["due_at"]
    assert hub.store.parked_message(mine["id"])["due_at"] == mine["due_at"]
    assert hub.audit.events("parked.retried") == []
    assert [r["reason"] for r in hub.audit.events("console.refused")] == [
        "wrong_csrf", "tenant"]


@pytest.mark.parametrize("name", ["sun", "qian"])
def test_a_viewer_and_an_audit_administrator_cannot_retry(console, hub, name):
    other = _as(console, name)
    row = _parked(hub)
    page = other.get(f"/parked/show?id={row['id']}")
    if name == "sun":  # the viewer reads parked messages, without the button
        assert page.status_code == 200 and 'id="retry-now"' not in page.text
    else:  # the audit administrator reads no messages at all
        assert page.status_code == 403 and 'id="retry-now"' not in page.text
        assert other.get("/messages?q=C-1").status_code == 403
    answer = other.post("/api/parked/retry", {"id": row["id"], "reason": "试试"})
    assert answer.status_code == 403 and answer.json["error"]["code"] == "forbidden"
    assert hub.store.parked_message(row["id"])["due_at"] == row["due_at"]


def test_the_pages_are_chinese_by_default_with_parked_in_the_navigation(console, chinese):
    wang = _as(console, "wang")
    page = wang.get("/parked").text
    assert "<h1>暂存报文</h1>" in page and 'href="/console/parked"' in page
    search = wang.get("/messages").text
    assert "申请人证件号码" in search
