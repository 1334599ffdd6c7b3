"""Querying and exporting the audit log (core.audit_query), across rotated files."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bdchub.core.audit import DAY, AuditLog, Rotation, log_files
from bdchub.core.audit_query import Filters, export, query
from bdchub.core.errors import HubError

KEY = b"audit-key-for-tests-only"
NOON = 1_796_000_000.0 - (1_796_000_000.0 % DAY) + 12 * 3600


class Clock:
    now = NOON

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(tmp_path):
    """Three days, rotated daily: accepted requests from two clients and an operator's replay."""
    clock = Clock()
    log = AuditLog(tmp_path / "audit.jsonl", key=KEY, clock=clock,
                   rotation=Rotation(max_bytes=None, daily=True, retention_days=None))
    for day in range(3):
        for i in range(4):
            clock.now = NOON + day * DAY + i * 60
            log.record("inbound.accepted", f"m-{day}-{i}", business_no=f"BN{day}{i}",
                       client="wechat" if i % 2 else "window", id_no="110***********1234")
        log.record("dlq.replayed", f"d-{day}", by="张三", business_no=f"BN{day}0")
    log.close()
    assert len(log_files(log.path)) == 3
    return log


def test_a_page_is_newest_first_and_the_cursor_goes_on_across_files(log):
    page = query(log.path, limit=4)
    assert [r["object"] for r in page.records] == ["d-2", "m-2-3", "m-2-2", "m-2-1"]
    seen = [r["object"] for r in page.records]
    while page.next_cursor is not None:
        page = query(log.path, limit=4, cursor=page.next_cursor)
        seen += [r["object"] for r in page.records]
    assert len(seen) == 15 and seen[-1] == "m-0-0"
    assert not any(o.startswith("audit.") for o in seen)  # bookkeeping left out


def test_filters_by_time_actor_event_and_business_number(log):
    day1 = Filters(since=NOON + DAY, until=NOON + 2 * DAY)
    assert {r["object"] for r in query(log.path, day1).records} == {
        "m-1-0", "m-1-1", "m-1-2", "m-1-3", "d-1"}
    assert [r["object"] for r in query(log.path, Filters(actor="张三")).records] == [
        "d-2", "d-1", "d-0"]
    assert len(query(log.path, Filters(actor="wechat")).records) == 6
    assert [r["object"] for r in query(log.path, Filters(event="dlq.*")).records] == [
        "d-2", "d-1", "d-0"]
    assert query(log.path, Filters(event="dlq.")).records == query(
        log.path, Filters(event="dlq.replayed")).records
    assert [r["object"] for r in query(log.path, Filters(business_no="BN10")).records] == [
        "d-1", "m-1-0"]


def test_an_export_without_a_start_is_refused_unless_everything_is_asked_for(log):
    with pytest.raises(HubError):
        export(log.path, Filters())
    assert sum(1 for _ in export(log.path, Filters(), "jsonl", everything=True)) == 15


def test_the_csv_export_is_streamed_oldest_first_with_fields_as_recorded(log):
    lines = export(log.path, Filters(since=NOON), "csv")
    header = next(lines)  # a generator: nothing is read before it is asked for
    assert header.startswith("\ufeff")
    first = next(csv.reader(io.StringIO(next(lines))))
    assert first[2] == "inbound.accepted" and first[4] == "BN00"
    rest = list(csv.reader(io.StringIO("".join(lines))))
    assert len(rest) == 14
    details = json.loads(rest[-1][6])
    assert details == {"by": "张三", "business_no": "BN20"}
    assert all("110***********1234" in r[6] for r in rest if r[2] == "inbound.accepted")


def test_the_jsonl_export_keeps_each_record_whole(log):
    lines = list(export(log.path, Filters(since=NOON + 2 * DAY), "jsonl"))
    records = [json.loads(line) for line in lines]
    assert [r["object"] for r in records] == ["m-2-0", "m-2-1", "m-2-2", "m-2-3", "d-2"]
    assert all("hash" in r and "prev" in r for r in records)
