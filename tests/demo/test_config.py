"""The shipped config.yaml as the demo runs it, and the demo's translations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bdchub.core import config as config_mod

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
