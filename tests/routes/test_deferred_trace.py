"""A request/reply route's trace is written after the answer; what the answer promises
is written before it (issue #15: the store writes of a case off the request path).

The trace hops of an endpoint route (``Engine.run_sync``) go to the store's deferred
writer (``core.deferred_writes``): written together within a moment, at a flush and
when the hub stops. The case's progress and the checks' verification records are in
the store when the answer goes out, so a process killed right after answering loses
none of them; a message delivered twice is still run once.
"""

from __future__ import annotations

import sqlite3
import threading

from bdchub.core.envelope import Envelope
from bdchub.core.store import Store
from tests.routes.helpers import TENANT, application, fake, make_hub

NUMBER = "320684-2026-000777"


def _pay_route(**extra):
    return {"pay": {"from": {"endpoint": {"method": "POST", "path": "/pay", "reply": True}},
                    "steps": [{"enrich": {"connector": "payment", "operation": "order",
                                          "into": "order", "record": "payment"}},
                              {"map": {"merge": True, "fields": {"status": "'paid'"}}},
                              {"to": {"connector": "payment", "operation": "notify"}}],
                    **extra}}


def _hub(tmp_path):
    payment = fake("payment", lambda op, payload, ctx: {"total": "90.00", "op": op})
    return make_hub(_pay_route(), {"payment": payment}, store=f"sqlite:///{tmp_path}/store.db")


def _request(number=NUMBER):
    return Envelope(type="payment.notified", tenant=TENANT, business_no=number,
                    body={"business_no": number, "order_no": "JK1", "amount": "90.00"})


def _other_process(tmp_path, sealer=None) -> Store:
    """The store as another process (or the next start of this one) reads it; it
    holds the hub's data key (``sealer``) to read what is sealed."""
    return Store(f"sqlite:///{tmp_path}/store.db", sealer=sealer)


def test_the_answer_does_not_wait_for_the_trace_while_another_process_holds_the_store(tmp_path):
    payment = fake("payment", lambda op, payload, ctx: {"ok": True})
    hub = make_hub({"check": {"from": {"endpoint": {"path": "/check", "reply": True}},
                              "steps": [{"to": {"connector": "payment", "operation": "x"}}]}},
                   {"payment": payment}, store=f"sqlite:///{tmp_path}/store.db")
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing for as long as it likes
    answers = []
    run = threading.Thread(target=lambda: answers.append(hub.run_sync("check", _request())))
    run.start()
    run.join(timeout=20)  # the store's busy timeout is 60 s: a waiting run is still here
    answered_while_held = list(answers)
    holder.execute("ROLLBACK")
    run.join()
    assert answered_while_held and answered_while_held[0].headers["x-hub-outcome"] == "completed"
    hub.store.flush_deferred()
    assert [h["step"] for h in _other_process(tmp_path).trace(NUMBER)] == ["0:to"]
    hub.stop(timeout=5)


def test_the_trace_lands_without_a_flush(tmp_path):
    hub = _hub(tmp_path)
    hub.run_sync("pay", _request())
    reader = _other_process(tmp_path)
    for _ in range(200):  # bounded: the writer's window is a tenth of a second
        if reader.trace(NUMBER):
            break
        threading.Event().wait(0.05)
    assert [h["step"] for h in reader.trace(NUMBER)] == ["0:enrich", "1:map", "2:to"]
    hub.stop(timeout=5)


def test_stopping_the_hub_writes_the_deferred_trace(tmp_path):
    hub = _hub(tmp_path)
    for n in range(20):
        hub.run_sync("pay", _request(f"{NUMBER}-{n}"))
    hub.stop(timeout=5)
    reader = _other_process(tmp_path)
    assert all(len(reader.trace(f"{NUMBER}-{n}")) == 3 for n in range(20))


def test_what_the_answer_promises_is_stored_before_it_goes_out(tmp_path):
    hub = _hub(tmp_path)
    answer = hub.run_sync("pay", _request())
    assert answer.body["status"] == "paid"
    # The process dies now (kill -9): nothing more of it runs, and the next reads
    # the store as it was left. Progress and the check's record are there.
    reader = _other_process(tmp_path, hub.store.sealer)
    assert reader.progress(TENANT, NUMBER)["status"] == "paid"
    assert [v["kind"] for v in reader.verifications_for(NUMBER)] == ["payment"]


def test_a_trace_the_store_refused_is_written_once_it_answers(tmp_path):
    hub = _hub(tmp_path)
    hub.run_sync("pay", _request())
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    holder.execute("PRAGMA busy_timeout=0")
    holder.execute("DROP TABLE hops")  # the store cannot take the trace for now
    try:
        hub.store.flush_deferred()
    except Exception:  # noqa: BLE001 - the failure is the point; the hops are kept
        pass
    else:
        raise AssertionError("the flush should have failed without the hops table")
    holder.close()
    from bdchub.core.store import hops

    hops.create(hub.store.engine)
    hub.store.flush_deferred()
    assert len(_other_process(tmp_path).trace(NUMBER)) == 3
    hub.stop(timeout=5)


def test_a_message_delivered_twice_is_still_run_once(tmp_path):
    calls = []
    legacy = fake("legacy", lambda op, payload, ctx: calls.append(ctx.message_id) or {})
    hub = make_hub({"forward": {"from": "application.submitted",
                                "steps": [{"to": {"connector": "legacy", "operation": "x"}}]}},
                   {"legacy": legacy}, store=f"sqlite:///{tmp_path}/store.db")
    sent = hub.send("application.submitted", application(NUMBER))
    hub.publish(sent)  # the same message again (a redelivery, a repeat of the sender)
    assert hub.run_until_idle() == 2
    assert calls == [sent.id]
    assert _other_process(tmp_path).outcome_of(sent.id, "forward") == "completed"
    hub.stop(timeout=5)
