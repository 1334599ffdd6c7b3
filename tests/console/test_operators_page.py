"""The console's operators page: every account with its roles by name, tenants,
state, lock-out, last login and who made and changed it; the security
administrator's changes (add, disable, enable, reset a password, roles and
tenants, unlock), each with a reason, the CSRF token and within their tenants,
audited as ``hub user`` audits them plus the caller's address; the policy's
refusals (weak password, a name taken, two administrator roles, one's own account)
in Chinese and audited; the audit administrator reads only; the others are
refused; every value escaped."""

from __future__ import annotations

import re

import pytest

from bdchub.console.accounts import LoginRefused
from bdchub.core.operators import OperatorStore

from .conftest import PASSWORDS, TENANT, Browser

pytestmark = pytest.mark.usefixtures("chinese")

REMOTE = "10.20.30.40"
NEW_PASSWORD = "Xin-Tongshi-2025"


@pytest.fixture
def console(console):
    """The console with its pages (the conftest's has the API alone)."""
    from bdchub.console.pages import install

    install(console)
    return console


@pytest.fixture
def zhou(browser) -> Browser:
    """The security administrator, logged in."""
    assert browser.login("zhou", PASSWORDS["zhou"]).status_code == 200
    return browser


def act(browser: Browser, action: str, csrf: str | None = None, **body):
    """The request the page's confirmation makes, from ``REMOTE``."""
    token = browser.csrf if csrf is None else csrf
    return browser.raw.post(f"/console/api/operators/{action}", json=body,
                            headers={"X-CSRF-Token": token} if token else {},
                            environ_base={"REMOTE_ADDR": REMOTE})


def row_of(page: str, name: str) -> str:
    found = re.search(rf'<tr data-username="{re.escape(name)}".*?</tr>', page, re.S)
    assert found, f"no row of {name}"
    return found.group(0)


def logs_in(console, name: str, password: str) -> bool:
    try:
        console.operators.login(name, password)
    except LoginRefused:
        return False
    return True


# ------------------------------------------------------------------ reading

def test_the_page_lists_every_account_with_its_roles_by_name_state_and_history(
        console, zhou, clock):
    clock.advance(60)
    Browser(console).login("sun", PASSWORDS["sun"])  # sun's last login
    console.operators.disable("qian", by="zhou", reason="调岗")
    answer = zhou.get("/operators")
    assert answer.status_code == 200
    page = answer.text
    assert "<h1>操作员</h1>" in page
    names = re.findall(r'<tr data-username="([^"]+)"', page)
    assert names == ["qian", "sun", "wang", "zhou"]
    sun = row_of(page, "sun")
    assert "只读用户" in sun and TENANT in sun and "已启用" in sun
    assert "2027-01-15" in sun  # the clock's day: the last login (and when it was made)
    assert "· root" in sun  # made by
    qian = row_of(page, "qian")
    assert "审计管理员" in qian and "已停用" in qian and "· zhou" in qian  # changed by zhou
    assert 'data-action="enable"' in qian and 'data-action="disable"' not in qian
    assert row_of(page, "wang").count("安全管理员") == 0 and "系统管理员" in row_of(page, "wang")
    # Every change has its button, except disabling one's own account.
    assert 'id="add-operator"' in page and 'id="operator-dialog"' in page
    assert 'data-action="disable"' not in row_of(page, "zhou")
    for action in ("disable", "password", "access"):
        assert f'data-action="{action}"' in sun
    assert "static/operators.js" in page


def test_a_locked_account_shows_until_when_and_can_be_unlocked(console, zhou, clock, hub):
    for _ in range(3):  # the conftest's lock-out: after 3
        Browser(console).login("sun", "Wrong-Password-99")
    page = zhou.get("/operators").text
    sun = row_of(page, "sun")
    assert "data-locked" in sun and 'data-action="unlock"' in sun
    assert "2027-01-15" in sun.split("</td>")[4]  # the locked-until column
    assert not logs_in(console, "sun", PASSWORDS["sun"])

    answer = act(zhou, "unlock", username="sun", reason="本人来电确认")
    assert answer.status_code == 200 and answer.json["message"] == "已解锁操作员 sun"
    assert logs_in(console, "sun", PASSWORDS["sun"])
    [unlocked] = hub.events("operator.unlocked")
    assert unlocked == {"username": "sun", "by": "zhou", "reason": "本人来电确认",
                        "remote": REMOTE, "locked_until": clock.now + 600}
    assert 'data-action="unlock"' not in row_of(zhou.get("/operators").text, "sun")


