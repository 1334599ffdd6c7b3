"""``hub demo --province`` end to end, as a user runs it: a subprocess (which runs a
province hub and three county hubs as ``hub run`` processes of their own), its
exit code and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

ACKED, NATIONAL = "county hub acknowledged", "progress at the national window"
#: kind -> (the county it must reach, the end state's milestones in order)
EXPECTED = {
    "provincial tax clearance": ("320684", [ACKED, NATIONAL]),
    "court seizure": ("320682", [ACKED, "court answered", NATIONAL]),
    "province window application": ("320681", [ACKED, NATIONAL]),
    "unknown division code": ("", ["dead-lettered with its reason"]),
}


def _hub(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def summary() -> dict:
    run = _hub("--lang", "en", "demo", "--province", "--json")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_each_case_reaches_its_county_and_its_end_state_within_a_minute(summary):
    assert summary["ok"] is True
    cases = {c["kind"]: c for c in summary["cases"]}
    assert set(cases) == set(EXPECTED)
    for kind, (county, milestones) in EXPECTED.items():
        case = cases[kind]
        assert (case["county"], case["passed"], case["reached"]) == (county, milestones, True)
        assert case["seconds"] is not None
    assert summary["elapsed"] < 60


def test_the_three_dispatched_cases_go_to_three_different_counties(summary):
    counties = [c["county"] for c in summary["cases"] if c["county"]]
    assert sorted(counties) == ["320681", "320682", "320684"]


def test_province_demo_speaks_chinese_by_default_and_exits_1_when_the_deadline_is_missed():
    """No time at all after the submissions: the court's order has not even been
    polled yet, so at least that case is late."""
    proc = _hub("demo", "--province", "--deadline", "0")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-2000:]
    assert "汇总" in out and "省级税务完税信息" in out and "未知的行政区划代码" in out
    assert "错误" in out and "预期终态" in out
