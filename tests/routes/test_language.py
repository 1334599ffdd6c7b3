"""The route language as the config loader and the compiler see it."""

from __future__ import annotations

import pytest
import yaml

from bdchub.core.config import check_text
from bdchub.core.errors import ConfigError
from bdchub.routes.compiler import compile_route

CONFIG = """
tenant: "320684"
connectors:
  legacy: {type: fake, responses: {submit: {}, lookup: {}}}
  tax: {type: fake, responses: {declare: {}}}
checklists:
  transfer:
    "200": [{name: 购房合同, type: contract}]
    default: [{name: 申请书}]
routes:
  online:
    from: application.submitted
    concurrency: 8
    on_error: {retry: {attempts: 3, backoff: 1}, park_for: 300, park_max: 12}
    steps:
      - validate: application
      - require_materials: {checklist: transfer, deadline_days: 10}
      - map: {fields: {ywh: business_no}, merge: true}
      - filter: "registration_type != '900'"
      - choice:
          when:
            - condition: "registration_type == '200'"
              steps:
                - await:
                    types: [tax.cleared, trade.*]
                    mode: all
                    timeout: 86400
                    into: joint
                    on_timeout: [{publish: application.chased}]
          otherwise: [{wire_tap: {publish: audit.copy}}]
      - enrich: {connector: legacy, operation: lookup, into: legacy, record: lookup}
      - to: {recipients: [{connector: tax, operation: declare}, {connector: legacy, operation: submit}], parallel: true}
      - split: {items: applicants, publish: applicant.checked}
      - throttle: {rate: 5}
      - set: {headers: {x-level: "'county'"}}
      - publish: {type: progress.updated, body: {business_no: business_no, stage: "'acceptance'"}}
  window_query:
    from: {endpoint: {method: POST, path: /v1/progress, reply: true}}
    steps:
      - enrich: {connector: legacy, operation: lookup}
"""


def test_every_step_kind_and_endpoint_routes_pass_the_config_loader():
    report = check_text(CONFIG)
    assert dict(report.routes)["online"] >= 12
    routes = report.config["routes"]
    route = compile_route("online", routes["online"], checklists=report.config["checklists"])
    assert route.awaited_types() == {"tax.cleared", "trade.*"}
    assert route.on_error.park_for == 300 and route.concurrency == 8
    sync = compile_route("window_query", routes["window_query"])
    assert sync.sync and sync.endpoint["type"] == "inbound.window_query"


def test_unknown_endpoint_keys_are_reported_by_the_loader():
    bad = yaml.safe_load(CONFIG)
    bad["routes"]["window_query"]["from"]["endpoint"]["verb"] = "POST"
    with pytest.raises(ConfigError):
        check_text(yaml.safe_dump(bad, allow_unicode=True))


def test_a_synchronous_endpoint_route_cannot_await():
    with pytest.raises(ConfigError, match="cannot await"):
        compile_route("q", {"from": {"endpoint": {"path": "/q", "reply": True}},
                            "steps": [{"await": {"types": ["a.b"], "timeout": 1}}]})


def test_a_bad_expression_is_a_config_error_naming_the_step():
    with pytest.raises(ConfigError, match=r"routes.r.steps.0.*not a valid JMESPath"):
        compile_route("r", {"from": "a.b", "steps": [{"filter": "a[?"}]})


def test_a_missing_connector_or_checklist_is_a_config_error():
    with pytest.raises(ConfigError, match="no connector named 'nope'"):
        compile_route("r", {"from": "a.b", "steps": [{"to": {"connector": "nope",
                                                               "operation": "x"}}]},
                      connectors={})
    with pytest.raises(ConfigError, match="no checklist named"):
        compile_route("r", {"from": "a.b", "steps": [{"require_materials": {"checklist": "x"}}]})
