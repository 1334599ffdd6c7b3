"""make bench's one table: each benchmark's targets from its JSON result, and a
benchmark that did not write its result this run never shows an old figure."""

from __future__ import annotations

import json
import os
import time

from bench.common import target
from bench.run import summary


def _write(results, name, targets, age=0.0):
    path = results / f"{name}.json"
    path.write_text(json.dumps({"targets": targets}))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def test_a_target_is_met_by_its_side_of_the_goal():
    assert target("ratio", 0.81, 0.8)["met"]
    assert not target("ratio", 0.79, 0.8)["met"]
    assert target("start-up", 1.4, 1.5, unit=" s", at_least=False)["met"]
    assert not target("start-up", 1.6, 1.5, unit=" s", at_least=False)["met"]
    assert not target("not measured", None, 1.0)["met"]
    assert not target("nan", float("nan"), 1.0)["met"]


def test_every_figure_in_one_table_with_its_status(tmp_path):
    started = time.time() - 1
    _write(tmp_path, "startup", [target("hub run start-up", 1.2, 1.5, unit=" s",
                                        at_least=False)])
    _write(tmp_path, "broker_relay", [target("relay / bare kombu", 0.54, 0.8)])
    text, ok = summary([("startup.py", 0, started, 3.0),
                        ("broker_relay.py", 0, started, 9.0)], tmp_path)
    lines = text.splitlines()
    assert any("hub run start-up" in line and "≤ 1.5 s" in line and line.endswith("met")
               for line in lines)
    assert any("relay / bare kombu" in line and "0.54" in line and line.endswith("NOT MET")
               for line in lines)
    assert not ok


def test_a_result_older_than_the_run_is_not_shown_and_fails_the_run(tmp_path):
    started = time.time()
    _write(tmp_path, "memory", [target("growth", 0.0, 5.0, at_least=False)], age=3600)
    text, ok = summary([("memory.py", 1, started, 2.0)], tmp_path)
    assert "not run" in text and "growth" not in text
    assert not ok


def test_all_met_is_ok(tmp_path):
    started = time.time() - 1
    _write(tmp_path, "startup", [target("start-up", 1.0, 1.5, at_least=False)])
    _write(tmp_path, "province_dispatch", [])
    text, ok = summary([("startup.py", 0, started, 1.0),
                        ("province_dispatch.py", 0, started, 1.0)], tmp_path)
    assert ok and "measured" in text
