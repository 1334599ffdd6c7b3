"""The console's HTTP side: login, session cookie, me, logout, expiry, CSRF, the
role table enforced by ``require`` for every action, tenant scope; refusals in
Chinese by default and audited as ``console.refused``."""

from __future__ import annotations

import hmac

import pytest

from bdchub.console import sessions as sessions_mod
from bdchub.console.api import ConsoleApp, ConsoleRequest, require
from bdchub.console.roles import ACTIONS
from bdchub.web.http import json_answer

from .conftest import PASSWORDS, ROLE_OF, TENANT, Browser, console_config

pytestmark = pytest.mark.usefixtures("chinese")  # Chinese unless the request asks

#: The permission table as the console must enforce it (等保 level 3 separation).
EXPECTED = {
    "system_admin": {"overview.read", "messages.read", "dead_letters.replay",
                     "dead_letters.drop", "parked.retry", "channels.read", "channels.suspend",
                     "statistics.read", "statistics.export"},
    "security_admin": {"overview.read", "operators.read", "operators.manage"},
    "audit_admin": {"audit.read", "audit.export", "operators.read"},
    "viewer": {"overview.read", "messages.read", "channels.read", "statistics.read"},
}


def guarded_endpoints(console: ConsoleApp) -> None:
    """One endpoint per action, as the console's pages will add them."""
    for action in ACTIONS:
        def handler(req: ConsoleRequest, action=action):
            return json_answer(200, {"done": action, "by": req.operator.username})

        console.add("POST", f"/api/test/{action}", require(action)(handler))


def test_login_answers_the_operator_and_a_csrf_token_and_sets_a_strict_session_cookie(
        browser, hub):
    answer = browser.login("wang", PASSWORDS["wang"])
    assert answer.status_code == 200
    body = answer.json
    assert (body["username"], body["roles"], body["tenants"]) == ("wang", ["system_admin"],
                                                                  [TENANT])
    assert "dead_letters.replay" in body["actions"] and body["role_names"] == ["系统管理员"]
    assert len(body["csrf_token"]) == 64
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("bdchub_console=")
    for part in ("HttpOnly", "SameSite=Strict", "Path=/console"):
        assert part in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in repr(hub.audits) and hub.store is not None
    assert hub.events("console.login")[0]["operator"] == "wang"


def test_the_cookie_is_secure_when_the_request_came_over_https(console):
    browser = Browser(console)
    answer = browser.login("wang", PASSWORDS["wang"], **{"X-Forwarded-Proto": "https"})
    assert "; Secure" in answer.headers["Set-Cookie"]
    secure = browser.raw.post("/console/api/login", base_url="https://hub.example/",
                              json={"username": "sun", "password": PASSWORDS["sun"]})
    assert "; Secure" in secure.headers["Set-Cookie"]


def test_me_answers_the_sessions_operator_and_nothing_without_a_session(browser, hub):
    refused = browser.get("/api/me")
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "unauthenticated"
    assert "登录" in refused.json["error"]["message"]  # Chinese by default
    assert "log in" in browser.get("/api/me?lang=en").json["error"]["message"]
    assert hub.events("console.refused")[0]["reason"] == "no_session"
    browser.login("sun", PASSWORDS["sun"])
    me = browser.get("/api/me")
    assert me.status_code == 200 and me.json["username"] == "sun"
    assert me.json["csrf_token"] == browser.csrf


def test_a_wrong_password_is_refused_then_the_account_locks_and_says_when_to_retry(
        browser, hub, clock):
    for _ in range(2):
        answer = browser.login("wang", "Not-The-Password-1")
        assert answer.status_code == 401 and answer.json["error"]["code"] == "login_failed"
        assert "密码" in answer.json["error"]["message"]
    locked = browser.login("wang", "Not-The-Password-1")
    assert locked.status_code == 401
    again = browser.login("wang", PASSWORDS["wang"])
    assert again.status_code == 403 and again.json["error"]["code"] == "account_locked"
    assert again.headers["Retry-After"] == "600"
    assert "Set-Cookie" not in again.headers
    assert len(hub.events("operator.locked")) == 1
    clock.advance(601)
    assert browser.login("wang", PASSWORDS["wang"]).status_code == 200


