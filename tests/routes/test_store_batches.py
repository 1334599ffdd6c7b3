"""The store's side of a batch of deliveries (routes.batch): one duplicate check
for many messages, and many outcomes in one transaction with finish's answers."""

from __future__ import annotations

from bdchub.core.envelope import Hop
from bdchub.core.store import Finish


def _outcome(message_id: str, route: str = "relay", business_no: str = "B-1") -> Finish:
    return Finish(message_id=message_id, route=route, outcome="completed", tenant="320684",
                  business_no=business_no, type="application.submitted",
                  hops=[Hop(route=route, step="0:map", started_at=1.0, duration_ms=0.1,
                            outcome="ok")], at=1.0)


def test_processed_among_names_only_what_this_route_recorded(store):
    store.finish(_outcome("m-1"))
    store.finish(_outcome("m-2", route="other"))
    assert store.processed_among(["m-1", "m-2", "m-3", "m-1"], "relay") == {"m-1"}
    assert store.processed_among([], "relay") == set()


def test_finish_many_writes_every_outcome_and_says_which_was_recorded_before(store):
    store.finish(_outcome("m-2"))
    answers = store.finish_many([_outcome("m-1"), _outcome("m-2"),
                                 _outcome("m-3", business_no="B-3")])
    assert answers == [True, False, True]
    assert store.processed_among(["m-1", "m-2", "m-3"], "relay") == {"m-1", "m-2", "m-3"}
    assert [h["message_id"] for h in store.trace("B-1")] == ["m-2", "m-1"]
    assert [h["message_id"] for h in store.trace("B-3")] == ["m-3"]
