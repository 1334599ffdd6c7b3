"""The ferry inbox watch (bridge.ferry_inbox): discs that arrive in a folder are
imported with every check of ``hub ferry import``, published when they pass and
quarantined when they fail. Each arrival is taken on the second look at it
(it must not change in between), so the tests look twice."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from bdchub.bridge.ferry.ledger import Ledger
from bdchub.bridge.ferry.testing import FerryRig, patch_file, unpack
from bdchub.bridge.ferry_inbox import IMPORTING, JOURNAL, PROCESSED, FerryWatch
from bdchub.bridge.policy import ContentPolicy
from bdchub.bridge.publish import (
    FERRY_EVENT_TYPES,
    FILE_RECEIVED,
    MESSAGE_RECEIVED,
    BridgePublisher,
)
from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError, RecoverableError
from tests.bridge.conftest import wait_for

from .conftest import ENVELOPE, PDF, SECRET, TENANT, CapturingHub

PDF_ON_DISC = "data/files/附件/宗地图.pdf"


class Site:
    """The receiving side: the watched folder and the ferry's own files."""

    def __init__(self, root: Path, rig: FerryRig, hub: CapturingHub):
        self.root = root
        self.arrivals = root / "arrivals"
        self.arrivals.mkdir(parents=True, exist_ok=True)
        self.rig = rig
        self.hub = hub

    def watch(self, **kw) -> FerryWatch:  # a new one is what a restarted hub makes
        # The rig's disc carries an envelope of its own type: allowed here, as a
        # config would list it (the allow-list's own tests say otherwise).
        kw.setdefault("event_types", (*FERRY_EVENT_TYPES, ENVELOPE["type"]))
        return FerryWatch(self.arrivals, verifiers=[self.rig.verifier],
                          publisher=BridgePublisher.for_hub(self.hub.hub),
                          inbox=self.root / "inbox", quarantine=self.root / "quarantine",
                          ledger=self.root / "ledger.sqlite3", audit=self.rig.audit,
                          policy=ContentPolicy(audit=self.rig.audit), **kw)

    def drop(self, image: Path, name: str | None = None) -> Path:
        return Path(shutil.copy(image, self.arrivals / (name or image.name)))

    def quarantined(self) -> list[Path]:
        folder = self.root / "quarantine"
        return sorted(folder.iterdir()) if folder.exists() else []

    def in_arrivals(self) -> list[str]:
        return sorted(p.name for p in self.arrivals.iterdir() if not p.name.startswith("."))

    def importing(self) -> list[str]:
        folder = self.arrivals / IMPORTING
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def site(tmp_path: Path, ferry: FerryRig, capturing: CapturingHub) -> Site:
    return Site(tmp_path / "site", ferry, capturing)


def image_of(rig: FerryRig) -> Path:
    (disc,) = rig.pack().discs
    return disc.image


def test_a_good_disc_is_imported_published_and_put_aside(site: Site):
    image = image_of(site.rig)
    site.drop(image)
    watch = site.watch()

    first = watch.scan()
    assert (first.waiting, first.delivered) == (1, 0) and site.hub.published() == []
    second = watch.scan()
    assert (second.delivered, second.messages, second.refused) == (1, 3, 0)

    got = {e.type: e for e in site.hub.published()}
    assert set(got) == {"review.result", MESSAGE_RECEIVED, FILE_RECEIVED}
    assert got["review.result"].id == ENVELOPE["id"]
    assert got[MESSAGE_RECEIVED].tenant == TENANT
    path = site.root / "inbox" / got[FILE_RECEIVED].body["path"]
    assert path.read_bytes() == PDF
    assert got[FILE_RECEIVED].body["kind"] == "pdf"  # the content policy ran
    # The disc is out of the way, kept as it came; nothing was quarantined.
    assert site.in_arrivals() == [] and site.importing() == []
    assert (site.arrivals / PROCESSED / image.name).read_bytes() == image.read_bytes()
    assert site.quarantined() == []


