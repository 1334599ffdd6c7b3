"""Fixtures of the console: a store-backed hub stand-in that records its audit, a
clock tests move, cheap argon2 parameters (the policy under test is the same)."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from werkzeug.test import Client

from bdchub.console.api import ConsoleApp
from bdchub.console.passwords import Passwords
from bdchub.core.store import Store

TENANT = "320684"
PASSWORDS = {"wang": "Xitong-Guanli-2024", "zhou": "Anquan-Guanli-2024",
             "qian": "Shenji-Guanli-2024", "sun": "Zhidu-Chakan-2024"}
ROLE_OF = {"wang": "system_admin", "zhou": "security_admin", "qian": "audit_admin",
           "sun": "viewer"}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StoreHub:
    """What the console needs of a hub: its store and its audit log (recorded)."""

    def __init__(self, url: str = "sqlite://"):
        self.store = Store(url)
        self.audits: list[tuple[str, dict[str, Any]]] = []

    def audit(self, event: str, **fields: Any) -> None:
        self.audits.append((event, fields))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f for e, f in self.audits if e == name]


def cheap_passwords() -> Passwords:
    return Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def console_config(**section: Any) -> dict[str, Any]:
    return {"tenant": TENANT, "console": {"lockout": {"after": 3, "for": 600}, **section}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub():
    found = StoreHub()
    yield found
    found.store.close()


@pytest.fixture
def console(hub, clock) -> ConsoleApp:
    app = ConsoleApp(hub, console_config(), clock=clock, passwords=cheap_passwords())
    for name, password in PASSWORDS.items():
        app.operators.add(name, password, roles=[ROLE_OF[name]], tenants=[TENANT], by="root")
    hub.audits.clear()
    return app


class Browser:
    """werkzeug's client as a browser on the console: it keeps the cookie; ``csrf``
    is what the page would hold after logging in."""

    def __init__(self, app: ConsoleApp, prefix: str = "/console"):
        self.raw = Client(app)
        self.prefix = prefix
        self.csrf = ""

    def login(self, username: str, password: str, **headers: str):
        answer = self.raw.post(f"{self.prefix}/api/login",
                               json={"username": username, "password": password},
                               headers=headers)
        if answer.status_code == 200:
            self.csrf = answer.json["csrf_token"]
        return answer

    def get(self, path: str, **headers: str):
        return self.raw.get(f"{self.prefix}{path}", headers=headers)

    def post(self, path: str, body: Any = None, *, csrf: str | None = None, **headers: str):
        token = self.csrf if csrf is None else csrf
        if token:
            headers = {"X-CSRF-Token": token, **headers}
        return self.raw.post(f"{self.prefix}{path}", json=body or {}, headers=headers)


@pytest.fixture
def browser(console) -> Browser:
    return Browser(console)


@pytest.fixture
def chinese(monkeypatch):
    """The hub's own default language (tests otherwise speak English)."""
    from bdchub.core import i18n

    monkeypatch.delenv("HUB_LANG", raising=False)
    i18n.set_language(None)
