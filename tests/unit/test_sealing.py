"""Personal data at rest: SM4-GCM sealed store columns (core.sealing, core.store.Sealed)."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError, StoreError
from bdchub.core.sealing import KEY_ENV, PREFIX, Sealer, load_sealer
from bdchub.core.store import Finish, Store

KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
ID_NUMBER = "110105199001011234"
NAME = "张三丰"


def test_sealed_text_opens_to_what_went_in_and_hides_it():
    sealer = Sealer(KEY)
    sealed = sealer.seal("dead_letters.envelope", f'{{"name": "{NAME}"}}')
    assert sealed.startswith(PREFIX) and NAME not in sealed
    assert sealer.open("dead_letters.envelope", sealed) == f'{{"name": "{NAME}"}}'
    assert sealer.seal("c", "same") != sealer.seal("c", "same")  # a fresh nonce each time


def test_an_altered_a_moved_or_a_foreign_value_does_not_open():
    sealer = Sealer(KEY)
    sealed = sealer.seal("parked.envelope", ID_NUMBER)
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(StoreError, match="altered|damaged"):
        sealer.open("parked.envelope", flipped)
    with pytest.raises(StoreError, match="altered"):
        sealer.open("dead_letters.envelope", sealed)  # the column is bound in
    with pytest.raises(StoreError, match="another data key"):
        Sealer(os.urandom(16)).open("parked.envelope", sealed)
    with pytest.raises(StoreError, match="damaged"):
        sealer.open("parked.envelope", PREFIX + "not base64!")


def test_text_from_before_sealing_reads_as_it_is():
    assert Sealer(KEY).open("hops.detail", "plain old detail") == "plain old detail"


def test_a_key_that_is_not_128_bits_is_a_config_error(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="128 bits"):
        Sealer(b"short")
    monkeypatch.setenv(KEY_ENV, "abc")
    with pytest.raises(ConfigError, match=KEY_ENV):
        load_sealer({}, tmp_path)


def test_the_key_comes_from_the_environment_then_the_key_file_then_a_made_one(monkeypatch,
                                                                              tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    made = load_sealer({}, tmp_path / "data")
    key_file = tmp_path / "data" / "store.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_sealer({}, tmp_path / "data").key_id == made.key_id  # kept, not remade

    (tmp_path / "ops.key").write_text(KEY.hex() + "\n", encoding="ascii")
    configured = load_sealer({"__dir__": str(tmp_path), "store": {"key_file": "ops.key"}},
                             tmp_path / "data")
    assert configured.key_id == Sealer(KEY).key_id

    monkeypatch.setenv(KEY_ENV, "ff" * 16)
    assert load_sealer({"store": {"key_file": "ops.key"}}, tmp_path).key_id == \
        Sealer(bytes.fromhex("ff" * 16)).key_id
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_sealer({"__dir__": str(tmp_path), "store": {"key_file": "missing.key"}}, tmp_path)


def _dead_letter(store: Store) -> None:
    env = Envelope(type="application.submitted", tenant="320684", business_no="B-1",
                   body={"applicants": [{"name": NAME, "id_number": ID_NUMBER}]})
    store.finish(Finish(
        message_id=env.id, route="r", outcome="dead_letter", tenant="320684",
        business_no="B-1", type=env.type, record_processed=True, at=1.0,
        dead_letter={"id": "dl-1", "message_id": env.id, "origin_id": env.id, "route": "r",
                     "step": "validate", "type": env.type, "tenant": "320684",
                     "business_no": "B-1", "reason": "schema",
                     "last_error": f"id_number '{ID_NUMBER}' is not valid",
                     "envelope": env.to_json().decode()}))


def test_a_dead_letter_is_sealed_in_the_database_file_and_read_back_in_clear(tmp_path):
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}", sealer=Sealer(KEY), group_commit=False)
    try:
        _dead_letter(store)
        row = store.dead_letter("dl-1")
        assert NAME in row["envelope"] and ID_NUMBER in row["last_error"]
        assert json.loads(row["envelope"])["body"]["applicants"][0]["id_number"] == ID_NUMBER
    finally:
        store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the file, WAL included
    assert ID_NUMBER.encode() not in raw and NAME.encode() not in raw


def test_the_same_store_without_its_key_does_not_hand_out_sealed_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url, sealer=Sealer(KEY), group_commit=False)
    _dead_letter(store)
    store.close()
    other = Store(url, sealer=Sealer(os.urandom(16)))
    try:
        with pytest.raises(StoreError, match="another data key"):
            other.dead_letter("dl-1")
    finally:
        other.close()


def test_queued_messages_are_sealed_on_disk_and_handed_over_in_clear(tmp_path):
    from bdchub.core.broker import KombuBroker

    db = tmp_path / "broker.db"
    env = Envelope(type="application.submitted", tenant="320684", business_no="B-2",
                   body={"applicants": [{"name": NAME, "id_number": ID_NUMBER}]})
    broker = KombuBroker(f"sqla+sqlite:///{db}", sealer=Sealer(KEY), polling_interval=0.01)
    got: list[bytes] = []
    done = threading.Event()
    try:
        broker.declare_queue("q", ["application.#"])
        broker.publish(env.to_json(), "application.submitted", message_id=env.id)
        assert ID_NUMBER.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())

        def handle(delivery):
            got.append(delivery.body)
            delivery.ack()
            done.set()

        broker.consume({"q": handle}, {"q": 1})
        assert done.wait(10)
    finally:
        broker.close()
    assert Envelope.from_json(got[0]).body == env.body


def test_a_message_sealed_with_another_key_is_held_not_handed_over(tmp_path):
    from bdchub.core.broker import KombuBroker

    db = tmp_path / "broker.db"
    writer = KombuBroker(f"sqla+sqlite:///{db}", sealer=Sealer(KEY))
    writer.declare_queue("q", ["a.#"])
    writer.publish(b'{"x": 1}', "a.b", message_id="m1")
    writer.close()
    reader = KombuBroker(f"sqla+sqlite:///{db}", sealer=Sealer(os.urandom(16)),
                         polling_interval=0.01)
    handed = threading.Event()
    try:
        reader.declare_queue("q", ["a.#"])
        reader.consume({"q": lambda d: handed.set()}, {"q": 1})
        assert not handed.wait(1.0)
        assert reader.in_flight == 0
    finally:
        reader.close()


def test_a_hub_keeps_its_data_key_in_its_data_folder_and_seals_with_it(monkeypatch, tmp_path):
    from bdchub.routes.runtime import Hub

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "hubdata"))
    hub = Hub.from_config({"tenant": "320684", "connectors": {}, "routes": {}},
                          broker="memory://")
    try:
        made = (tmp_path / "hubdata" / "store.key").read_text(encoding="ascii").strip()
        sealer = hub.store.engine.dialect.bdchub_sealer
        assert sealer.key_id == Sealer(bytes.fromhex(made)).key_id
        assert (tmp_path / "hubdata" / "store.db").exists()  # the default store, beside it
    finally:
        hub.close()


def test_keys_derived_from_the_data_key_are_apart_from_it_and_from_each_other():
    from bdchub.core.sealing import AUDIT_INFO, LOOKUP_INFO

    sealer = Sealer(KEY)
    lookup, audit = sealer.derive(LOOKUP_INFO), sealer.derive(AUDIT_INFO)
    assert len({lookup, audit, KEY}) == 3 and KEY not in lookup and KEY not in audit
    assert Sealer(KEY).derive(LOOKUP_INFO) == lookup  # every process derives the same
    assert Sealer(os.urandom(16)).derive(LOOKUP_INFO) != lookup


def test_without_create_no_key_is_made_and_every_place_looked_at_is_named(monkeypatch,
                                                                          tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError) as refused:
        load_sealer({}, tmp_path / "data", create=False)
    for place in (KEY_ENV, "store.key_file", "HUB_DATA_DIR", str(tmp_path / "data" / "store.key")):
        assert place in str(refused.value)
    assert refused.value.exit_code == 2
    assert not (tmp_path / "data").exists()
    made = load_sealer({}, tmp_path / "data")
    assert load_sealer({}, tmp_path / "data", create=False).key_id == made.key_id


def test_the_audit_key_comes_from_its_variable_else_from_the_data_key(monkeypatch, tmp_path):
    from bdchub.core.sealing import AUDIT_INFO, AUDIT_KEY_ENV, load_audit_key

    monkeypatch.setenv(KEY_ENV, KEY.hex())
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    assert load_audit_key({}, tmp_path) == Sealer(KEY).derive(AUDIT_INFO)
    monkeypatch.setenv(AUDIT_KEY_ENV, "an audit key from the vault")
    assert load_audit_key({}, tmp_path) == b"an audit key from the vault"
    monkeypatch.setenv(AUDIT_KEY_ENV, "short")
    with pytest.raises(ConfigError, match=AUDIT_KEY_ENV):
        load_audit_key({}, tmp_path)


def test_what_has_no_data_key_is_keyed_by_this_process_alone(monkeypatch):
    from bdchub.core.sealing import AUDIT_KEY_ENV, LOOKUP_INFO, audit_key, process_sealer

    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    assert audit_key(None) == audit_key(process_sealer()) != audit_key(Sealer(KEY))
    assert process_sealer().derive(LOOKUP_INFO) != Sealer(KEY).derive(LOOKUP_INFO)


def test_a_data_key_that_can_be_neither_read_nor_made_stops_the_hub_with_a_config_error(
        monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(ConfigError, match="neither read nor made") as refused:
        load_sealer({}, tmp_path / "not-a-folder" / "data")
    assert refused.value.exit_code == 2 and "HUB_DATA_DIR" in str(refused.value)