def test_the_audit_administrator_reads_the_accounts_and_changes_nothing(console, browser):
    browser.login("qian", PASSWORDS["qian"])
    page = browser.get("/operators").text
    assert re.findall(r'<tr data-username="([^"]+)"', page) == ["qian", "sun", "wang", "zhou"]
    assert "<button" not in page.split("<main>")[1]
    assert "operator-dialog" not in page and "operators.js" not in page
    for action, body in (("disable", {"username": "sun"}), ("add", {"username": "li"})):
        answer = act(browser, action, reason="试试", **body)
        assert answer.status_code == 403 and answer.json["error"]["code"] == "forbidden"
    assert not console.operators.get("sun")["disabled"]
    assert console.operators.get("li") is None


@pytest.mark.parametrize("name", ["wang", "sun"])
def test_the_system_administrator_and_the_viewer_are_refused_the_page_and_the_changes(
        console, browser, hub, name):
    browser.login(name, PASSWORDS[name])
    answer = browser.get("/operators")
    assert answer.status_code == 403
    assert 'id="refusal"' in answer.text and "无权访问" in answer.text
    assert "data-username" not in answer.text
    answer = act(browser, "password", username="zhou", password=NEW_PASSWORD, reason="接管")
    assert answer.status_code == 403
    assert logs_in(console, "zhou", PASSWORDS["zhou"])
    assert [f["endpoint"] for f in hub.events("console.refused")] == [
        "/operators", "/api/operators/password"]


def test_without_a_session_the_page_sends_the_browser_to_log_in(browser):
    answer = browser.get("/operators")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/console/login?next=")


# ------------------------------------------------------------------ changes

def test_the_security_administrator_adds_a_viewer_who_can_then_log_in(console, zhou, hub):
    answer = act(zhou, "add", username="zhao", roles=["viewer"], tenants=[TENANT],
                 password=NEW_PASSWORD, reason="新入职窗口人员")
    assert answer.status_code == 200
    assert answer.json["message"] == "已添加操作员 zhao" and "password" not in answer.json
    [added] = hub.events("operator.added")
    assert added == {"username": "zhao", "roles": ["viewer"], "tenants": [TENANT],
                     "by": "zhou", "reason": "新入职窗口人员", "remote": REMOTE}
    assert console.operators.login("zhao", NEW_PASSWORD).roles == ("viewer",)
    row = row_of(zhou.get("/operators").text, "zhao")
    assert "只读用户" in row and "· zhou" in row