def test_a_tampered_disc_is_quarantined_with_its_reason_and_nothing_is_published(site: Site):
    image = image_of(site.rig)
    patch_file(image, PDF_ON_DISC, lambda data: data[:-1] + b"y")
    site.drop(image)
    watch = site.watch()
    watch.scan()
    result = watch.scan()

    assert (result.refused, result.delivered) == (1, 0)
    assert site.hub.published() == []
    (folder,) = site.quarantined()
    reason = json.loads((folder / "reason.json").read_text(encoding="utf-8"))
    assert reason["error"] == "IntegrityError_" and "checksum mismatch" in reason["reason"]
    assert (folder / image.name).read_bytes() == image.read_bytes()
    assert site.in_arrivals() == [] and site.importing() == []
    assert not (site.root / "inbox").exists() or list((site.root / "inbox").iterdir()) == []


def test_the_same_disc_dropped_again_is_quarantined_as_a_replay(site: Site):
    image = image_of(site.rig)
    watch = site.watch()
    site.drop(image)
    watch.scan()
    watch.scan()
    site.drop(image, "again.iso")
    watch.scan()
    result = watch.scan()

    assert result.refused == 1 and len(site.hub.published()) == 3
    (folder,) = site.quarantined()
    assert "replay" in json.loads((folder / "reason.json").read_text(encoding="utf-8"))["reason"]


