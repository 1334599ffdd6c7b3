"""Progress queries for the one-window platforms: masked, tenant-isolated, and
looked up by ID number through a key a copied store does not hold."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bdchub.core.errors import ConfigError
from bdchub.core.masking import Masker
from bdchub.core.sealing import KEY_ENV
from tests.routes.helpers import TENANT, application, make_hub

ROOT = Path(__file__).resolve().parents[2]
ID_NUMBER = "110105199001011234"


def test_progress_by_business_no_follows_stages_and_masks_the_applicant():
    hub = make_hub({"r": {"from": "#", "steps": [{"filter": "`true`"}]}})
    hub.send("application.submitted", application("P-1"))
    hub.send("progress.updated", {"business_no": "P-1", "stage": "acceptance",
                                  "status": "in_progress"})
    hub.run_until_idle()
    progress = hub.progress_by_business_no(TENANT, "P-1")
    assert progress["stage"] == "acceptance" and progress["status"] == "in_progress"
    assert progress["registration_type"] == "200"
    # What the row keeps of the ID number: enough to recognise one's case, no more.
    assert progress["applicant"] == {"name": "张*", "id_number": "**************1234"}
    assert [h["type"] for h in progress["history"]] == ["application.submitted",
                                                        "progress.updated"]
    assert hub.progress_by_business_no("320612", "P-1") is None  # another county's staff


def test_progress_by_applicant_finds_applications_without_storing_the_id_number():
    hub = make_hub({"r": {"from": "#", "steps": [{"filter": "`true`"}]}})
    hub.send("application.submitted", application("P-2"))
    hub.send("application.submitted", application("P-3"))
    other = application("P-4")
    other["applicants"][0]["id_number"] = "11010519900101203X"
    hub.send("application.submitted", other)
    hub.run_until_idle()
    found = hub.progress_by_applicant(TENANT, "110105199001011234")
    assert sorted(p["business_no"] for p in found) == ["P-2", "P-3"]
    assert hub.progress_by_applicant("320612", "110105199001011234") == []
    row = hub.store.progress(TENANT, "P-2")
    assert "110105199001011234" not in str(row)


def test_masking_keeps_surname_and_id_ends():
    m = Masker()
    assert m.name("张三") == "张*" and m.name("欧阳娜娜") == "欧阳**"
    assert m.id_number("110105199001011234") == "110105********1234"
    masked = m({"applicants": [{"name": "王五", "id_number": "110105199001011234",
                                "phone": "13812345678"}], "note": "x"})
    assert masked == {"applicants": [{"name": "王*", "id_number": "110105********1234",
                                      "phone": "138****5678"}], "note": "x"}


def test_a_route_that_maps_stage_and_status_moves_the_progress(hubs):
    hub = make_hub({"cb": {"from": "legacy.stage_changed", "steps": [
        {"map": {"business_no": "YWH", "stage": "(ZT=='03' && 'review') || 'other'",
                 "status": "'in_progress'"}}]}})
    hubs.append(hub)
    hub.send("legacy.stage_changed", {"YWH": "P-5", "ZT": "03"}, business_no="P-5")
    hub.run_until_idle()
    row = hub.store.progress(TENANT, "P-5")
    assert (row["stage"], row["status"], row["last_type"]) == (
        "review", "in_progress", "legacy.stage_changed")


def test_a_failed_run_does_not_move_the_progress_with_the_body_it_stopped_with(hubs):
    from tests.routes.helpers import fake

    hub = make_hub({"cb": {"from": "legacy.stage_changed",
                           "on_error": {"then": "dead_letter"}, "steps": [
        {"map": {"fields": {"stage": "'registration'"}, "merge": True}},
        {"to": {"connector": "legacy", "operation": "missing"}}]}},
        {"legacy": fake("legacy")})
    hubs.append(hub)
    hub.send("legacy.stage_changed", {"stage": "review"}, business_no="P-6")
    hub.run_until_idle()
    assert len(hub.dlq_list()) == 1
    assert hub.store.progress(TENANT, "P-6")["stage"] == "review"


def test_free_text_masking_follows_the_configured_keeps():
    m = Masker.from_config({"id_keep_first": 3, "id_keep_last": 2, "phone_keep_first": 2,
                 "phone_keep_last": 2})
    assert m.text("ID 110105199001011234 and mobile 13812345678 refused") == \
        "ID 110*************34 and mobile 13*******78 refused"
    assert Masker().text("110105199001011234") == "110105********1234"


def _every_id_of_the_old_mask(address: str, tail: str) -> list[str]:
    """Every ID number with this address code and these last four, over every birth
    date: all a masked ID of first 6 / last 4 left unknown."""
    found, day = [], datetime.date(1900, 1, 1)
    while day <= datetime.date(2030, 12, 31):
        found.append(address + day.strftime("%Y%m%d") + tail)
        day += datetime.timedelta(days=1)
    return found


@pytest.fixture
def hub_config(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("BDCHUB_PII_KEY", raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    config = tmp_path / "config.yaml"
    config.write_text(f"""
