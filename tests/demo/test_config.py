"""The shipped config.yaml, the pollers, and the demo's translations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"


def test_hub_check_passes_on_the_shipped_config():
    proc = subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", "en", "check",
                           "-c", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "configuration is valid — tenant 320684" in proc.stdout
    for route in ("online_application", "tax_application", "progress_fanout", "court_order",
                  "registration_results", "bank_batch"):
        assert f"route {route}:" in proc.stdout


def test_defaults_point_at_the_sandbox_on_base_port_18080_in_its_order():
    from bdchub.sandbox.sandbox import ENDPOINTS

    cfg = config_mod.load(CONFIG, environ={})
    port = {name: 18080 + i for i, name in enumerate(ENDPOINTS)}
    connectors = cfg["connectors"]
    for name in ("gov", "civil", "police", "market", "trade", "window_county", "window_province",
                 "window_national"):
        assert urlsplit(connectors[name]["base_url"]).port == port[name], name
    for name in ("legacy", "tax", "court"):
        assert urlsplit(connectors[name]["wsdl"]).port == port[name], name


def test_default_credentials_are_the_sandbox_seed_42_ones():
    from bdchub.sandbox import Sandbox

    secrets = Sandbox(seed=42).data["secrets"]
    cfg = config_mod.load(CONFIG, environ={})
    c = cfg["connectors"]
    assert c["gov"]["auth"]["secret"] == secrets["gov"]["initial_secret"]
    assert c["tax"]["wsse"]["password"] == secrets["tax"]["password"]
    assert c["window_national"]["auth"]["app_key"] == secrets["window_national"]["app_key"]
    clients = cfg["inbound"]["clients"]
    assert clients["legacy"]["app_key"] == secrets["legacy"]["callback_app_key"]
    assert clients["tax"]["app_secret"] == secrets["tax"]["push_app_secret"]


def test_the_environment_overrides_every_url(sandbox, tmp_path):
    from bdchub.demo.environment import sandbox_environ

    cfg = config_mod.load(CONFIG, environ=sandbox_environ(sandbox, inbound_port=12345,
                                                          data_dir=tmp_path))
    assert cfg["connectors"]["legacy"]["wsdl"] == sandbox.wsdl_url("legacy")
    assert cfg["connectors"]["gov"]["base_url"] == sandbox.url("gov")
    assert cfg["inbound"]["listen"]["port"] == 12345
    assert cfg["store"]["url"] == f"sqlite:///{tmp_path.resolve() / 'store.db'}"


def test_a_poller_naming_an_unknown_connector_is_a_config_error():
    text = CONFIG.read_text(encoding="utf-8").replace("    connector: court\n",
                                                      "    connector: cuort\n", 1)
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(text, "config.yaml", environ={})
    assert "pollers.court_orders.connector: no connector named 'cuort'" in str(err.value)
    assert "did you mean 'court'" in str(err.value)


# -- pollers -------------------------------------------------------------------

class Court:
    """A department that can only be pulled: orders after a cursor, a page at a time."""

    def __init__(self, n: int):
        self.orders = [{"OrderId": f"FY{i:03d}", "Sequence": i} for i in range(1, n + 1)]
        self.calls: list[dict] = []

    def call(self, operation, payload, context=None):
        self.calls.append(dict(payload))
        cursor = int(payload.get("Cursor") or 0)
        page = [o for o in self.orders if o["Sequence"] > cursor][:2]
        more = len([o for o in self.orders if o["Sequence"] > cursor]) > len(page)
        return {"Order": page, "NextCursor": str(page[-1]["Sequence"] if page else cursor),
                "HasMore": more}


SPEC = {"connector": "court", "operation": "PullJudgments", "every": 0.01,
        "cursor": {"param": "Cursor", "next": "NextCursor", "more": "HasMore"},
        "items": "Order", "key": "OrderId", "business_no": "OrderId",
        "publish": "court.order_received"}


def test_poller_publishes_each_item_once_and_resumes_from_its_stored_cursor(tmp_path):
    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    court = Court(5)
    published = []
    poller = Poller("court_orders", SPEC, connector=court, publish=published.append,
                    tenant="320684", cursors=CursorStore(store.engine))
    while poller.poll_once():
        pass
    assert [e.business_no for e in published] == ["FY001", "FY002", "FY003", "FY004", "FY005"]
    assert {e.type for e in published} == {"court.order_received"}
    assert [c.get("Cursor") for c in court.calls] == [None, "2", "4"]
    # A restarted hub (a new poller over the same store) goes on from the cursor.
    court.orders.append({"OrderId": "FY006", "Sequence": 6})
    again = Poller("court_orders", SPEC, connector=court, publish=published.append,
                   tenant="320684", cursors=CursorStore(store.engine))
    again.poll_once()
    assert court.calls[-1]["Cursor"] == "5"
    assert [e.business_no for e in published][-1] == "FY006" and len(published) == 6
    store.close()


def test_an_item_pulled_twice_gets_the_same_message_id(tmp_path):
    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store

    ids = []
    for folder in ("a", "b"):  # two stores: the cursor is lost, the order is pulled again
        (tmp_path / folder).mkdir()
        store = Store(f"sqlite:///{tmp_path / folder / 'store.db'}")
        published = []
        Poller("court_orders", SPEC, connector=Court(1), publish=published.append,
               tenant="320684", cursors=CursorStore(store.engine)).poll_once()
        ids.append(published[0].id)
        store.close()
    assert ids[0] == ids[1]


# -- translations ----------------------------------------------------------------

def test_every_message_of_the_demo_has_a_chinese_translation():
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    have = set()
    for po in (ROOT / "locale" / "zh_CN").glob("*.po"):
        with po.open("rb") as fh:
            have.update(str(m.id) for m in read_po(fh) if m.id and m.string)
    used = {msg for _f, _l, msg, _c, _x in extract_from_dir(
        ROOT / "demo", method_map=[("**.py", "python")], keywords={"_": None, "N_": None})}
    assert used, "no messages found"
    assert sorted(used - have) == []


def test_the_written_samples_are_canonical_applications(tmp_path):
    run = [sys.executable, str(ROOT / "hub.py"), "--lang", "en"]
    proc = subprocess.run([*run, "demo", "--write-samples", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    apps = sorted(str(p) for p in tmp_path.glob("application-*.json"))
    assert len(apps) == 4 and (tmp_path / "bank-batch.json").exists()
    check = subprocess.run([*run, "validate", "application", *apps], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout
