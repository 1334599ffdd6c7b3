"""The audit log (core.audit): one keyed chain for every writer, its tail anchored."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bdchub.core.audit import AuditLog

KEY = b"audit-key-for-tests-only"
ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from bdchub.core.audit import AuditLog
log = AuditLog(sys.argv[1], key=sys.argv[2].encode(), checkpoint_every=7)
print("ready", flush=True)
sys.stdin.readline()  # both writers start together
for i in range(int(sys.argv[3])):
    log.record("inbound.accepted", f"{sys.argv[4]}-{i}", n=i)
if sys.argv[5] == "kill":
    print("written", flush=True)
    sys.stdin.readline()  # killed here, never closed
"""


def _writers(path: Path, count: int, names: list[str], end: str = "exit",
             script: str = WRITER) -> list:
    """Writer processes started together, each running ``script`` (``WRITER``'s arguments)."""
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), KEY.decode(), str(count),
                               name, end], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT) for name in names]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def _rehash_plain(lines: list[str]) -> list[str]:
    """What someone without the key can do: recompute every link as plain SHA-256."""
    out, prev = [], "0" * 64
    for line in lines:
        rec = json.loads(line)
        rec.pop("hash")
        rec["prev"] = prev
        body = json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        rec["hash"] = prev = hashlib.sha256(prev.encode() + b"\n" + body.encode()).hexdigest()
        out.append(json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    return out


def test_two_processes_appending_at_once_keep_one_intact_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    procs = _writers(path, 150, ["a", "b"])
    for p in procs:
        p.stdin.close()
        assert p.wait(60) == 0
    log = AuditLog(path, key=KEY)
    assert log.verify() == []
    objects = [r["object"] for r in log.records()]
    assert sorted(objects) == sorted([f"a-{i}" for i in range(150)] +
                                     [f"b-{i}" for i in range(150)])


def test_two_logs_on_one_file_in_one_process_keep_one_chain(tmp_path):
    # Two hubs on one data folder in one process: two writers, threads racing.
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path, key=KEY), AuditLog(path, key=KEY)]

    def write(log: AuditLog, name: str) -> None:
        for i in range(100):
            log.record("inbound.accepted", f"{name}-{i}")

    threads = [threading.Thread(target=write, args=(log, n)) for log, n in zip(logs, "xy", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for log in logs:
        log.close()
    report = AuditLog(path, key=KEY).report()
    assert report.problems == [] and report.records == 200
    assert report.notices == []  # both closed cleanly


def _child(path: str) -> None:
    log = AuditLog(path, key=KEY)
    for i in range(20):
        log.record("child", f"c-{i}")
    log.close()


def test_a_log_used_before_a_fork_opens_a_writer_of_its_own_in_the_child(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    log.record("parent", "p-0")
    child = multiprocessing.get_context("fork").Process(target=_child, args=(str(path),))
    child.start()
    for i in range(1, 20):
        log.record("parent", f"p-{i}")
    child.join(60)
    assert child.exitcode == 0
    log.close()
    assert AuditLog(path, key=KEY).verify() == []


def test_an_edited_record_with_recomputed_plain_hashes_fails(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(5):
        log.record("inbound.accepted", f"m-{i}", client="window")
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[3])
    rec["fields"]["client"] = "bank"
    lines[3] = json.dumps(rec)
    path.write_text("\n".join(_rehash_plain(lines)) + "\n", encoding="utf-8")

    problems = AuditLog(path, key=KEY).verify()

    assert problems and problems[0].line == 1
    assert "not keyed" in problems[0].reason


def _closed_log_cut_by(path: Path, lines_cut: int) -> None:
    log = AuditLog(path, key=KEY)
    for i in range(10):
        log.record("sent", f"s-{i}")
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-lines_cut]) + "\n", encoding="utf-8")


def test_records_cut_off_the_end_of_a_closed_log_are_noticed(tmp_path):
    path = tmp_path / "audit.jsonl"
    _closed_log_cut_by(path, 3)

    problems = [str(p) for p in AuditLog(path, key=KEY).verify()]

    assert any("ends before its last checkpoint" in p for p in problems), problems


