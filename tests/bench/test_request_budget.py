"""bench/request_budget.py: its config is one ``hub run`` takes, and each profile
sample is charged to the part of the hub that did the work."""

from __future__ import annotations

import json
from pathlib import Path

from bdchub.core.config import check_text
from bench.request_budget import (
    VARIANTS,
    budget,
    hub_config,
    part_of,
    request_body,
    route_name,
)

ENGINE = ("Engine._run_sync (main/routes/engine.py:604);"
          "Store.finish (main/core/store.py:699)")


def test_the_config_is_valid_and_only_the_plain_variant_lacks_a_business_number():
    config = hub_config("http://127.0.0.1:9", Path("/tmp/budget"), 8080)
    check_text(json.dumps(config))  # raises ConfigError with every problem
    assert {e["route"] for e in config["inbound"]["endpoints"]} == {route_name(v)
                                                                    for v in VARIANTS}
    assert [("business_no" in request_body(v)) for v in VARIANTS] == [True, True, False]


def test_a_sample_goes_to_the_innermost_part_it_reached():
    assert part_of(ENGINE + ";Connection.execute (sqlalchemy/engine/base.py:1)") == "store"
    # Handing a write to a thread is the store's cost, not the server's.
    assert part_of(ENGINE + ";blocking (main/core/greenloop.py:112);"
                   "ThreadPoolExecutor.submit (concurrent/futures/thread.py:175)") == "store"
    assert part_of("LoopServer._respond (main/web/loopserver.py:1);"
                   "Validate.run (main/routes/steps/validate.py:1);"
                   "validate (jsonschema/validators.py:1)") == "validation"
    assert part_of("LoopServer._respond (main/web/loopserver.py:1);"
                   "_send (main/connectors/loophttp.py:58)") == "connector"
    assert part_of("LoopServer._run (main/web/loopserver.py:554)") == "server"
    assert part_of("Thread.run (threading.py:982)") == "other"


def test_the_budget_shares_add_up_to_one():
    shares = budget("a (main/core/store.py:1) 3\nb (main/web/app.py:1) 1\n")
    assert shares["store"] == 0.75 and shares["server"] == 0.25
    assert abs(sum(shares.values()) - 1) < 1e-9
