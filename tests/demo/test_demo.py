"""``hub demo`` end to end, as a user runs it: a subprocess, its exit code and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _hub(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_brings_every_application_to_its_expected_end_state():
    proc = _hub("--lang", "en", "demo", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    cases = summary["cases"]
    assert all(c["reached"] for c in cases), cases
    kinds = {c["kind"] for c in cases}
    assert {"transfer", "mortgage", "first", "seizure"} <= kinds
    assert sum(c["kind"] == "mortgage" for c in cases) == 2  # one bank batch of two
    for c in cases:
        if c["kind"] in ("transfer", "mortgage", "first"):
            assert c["stage"] == "archive", c
        assert c["seconds"] is not None and c["seconds"] < 60
    assert summary["elapsed"] < 60
    # The human part went to stderr: progress, traces with timings, the summary table.
    err = proc.stderr
    assert "transfer with tax" in err and "court seizure" in err
    assert "tax_application" in err and "awaiting tax.cleared" in err
    assert "verification records" in err and "gov.verify_identity" in err
    assert "all 7 applications reached their expected end state" in err


def test_demo_speaks_chinese_by_default_and_exits_1_when_the_deadline_is_missed():
    proc = _hub("demo", "--deadline", "0.3")
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "错误" in out and "未在" in out and "预期终态" in out
    assert "涉税转移登记" in out and "汇总" in out