def test_a_disc_still_being_copied_is_left_alone_until_it_stops_changing(site: Site):
    image = image_of(site.rig)
    data = image.read_bytes()
    arriving = site.arrivals / image.name
    arriving.write_bytes(data[: len(data) // 2])
    watch = site.watch()

    assert watch.scan().waiting == 1
    arriving.write_bytes(data)  # the copy goes on between the two looks
    assert watch.scan().waiting == 1
    assert site.hub.published() == [] and site.quarantined() == []
    assert watch.scan().delivered == 1


def test_an_unpacked_bag_is_imported_like_its_disc(site: Site):
    unpack(image_of(site.rig), site.arrivals / "disc-0001")
    watch = site.watch()
    watch.scan()
    result = watch.scan()

    assert (result.delivered, result.messages) == (1, 3)
    assert {e.id for e in site.hub.published()} >= {ENVELOPE["id"]}
    assert site.in_arrivals() == []


def test_an_unpacked_bag_that_was_changed_is_quarantined(site: Site):
    bag = unpack(image_of(site.rig), site.arrivals / "disc-0001")
    (bag / PDF_ON_DISC).write_bytes(PDF[:-1] + b"y")
    watch = site.watch()
    watch.scan()
    assert watch.scan().refused == 1
    assert site.hub.published() == [] and len(site.quarantined()) == 1


def test_an_unpacked_bag_holding_a_link_is_quarantined_without_following_it(site: Site):
    bag = unpack(image_of(site.rig), site.arrivals / "disc-0001")
    os.symlink("/etc/hostname", bag / "data" / "files" / "hostname")
    watch = site.watch()
    watch.scan()
    assert watch.scan().refused == 1

    (folder,) = site.quarantined()
    assert "link" in (folder / "REASON.txt").read_text(encoding="utf-8")
    assert (folder / "disc-0001" / "data" / "files" / "hostname").is_symlink()
    assert site.hub.published() == []


def test_a_disc_whose_publishing_failed_is_published_later_without_a_second_import(
        site: Site, monkeypatch: pytest.MonkeyPatch):
    site.drop(image_of(site.rig))
    watch = site.watch()
    publish = site.hub.hub.publish

    def broker_down(envelope):
        raise RecoverableError("broker unreachable")

    monkeypatch.setattr(watch.publisher, "publish", broker_down)
    watch.scan()
    failed = watch.scan()
    assert failed.delivered == 0 and "broker unreachable" in failed.error
    (name, journal) = site.importing()
    assert journal == name + JOURNAL  # the delivery is noted beside the claimed image

    monkeypatch.setattr(watch.publisher, "publish", publish)
    assert watch.scan().delivered == 1
    assert len(site.hub.published()) == 3 and site.quarantined() == []
    assert site.importing() == []


def test_a_hub_that_died_between_delivery_and_publishing_publishes_on_restart(
        site: Site, monkeypatch: pytest.MonkeyPatch):
    image = image_of(site.rig)
    site.drop(image)
    dying = site.watch()
    monkeypatch.setattr(dying.publisher, "publish",
                        lambda envelope: (_ for _ in ()).throw(RecoverableError("gone")))
    dying.scan()
    dying.scan()
    # The process died before it could note the delivery: only the ledger knows.
    for name in site.importing():
        if name.endswith(JOURNAL):
            (site.arrivals / IMPORTING / name).unlink()
    monkeypatch.undo()

    result = site.watch().scan()
    assert (result.delivered, result.messages, result.refused) == (1, 3, 0)
    assert site.quarantined() == [] and site.importing() == []
    ledger = Ledger(site.root / "ledger.sqlite3", readonly=True)
    try:
        assert ledger.sequences(site.rig.sender) == [1]
    finally:
        ledger.close()


def test_the_ferry_inbox_block_needs_a_folder_and_a_key():
    base = 'tenant: "320684"\nconnectors: {}\nroutes: {}\n'
    report = config_mod.check_text(
        base + "bridge:\n  ferry_inbox:\n    path: arrivals\n    key: [a.pub.pem, b.key]\n"
               "    poll_interval: 5\n    keep_processed: false\n", "config.yaml", {})
    assert report.config["bridge"]["ferry_inbox"]["key"] == ["a.pub.pem", "b.key"]
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(base + "bridge:\n  ferry_inbox: {path: arrivals}\n",
                              "config.yaml", {})
    assert "key" in str(err.value)


def test_the_shipped_config_watches_for_discs_only_when_the_bridge_is_switched_on():
    root = Path(__file__).resolve().parents[2]
    off = config_mod.load(root / "config.yaml", environ={})["bridge"]["ferry_inbox"]
    assert off["enabled"] is False and off["key"] == "/etc/bdc-hub/ferry.pub.pem"
    on = config_mod.load(root / "config.yaml", environ={
        "HUB_BRIDGE_ENABLED": "true", "HUB_FERRY_ARRIVALS": "/srv/arrivals"})
    block = on["bridge"]["ferry_inbox"]
    assert block["enabled"] is True and block["path"] == "/srv/arrivals"
    assert all(on["routes"][r]["enabled"] is True
               for r in ("spatial_materials", "review_results", "review_to_legacy"))


def test_the_ferry_inbox_runs_under_the_hub_service(tmp_path: Path, ferry: FerryRig,
                                                    monkeypatch: pytest.MonkeyPatch):
    from bdchub.app.service import HubService

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "ferry.key").write_bytes(SECRET)
    config = {"tenant": TENANT, "__dir__": str(tmp_path), "inbound": {"enabled": False},
              "bridge": {"ferry_inbox": {"path": "arrivals", "key": "ferry.key",
                                         "poll_interval": 0.05,
                                         "event_types": [*FERRY_EVENT_TYPES,
                                                         ENVELOPE["type"]]}}}
    capturing = CapturingHub(config)
    svc = HubService(config, capturing.hub)
    svc.start()
    try:
        image = image_of(ferry)
        shutil.copy(image, tmp_path / "arrivals" / image.name)
        assert wait_for(lambda: len(capturing.published()) == 3, timeout=20)
    finally:
        svc.stop(timeout=10)
    delivered = list((tmp_path / "data" / "ferry" / "inbox").iterdir())
    assert len(delivered) == 1
    pdf = delivered[0] / "data" / "files" / "附件" / "宗地图.pdf"
    assert hashlib.sha256(pdf.read_bytes()).hexdigest() == hashlib.sha256(PDF).hexdigest()
    # A clean stop ends the watch's audit log with its closing checkpoint.
    records = [json.loads(line) for line in
               (tmp_path / "data" / "ferry" / "audit.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "audit.closed"


def test_a_disc_carrying_a_hub_event_is_quarantined_and_nothing_of_it_is_published(
        site: Site):
    # A signed disc whose message is an envelope of the hub's own events (a refusal,
    # a register entry) would publish it past the ``owns`` rule of the inbound API.
    forged = {**ENVELOPE, "id": "0190a0b0-0000-7000-8000-000000000009",
              "type": "registration.recorded"}
    site.rig.write("results/forged.json", json.dumps(forged, ensure_ascii=False))
    site.drop(image_of(site.rig))
    watch = site.watch(event_types=FERRY_EVENT_TYPES + ("review.result",))
    watch.scan()
    result = watch.scan()

    assert (result.refused, result.delivered) == (1, 0)
    assert site.hub.published() == []
    (folder,) = site.quarantined()
    reason = json.loads((folder / "reason.json").read_text(encoding="utf-8"))
    assert reason["error"] == "PolicyError"
    assert "registration.recorded" in reason["reason"] and "forged.json" in reason["reason"]
    refused = [r for r in site.rig.audit.records() if r["event"] == "refused"]
    assert refused and "registration.recorded" in refused[-1]["fields"]["reason"]
    assert not (site.root / "inbox").exists() or list((site.root / "inbox").iterdir()) == []


def test_by_default_a_disc_may_carry_only_plain_messages_and_files(site: Site):
    site.drop(image_of(site.rig))  # its envelope is of type review.result
    watch = site.watch(event_types=FERRY_EVENT_TYPES)
    watch.scan()
    assert watch.scan().refused == 1 and site.hub.published() == []

    plain = FerryRig(site.root / "plain")
    plain.signer = plain.verifier = site.rig.verifier
    plain.write("results/review.json", json.dumps(
        {"kind": "review_result", "business_no": "YWH2024000123"}, ensure_ascii=False))
    plain.write("附件/宗地图.pdf", PDF)
    site.drop(image_of(plain), "plain.iso")
    watch.scan()
    assert watch.scan().delivered == 1
    assert {e.type for e in site.hub.published()} == {MESSAGE_RECEIVED, FILE_RECEIVED}


def test_the_ferry_inbox_takes_the_event_types_its_block_lists():
    base = 'tenant: "320684"\nconnectors: {}\nroutes: {}\n'
    report = config_mod.check_text(
        base + "bridge:\n  ferry_inbox:\n    path: arrivals\n    key: a.pub.pem\n"
               "    event_types: [bridge.message_received]\n", "config.yaml", {})
    assert report.config["bridge"]["ferry_inbox"]["event_types"] == ["bridge.message_received"]
    with pytest.raises(ConfigError):
        config_mod.check_text(base + "bridge:\n  ferry_inbox: {path: a, key: k, "
                                     "event_types: []}\n", "config.yaml", {})
    root = Path(__file__).resolve().parents[2]
    shipped = config_mod.load(root / "config.yaml", environ={})["bridge"]["ferry_inbox"]
    assert shipped["event_types"] == list(FERRY_EVENT_TYPES) == [
        "bridge.message_received", "bridge.file_received"]


def test_a_name_starting_with_a_dot_is_never_taken(site: Site):
    image = image_of(site.rig)
    hidden = site.drop(image, ".copying.iso")
    watch = site.watch()
    watch.scan()
    assert watch.scan().waiting == 0 and site.hub.published() == []
    hidden.rename(site.arrivals / image.name)  # handed over in one rename
    watch.scan()
    assert watch.scan().delivered == 1


def test_without_keep_processed_an_imported_disc_is_deleted(site: Site):
    site.drop(image_of(site.rig))
    watch = site.watch(keep_processed=False)
    watch.scan()
    assert watch.scan().delivered == 1
    assert not (site.arrivals / PROCESSED).exists() and site.in_arrivals() == []