def test_a_session_unused_for_its_ttl_has_expired(browser, clock, hub):
    browser.login("sun", PASSWORDS["sun"])
    clock.advance(1700)
    assert browser.get("/api/me").status_code == 200  # used: its end moves on
    clock.advance(1799)
    assert browser.get("/api/me").status_code == 200
    clock.advance(1801)
    expired = browser.get("/api/me")
    assert expired.status_code == 401
    assert "bdchub_console=;" in expired.headers["Set-Cookie"]  # the browser forgets it
    assert hub.events("console.refused")[-1]["reason"] == "expired_session"


def test_a_session_ends_after_its_max_age_however_much_it_is_used(browser, clock):
    browser.login("sun", PASSWORDS["sun"])
    for _ in range(30):  # every 25 minutes for 12.5 hours
        clock.advance(1500)
        if browser.get("/api/me").status_code != 200:
            break
    assert browser.get("/api/me").status_code == 401
    assert clock.now - 1_800_000_000.0 <= 43200 + 1500


@pytest.mark.parametrize("csrf, reason", [("", "missing_csrf"), ("0" * 64, "wrong_csrf")])
def test_a_state_changing_request_without_the_sessions_csrf_token_is_refused(
        console, hub, csrf, reason):
    guarded_endpoints(console)
    browser = Browser(console)
    browser.login("wang", PASSWORDS["wang"])
    answer = browser.post("/api/test/dead_letters.replay", csrf=csrf)
    assert answer.status_code == 403 and answer.json["error"]["code"] == "csrf_failed"
    assert "CSRF" in answer.json["error"]["message"] and "令牌" in answer.json["error"]["message"]
    [refused] = hub.events("console.refused")
    assert (refused["operator"], refused["action"], refused["reason"]) == (
        "wang", "dead_letters.replay", reason)
    logout = browser.post("/api/logout", csrf=csrf)
    assert logout.status_code == 403  # logging out is a change too
    assert browser.get("/api/me").status_code == 200


def test_another_sessions_csrf_token_does_not_do(console):
    guarded_endpoints(console)
    mine, other = Browser(console), Browser(console)
    mine.login("wang", PASSWORDS["wang"])
    other.login("wang", PASSWORDS["wang"])
    assert mine.post("/api/test/parked.retry", csrf=other.csrf).status_code == 403
    assert mine.post("/api/test/parked.retry").status_code == 200


def test_the_csrf_token_is_compared_in_constant_time(console, monkeypatch):
    guarded_endpoints(console)
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(sessions_mod.hmac, "compare_digest",
                        lambda a, b: compared.append((a, b)) or real(a, b))
    browser = Browser(console)
    browser.login("wang", PASSWORDS["wang"])
    browser.post("/api/test/parked.retry", csrf="f" * 64)
    assert compared and compared[-1][1] == b"f" * 64


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_role_may_take_exactly_the_actions_of_the_table(console, hub, role):
    guarded_endpoints(console)
    [name] = [n for n, r in ROLE_OF.items() if r == role]
    browser = Browser(console)
    browser.login(name, PASSWORDS[name])
    allowed = set()
    for action in ACTIONS:
        answer = browser.post(f"/api/test/{action}")
        assert answer.status_code in (200, 403), (action, answer.json)
        if answer.status_code == 200:
            allowed.add(action)
        else:
            assert answer.json["error"]["code"] == "forbidden"
            assert "角色" in answer.json["error"]["message"]
    assert allowed == EXPECTED[role]
    refused = {f["action"] for f in hub.events("console.refused")}
    assert refused == set(ACTIONS) - EXPECTED[role]
    assert all(f["operator"] == name and f["reason"] == "role"
               for f in hub.events("console.refused"))


