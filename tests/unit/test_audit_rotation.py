"""Rotation and retention of the audit log (core.audit): one chain across files."""

from __future__ import annotations

import json
from pathlib import Path

from bdchub.core.audit import DAY, AuditLog, Rotation, log_files
from tests.unit.test_audit import _writers

KEY = b"audit-key-for-tests-only"
NOON = 1_796_000_000.0 - (1_796_000_000.0 % DAY) + 12 * 3600  # a fixed day, away from midnight


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _log(path: Path, clock: Clock, **rotation) -> AuditLog:
    return AuditLog(path, key=KEY, clock=clock, rotation=Rotation(**rotation))


def _daily(tmp_path: Path, days: int, per_day: int = 3, retention_days: float | None = None):
    clock = Clock()
    log = _log(tmp_path / "audit.jsonl", clock, max_bytes=None, daily=True,
               retention_days=retention_days)
    for day in range(days):
        clock.now = NOON + day * DAY
        for i in range(per_day):
            log.record("inbound.accepted", f"BN-{day}-{i}", business_no=f"BN-{day}-{i}")
    log.close()
    return log, clock


def test_the_live_file_rotates_by_size_and_the_series_verifies(tmp_path):
    log = _log(tmp_path / "audit.jsonl", Clock(), max_bytes=4096, daily=False, retention_days=None)
    for i in range(60):
        log.record("inbound.accepted", f"m-{i}", business_no=f"BN{i:04d}", pad="x" * 100)
    log.close()
    files = log_files(log.path)
    assert len(files) > 2 and files[-1] == log.path
    assert all(f.stat().st_size < 4096 + 1024 for f in files[:-1])
    report = log.report()
    assert report.ok, [str(p) for p in report.problems]
    assert report.records == 60
    assert [r["object"] for r in log.records()] == [f"m-{i}" for i in range(60)]


def test_the_live_file_rotates_when_the_day_changes(tmp_path):
    log, _clock = _daily(tmp_path, days=3)
    files = log_files(log.path)
    assert len(files) == 3
    first = json.loads(files[1].read_text().splitlines()[0])
    assert first["event"] == "audit.continued" and first["fields"]["from"] == files[0].name
    assert log.report().ok


def test_an_edited_record_in_an_archived_file_is_named_with_its_file(tmp_path):
    log, _clock = _daily(tmp_path, days=3)
    archive = log_files(log.path)[0]
    text = archive.read_text().replace("BN-0-1", "BN-0-X")
    archive.write_text(text)
    problems = log.report().problems
    assert problems and problems[0].file == archive.name
    assert archive.name in str(problems[0])


def test_a_removed_middle_file_is_detected(tmp_path):
    log, _clock = _daily(tmp_path, days=3)
    old, middle, live = log_files(log.path)
    middle.unlink()
    problems = log.report().problems
    assert any(p.file == live.name and middle.name in p.reason for p in problems)


def test_an_archived_file_cut_short_is_detected(tmp_path):
    log, _clock = _daily(tmp_path, days=3)
    old = log_files(log.path)[0]
    lines = old.read_text().splitlines(keepends=True)
    old.write_text("".join(lines[:-2]))
    problems = log.report().problems
    assert any(p.file == old.name for p in problems), [str(p) for p in problems]


def test_a_removed_first_file_without_a_record_of_it_is_detected(tmp_path):
    log, _clock = _daily(tmp_path, days=3)
    first = log_files(log.path)[0]
    first.unlink()
    problems = log.report().problems
    assert any(first.name in p.reason for p in problems)


def test_retention_removes_only_whole_old_files_and_the_rest_still_verifies(tmp_path):
    log, clock = _daily(tmp_path, days=6, retention_days=2.5)
    files = log_files(log.path)
    # Each day's file ends with the next day's rotation record (its newest). Day 4's
    # rotation removes day 0's file (newest record 3 days old), day 5's removes day 1's;
    # day 2's file, whose newest record is 2 days old, stays whole.
    names = [f.name for f in files]
    assert len(files) == 4, names
    report = log.report()
    assert report.ok, [str(p) for p in report.problems]
    assert any("retention" in n or "保留" in n for n in report.notices)
    remaining = {r["object"] for r in log.records()}
    assert "BN-0-0" not in remaining and "BN-5-2" in remaining


def test_a_file_removed_beyond_the_recorded_ones_is_still_detected(tmp_path):
    log, _clock = _daily(tmp_path, days=6, retention_days=2.5)
    log_files(log.path)[0].unlink()
    assert not log.report().ok


WRITER = """
import sys
from bdchub.core.audit import AuditLog, Rotation
log = AuditLog(sys.argv[1], key=sys.argv[2].encode(), checkpoint_every=5,
               rotation=Rotation(max_bytes=2048, daily=False, retention_days=None))
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[3])):
    log.record("inbound.accepted", f"{sys.argv[4]}-{i}", n=i)
"""


def test_two_writer_processes_rotating_at_once_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    procs = _writers(path, 80, ["a", "b"], script=WRITER)
    for p in procs:
        p.stdin.close()
        assert p.wait(timeout=60) == 0
    log = AuditLog(path, key=KEY)
    assert len(log_files(path)) > 3
    report = log.report()
    assert report.ok, [str(p) for p in report.problems]
    objects = {r["object"] for r in log.records()}
    assert objects == {f"{n}-{i}" for n in "ab" for i in range(80)}
