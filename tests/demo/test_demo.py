"""``hub demo`` end to end, as a user runs it: a subprocess, its exit code and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: what issue #12 asks the demo to show, by the plain-English kind ids of ``--json``
COUNTY_FLOWS = {
    "correction resubmitted", "notice at the province", "results at three levels",
    "diode and ferry", "query", "appointment", "payment", "institution credit code",
    "agent with face comparison", "suspended channel",
}
#: applications the demo follows to the archive, with their e-certificate
ARCHIVED = {"transfer with tax", "first registration", "bank mortgage", "correction resubmitted",
            "notice at the province", "results at three levels", "diode and ferry",
            "institution credit code", "agent with face comparison", "developer batch"}


def _hub(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def english_run() -> subprocess.CompletedProcess[str]:
    return _hub("--lang", "en", "demo", "--json")


@pytest.fixture(scope="module")
def summary(english_run: subprocess.CompletedProcess[str]) -> dict:
    assert english_run.returncode == 0, english_run.stderr[-3000:]
    return json.loads(english_run.stdout.strip().splitlines()[-1])


def test_demo_brings_every_case_to_its_expected_end_state(summary):
    assert summary["ok"] is True
    cases = summary["cases"]
    assert len(cases) >= 14
    assert all(c["reached"] for c in cases), [c for c in cases if not c["reached"]]
    for c in cases:
        done, total = c["milestones"].split("/")
        assert done == total, c
        assert c["seconds"] is not None and c["seconds"] < 60
    assert summary["elapsed"] < 60


def test_every_county_flow_of_the_issue_is_a_case_named_in_plain_english(summary):
    kinds = [c["kind"] for c in summary["cases"]]
    assert COUNTY_FLOWS <= set(kinds)
    assert {"transfer with tax", "first registration", "refused application",
            "incomplete application", "court seizure", "developer batch",
            "good-bad evaluation", "e-certificate verify and download"} <= set(kinds)
    assert kinds.count("bank mortgage") == 2  # one bank batch of two
    assert all(k.replace("-", " ").replace(" ", "").isalpha() and k == k.lower() for k in kinds)
    for c in summary["cases"]:
        assert c["expected"], c


def test_applications_end_archived_and_the_others_where_they_should(summary):
    cases = {}
    for c in summary["cases"]:
        cases.setdefault(c["kind"], []).append(c)
    for kind in ARCHIVED:
        assert [c["stage"] for c in cases[kind]] == ["archive"] * len(cases[kind]), kind
    assert cases["refused application"][0]["stage"] == "refusal"
    assert cases["incomplete application"][0]["stage"] == "correction"
    # The appointment is booked for the incomplete application, whose stage it leaves alone.
    [appointment] = cases["appointment"]
    assert appointment["about"] == cases["incomplete application"][0]["business_no"]
    assert appointment["stage"] == "correction"
    # The payment is the transfer's; the evaluation and the e-certificate follow other cases.
    assert cases["payment"][0]["about"] == cases["transfer with tax"][0]["business_no"]
    assert cases["good-bad evaluation"][0]["about"] == \
        cases["notice at the province"][0]["business_no"]
    assert cases["e-certificate verify and download"][0]["about"] == \
        cases["first registration"][0]["business_no"]
    # A query and a refused batch are not applications: the hub keeps no progress for them.
    assert cases["query"][0]["stage"] == "" and cases["suspended channel"][0]["stage"] == ""
    assert cases["suspended channel"][0]["channel"] == "agency_hm"


def test_the_human_output_shows_progress_traces_and_a_summary(english_run, summary):
    err = english_run.stderr
    assert "transfer with tax" in err and "court seizure" in err and "diode and ferry" in err
    assert "tax_application" in err and "awaiting tax.cleared" in err
    assert "payment_notification" in err and "spatial_materials" in err
    assert "verification records" in err and "gov.verify_identity" in err
    assert "the agency channel is suspended; its batch" in err and "HTTP 403" in err
    n = len(summary["cases"])
    assert f"all {n} cases reached their expected end state" in err


def test_demo_speaks_chinese_by_default_and_exits_1_when_the_deadline_is_missed():
    proc = _hub("demo", "--deadline", "0.3")
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "错误" in out and "未在" in out and "预期终态" in out
    assert "涉税转移登记" in out and "汇总" in out
    assert "光闸送出、光盘摆渡回传" in out and "暂停的渠道" in out


def test_demo_serve_keeps_the_hub_and_its_console_up_with_a_demo_operator_until_sigterm():
    import os
    import re
    import signal
    import time

    import requests

    proc = subprocess.Popen([sys.executable, str(ROOT / "hub.py"), "--lang", "en", "demo",
                             "--serve"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        seen, found = "", None
        deadline = time.monotonic() + 120
        while found is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"hub demo --serve ended: {seen[-3000:]}"
            seen += line
            found = re.search(r"console: (http://\S+/) \(operator demo, password (\S+);", line)
        assert found, seen[-3000:]
        url, password = found.group(1), found.group(2)
        assert "all 20 cases reached" in seen or "cases reached their expected end state" in seen
        session = requests.Session()
        login = session.post(url + "api/login", json={"username": "demo", "password": password},
                             timeout=10)
        assert login.status_code == 200, login.text
        assert "system_admin" in login.json()["roles"]
        assert session.get(url, timeout=10).status_code == 200  # the overview, still served
        assert session.post(url + "api/login", json={"username": "demo", "password": "wrong"},
                            timeout=10).status_code in (401, 403)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_demo_starts_on_another_port_when_the_one_it_found_is_taken(monkeypatch, tmp_path):
    """A port found free may be taken before the hub binds it (another program,
    another test): the demo's hub starts on the next one it finds."""
    import socket

    from bdchub.demo import scenario
    from bdchub.demo.environment import free_port

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    offered = iter([taken.getsockname()[1]])
    monkeypatch.setattr(scenario, "free_port", lambda: next(offered, None) or free_port())
    try:
        with scenario.DemoRun(ROOT / "config.yaml", workdir=tmp_path) as demo:
            assert demo.service is not None
            assert not demo.service.url.endswith(f":{taken.getsockname()[1]}")
    finally:
        taken.close()
