"""Operator accounts: the password policy, hashes only, lock-out after repeated
failures (counted per account, audited) and its end, disabled accounts, and the
separation of the three administrator roles."""

from __future__ import annotations

import sqlite3

import pytest

from bdchub.console.accounts import LoginRefused, Operators
from bdchub.console.passwords import check_policy
from bdchub.core.errors import ConfigError
from bdchub.core.operators import OperatorStore

from .conftest import TENANT, Clock, StoreHub, cheap_passwords


def operators(hub: StoreHub, clock: Clock, **options) -> Operators:
    return Operators(OperatorStore(hub.store), hub.audit, passwords=cheap_passwords(),
                     clock=clock, **{"lockout_after": 3, "lockout_for": 600, **options})


@pytest.mark.parametrize("password, why", [
    ("Short-1a", "at least 12"),
    ("alllowercaseletters", "three of"),
    ("ALLUPPER123456", "three of"),
    ("Wang-Wang-2024!", "account name"),
    ("gnaw-Reversed-2024", "account name"),
])
def test_a_password_breaking_the_policy_is_refused(password, why):
    with pytest.raises(ConfigError, match=why):
        check_policy(password, "wang")


def test_a_password_of_twelve_characters_of_three_kinds_is_taken():
    check_policy("Budongchan-24", "wang")
    check_policy("不动产登记中心abc123", "wang")  # Chinese characters count as "other"


def test_wrong_passwords_are_counted_per_account_then_lock_it_until_the_time_is_up():
    clock, hub = Clock(), StoreHub()
    ops = operators(hub, clock)
    ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin"], tenants=[TENANT], by="root")
    ops.add("li", "Qita-Zhanghu-2024", roles=["viewer"], tenants=[TENANT], by="root")
    for _ in range(2):
        with pytest.raises(LoginRefused) as refused:
            ops.login("wang", "wrong-Password-1", remote="10.0.0.9")
        assert refused.value.reason == "bad_credentials"
    assert [f["failures"] for f in hub.events("console.login_failed")] == [1, 2]
    assert ops.login("li", "Qita-Zhanghu-2024")  # another account's count is its own
    with pytest.raises(LoginRefused):
        ops.login("wang", "wrong-Password-1")
    [locked] = hub.events("operator.locked")
    assert locked["username"] == "wang" and locked["locked_until"] == clock.now + 600
    with pytest.raises(LoginRefused) as refused:  # the right password is refused while locked
        ops.login("wang", "Xitong-Guanli-2024")
    assert refused.value.reason == "locked"
    clock.advance(599)
    with pytest.raises(LoginRefused, match="locked|锁定"):
        ops.login("wang", "Xitong-Guanli-2024")
    clock.advance(2)
    operator = ops.login("wang", "Xitong-Guanli-2024")
    assert operator.roles == ("system_admin",)
    assert ops.get("wang")["failures"] == 0 and ops.get("wang")["locked_until"] is None


def test_a_good_login_clears_the_count_of_failures():
    clock, hub = Clock(), StoreHub()
    ops = operators(hub, clock)
    ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin"], tenants=[TENANT], by="root")
    for _ in range(2):
        with pytest.raises(LoginRefused):
            ops.login("wang", "wrong-Password-1")
    ops.login("wang", "Xitong-Guanli-2024")
    for _ in range(2):
        with pytest.raises(LoginRefused):
            ops.login("wang", "wrong-Password-1")
    assert not hub.events("operator.locked")


def test_an_unknown_account_is_refused_as_a_wrong_password_and_takes_a_verification(
        monkeypatch):
    clock, hub = Clock(), StoreHub()
    ops = operators(hub, clock)
    verified = []
    real = ops.passwords.hasher

    class Recording:
        def __getattr__(self, name):
            return getattr(real, name)

        def verify(self, stored, password):
            verified.append(stored)
            return real.verify(stored, password)

    monkeypatch.setattr(ops.passwords, "hasher", Recording())
    with pytest.raises(LoginRefused) as refused:
        ops.login("nobody", "Whatever-2024-x")
    assert refused.value.reason == "bad_credentials"
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")
    [failed] = hub.events("console.login_failed")
    assert failed["known"] is False and failed["username"] == "nobody"


def test_a_disabled_account_cannot_log_in_and_enabling_lets_it_again():
    clock, hub = Clock(), StoreHub()
    ops = operators(hub, clock)
    ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin"], tenants=[TENANT], by="root")
    ops.disable("wang", by="zhou", reason="调岗")
    with pytest.raises(LoginRefused) as refused:
        ops.login("wang", "Xitong-Guanli-2024")
    assert refused.value.reason == "disabled"
    ops.enable("wang", by="zhou")
    assert ops.login("wang", "Xitong-Guanli-2024").username == "wang"
    assert [(e, f.get("by")) for e, f in hub.audits if e.startswith("operator.")] == [
        ("operator.added", "root"), ("operator.disabled", "zhou"), ("operator.enabled", "zhou")]


def test_an_account_holds_one_administrator_role_at_most():
    ops = operators(StoreHub(), Clock())
    with pytest.raises(ConfigError, match="separat") as refused:
        ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin", "audit_admin"],
                tenants=[TENANT], by="root")
    # Named as the operator knows them, with the name the command line takes.
    assert "audit administrator (audit_admin)" in str(refused.value)
    assert "system administrator (system_admin)" in str(refused.value)
    with pytest.raises(ConfigError, match="unknown role"):
        ops.add("wang", "Xitong-Guanli-2024", roles=["root"], tenants=[TENANT], by="root")
    ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin"], tenants=[TENANT], by="root")
    with pytest.raises(ConfigError, match="separat"):
        ops.set_roles("wang", ["system_admin", "security_admin"], by="zhou")


