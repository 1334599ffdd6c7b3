"""One lifecycle for the running hub: workers, then the inputs in order; the reverse
to stop; kill that never raises (app.service.HubService, app.inputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdchub.app.inputs import Background, InboundServer, Input
from bdchub.app.service import HubService
from bdchub.core.errors import ConfigError

from .conftest import SECRET, CapturingHub


class Part:
    """A worker set or an input that writes what happens to it into a shared log."""

    def __init__(self, name: str, log: list[str], *, fail_start: bool = False,
                 fail_stop: bool = False, fail_kill: bool = False):
        self.name = name
        self.log = log
        self.fail_start, self.fail_stop, self.fail_kill = fail_start, fail_stop, fail_kill

    def start(self) -> None:
        if self.fail_start:
            self.log.append(f"{self.name} failed to start")
            raise ConfigError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    def stop(self, timeout: float = 10.0) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} would not stop")

    def kill(self) -> None:
        self.log.append(f"kill {self.name}")
        if self.fail_kill:
            raise RuntimeError(f"{self.name} would not die")


def service(log: list[str], *inputs: Part, workers: Part | None = None) -> HubService:
    return HubService({"tenant": "320684"}, workers or Part("workers", log),
                      inputs=list(inputs))


def test_workers_start_first_then_the_inputs_in_order_and_stop_in_reverse():
    log: list[str] = []
    svc = service(log, Part("inbound", log), Part("pollers", log), Part("ferry", log))
    svc.start()
    assert log == ["start workers", "start inbound", "start pollers", "start ferry"]
    log.clear()
    svc.stop(timeout=5)
    assert log == ["stop ferry", "stop pollers", "stop inbound", "stop workers"]


def test_an_input_that_cannot_start_stops_those_started_before_it_and_raises():
    log: list[str] = []
    svc = service(log, Part("inbound", log), Part("pollers", log),
                  Part("ferry", log, fail_start=True), Part("diode", log))
    with pytest.raises(ConfigError, match="ferry cannot start"):
        svc.start()
    assert log == ["start workers", "start inbound", "start pollers", "ferry failed to start",
                   "stop pollers", "stop inbound", "stop workers"]


def test_stop_goes_on_past_an_input_that_fails_to_stop():
    log: list[str] = []
    svc = service(log, Part("inbound", log), Part("pollers", log, fail_stop=True))
    svc.start()
    log.clear()
    svc.stop()
    assert log == ["stop pollers", "stop inbound", "stop workers"]


def test_kill_never_raises_even_when_every_input_and_the_workers_fail_to_die():
    log: list[str] = []
    svc = service(log, Part("inbound", log, fail_kill=True), Part("pollers", log, fail_kill=True),
                  workers=Part("workers", log, fail_kill=True))
    svc.start()
    log.clear()
    svc.kill()
    assert log == ["kill pollers", "kill inbound", "kill workers"]


def test_inputs_that_never_started_are_neither_stopped_nor_killed():
    log: list[str] = []
    svc = service(log, Part("inbound", log))
    svc.kill()
    svc.stop()
    assert log == ["kill workers", "stop workers"]


class Unkillable:
    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None:
        raise RuntimeError("stuck")


def test_the_adapters_follow_the_protocol_and_their_kill_never_raises():
    background = Background("pollers", Unkillable())
    assert isinstance(background, Input)
    background.kill()

    class BrokenServer:
        def kill(self) -> None:
            raise OSError("socket already gone")

    inbound = InboundServer(hub=None, config={}, host="127.0.0.1", port=0, threads=1)
    assert isinstance(inbound, Input)
    inbound.server = BrokenServer()
    inbound.kill()
    assert inbound.server is None


def test_the_config_gives_metrics_inbound_pollers_diode_inbox_and_ferry_inbox_in_that_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "ferry.key").write_bytes(SECRET)
    config = {
        "tenant": "320684", "__dir__": str(tmp_path),
        "connectors": {"court": {"type": "fake", "responses": {"PullJudgments": {}}}},
        "pollers": {"court_orders": {"connector": "court", "operation": "PullJudgments",
                                     "items": "Order", "publish": "court.order_received"}},
        "bridge": {"diode_inbox": {"path": "diode-inbox"},
                   "ferry_inbox": {"path": "arrivals", "key": "ferry.key"}},
    }
    capturing = CapturingHub(config)
    try:
        full = HubService(config, capturing.hub)
        # The hub's state is in the scrapes (app.metrics) before the server answers one.
        assert [i.name for i in full.inputs] == [
            "metrics", "inbound", "pollers", "bridge.diode_inbox", "bridge.ferry_inbox"]
        assert [(w.name, w.path) for w in full.watches()] == [
            ("bridge.diode_inbox", tmp_path / "diode-inbox"),
            ("bridge.ferry_inbox", tmp_path / "arrivals")]
        # The ferry's own files default to the hub's data folder (a volume in the image).
        ferry = full.inputs[-1].target
        assert (ferry.inbox, ferry.quarantine, ferry.ledger, ferry.audit.path) == (
            tmp_path / "data" / "ferry" / "inbox", tmp_path / "data" / "ferry" / "quarantine",
            tmp_path / "data" / "ferry" / "ledger.sqlite3",
            tmp_path / "data" / "ferry" / "audit.jsonl")
        # Another worker process of the same deployment: no singletons, no web server;
        # its state in the scrapes, without a metrics listener of its own.
        worker = HubService(config, capturing.hub, web=False, pollers=False)
        assert [i.name for i in worker.inputs] == ["metrics"] and worker.pollers is None
        assert worker.inputs[0].listener is None
    finally:
        capturing.hub.close()