tenant: "{TENANT}"
broker: {{url: "memory://"}}
store: {{url: "sqlite:///{tmp_path / 'store.db'}"}}
connectors: {{}}
routes:
  r: {{from: "#", steps: [{{filter: "`true`"}}]}}
""", encoding="utf-8")
    return config


def test_a_copied_store_does_not_give_back_the_id_numbers_of_its_lookup_keys(hub_config,
                                                                             tmp_path):
    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub

    hub = Hub.from_config(load(hub_config))
    hub.send("application.submitted", application("K-1"))
    hub.run_until_idle()
    hub.close()
    # The attacker's copy: the database file alone, read without the hub.
    with sqlite3.connect(tmp_path / "store.db") as db:
        stored_id, stored_key = db.execute(
            "SELECT applicant_id, applicant_key FROM progress WHERE business_no = 'K-1'"
        ).fetchone()
    assert stored_id == "**************1234"  # the birth date and the address code are gone
    # Even granting the attacker the address code the old mask kept, every birth date:
    candidates = _every_id_of_the_old_mask("110105", "1234")
    assert ID_NUMBER in candidates
    defaults = [b"bdc-hub-development-key", b"", b"bdc-hub", b"changeme", b"secret"]
    for secret in defaults:
        for candidate in candidates:
            guess = hmac.new(secret, f"{TENANT}:{candidate}".encode(), hashlib.sha256)
            assert guess.hexdigest() != stored_key


def test_with_the_key_lookups_find_the_cases_from_another_process(hub_config):
    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub

    hub = Hub.from_config(load(hub_config))
    for no in ("K-2", "K-3"):
        hub.send("application.submitted", application(no))
    hub.run_until_idle()
    hub.close()
    script = ("import sys; from bdchub.core.config import load; "
              "from bdchub.routes.runtime import Hub; "
              "hub = Hub.from_config(load(sys.argv[1]), create_key=False); "
              "print(sorted(p['business_no'] for p in hub.progress_by_applicant("
              f"'{TENANT}', '{ID_NUMBER}')))")
    other = subprocess.run([sys.executable, "-c", script, str(hub_config)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "['K-2', 'K-3']"


def test_rows_keyed_before_are_found_by_the_old_key_only_while_it_is_given(monkeypatch):
    from bdchub.core.store import Finish

    hub = make_hub({"r": {"from": "#", "steps": [{"filter": "`true`"}]}})
    old = hmac.new(b"the-old-pii-key", f"{TENANT}:{ID_NUMBER}".encode(), hashlib.sha256)
    hub.store.finish(Finish(message_id="m-old", route="r", outcome="completed", tenant=TENANT,
                            business_no="OLD-1", type="application.submitted",
                            progress={"applicant_key": old.hexdigest(), "stage": "review"}))
    assert hub.progress_by_applicant(TENANT, ID_NUMBER) == []
    monkeypatch.setenv("BDCHUB_PII_KEY", "the-old-pii-key")
    legacy = make_hub({"r": {"from": "#", "steps": [{"filter": "`true`"}]}},
                      store=hub.store)
    assert [p["business_no"] for p in legacy.progress_by_applicant(TENANT, ID_NUMBER)] == \
        ["OLD-1"]


def test_a_store_on_disk_without_its_data_key_is_refused(tmp_path):
    from bdchub.core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with pytest.raises(ConfigError, match="without the data key"):
            make_hub({}, store=store)
    finally:
        store.close()
