"""The message envelope: immutable, time-ordered, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from bdchub.core.envelope import Envelope, Hop, id_time, new_id
from bdchub.core.errors import MessageError


def make(**changes) -> Envelope:
    fields = {"type": "application.submitted", "tenant": "320684",
              "business_no": "320684-2026-000123", "source": "window_county",
              "body": {"registration_type": "200", "applicants": [{"name": "张三"}]},
              "headers": {"channel": "county"}}
    fields.update(changes)
    return Envelope(**fields)


def test_envelope_survives_a_json_round_trip_with_its_trace():
    env = make().with_hop(Hop(route="online_application", step="validate",
                              started_at=1.5, duration_ms=0.25))
    again = Envelope.from_json(env.to_json())
    assert again == env
    assert again.trace[0].step == "validate"


def test_chinese_text_is_kept_readable_in_json():
    assert "张三".encode() in make().to_json()


def test_envelope_is_immutable_and_evolve_makes_a_new_one():
    env = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.attempt = 3  # type: ignore[misc]
    later = env.evolve(attempt=1)
    assert (env.attempt, later.attempt) == (0, 1)
    assert later.id == env.id


def test_ids_are_time_ordered_even_within_one_millisecond():
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_id_encodes_its_creation_time():
    before = time.time()
    message_id = new_id()
    assert before - 0.01 <= id_time(message_id) <= time.time() + 0.01


def test_id_is_a_version_7_uuid():
    import uuid

    assert uuid.UUID(new_id()).version == 7


@pytest.mark.parametrize("field, value", [
    ("type", "Application Submitted"), ("type", "submitted"),
    ("tenant", "32068"), ("tenant", "32068a"), ("body", ["not", "a", "mapping"]),
])
def test_bad_envelope_fields_are_refused(field, value):
    with pytest.raises(MessageError):
        make(**{field: value})


def test_from_json_refuses_malformed_input_with_a_message_error():
    with pytest.raises(MessageError, match="not valid JSON"):
        Envelope.from_json(b"{not json")
    with pytest.raises(MessageError, match="must be a JSON object"):
        Envelope.from_json(b"[]")
    with pytest.raises(MessageError, match="not a valid message envelope"):
        Envelope.from_json(json.dumps({"type": "a.b"}))


def test_the_wire_format_carries_every_field_of_the_envelope():
    from bdchub.core.envelope import Hop

    env = make().evolve(headers={"x-a": "1"}, attempt=2,
                        body={"nested": {"list": [1, {"申请人": "张三"}]}},
                        trace=(Hop("r", "0:map", 1.5, 0.25, "ok", "d"),))
    assert json.loads(env.to_json()) == env.to_dict()
    assert Envelope.from_json(env.to_json()) == env