def test_tenants_are_division_codes_or_patterns_as_inbound_clients_have():
    ops = operators(StoreHub(), Clock())
    with pytest.raises(ConfigError, match="division codes"):
        ops.add("wang", "Xitong-Guanli-2024", roles=["viewer"], tenants=["haimen"], by="root")
    ops.add("wang", "Xitong-Guanli-2024", roles=["viewer"], tenants=["3206*"], by="root")
    operator = ops.login("wang", "Xitong-Guanli-2024")
    assert operator.sees("320684") and operator.sees("320602") and not operator.sees("320500")


def test_the_store_and_the_audit_hold_no_password_only_its_argon2_hash(tmp_path):
    path = tmp_path / "store.db"
    hub = StoreHub(f"sqlite:///{path}")
    ops = operators(hub, Clock())
    ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin"], tenants=[TENANT], by="root")
    ops.set_password("wang", "Xin-Mima-Guanli-2025", by="wang")
    with pytest.raises(LoginRefused):
        ops.login("wang", "Wrong-But-Typed-2025")
    ops.login("wang", "Xin-Mima-Guanli-2025")
    hub.store.close()
    dump = "\n".join(sqlite3.connect(path).iterdump())
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for password in ("Xitong-Guanli-2024", "Xin-Mima-Guanli-2025", "Wrong-But-Typed-2025"):
        assert password not in dump and password.encode() not in raw
        assert password not in repr(hub.audits)
    [row] = [line for line in dump.splitlines() if line.startswith('INSERT INTO "operators"')]
    assert "$argon2id$" in row


def test_a_new_password_ends_the_accounts_sessions():
    clock, hub = Clock(), StoreHub()
    ops = operators(hub, clock)
    ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin"], tenants=[TENANT], by="root")
    ops.store.open_session("h" * 64, "wang", now=clock.now, expires_at=clock.now + 60)
    ops.set_password("wang", "Xin-Mima-Guanli-2025", by="zhou")
    assert ops.store.session("h" * 64) is None
    assert hub.events("operator.password_changed")[0]["sessions_ended"] == 1


def test_a_security_administrator_cannot_disable_themself_nor_drop_their_own_role():
    """Neither from the console nor with ``hub user … --by`` their own name: the hub
    could be left with nobody to manage accounts. Another security administrator can."""
    from bdchub.console.accounts import OwnAccount

    hub = StoreHub()
    ops = operators(hub, Clock())
    for name in ("zhou", "wu"):
        ops.add(name, "Anquan-Guanli-2024", roles=["security_admin"], tenants=[TENANT],
                by="root")
    with pytest.raises(OwnAccount, match="security administrator to manage accounts"):
        ops.disable("zhou", by="zhou", reason="test")
    with pytest.raises(OwnAccount, match="security administrator to manage accounts"):
        ops.set_roles("zhou", ["viewer"], by="zhou")
    assert not ops.get("zhou")["disabled"] and ops.get("zhou")["roles"] == ["security_admin"]
    ops.set_tenants("zhou", ["3206*"], by="zhou")  # the role stays: allowed
    ops.set_roles("wu", ["viewer"], by="zhou")
    ops.disable("wu", by="zhou", reason="调岗")
    assert ops.get("wu")["disabled"] and ops.get("wu")["updated_by"] == "zhou"


def test_the_last_good_login_and_the_last_changer_are_kept():
    clock, hub = Clock(), StoreHub()
    ops = operators(hub, clock)
    ops.add("wang", "Xitong-Guanli-2024", roles=["system_admin"], tenants=[TENANT], by="root")
    assert ops.get("wang")["last_login_at"] is None and ops.get("wang")["updated_by"] == "root"
    clock.advance(30)
    ops.login("wang", "Xitong-Guanli-2024")
    with pytest.raises(LoginRefused):
        ops.login("wang", "wrong-Password-1")
    assert ops.get("wang")["last_login_at"] == clock.now
    ops.enable("wang", by="zhou", reason="-")
    assert ops.get("wang")["updated_by"] == "zhou"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    from tests.integration.test_reliability import _pg_database

    return _pg_database(request.getfixturevalue("postgres_url"))


def test_a_store_made_before_the_last_login_and_changer_columns_gets_them(store_url):
    from sqlalchemy import text

    hub = StoreHub(store_url)
    with hub.store.engine.begin() as db:  # the operators table as first released
        db.execute(text("DROP TABLE operators"))
        db.execute(text(
            "CREATE TABLE operators (username VARCHAR(64) PRIMARY KEY, password_hash "
            "VARCHAR(255) NOT NULL, roles TEXT NOT NULL, tenants TEXT NOT NULL, disabled "
            "INTEGER NOT NULL, failures INTEGER NOT NULL, locked_until FLOAT, created_at FLOAT "
            "NOT NULL, created_by VARCHAR(200) NOT NULL, updated_at FLOAT NOT NULL, "
            "password_changed_at FLOAT NOT NULL)"))
        db.execute(text("INSERT INTO operators VALUES ('wang', '-', '[\"viewer\"]', "
                        "'[\"320684\"]', 0, 0, NULL, 1.0, 'root', 1.0, 1.0)"))
    ops = operators(hub, Clock())
    assert ops.get("wang")["last_login_at"] is None and ops.get("wang")["updated_by"] is None
    operators(hub, Clock())  # opened again (another process): nothing to add
    ops.add("li", "Qita-Zhanghu-2024", roles=["viewer"], tenants=[TENANT], by="root")
    assert ops.get("li")["updated_by"] == "root"
    hub.store.close()
