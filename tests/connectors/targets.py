"""Endpoints the contract suite runs every connector type against.

A ``Target`` knows, for one connector type on one real server on loopback,
how to configure the connector, which call succeeds, and how to make the
server fail in the ways the contract talks about. The suite in
``test_contract.py`` is written once against this interface (the pattern of
kombu's transport integration tests) and parameterised over the targets.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bdchub import connectors
from bdchub.connectors.base import Connector


class Target:
    kind = ""
    supports_retry_after = True

    def block(self, **common: Any) -> dict[str, Any]:
        raise NotImplementedError

    def ok_call(self) -> tuple[str, Any]:
        raise NotImplementedError

    def check_ok(self, result: Any, payload: Any) -> None:
        raise NotImplementedError

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        """(operation, payload, block overrides) the endpoint refuses for good."""
        raise NotImplementedError

    def fail_next(self, count: int, retry_after: str | None = None) -> None:
        """The next ``count`` requests fail recoverably (5xx / refused)."""
        raise NotImplementedError

    def fail_always(self) -> None:
        raise NotImplementedError

    def hang(self) -> None:
        """Requests are accepted and never answered."""
        raise NotImplementedError

    def take_down(self) -> None:
        """The endpoint is gone (health probes must say down)."""
        self.fail_always()

    def clear(self) -> None:
        raise NotImplementedError

    def requests_seen(self) -> int:
        raise NotImplementedError

    def connector(self, name: str, metrics: Any, clock: Any = time.monotonic,
                  sleep: Any = None, **common: Any) -> Connector:
        return connectors.build(name, self.block(**common), metrics=metrics, clock=clock,
                                sleep=sleep or (lambda s: None))


class RestLoopback(Target):
    kind = "rest"

    def __init__(self, department: Any):
        self.dept = department

    def block(self, **common: Any) -> dict[str, Any]:
        return {"type": "rest", "base_url": self.dept.url, "health": {"path": "/health"},
                "operations": {
                    "get_contract": {"path": "/contracts/{contract_no}", "response": "data"},
                    "missing": {"path": "/nowhere/{contract_no}"}},
                **common}

    def ok_call(self) -> tuple[str, Any]:
        return "get_contract", {"contract_no": "HT-" + uuid.uuid4().hex[:8]}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert result["contract_no"] == payload["contract_no"]
        assert result["status"] == "signed"

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        return "missing", {"contract_no": "x"}, {}

    def fail_next(self, count: int, retry_after: str | None = None) -> None:
        self.dept.set(errors=count, status=503, retry_after=retry_after)

    def fail_always(self) -> None:
        self.dept.set(errors=-1, status=502)

    def hang(self) -> None:
        self.dept.set(hang=5)

    def clear(self) -> None:
        self.dept.set()

    def requests_seen(self) -> int:
        return len(self.dept.received)


class SoapLoopback(RestLoopback):
    kind = "soap"

    def __init__(self, department: Any, version: str = "1.1"):
        super().__init__(department)
        self.version = version

    def block(self, **common: Any) -> dict[str, Any]:
        return {"type": "soap", "wsdl": self.dept.wsdl_url, "soap_version": self.version,
                "operations": {"check": {"operation": "CheckContract"}},
                "probe": {"operation": "CheckContract", "payload": {"contract_no": "probe"}},
                **common}

    def ok_call(self) -> tuple[str, Any]:
        return "check", {"contract_no": "HT-" + uuid.uuid4().hex[:8]}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert result == {"contract_no": payload["contract_no"], "status": "signed",
                          "price": "1250000.50", "signed_at": "2024-03-01T10:30:00"}

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        self.dept.set(soap_fault="client")
        return "check", {"contract_no": "x"}, {}

    def requests_seen(self) -> int:
        return sum(1 for r in self.dept.received if r["path"] == "/soap")


class AmqpProxied(Target):
    """A real RabbitMQ behind a switchable TCP proxy."""

    kind = "amqp"
    supports_retry_after = False

    def __init__(self, proxy: Any, broker_url: str):
        self.proxy = proxy
        self.broker_url = broker_url
        self.queue = "contract-" + uuid.uuid4().hex[:10]
        self._seen_base = 0

    def block(self, **common: Any) -> dict[str, Any]:
        url = f"amqp://guest:guest@127.0.0.1:{self.proxy.port}//"
        return {"type": "amqp", "url": url, "exchange": "bdc.contract", "exchange_type": "direct",
                "routing_key": self.queue, "queue": self.queue, "pool": 1, **common}

    def ok_call(self) -> tuple[str, Any]:
        return "publish", {"business_no": "B-" + uuid.uuid4().hex[:8]}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert result["published"] is True
        assert result["routing_key"] == self.queue

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        # Publishing to an exchange that does not exist: the broker answers 404.
        return "publish", {"x": 1}, {"exchange": "missing-" + uuid.uuid4().hex[:8],
                                     "declare": False}

    def fail_next(self, count: int, retry_after: str | None = None) -> None:
        # The dropped live connection is the first failure, refused reconnects the rest.
        self.proxy.drop_all()
        self.proxy.refuse_next = count - 1

    def fail_always(self) -> None:
        self.proxy.mode = "refuse"
        self.proxy.drop_all()

    def hang(self) -> None:
        self.proxy.mode = "hang"
        self.proxy.drop_all()

    def clear(self) -> None:
        self.proxy.mode = "forward"
        self.proxy.refuse_next = 0

    def requests_seen(self) -> int:
        return self.proxy.accepted


# ------------------------------------------------------------------ sandbox

class SandboxTarget(Target):
    """One department of the shared sandbox (``sandbox.pytest_plugin``).

    The sandbox fails by rate, not by count; "the next ``count`` requests
    fail" is played by failing every request and clearing the fault once the
    hub has backed off ``count`` times (the connector's ``sleep`` hook), so
    the sequence is exact without timing."""

    name = ""

    def __init__(self, sandbox: Any):
        self.sb = sandbox
        self._recover_after: int | None = None
        self._backoffs = 0

    def on_backoff(self, seconds: float) -> None:
        self._backoffs += 1
        if self._recover_after is not None and self._backoffs >= self._recover_after:
            self._recover_after = None
            self.clear()

    def connector(self, name: str, metrics: Any, clock: Any = time.monotonic,
                  sleep: Any = None, **common: Any) -> Connector:
        def backoff(seconds: float) -> None:
            self.on_backoff(seconds)
            if sleep is not None:
                sleep(seconds)

        return connectors.build(name, self.block(**common), metrics=metrics, clock=clock,
                                sleep=backoff)

    def fail_next(self, count: int, retry_after: str | None = None) -> None:
        self._backoffs = 0
        self._recover_after = count
        self.sb.faults(self.name).set(error_rate=1.0, error_status=503, retry_after=retry_after)

    def fail_always(self) -> None:
        self.sb.faults(self.name).set(error_rate=1.0, error_status=502)

    def hang(self) -> None:
        self.sb.faults(self.name).set(timeout=3)

    def take_down(self) -> None:
        self.sb.down(self.name)

    def clear(self) -> None:
        self.sb.faults(self.name).clear()
        self.sb.up(self.name)

    def requests_seen(self) -> int:
        return len(self.sb.received(self.name))


REST_SUCCESS = {"path": "code", "ok": ["0"], "message_path": "message"}


class MarketSandbox(SandboxTarget):
    """REST with the app-key HMAC signature."""

    kind = "rest"
    name = "market"

    def block(self, **common: Any) -> dict[str, Any]:
        creds = self.sb.credentials["market"]
        return {"type": "rest", "base_url": self.sb.url("market"),
                "auth": {"scheme": "appkey", "app_key": creds["app_key"],
                         "app_secret": creds["app_secret"]},
                "health": {"path": "/_sandbox/health", "auth": False},
                "success": REST_SUCCESS,
                "operations": {
                    "licence": {"path": "/api/market/license", "query": {"uscc": "uscc"},
                                "response": "data"},
                    "licence_post": {"method": "POST", "path": "/api/market/license/query",
                                     "body": {"uscc": "uscc"}, "response": "data"}},
                **common}

    def ok_call(self) -> tuple[str, Any]:
        return "licence", {"uscc": next(iter(self.sb.endpoint("market").companies))}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert result["uscc"] == payload["uscc"]
        assert result["company_name"]

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        return "licence", {"uscc": "not-a-credit-code"}, {}


class TradeSandbox(MarketSandbox):
    """REST with an OAuth2 bearer token (client credentials)."""

    name = "trade"

    def block(self, **common: Any) -> dict[str, Any]:
        creds = self.sb.credentials["trade"]
        return {"type": "rest", "base_url": self.sb.url("trade"),
                "auth": {"scheme": "bearer", "token_url": "/oauth/token",
                         "client_id": creds["client_id"],
                         "client_secret": creds["client_secret"]},
                "health": {"path": "/_sandbox/health", "auth": False},
                "success": REST_SUCCESS,
                "operations": {"filing": {"path": "/api/contract-filings/{filing_no}",
                                          "response": "data"}},
                **common}

    def ok_call(self) -> tuple[str, Any]:
        return "filing", {"filing_no": next(iter(self.sb.endpoint("trade").filings))}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert result["filing_no"] == payload["filing_no"]

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        return "filing", {"filing_no": "NO-SUCH-FILING"}, {}


class GovSandbox(MarketSandbox):
    """REST with the national data-exchange signature and secret rotation."""

    name = "gov"

    def block(self, **common: Any) -> dict[str, Any]:
        creds = self.sb.credentials["gov"]
        return {"type": "rest", "base_url": self.sb.url("gov"),
                "auth": {"scheme": "gjgxjhpt", "rid": creds["rid"], "sid": creds["sid"],
                         "secret": creds["current_secret"],
                         "refresh": {"url": "/api/exchange/refresh-secret",
                                     "body": {"app_key": "{app_key}"},
                                     "app_key": creds["app_key"]}},
                "health": {"path": "/_sandbox/health", "auth": False},
                "success": REST_SUCCESS,
                "operations": {"verify": {"method": "POST", "path": "/api/identity/verify",
                                          "response": "data"}},
                **common}

    def ok_call(self) -> tuple[str, Any]:
        person = self.sb.data["people"][0]
        return "verify", {"name": person["name"], "cert_num": person["cert_num"]}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert result["cert_num"] == payload["cert_num"]
        assert result["result_code"] in ("00", "01")

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        return "verify", {"name": "x"}, {}  # cert_num missing: 400


class TaxSandbox(SandboxTarget):
    """SOAP 1.1 with a WS-Security UsernameToken (digest)."""

    kind = "soap"
    name = "tax"

    def block(self, **common: Any) -> dict[str, Any]:
        creds = self.sb.credentials["tax"]
        return {"type": "soap", "wsdl": self.sb.wsdl_url("tax"),
                "wsse": {"username": creds["username"], "password": creds["password"],
                         "use_digest": True},
                "probe": {"operation": "QueryClearance", "payload": {"BusinessNo": "probe"}},
                **common}

    def ok_call(self) -> tuple[str, Any]:
        return "QueryClearance", {"BusinessNo": "320684-2026-" + uuid.uuid4().hex[:6]}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert result["BusinessNo"] == payload["BusinessNo"]
        assert result["Status"] == "NOT_DECLARED"

    def permanent_call(self) -> tuple[str, Any, dict[str, Any]]:
        self.sb.faults(self.name).set(soap_fault="client")
        return "QueryClearance", {"BusinessNo": "x"}, {}


class LegacySandbox(TaxSandbox):
    """SOAP 1.2 port of the legacy registration system."""

    name = "legacy"

    def block(self, **common: Any) -> dict[str, Any]:
        return {"type": "soap", "wsdl": self.sb.wsdl_url("legacy"), "soap_version": "1.2",
                "probe": {"operation": "ReportStageChanges", "payload": {"ZDTS": 1}},
                **common}

    def ok_call(self) -> tuple[str, Any]:
        return "ReportStageChanges", {"QSXH": 0, "ZDTS": 5}

    def check_ok(self, result: Any, payload: Any) -> None:
        assert "ZXXH" in result and isinstance(result["SFYGD"], bool)
