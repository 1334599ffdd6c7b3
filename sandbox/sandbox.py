"""The ``Sandbox``: every simulated department on its own loopback port.

See ``sandbox/README.md`` for the protocols, credentials and fault semantics.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bdchub.core.errors import HubError
from bdchub.core.i18n import _

from . import data as data_mod
from .endpoints.court import CourtEndpoint
from .endpoints.evaluation import EvaluationEndpoint
from .endpoints.exchange import CivilEndpoint, GovEndpoint
from .endpoints.legacy import LegacyEndpoint
from .endpoints.market import MarketEndpoint
from .endpoints.payment import PaymentEndpoint
from .endpoints.police import PoliceEndpoint
from .endpoints.registries import (
    FinanceEndpoint,
    HealthEndpoint,
    JusticeEndpoint,
    PublicSectorEndpoint,
)
from .endpoints.tax import TaxEndpoint
from .endpoints.trade import TradeEndpoint
from .endpoints.window import WindowEndpoint
from .server import Endpoint, Faults
from .soap import SoapEndpoint
from .workers import Pusher, Scheduler

ENDPOINTS: dict[str, type[Endpoint]] = {
    "gov": GovEndpoint,
    "tax": TaxEndpoint,
    "trade": TradeEndpoint,
    "court": CourtEndpoint,
    "civil": CivilEndpoint,
    "police": PoliceEndpoint,
    "market": MarketEndpoint,
    "legacy": LegacyEndpoint,
    "window_county": WindowEndpoint,
    "window_province": WindowEndpoint,
    "window_national": WindowEndpoint,
    "public_sector": PublicSectorEndpoint,   # 机构编制（机关、事业单位）
    "health": HealthEndpoint,                # 卫生健康（出生、死亡医学证明）
    "justice": JusticeEndpoint,              # 司法行政（公证书）
    "finance": FinanceEndpoint,              # 金融监管（金融许可证）
    "payment": PaymentEndpoint,              # 财政统一公共支付平台（一站式缴费）
    "evaluation": EvaluationEndpoint,        # 省政务服务"好差评"系统
}

DEFAULT_OPTIONS: dict[str, Any] = {
    "auto_advance": None,          # legacy: seconds between stages, None = driven by hand
    "legacy_require_tax": False,   # legacy: transfers (200) wait at 审核 for ReceiveTaxResult
    "legacy_require_review": False,  # legacy: cases with spatial materials wait at 审核 for ReceiveReviewResult
    "token_lifetime": 300.0,       # trade: bearer token lifetime, seconds
    "secret_lifetime": 86400.0,    # gov/civil: app secret lifetime, seconds
    "secret_grace": 300.0,         # gov/civil: old secret still accepted after a refresh
    "tax_clearance_delay": 2.0,    # tax: seconds from declaration to clearance
}


class SandboxError(HubError):
    """The sandbox could not start (a port is taken, a name is unknown)."""


class Sandbox:
    """Simulated departments for ``hub sandbox``, the demo and tests.

    ``Sandbox(seed=42, host="127.0.0.1", base_port=None, **options)`` where
    options are the keys of ``DEFAULT_OPTIONS`` plus ``received_limit``
    (entries kept per endpoint, default 10000) and ``timeout_max`` (longest a
    ``timeout`` fault holds a request, default 30 s).
    """

    def __init__(self, seed: int = 42, host: str = "127.0.0.1", base_port: int | None = None, *,
                 received_limit: int = 10000, timeout_max: float = 30.0, **options: Any):
        unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
        if unknown:
            raise TypeError(_("unknown sandbox option(s): {names}", names=", ".join(unknown)))
        self.seed = int(seed)
        self.host = host
        self.base_port = base_port
        self.received_limit = received_limit
        self.timeout_max = float(timeout_max)
        self.options: dict[str, Any] = {**DEFAULT_OPTIONS, **options}
        self._initial_options = dict(self.options)
        self.data: dict[str, Any] = data_mod.generate(self.seed)
        self.stopping = threading.Event()
        self.scheduler = Scheduler()
        self.pusher = Pusher()
        self._endpoints: dict[str, Endpoint] = {name: cls(self, name) for name, cls in ENDPOINTS.items()}
        self._started = False
        self._stopped = False
        self._lock = threading.RLock()
        # A file whose text must never show up in what a client parsed from
        # an external_entity reply: proof that the entity was not resolved.
        self.xxe_canary = f"SANDBOX-XXE-CANARY-{self.seed}"
        self._tmp = tempfile.TemporaryDirectory(prefix="bdc-sandbox-")
        self._canary_path = Path(self._tmp.name) / "canary.txt"
        self._canary_path.write_text(self.xxe_canary, encoding="utf-8")

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Sandbox:
        """Bind every endpoint and return once all accept connections."""
        with self._lock:
            if self._started:
                return self
            if self._stopped:
                raise SandboxError(_("a stopped sandbox cannot be started again"))
            self.scheduler.start()
            self.pusher.start()
            try:
                for index, endpoint in enumerate(self._endpoints.values()):
                    port = self.base_port + index if self.base_port else 0
                    try:
                        endpoint.bind(port)
                    except OSError as exc:
                        raise SandboxError(_("cannot listen on {host}:{port} for {name}: {error}",
                                             host=self.host, port=port, name=endpoint.name,
                                             error=exc.strerror or exc)) from exc
                for endpoint in self._endpoints.values():
                    self._wait_accepting(endpoint)
            except BaseException:
                self._started = True
                self.stop()
                raise
            self._started = True
        return self

    def _wait_accepting(self, endpoint: Endpoint, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, endpoint.port), timeout=1.0):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise SandboxError(_("{name} does not accept connections: {error}",
                                         name=endpoint.name, error=exc)) from exc
                time.sleep(0.01)

    def stop(self) -> None:
        """Stop everything. Idempotent; never raises."""
        with contextlib.suppress(Exception):
            with self._lock:
                if self._stopped:
                    return
                self._stopped = True
            self.stopping.set()
            for endpoint in self._endpoints.values():
                with contextlib.suppress(Exception):
                    endpoint.close()
            with contextlib.suppress(Exception):
                self.scheduler.stop()
            with contextlib.suppress(Exception):
                self.pusher.stop()
            with contextlib.suppress(Exception):
                self._tmp.cleanup()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ the contract
    def names(self) -> list[str]:
        return list(self._endpoints)

    def endpoint(self, name: str) -> Endpoint:
        try:
            return self._endpoints[name]
        except KeyError:
            raise KeyError(_("no sandbox endpoint {name}; known: {known}", name=name,
                             known=", ".join(self._endpoints))) from None

    def url(self, name: str) -> str:
        return self.endpoint(name).url

    def soap_names(self) -> list[str]:
        return [n for n, e in self._endpoints.items() if isinstance(e, SoapEndpoint)]

    def wsdl_url(self, name: str) -> str:
        endpoint = self.endpoint(name)
        if not isinstance(endpoint, SoapEndpoint):
            raise KeyError(_("{name} is not a SOAP endpoint", name=name))
        return endpoint.wsdl_url

    def wsdl_path(self, name: str) -> Path:
        endpoint = self.endpoint(name)
        if not isinstance(endpoint, SoapEndpoint):
            raise KeyError(_("{name} is not a SOAP endpoint", name=name))
        return endpoint.wsdl_path

    def faults(self, name: str) -> Faults:
        return self.endpoint(name).faults

    def clear_faults(self, name: str | None = None) -> None:
        for endpoint in ([self.endpoint(name)] if name else self._endpoints.values()):
            endpoint.faults.clear()

    def received(self, name: str) -> list[dict[str, Any]]:
        return self.endpoint(name).received()

    def clear_received(self, name: str | None = None) -> None:
        for endpoint in ([self.endpoint(name)] if name else self._endpoints.values()):
            endpoint.clear_received()

    @property
    def credentials(self) -> dict[str, dict[str, Any]]:
        """What a client needs per endpoint; see README for every key."""
        s = copy.deepcopy(self.data["secrets"])
        out: dict[str, dict[str, Any]] = {}
        for name in self._exchange_names():
            out[name] = {**s[name], "current_secret": self._endpoints[name].exchange.current()["secret"],  # type: ignore[attr-defined]
                         "app_secret_refresh_url": f"{self.url(name)}/api/exchange/refresh-secret"}
        out["tax"] = s["tax"]
        out["court"] = s["court"]
        out["trade"] = {**s["trade"], "token_url": f"{self.url('trade')}/oauth/token"}
        out["police"] = s["police"]
        out["basic"] = dict(s["police"])
        out["market"] = s["market"]
        out["legacy"] = s["legacy"]
        for name in ("window_county", "window_province", "window_national"):
            out[name] = s[name]
        for name in ("payment", "evaluation"):  # their keys derive from the seed, not secrets
            out[name] = dict(self._endpoints[name].credentials)  # type: ignore[attr-defined]
        return out

    # ------------------------------------------------------------------ more knobs
    def configure(self, **options: Any) -> dict[str, Any]:
        """Change options of a running sandbox (keys of DEFAULT_OPTIONS)."""
        unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
        if unknown:
            raise TypeError(_("unknown sandbox option(s): {names}", names=", ".join(unknown)))
        self.options.update(options)
        for name in self._exchange_names():
            ex = self._endpoints[name].exchange  # type: ignore[attr-defined]
            ex.lifetime = float(self.options["secret_lifetime"])
            ex.grace = float(self.options["secret_grace"])
        if "auto_advance" in options:
            self._legacy.set_auto_advance(options["auto_advance"])
        return dict(self.options)

    def _exchange_names(self) -> list[str]:
        """Endpoints behind the data-exchange signature (each its own secret line)."""
        return [n for n, e in self._endpoints.items() if hasattr(e, "exchange")]

    def reset_options(self) -> None:
        self.configure(**self._initial_options)

    def down(self, name: str) -> None:
        """Close the endpoint's listener: connections are refused until ``up``."""
        self.endpoint(name).close()

    def up(self, name: str) -> None:
        """Listen again on the same port after ``down``."""
        endpoint = self.endpoint(name)
        if endpoint.server is None:
            endpoint.bind(endpoint.port)
            self._wait_accepting(endpoint)

    def expire_secret(self, name: str = "gov") -> None:
        """gov/civil: the current app secret expires now (refresh still works)."""
        self.endpoint(name).exchange.expire_now()  # type: ignore[attr-defined]

    def expire_tokens(self) -> None:
        """trade: every issued bearer token expires now."""
        self._trade.expire_tokens()

    @property
    def pushes(self) -> list[dict[str, Any]]:
        """Outbound callbacks the sandbox made (tax clearance, legacy stage changes)."""
        return self.pusher.entries()

    def connections_accepted(self, name: str) -> int:
        """TCP connections the endpoint has accepted so far (to check pooling)."""
        server = self.endpoint(name).server
        return server.accepted if server is not None else 0

    def xxe_hits(self, name: str) -> int:
        """How often a client fetched the HTTP entity of an ``external_entity`` reply."""
        return getattr(self.endpoint(name), "xxe_hits", 0)

    @property
    def xxe_canary_url(self) -> str:
        """``file://`` URL the ``malicious_xml="external_entity"`` payload points at."""
        return self._canary_path.as_uri()

    # tax
    @property
    def _tax(self) -> TaxEndpoint:
        return self._endpoints["tax"]  # type: ignore[return-value]

    def tax_set_callback(self, url: str | None) -> None:
        self._tax.callback_url = url or None

    def push_tax_clearance(self, business_no: str, target_url: str | None = None, *,
                           wait: bool = True) -> dict[str, Any] | None:
        """Clear ``business_no`` now and POST the clearance JSON to ``target_url``
        (or the tax callback). With ``wait`` returns the delivery record
        ``{"url", "status", "error", "attempts", "delivered", "payload"}``."""
        return self._tax.push_clearance(business_no, target_url, wait=wait)

    # trade
    @property
    def _trade(self) -> TradeEndpoint:
        return self._endpoints["trade"]  # type: ignore[return-value]

    # court
    @property
    def _court(self) -> CourtEndpoint:
        return self._endpoints["court"]  # type: ignore[return-value]

    def court_add_seizure(self, unit_code: str, **fields: Any) -> dict[str, Any]:
        """Add a seizure (查封) order; fields: CaseNo, CourtCode, CourtName,
        RespondentName, RespondentIdNumber, PeriodFrom, PeriodTo, Summary."""
        return self._court.add_order("SEIZURE", unit_code, **fields)

    def court_add_judgment(self, unit_code: str, **fields: Any) -> dict[str, Any]:
        return self._court.add_order("JUDGMENT", unit_code, **fields)

    def court_add_order(self, kind: str, unit_code: str, **fields: Any) -> dict[str, Any]:
        return self._court.add_order(kind, unit_code, **fields)

    def court_acked(self) -> list[str]:
        with self._court.lock:
            return list(self._court.acked)

    # legacy
    @property
    def _legacy(self) -> LegacyEndpoint:
        return self._endpoints["legacy"]  # type: ignore[return-value]

    def legacy_set_callback(self, url: str | None) -> None:
        with self._legacy.lock:
            self._legacy.callback_url = url or None

    def legacy_auto_advance(self, interval: float | None) -> None:
        self.options["auto_advance"] = interval
        self._legacy.set_auto_advance(interval)

    def legacy_events(self) -> list[dict[str, Any]]:
        with self._legacy.lock:
            return [dict(e) for e in self._legacy.events]

    def legacy_application(self, ywh: str) -> dict[str, Any] | None:
        with self._legacy.lock:
            app = self._legacy.apps.get(ywh)
            return copy.deepcopy(app) if app else None

    def legacy_ledger(self, subject: str | None = None) -> list[dict[str, Any]]:
        """Requests that change the register, in order: operation, key, subject,
        digest, outcome (applied | replayed); only ``subject``'s when given."""
        with self._legacy.lock:
            return [dict(e) for e in self._legacy.ledger
                    if subject is None or e["subject"] == subject]

    def legacy_doubles(self) -> list[dict[str, Any]]:
        """What the registration system registered twice (see ``LegacyEndpoint.doubles``)."""
        return self._legacy.doubles()

    def table(self) -> list[dict[str, str]]:
        """Rows of name, protocol, URL and WSDL URL, for the CLI."""
        rows = []
        for name, endpoint in self._endpoints.items():
            rows.append({"name": name, "protocol": endpoint.protocol, "url": endpoint.url,
                         "wsdl": endpoint.wsdl_url if isinstance(endpoint, SoapEndpoint) else ""})
        return rows