def test_a_generated_password_is_answered_once_and_never_audited(console, zhou, hub):
    answer = act(zhou, "add", username="zhao", roles=["viewer"], tenants=[TENANT],
                 generate=True, reason="新入职")
    first = answer.json["password"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert logs_in(console, "zhao", first)
    answer = act(zhou, "password", username="zhao", generate=True, reason="忘记密码")
    assert answer.status_code == 200 and answer.json["message"] == "已修改 zhao 的密码"
    second = answer.json["password"]
    assert second != first and logs_in(console, "zhao", second)
    assert not logs_in(console, "zhao", first)
    [changed] = hub.events("operator.password_changed")
    assert changed["generated"] is True and changed["by"] == "zhou"
    assert changed["reason"] == "忘记密码" and changed["remote"] == REMOTE
    assert first not in repr(hub.audits) and second not in repr(hub.audits)
    assert first not in zhou.get("/operators").text


def test_a_password_given_by_the_security_administrator_ends_the_sessions(console, zhou, hub):
    sun = Browser(console)
    sun.login("sun", PASSWORDS["sun"])
    answer = act(zhou, "password", username="sun", password=NEW_PASSWORD, reason="疑似泄露")
    assert answer.status_code == 200 and "password" not in answer.json
    assert sun.get("/api/me").status_code == 401
    assert logs_in(console, "sun", NEW_PASSWORD) and not logs_in(console, "sun",
                                                                 PASSWORDS["sun"])
    [changed] = hub.events("operator.password_changed")
    assert changed["sessions_ended"] == 1 and "generated" not in changed


def test_a_disabled_account_is_logged_out_and_refused_until_enabled(console, zhou, hub):
    sun = Browser(console)
    sun.login("sun", PASSWORDS["sun"])
    answer = act(zhou, "disable", username="sun", reason="离职")
    assert answer.status_code == 200 and answer.json["message"] == "已停用操作员 sun"
    assert sun.get("/api/me").status_code == 401
    assert sun.login("sun", PASSWORDS["sun"]).json["error"]["code"] == "account_disabled"
    assert act(zhou, "enable", username="sun", reason="返聘").status_code == 200
    assert sun.login("sun", PASSWORDS["sun"]).status_code == 200
    assert [(e, f["by"], f["reason"], f["remote"]) for e, f in hub.audits
            if e in ("operator.disabled", "operator.enabled")] == [
        ("operator.disabled", "zhou", "离职", REMOTE), ("operator.enabled", "zhou", "返聘", REMOTE)]


def test_roles_and_tenants_are_changed_together_and_each_audited(console, zhou, hub):
    answer = act(zhou, "access", username="sun", roles=["audit_admin"],
                 tenants=[TENANT, "320623"], reason="兼任审计")
    # 320623 lies outside zhou's own tenant: refused, and nothing changed.
    assert answer.status_code == 403 and answer.json["error"]["code"] == "tenant_forbidden"
    assert console.operators.get("sun")["roles"] == ["viewer"]
    answer = act(zhou, "access", username="sun", roles=["audit_admin"], tenants=[TENANT],
                 reason="改任审计")
    assert answer.status_code == 200
    assert console.operators.get("sun")["roles"] == ["audit_admin"]
    [changed] = hub.events("operator.roles_changed")
    assert changed["previous"] == ["viewer"] and changed["roles"] == ["audit_admin"]
    assert changed["by"] == "zhou" and changed["reason"] == "改任审计"
    assert not hub.events("operator.tenants_changed")  # the tenants were these already
    answer = act(zhou, "access", username="sun", roles=["audit_admin"], tenants=[TENANT],
                 reason="再存一次")
    assert answer.json["status"] == "unchanged"


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("action, body, status, words", [
    ("add", {"username": "zhao", "roles": ["viewer"], "tenants": [TENANT],
             "password": "short1A"}, 400, "至少需要 12 个字符"),
    ("add", {"username": "zhao", "roles": ["viewer"], "tenants": [TENANT],
             "password": "zhao-Zhao-2025-x"}, 400, "不得包含账号名"),
    ("add", {"username": "sun", "roles": ["viewer"], "tenants": [TENANT],
             "password": NEW_PASSWORD}, 409, "操作员账号“sun”已存在"),
    ("add", {"username": "zhao", "roles": ["system_admin", "audit_admin"],
             "tenants": [TENANT], "password": NEW_PASSWORD}, 400, "三权分立"),
    ("access", {"username": "wang", "roles": ["system_admin", "security_admin"],
                "tenants": [TENANT]}, 400, "三权分立"),
    ("password", {"username": "sun", "password": "alllowercase-letters"}, 400, "三类"),
    ("disable", {"username": "zhou"}, 403, "不能停用自己的账号"),
    ("access", {"username": "zhou", "roles": ["viewer"], "tenants": [TENANT]}, 403,
     "不能取消自己账号的安全管理员角色"),
    ("enable", {"username": "nobody"}, 404, "没有名为“nobody”的操作员账号"),
])
def test_the_policy_refuses_in_chinese_changes_nothing_and_is_audited(
        console, zhou, hub, action, body, status, words):
    before = console.operators.all()
    answer = act(zhou, action, reason="测试", **body)
    assert answer.status_code == status, answer.json
    assert words in answer.json["error"]["message"]
    assert console.operators.all() == before
    assert not [e for e, _f in hub.audits if e.startswith("operator.")]
    [refused] = hub.events("console.refused")
    assert refused["operator"] == "zhou" and refused["account"] == body["username"]
    assert refused["status"] == status and refused["remote"] == REMOTE


def test_the_security_administrators_own_guard_says_why(console, zhou):
    message = act(zhou, "disable", username="zhou", reason="x").json["error"]["message"]
    assert "没有安全管理员来管理账号" in message
    # Another security administrator may: the hub keeps one.
    console.operators.add("wu", "Anquan-Beiyong-2025", roles=["security_admin"],
                          tenants=[TENANT], by="root")
    assert act(zhou, "disable", username="wu", reason="调岗").status_code == 200


def test_every_change_needs_a_reason(console, zhou):
    answer = act(zhou, "disable", username="sun", reason="  ")
    assert answer.status_code == 400 and answer.json["error"]["code"] == "reason_required"
    assert not console.operators.get("sun")["disabled"]


def test_a_change_without_the_sessions_csrf_token_is_refused(console, zhou, hub):
    answer = zhou.raw.post("/console/api/operators/disable",
                           json={"username": "sun", "reason": "离职"})
    assert answer.status_code == 403 and answer.json["error"]["code"] == "csrf_failed"
    answer = act(zhou, "disable", csrf="0" * 64, username="sun", reason="离职")
    assert answer.status_code == 403 and answer.json["error"]["code"] == "csrf_failed"
    assert not console.operators.get("sun")["disabled"]
    assert [f["reason"] for f in hub.events("console.refused")] == ["missing_csrf",
                                                                    "wrong_csrf"]


def test_accounts_beyond_the_operators_tenants_are_neither_shown_nor_changed(console, zhou):
    console.operators.add("li", "Rudong-Chakan-2025", roles=["viewer"], tenants=["320623"],
                          by="root")
    assert 'data-username="li"' not in zhou.get("/operators").text
    answer = act(zhou, "disable", username="li", reason="越权")
    assert answer.status_code == 403 and answer.json["error"]["code"] == "tenant_forbidden"
    answer = act(zhou, "add", username="zhao", roles=["viewer"], tenants=["*"],
                 password=NEW_PASSWORD, reason="全省")
    assert answer.status_code == 403
    assert not console.operators.get("li")["disabled"] and not console.operators.get("zhao")


def test_lists_in_the_body_are_bounded(console, zhou):
    answer = act(zhou, "add", username="zhao", roles=["viewer"], tenants=["320684"] * 201,
                 password=NEW_PASSWORD, reason="多")
    assert answer.status_code == 400 and answer.json["error"]["code"] == "bad_request"
    answer = act(zhou, "add", username="zhao", roles="viewer", tenants=[TENANT],
                 password=NEW_PASSWORD, reason="串")
    assert answer.status_code == 400


# ------------------------------------------------------------------ escaping

def test_names_holding_html_are_shown_as_text(console, zhou, hub):
    attack = '<img src=x onerror="alert(1)">'
    # A maker's name from hub user --by, and an account stored as an older hub may have.
    console.operators.add("li", "Qita-Zhanghu-2025", roles=["viewer"], tenants=[TENANT],
                          by=attack)
    OperatorStore(hub.store).add(
        username="<b>x</b>", password_hash="-", roles=["viewer"], tenants=[TENANT],
        disabled=0, failures=0, locked_until=None, created_at=0.0, created_by="root",
        updated_at=0.0, password_changed_at=0.0)
    page = zhou.get("/operators").text
    assert attack not in page and "<b>x</b>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert 'data-username="&lt;b&gt;x&lt;/b&gt;"' in page
    # And a name holding HTML is no account name: refused, quoted in JSON.
    answer = act(zhou, "add", username=attack, roles=["viewer"], tenants=[TENANT],
                 password=NEW_PASSWORD, reason="注入")
    assert answer.status_code == 400 and answer.headers["Content-Type"].startswith(
        "application/json")
