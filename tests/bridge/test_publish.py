"""What crosses the bridge becomes messages on the receiving hub (bridge.publish)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

import bdchub.bridge.publish as bridge_publish
from bdchub.bridge.cli.diode import bridge_group
from bdchub.bridge.cli.ferry import ferry_group
from bdchub.bridge.diode.inbound import META, PROCESSED, deliver
from bdchub.bridge.ferry import spec
from bdchub.bridge.ferry.sign import HmacKey
from bdchub.bridge.ferry.testing import FerryRig
from bdchub.bridge.policy import ContentPolicy
from bdchub.bridge.publish import (
    FILE_RECEIVED,
    H_VIA,
    MESSAGE_RECEIVED,
    PUBLISHED,
    BridgePublisher,
    InboxPublisher,
    ferry_envelopes,
    read_delivered_bag,
)
from bdchub.core.envelope import Envelope, id_time
from bdchub.core.errors import BridgeError, RecoverableError
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub

TENANT = "320684"
ENVELOPE = {"id": "0190a0b0-0000-7000-8000-000000000001", "type": "review.result",
            "tenant": TENANT, "business_no": "YWH2024000123",
            "body": {"result": "审核通过", "business_no": "YWH2024000123"}}
PDF = b"%PDF-1.7\n" + b"x" * 5000
SECRET = b"k" * 64


def _hub() -> Hub:
    return Hub.from_config({"tenant": TENANT, "connectors": {}, "routes": {}},
                           broker="memory://", store="sqlite://",
                           metrics=MetricsMiddleware(CollectorRegistry()))


@pytest.fixture
def hub():
    h = _hub()
    h.declare()
    h.broker.declare_queue("test.capture", ["#"])
    yield h
    h.close()


def published(hub: Hub) -> list[Envelope]:
    return [Envelope.from_json(b) for b in hub.broker.peek("test.capture")]


@pytest.fixture
def ferry(tmp_path: Path) -> FerryRig:
    rig = FerryRig(tmp_path)
    rig.signer = rig.verifier = HmacKey(SECRET)
    rig.write("results/review.json", json.dumps(ENVELOPE, ensure_ascii=False))
    rig.write("results/plain.json", '{"business_no": "B2", "status": "ok"}')
    rig.write("附件/宗地图.pdf", PDF)
    return rig


# -- ferry -------------------------------------------------------------------------

def test_imported_ferry_batch_is_published_as_envelopes_and_file_messages(ferry, hub):
    importer = ferry.importer(policy=ContentPolicy(audit=ferry.audit))
    report = importer.import_images([d.image for d in ferry.pack().discs])
    assert report.ok
    sent = BridgePublisher.for_hub(hub).publish_import(report, ferry.inbox)

    got = {e.type: e for e in published(hub)}
    assert len(sent) == 3 and set(got) == {"review.result", MESSAGE_RECEIVED, FILE_RECEIVED}
    # an envelope crosses as itself: same id, type, tenant and body
    review = got["review.result"]
    assert review.id == ENVELOPE["id"] and review.body == ENVELOPE["body"]
    assert review.headers[H_VIA] == "ferry"
    # a plain message is wrapped, the config's tenant applies
    plain = got[MESSAGE_RECEIVED]
    assert plain.body == {"business_no": "B2", "status": "ok"}
    assert plain.tenant == TENANT and plain.business_no == "B2"
    # a file says where it lies in the inbox and what it is
    body = got[FILE_RECEIVED].body
    batch = report.delivered[0]
    assert body["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert body["path"] == f"{batch.delivered_to.name}/data/files/附件/宗地图.pdf"
    assert (ferry.inbox / body["path"]).read_bytes() == PDF
    assert (body["name"], body["size"], body["kind"]) == ("宗地图.pdf", len(PDF), "pdf")
    assert (body["batch_id"], body["sender"]) == (batch.batch_id, ferry.sender)


def test_publishing_the_same_items_again_gives_the_same_ids(ferry):
    report = ferry.importer().import_images([d.image for d in ferry.pack().discs])
    first = [e.id for e in ferry_envelopes(report, inbox=ferry.inbox, tenant=TENANT)]
    second = [e.id for e in ferry_envelopes(report, inbox=ferry.inbox, tenant=TENANT)]
    reread = read_delivered_bag(report.delivered[0].delivered_to)
    third = [e.id for e in ferry_envelopes([reread], inbox=ferry.inbox, tenant=TENANT)]
    assert first == second and sorted(first) == sorted(third)
    assert len(set(first)) == 3
    # derived ids still sort by time: they carry the batch's creation millisecond
    created = spec.parse_time(report.delivered[0].created).timestamp()
    assert ENVELOPE["id"] in first
    assert {id_time(i) for i in first if i != ENVELOPE["id"]} == {created}


def _import(site: Path, images: list[Path], key: Path, *extra: str):
    return CliRunner().invoke(
        ferry_group, ["import", *map(str, images), "--key", str(key), "--inbox",
                      str(site / "inbox"), "--quarantine", str(site / "q"), "--ledger",
                      str(site / "ledger.db"), *extra],
        env={"HUB_FERRY_AUDIT": str(site / "audit.jsonl")})


def _allow_review_results(hub: Hub) -> None:
    """The rig's disc carries a review.result envelope: this hub's config allows it."""
    hub.config["bridge"] = {"ferry_inbox": {"event_types": [
        "review.result", MESSAGE_RECEIVED, FILE_RECEIVED]}}


def test_ferry_import_publish_puts_messages_on_the_hub_and_a_replay_publishes_nothing(
        ferry, hub, tmp_path, monkeypatch):
    _allow_review_results(hub)
    opened = []
    monkeypatch.setattr(hub, "close", lambda: None)
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: opened.append(path) or hub)
    images = [d.image for d in ferry.pack().discs]
    key = _key_file(tmp_path)

    result = _import(tmp_path, images, key, "--publish", "-c", "hub.yaml", "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert opened == ["hub.yaml"]
    assert json.loads(result.stdout)["batches"][0]["status"] == "delivered"
    assert "3" in result.stderr
    assert sorted(e.type for e in published(hub)) == sorted(
        ["review.result", MESSAGE_RECEIVED, FILE_RECEIVED])

    again = _import(tmp_path, images, key, "--publish", "-c", "hub.yaml")
    assert isinstance(again.exception, BridgeError) and "replay" in again.output
    assert len(published(hub)) == 3  # the ledger refused the disc: nothing new


def test_ferry_import_without_publish_opens_no_hub(ferry, tmp_path, monkeypatch):
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: pytest.fail("hub opened"))
    result = _import(tmp_path, [d.image for d in ferry.pack().discs], _key_file(tmp_path))
    assert result.exit_code == 0, result.output


def test_failed_publish_after_import_names_the_republish_command(ferry, hub, tmp_path,
                                                                 monkeypatch):
    def down(env: Envelope) -> None:
        raise RecoverableError("broker down")

    _allow_review_results(hub)
    monkeypatch.setattr(hub, "publish", down)
    monkeypatch.setattr(hub, "close", lambda: None)
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: hub)
    result = _import(tmp_path, [d.image for d in ferry.pack().discs], _key_file(tmp_path),
                     "--publish")
    assert isinstance(result.exception, BridgeError)
    assert "hub ferry publish" in str(result.exception)
    batch = next((tmp_path / "inbox").iterdir())

    monkeypatch.undo()
    monkeypatch.setattr(hub, "close", lambda: None)
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: hub)
    again = CliRunner().invoke(ferry_group, ["publish", str(batch), "--inbox",
                                             str(tmp_path / "inbox")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert len(published(hub)) == 3


def test_ferry_import_publish_by_hand_refuses_a_disc_carrying_a_type_the_config_does_not_allow(
        ferry, hub, tmp_path, monkeypatch):
    # The rig's disc holds a review.result envelope; the default allow-list (what
    # flow g takes) names only bridge.message_received and bridge.file_received.
    monkeypatch.setattr(hub, "close", lambda: None)
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: hub)
    result = _import(tmp_path, [d.image for d in ferry.pack().discs], _key_file(tmp_path),
                     "--publish", "--json")
    assert result.exit_code != 0
    assert json.loads(result.stdout)["batches"][0]["status"] == "refused"
    assert "review.result" in result.output
    assert published(hub) == []
    assert list((tmp_path / "q").iterdir()), "the disc is kept in quarantine"
    inbox = tmp_path / "inbox"
    assert not inbox.exists() or not any(inbox.iterdir()), "nothing delivered"


def test_ferry_publish_of_a_batch_in_the_inbox_publishes_nothing_when_one_type_is_not_allowed(
        ferry, hub, tmp_path, monkeypatch):
    delivered = _import(tmp_path, [d.image for d in ferry.pack().discs], _key_file(tmp_path))
    assert delivered.exit_code == 0, delivered.output
    batch = next((tmp_path / "inbox").iterdir())
    monkeypatch.setattr(hub, "close", lambda: None)
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: hub)
    refused = CliRunner().invoke(ferry_group, ["publish", str(batch), "--inbox",
                                               str(tmp_path / "inbox")])
    assert refused.exit_code != 0 and "review.result" in str(refused.exception)
    assert published(hub) == []

    _allow_review_results(hub)
    again = CliRunner().invoke(ferry_group, ["publish", str(batch), "--inbox",
                                             str(tmp_path / "inbox")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert len(published(hub)) == 3


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "ferry.key"
    path.write_bytes(SECRET)
    return path


# -- diode -------------------------------------------------------------------------

def _deliver(tmp_path: Path, inbox: Path, name: str, data: bytes, kind: str = "file",
             object_id: int = 1) -> Path:
    src = tmp_path / "rx" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(data)
    meta = {"ref": f"{0xAB:016x}/{object_id}", "name": name, "kind": kind, "size": len(data),
            "hash": "sha256", "digest": hashlib.sha256(data).hexdigest(),
            "sender": "extranet-1", "created": 1_750_000_000.0, "received": time.time(),
            "policy_kind": "json" if kind == "batch" else "pdf"}
    return deliver(src, inbox, name, meta, tag=f"{0xAB:016x}-{object_id}")


def test_watcher_publishes_a_delivered_file_and_acknowledges_it_after(tmp_path, hub):
    inbox = tmp_path / "inbox"
    _deliver(tmp_path, inbox, "宗地图.pdf", PDF)
    batch = [ENVELOPE, {"business_no": "B3"}]
    _deliver(tmp_path, inbox, "batch-1.json", json.dumps(batch).encode(), kind="batch",
             object_id=2)

    result = InboxPublisher(inbox, BridgePublisher.for_hub(hub)).publish_pending()
    assert (result.objects, result.messages, result.error) == (2, 3, None)
    got = published(hub)
    assert [e.type for e in got] == [FILE_RECEIVED, "review.result", MESSAGE_RECEIVED]
    body = got[0].body
    assert body["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert body["path"].startswith(PUBLISHED + "/")
    assert (inbox / body["path"]).read_bytes() == PDF  # still there after the ack
    assert (body["session"], body["sender"], body["kind"]) == (f"{0xAB:016x}/1", "extranet-1",
                                                               "pdf")
    assert got[1].id == ENVELOPE["id"]
    # acknowledged: out of the inbox, kept under .processed
    assert not [p for p in inbox.iterdir() if not p.name.startswith(".")]
    assert not list((inbox / META).iterdir())
    assert len(list((inbox / PROCESSED).iterdir())) == 2


def test_failed_publish_leaves_the_object_for_the_next_pass_with_the_same_ids(tmp_path, hub):
    inbox = tmp_path / "inbox"
    delivered = _deliver(tmp_path, inbox, "宗地图.pdf", PDF)
    attempts: list[Envelope] = []

    def flaky(env: Envelope) -> None:
        attempts.append(env)
        if len(attempts) == 1:
            raise RecoverableError("broker down")
        hub.publish(env)

    publisher = InboxPublisher(inbox, BridgePublisher(flaky, TENANT))
    first = publisher.publish_pending()
    assert first.objects == 0 and "broker down" in first.error and first.left == ["宗地图.pdf"]
    assert delivered.exists() and published(hub) == []

    second = publisher.publish_pending()
    assert (second.objects, second.error) == (1, None)
    assert not delivered.exists()
    assert attempts[0].id == attempts[1].id == published(hub)[0].id


def test_a_batch_that_is_not_json_objects_is_handed_on_as_a_file(tmp_path, hub):
    inbox = tmp_path / "inbox"
    _deliver(tmp_path, inbox, "batch-x.json", b"[1, 2]", kind="batch")
    result = InboxPublisher(inbox, BridgePublisher.for_hub(hub)).publish_pending()
    assert result.objects == 1
    assert [e.type for e in published(hub)] == [FILE_RECEIVED]


def test_bridge_publish_command_drains_the_inbox_once(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(hub, "close", lambda: None)
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: hub)
    inbox = tmp_path / "inbox"
    _deliver(tmp_path, inbox, "宗地图.pdf", PDF)
    result = CliRunner().invoke(bridge_group, ["publish", "--inbox", str(inbox)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert [e.type for e in published(hub)] == [FILE_RECEIVED]


def test_publishing_needs_the_hubs_tenant():
    with pytest.raises(BridgeError):
        BridgePublisher(lambda env: None, "")


def test_receiver_to_hub_over_loopback(rig, make_file, hub):
    src = make_file("界址点.pdf", 100_000)
    run = rig.start_receiver(max_objects=1)
    rig.send_files([src])
    run.wait()
    result = InboxPublisher(rig.inbox, BridgePublisher.for_hub(hub)).publish_pending()
    assert result.objects == 1
    (env,) = published(hub)
    assert env.type == FILE_RECEIVED and env.body["name"] == "界址点.pdf"
    assert env.body["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert (rig.inbox / env.body["path"]).read_bytes() == src.read_bytes()


def test_bridge_receive_publish_publishes_what_it_delivers(tmp_path, hub, monkeypatch,
                                                           key_file, diode_key, make_file):
    import socket
    import threading

    from bdchub.bridge.diode.sender import DiodeSender
    from bdchub.bridge.diode.settings import DiodeSettings

    monkeypatch.setattr(hub, "close", lambda: None)
    monkeypatch.setattr(bridge_publish, "open_hub", lambda path: hub)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = tmp_path / "inbox"
    out: list = []
    receiving = threading.Thread(target=lambda: out.append(CliRunner().invoke(bridge_group, [
        "receive", "--listen", f"127.0.0.1:{port}", "--inbox", str(inbox), "--key-file",
        str(key_file), "--audit-log", str(tmp_path / "audit.jsonl"), "--max-objects", "1",
        "--timeout", "20", "--publish", "-c", "hub.yaml"])), daemon=True)
    receiving.start()
    src = make_file("宗地图.pdf", 50_000)
    # The receiver may not be bound yet: send again until it has the object (it
    # delivers an object once, however often it arrives), bounded.
    with DiodeSender(("127.0.0.1", port), diode_key, DiodeSettings(rate_bps=80e6)) as tx:
        obj = tx.prepare_file(src)
        try:
            for _attempt in range(100):
                if not receiving.is_alive():
                    break
                tx.send([obj])
                receiving.join(0.2)
        finally:
            obj.close()
    receiving.join(30)
    assert not receiving.is_alive()
    result = out[0]
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "1" in result.output
    (env,) = published(hub)
    assert env.type == FILE_RECEIVED and env.body["name"] == "宗地图.pdf"
    assert not (inbox / "宗地图.pdf").exists()


def test_config_bridge_block_names_the_diode_inbox_and_refuses_unknown_keys():
    from bdchub.core import config
    from bdchub.core.errors import ConfigError

    base = 'tenant: "320684"\nconnectors: {}\nroutes: {}\n'
    report = config.check_text(base + "bridge:\n  diode_inbox: {path: var/inbox, "
                               "poll_interval: 0.5}\n", "config.yaml", {})
    assert report.config["bridge"]["diode_inbox"]["path"] == "var/inbox"
    with pytest.raises(ConfigError) as err:
        config.check_text(base + "bridge:\n  diode_inbox: {pth: var/inbox}\n", "config.yaml", {})
    assert "path" in str(err.value)


def test_hub_run_watch_publishes_the_configured_diode_inbox(tmp_path, hub):
    from bdchub.bridge.publish import InboxWatch

    from .conftest import wait_for

    cfg = {"__dir__": str(tmp_path), "bridge": {"diode_inbox": {"path": "inbox",
                                                                  "poll_interval": 0.05}}}
    watch = InboxWatch.from_config(cfg, hub)
    assert watch is not None and InboxWatch.from_config({}, hub) is None
    watch.start()
    try:
        _deliver(tmp_path, tmp_path / "inbox", "宗地图.pdf", PDF)
        assert wait_for(lambda: len(published(hub)) == 1, timeout=10)
    finally:
        watch.stop()
    assert published(hub)[0].type == FILE_RECEIVED


def test_a_publishing_bridge_command_makes_no_data_key(tmp_path, monkeypatch):
    # What it sealed with a key of its own the running hub could never open.
    from bdchub.core.errors import ConfigError

    monkeypatch.delenv("BDCHUB_DATA_KEY", raising=False)
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({
        "tenant": "320684", "connectors": {}, "routes": {},
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"}}))
    with pytest.raises(ConfigError, match="BDCHUB_DATA_KEY"):
        bridge_publish.open_hub(config)
    assert not list(tmp_path.rglob("*.key"))
