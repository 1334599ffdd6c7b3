"""Pollers (app.pollers): inbound by polling a department that cannot push."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"


def test_a_poller_naming_an_unknown_connector_is_a_config_error():
    text = CONFIG.read_text(encoding="utf-8").replace("    connector: court\n",
                                                      "    connector: cuort\n", 1)
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(text, "config.yaml", environ={})
    assert "pollers.court_orders.connector: no connector named 'cuort'" in str(err.value)
    assert "did you mean 'court'" in str(err.value)


class Court:
    """A department that can only be pulled: orders after a cursor, a page at a time."""

    def __init__(self, n: int):
        self.orders = [{"OrderId": f"FY{i:03d}", "Sequence": i} for i in range(1, n + 1)]
        self.calls: list[dict] = []

    def call(self, operation, payload, context=None):
        self.calls.append(dict(payload))
        cursor = int(payload.get("Cursor") or 0)
        page = [o for o in self.orders if o["Sequence"] > cursor][:2]
        more = len([o for o in self.orders if o["Sequence"] > cursor]) > len(page)
        return {"Order": page, "NextCursor": str(page[-1]["Sequence"] if page else cursor),
                "HasMore": more}


SPEC = {"connector": "court", "operation": "PullJudgments", "every": 0.01,
        "cursor": {"param": "Cursor", "next": "NextCursor", "more": "HasMore"},
        "items": "Order", "key": "OrderId", "business_no": "OrderId",
        "publish": "court.order_received"}


def test_poller_publishes_each_item_once_and_resumes_from_its_stored_cursor(tmp_path):
    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    court = Court(5)
    published = []
    poller = Poller("court_orders", SPEC, connector=court, publish=published.append,
                    tenant="320684", cursors=CursorStore(store.engine))
    while poller.poll_once():
        pass
    assert [e.business_no for e in published] == ["FY001", "FY002", "FY003", "FY004", "FY005"]
    assert {e.type for e in published} == {"court.order_received"}
    assert [c.get("Cursor") for c in court.calls] == [None, "2", "4"]
    # A restarted hub (a new poller over the same store) goes on from the cursor.
    court.orders.append({"OrderId": "FY006", "Sequence": 6})
    again = Poller("court_orders", SPEC, connector=court, publish=published.append,
                   tenant="320684", cursors=CursorStore(store.engine))
    again.poll_once()
    assert court.calls[-1]["Cursor"] == "5"
    assert [e.business_no for e in published][-1] == "FY006" and len(published) == 6
    store.close()


def test_an_item_pulled_twice_gets_the_same_message_id(tmp_path):
    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store

    ids = []
    for folder in ("a", "b"):  # two stores: the cursor is lost, the order is pulled again
        (tmp_path / folder).mkdir()
        store = Store(f"sqlite:///{tmp_path / folder / 'store.db'}")
        published = []
        Poller("court_orders", SPEC, connector=Court(1), publish=published.append,
               tenant="320684", cursors=CursorStore(store.engine)).poll_once()
        ids.append(published[0].id)
        store.close()
    assert ids[0] == ids[1]
