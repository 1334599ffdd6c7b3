"""The environment that points config.yaml at a running sandbox.

config.yaml takes every URL and credential from ``${VAR:default}``; the
defaults are the sandbox on fixed ports (``hub sandbox --base-port 18080``).
The demo and the tests start the sandbox on free ports instead and load the
config with ``core.config.load(path, environ=sandbox_environ(sb, ...))``, so
they never collide with anything listening on the fixed ports.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: variable -> sandbox endpoint, for the REST base URLs
REST_URLS = {
    "HUB_GOV_URL": "gov",
    "HUB_CIVIL_URL": "civil",
    "HUB_POLICE_URL": "police",
    "HUB_MARKET_URL": "market",
    "HUB_TRADE_URL": "trade",
    "HUB_WINDOW_COUNTY_URL": "window_county",
    "HUB_WINDOW_PROVINCE_URL": "window_province",
    "HUB_WINDOW_NATIONAL_URL": "window_national",
    "HUB_PUBLIC_SECTOR_URL": "public_sector",
    "HUB_HEALTH_URL": "health",
    "HUB_JUSTICE_URL": "justice",
    "HUB_FINANCE_URL": "finance",
    "HUB_EVALUATION_URL": "evaluation",
    "HUB_PAYMENT_URL": "payment",
}

#: variable -> sandbox endpoint, for the WSDL URLs
WSDL_URLS = {
    "HUB_LEGACY_WSDL": "legacy",
    "HUB_TAX_WSDL": "tax",
    "HUB_COURT_WSDL": "court",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def sandbox_environ(sb: Any, *, inbound_port: int | None = None, data_dir: str | Path | None = None,
                    base: Mapping[str, str] | None = None, internal: Any = None,
                    **extra: str) -> dict[str, str]:
    """Variables for config.yaml: the sandbox's URLs and credentials (so another
    seed works too), the inbound port, and an embedded broker and store in
    ``data_dir``. With ``internal`` (a started ``sandbox.internal.InternalNetwork``)
    the bridge (flow g) is on, against it. ``base`` (default ``os.environ``) is
    copied first; ``extra`` overrides last."""
    env = dict(os.environ if base is None else base)
    for var, name in REST_URLS.items():
        env[var] = sb.url(name)
    for var, name in WSDL_URLS.items():
        env[var] = sb.wsdl_url(name)
    c = sb.credentials
    for prefix, name in (("HUB_GOV", "gov"), ("HUB_CIVIL", "civil"),
                         ("HUB_PUBLIC_SECTOR", "public_sector"), ("HUB_HEALTH", "health"),
                         ("HUB_JUSTICE", "justice"), ("HUB_FINANCE", "finance")):
        env[f"{prefix}_RID"] = c[name]["rid"]
        env[f"{prefix}_SID"] = c[name]["sid"]
        env[f"{prefix}_SECRET"] = c[name]["current_secret"]
        env[f"{prefix}_APP_KEY"] = c[name]["app_key"]
    env["HUB_POLICE_USER"] = c["police"]["username"]
    env["HUB_POLICE_PASSWORD"] = c["police"]["password"]
    env["HUB_MARKET_APP_KEY"] = c["market"]["app_key"]
    env["HUB_MARKET_APP_SECRET"] = c["market"]["app_secret"]
    env["HUB_TRADE_CLIENT_ID"] = c["trade"]["client_id"]
    env["HUB_TRADE_CLIENT_SECRET"] = c["trade"]["client_secret"]
    env["HUB_TAX_USER"] = c["tax"]["username"]
    env["HUB_TAX_PASSWORD"] = c["tax"]["password"]
    env["HUB_TAX_PUSH_KEY"] = c["tax"]["push_app_key"]
    env["HUB_TAX_PUSH_SECRET"] = c["tax"]["push_app_secret"]
    env["HUB_COURT_USER"] = c["court"]["username"]
    env["HUB_COURT_PASSWORD"] = c["court"]["password"]
    env["HUB_LEGACY_CALLBACK_KEY"] = c["legacy"]["callback_app_key"]
    env["HUB_LEGACY_CALLBACK_SECRET"] = c["legacy"]["callback_app_secret"]
    for level in ("county", "province", "national"):
        name = f"window_{level}"
        env[f"HUB_WINDOW_{level.upper()}_APP_KEY"] = c[name]["app_key"]
        env[f"HUB_WINDOW_{level.upper()}_APP_SECRET"] = c[name]["app_secret"]
    evaluation = sb.endpoint("evaluation").credentials
    env["HUB_EVALUATION_APP_KEY"] = evaluation["app_key"]
    env["HUB_EVALUATION_APP_SECRET"] = evaluation["app_secret"]
    payment = sb.endpoint("payment").credentials
    env["HUB_PAYMENT_APP_KEY"] = payment["app_key"]
    env["HUB_PAYMENT_APP_SECRET"] = payment["app_secret"]
    env["HUB_PAYMENT_PUSH_KEY"] = payment["push_app_key"]
    env["HUB_PAYMENT_PUSH_SECRET"] = payment["push_app_secret"]
    if inbound_port is not None:
        env["HUB_LISTEN_HOST"] = "127.0.0.1"
        env["HUB_LISTEN_PORT"] = str(inbound_port)
        # The payment platform calls back where each order says (its notify_url).
        env["HUB_PAYMENT_NOTIFY_URL"] = (f"http://127.0.0.1:{inbound_port}"
                                         "/api/v1/inbound/payment/notifications")
    if data_dir is not None:
        folder = Path(data_dir).resolve()
        env["HUB_BROKER_URL"] = f"sqla+sqlite:///{folder / 'broker.db'}"
        env["HUB_STORE_URL"] = f"sqlite:///{folder / 'store.db'}"
    if internal is not None:
        env.update(internal.environ())
    env.update(extra)
    return env