def test_neither_the_security_nor_the_audit_administrator_may_replay_or_read_messages():
    from bdchub.console.roles import allowed

    for role in ("security_admin", "audit_admin", "viewer"):
        assert not allowed([role], "dead_letters.replay")
    for role in ("security_admin", "audit_admin"):
        assert not allowed([role], "messages.read")
    assert not any(allowed(["audit_admin"], a) for a in ACTIONS
                   if not a.endswith((".read", ".export")))


def test_a_tenant_scoped_operator_is_refused_another_tenants_data(hub, clock):
    from .conftest import cheap_passwords

    console = ConsoleApp(hub, console_config(), clock=clock, passwords=cheap_passwords())
    console.operators.add("xu", "Haimen-Zhiban-2024", roles=["system_admin"],
                          tenants=["320684"], by="root")
    console.operators.add("shi", "Nantong-City-2024", roles=["system_admin"],
                          tenants=["3206*"], by="root")

    @require("messages.read")
    def message(req: ConsoleRequest):
        tenant = req.arg("tenant")
        req.console.authorize_tenant(req, tenant)
        return json_answer(200, {"tenant": tenant})

    console.add("GET", "/api/message", message)
    county, city = Browser(console), Browser(console)
    county.login("xu", "Haimen-Zhiban-2024")
    city.login("shi", "Nantong-City-2024")
    assert county.get("/api/message?tenant=320684").status_code == 200
    refused = county.get("/api/message?tenant=320602")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "tenant_forbidden"
    assert "320602" in refused.json["error"]["message"]
    assert hub.events("console.refused")[-1]["tenant"] == "320602"
    assert city.get("/api/message?tenant=320602").status_code == 200
    assert city.get("/api/message?tenant=320500").status_code == 403


def test_logout_ends_the_session_everywhere(browser, hub):
    browser.login("zhou", PASSWORDS["zhou"])
    cookie = browser.raw.get_cookie("bdchub_console", path="/console")
    answer = browser.post("/api/logout")
    assert answer.status_code == 200 and "Max-Age=0" in answer.headers["Set-Cookie"]
    assert hub.events("console.logout")[0]["operator"] == "zhou"
    replayed = browser.raw.get("/console/api/me",
                               headers={"Cookie": f"bdchub_console={cookie.value}"})
    assert replayed.status_code == 401


def test_the_store_keeps_the_sessions_hash_not_its_token(browser, console):
    browser.login("wang", PASSWORDS["wang"])
    token = browser.raw.get_cookie("bdchub_console", path="/console").value
    assert console.sessions.store.session(token) is None
    assert console.sessions.store.session(sessions_mod.token_hash(token))["username"] == "wang"


def test_a_disabled_account_loses_its_session_at_once(browser, console):
    browser.login("sun", PASSWORDS["sun"])
    console.operators.disable("sun", by="zhou")
    assert browser.get("/api/me").status_code == 401


def test_login_takes_json_only_and_an_unknown_path_is_404(console):
    browser = Browser(console)
    form = browser.raw.post("/console/api/login", data={"username": "wang", "password": "x"})
    assert form.status_code == 415  # a cross-site form cannot log anyone in
    assert browser.get("/api/nothing").status_code == 404
    assert browser.raw.get("/console/api/login").status_code == 405


def test_the_console_root_lands_each_role_on_the_first_page_it_may_read(browser):
    from bdchub.console.pages import install

    install(browser.raw.application)
    assert browser.get("/").headers["Location"] == "/console/login"
    for name, landing in (("wang", "/console/overview"), ("sun", "/console/overview"),
                          ("zhou", "/console/overview"), ("qian", "/console/audit")):
        assert browser.login(name, PASSWORDS[name]).status_code == 200
        assert browser.get("/").headers["Location"] == landing, name