def test_a_cut_log_stays_reported_after_the_next_writer_moves_the_anchor_on(tmp_path):
    path = tmp_path / "audit.jsonl"
    _closed_log_cut_by(path, 3)
    later = AuditLog(path, key=KEY)
    later.record("sent", "s-10")  # the next start, after the cut
    later.close()

    problems = [str(p) for p in AuditLog(path, key=KEY).verify()]

    assert any("ended before its last checkpoint" in p for p in problems), problems


def test_a_removed_anchor_is_noticed_and_so_is_a_rewritten_one(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    log.record("sent", "s-0")
    log.close()
    anchor = Path(str(path) + ".anchor")
    saved = anchor.read_bytes()
    anchor.unlink()
    assert any("missing" in str(p) for p in AuditLog(path, key=KEY).verify())
    forged = json.loads(saved)
    forged["seq"] = 1
    anchor.write_text(json.dumps(forged))
    assert any("altered" in str(p) for p in AuditLog(path, key=KEY).verify())


def test_a_killed_writer_is_an_unclean_stop_until_the_next_writer_notes_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    [proc] = _writers(path, 10, ["k"], end="kill")
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)

    problems = [str(p) for p in AuditLog(path, key=KEY).verify()]
    assert any("no closing checkpoint after an unclean stop" in p for p in problems), problems
    assert not any("ends before" in p for p in problems)

    after = AuditLog(path, key=KEY)
    after.record("sent", "after-restart")
    after.close()
    report = AuditLog(path, key=KEY).report()
    assert report.problems == []
    assert any("without a closing checkpoint" in n for n in report.notices)


def test_a_log_from_before_keys_goes_on_keyed_and_a_plain_record_after_fails(tmp_path):
    path = tmp_path / "audit.jsonl"
    # How the hub wrote its log before: plain SHA-256 links, no writers, no anchor.
    legacy = [json.dumps({"seq": i + 1, "time": 1.0, "event": "inbound.accepted",
                          "object": f"old-{i}", "fields": {}, "prev": "", "hash": ""})
              for i in range(3)]
    path.write_text("\n".join(_rehash_plain(legacy)) + "\n", encoding="utf-8")
    assert "no keyed record vouches" in AuditLog(path, key=KEY).verify()[0].reason
    new = AuditLog(path, key=KEY)
    new.record("inbound.accepted", "new-0")
    new.close()
    report = AuditLog(path, key=KEY).report()
    assert report.problems == [] and report.unkeyed == 3 and report.records == 4

    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(_rehash_plain(lines)) + "\n", encoding="utf-8")
    problems = [p.reason for p in AuditLog(path, key=KEY).verify()]
    assert "no keyed record vouches" in problems[0], problems


def test_records_leave_out_the_logs_own_bookkeeping(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", key=KEY, checkpoint_every=2)
    for i in range(5):
        log.record("delivered", f"d-{i}")
    log.close()
    assert [r["object"] for r in log.records()] == [f"d-{i}" for i in range(5)]
    events = {r["event"] for r in log.entries()}
    assert {"audit.opened", "audit.checkpoint", "audit.closed"} <= events


def test_nothing_is_pruned_a_reopened_log_keeps_every_record(tmp_path):
    path = tmp_path / "audit.jsonl"
    for run in range(3):
        log = AuditLog(path, key=KEY, checkpoint_every=2)
        for i in range(4):
            log.record("sent", f"{run}-{i}")
        log.close()
    report = AuditLog(path, key=KEY).report()
    assert report.problems == [] and report.records == 12


def test_a_torn_last_line_is_named_and_the_chain_goes_on(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    log.record("sent", "s-0")
    with path.open("ab") as fh:
        fh.write(b'{"event":"sent","fie')  # a write cut short by a crash
    log.record("sent", "s-1")
    log.close()
    problems = AuditLog(path, key=KEY).verify()
    assert [p.reason for p in problems] == ["not a valid audit record"]


def test_a_record_longer_than_one_read_back_is_still_found_as_the_tail(tmp_path):
    path = tmp_path / "audit.jsonl"
    first = AuditLog(path, key=KEY)
    first.record("delivered", "big", note="x" * 100_000)  # far longer than a read-back
    other = AuditLog(path, key=KEY)  # another writer: it reads the tail from the file
    other.record("delivered", "after")
    other.close()
    first.close()
    assert AuditLog(path, key=KEY).verify() == []
