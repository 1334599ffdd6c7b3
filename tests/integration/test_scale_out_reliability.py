"""Scale-out reliability (issue #14, Reliability): three ``hub run`` workers of the
shipped config.yaml share one RabbitMQ (quorum queues) and one PostgreSQL, with the
county flows running through them against the sandbox:

- the worker holding the singletons' lease (the pollers) is killed with SIGKILL
  mid-flow: its unacknowledged messages go to the other workers, and the pollers'
  lease moves to another worker within 10 s;
- RabbitMQ is stopped and started again once;
- PostgreSQL is stopped for 10 s and started again;

and every case reaches its end, each department and window took each delivery
once in effect (the sandbox counts what it received by idempotency key: no key
twice in effect, no message under two keys), nothing is dead-lettered (the quorum
queues' delivery limit included) and nothing is left parked.

Cases of every kind come in three waves, one just before each blow, so that each
falls mid-flow. The registration system's stage changes, which the shipped route
takes in order (``concurrency: 1``), go to one worker at a time (single active
consumer): taken by three at once, a late 受理 overtook the 补正 and the corrected
materials were refused. Platforms, the registration system's and the payment
platform's callbacks go to one worker that stays up (behind a load balancer they
would go to any); the killed worker is the one the pollers run on. PostgreSQL is a
server of this test's own (``postgres_server``), so that it can be stopped.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bdchub.demo.environment import free_port, sandbox_environ
from tests.app.test_run import own_secrets
from tests.conftest import fresh_pg_database
from tests.integration.county_hub import ROOT, HubProcess, wait
from tests.integration.test_county_flows_reliability import (  # noqa: F401 - fixtures
    LEVELS,
    Run,
    _assert_once_in_effect,
    _delivered,
    _expected_ends,
    departments,
    internal,
)
from tests.integration.test_singletons import TAKE_OVER, pollers_lease

pytestmark = pytest.mark.integration

PG_DOWN = 10.0  # seconds PostgreSQL is stopped, as the issue says


def _quorum_config(folder: Path, prefix: str) -> Path:
    """config.yaml under this test's queue prefix, its route queues quorum queues
    (HUB_BROKER_QUEUE_TYPE, or a ``queue_type`` line where it has none)."""
    folder.mkdir(exist_ok=True)
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "\nbroker:\n" in text
    block = f"\nbroker:\n  prefix: {prefix}\n"
    if "\n  queue_type:" not in text:
        block += "  queue_type: quorum\n"
    text = text.replace("\nbroker:\n", block, 1)
    (folder / "config.yaml").write_text(text, encoding="utf-8")
    return folder


def _finish(run: Run, network: Any, timeout: float) -> None:
    """Every case to its end; else which did not, where they are and the dead letters."""
    try:
        run.finish(timeout, network)
    except AssertionError as exc:
        left = {no: (run.kinds[no], run.stage(no)) for no in run.kinds if no not in run.ended()}
        raise AssertionError(f"{exc}: {left}; dead letters: {run.reader.dlq_list()}") from None


def _holder(store_url: str) -> int | None:
    """The pid of the worker holding the pollers' lease now, if one does."""
    try:
        lease = pollers_lease(store_url)
    except Exception:  # noqa: BLE001 - PostgreSQL may be restarting
        return None
    return int(lease["pid"]) if lease and lease["held"] else None


def test_three_workers_lose_nothing_and_double_nothing_through_a_kill_and_both_servers_down(
        departments, internal, rabbit_node, postgres_server, tmp_path):  # noqa: F811 - fixtures
    sb, postgres = departments, postgres_server
    sb.configure(legacy_require_review=True)
    internal.set(hold=True)  # see Run.review_when_known
    store_url = fresh_pg_database(postgres.url)
    data = tmp_path / "data"  # one data folder: one data key for the sealed columns
    front_port = free_port()
    env = own_secrets(sandbox_environ(
        sb, inbound_port=front_port, data_dir=data, internal=internal,
        HUB_PAYMENT_REQUIRED_TYPES="300", HUB_COURT_POLL_SECONDS="2", HUB_DATA_DIR=str(data),
        HUB_BROKER_URL=rabbit_node.url, HUB_STORE_URL=store_url, HUB_BROKER_QUEUE_TYPE="quorum"))
    prefix = f"t{uuid.uuid4().hex[:10]}"

    def worker(name: str, port: int) -> HubProcess:
        return HubProcess(_quorum_config(tmp_path / name, prefix),
                          {**env, "HUB_LISTEN_PORT": str(port)})

    # The first worker takes the pollers' lease before the others start.
    poller = worker("w1", free_port()).start()
    wait(lambda: _holder(store_url) == poller.proc.pid, 30, "the first worker to take the pollers")
    front = worker("w2", front_port).start()
    third = worker("w3", free_port()).start()
    workers = [poller, front, third]
    from bdchub.core.config import load

    clients = load(front.folder / "config.yaml", environ=env)["inbound"]["clients"]
    run = Run(sb, front, clients)
    # The store as hub trace / hub dlq read it, from the shared data folder's key.
    run._reader = HubProcess(_quorum_config(tmp_path, prefix), env).reader()
    sb.legacy_set_callback(front.url + "/api/v1/inbound/legacy/stage-changes")
    sb.tax_set_callback(front.url + "/api/v1/inbound/tax/clearances")

    def under_way() -> list[str]:
        return [no for no in run.kinds if not _delivered(run, no)]

    try:
        # Cases of every kind come in waves, one before each blow, so each falls mid-flow.
        run.submit_every_kind(internal, plain=LEVELS, corrected=LEVELS[:2])
        wait(lambda: run.closed(internal) >= 2, 90, "the first cases to close")

        # 1. The pollers' worker killed mid-flow.
        poller.kill9()
        killed = time.monotonic()
        assert under_way(), "killed too late"
        others = {front.proc.pid, third.proc.pid}
        wait(lambda: _holder(store_url) in others, 3 * TAKE_OVER,
             "another worker to take the pollers")
        took = time.monotonic() - killed
        assert took <= TAKE_OVER, f"the pollers moved after {took:.1f} s"

        # 2. RabbitMQ stopped and started again while the next wave goes through.
        run.submit_every_kind(internal, plain=LEVELS, corrected=LEVELS[2:])
        assert under_way(), "stopped too late"
        rabbit_node.stop()
        rabbit_node.start()

        # 3. PostgreSQL stopped for 10 s while another wave goes through.
        run.submit_every_kind(internal, plain=LEVELS, corrected=LEVELS[:1])
        run.closed(internal)
        assert under_way(), "stopped too late"
        postgres.stop()
        time.sleep(PG_DOWN)
        postgres.start()

        _finish(run, internal, 150)
        wait(lambda: all(_delivered(run, no) for no in run.kinds), 90,
             "results and evaluation requests of every case")
        _expected_ends(run)
        _assert_once_in_effect(run)
        for hub in (front, third):
            assert hub.proc.poll() is None, hub.log()[-3000:]
    finally:
        sb.legacy_set_callback(None)
        sb.tax_set_callback(None)
        for hub in workers:
            hub.stop()
