"""The ``hub`` connector type (connectors/hub.py) and the ``report_hops`` step as
``hub check`` sees them, and the envelope the connector sends, without a peer."""

from __future__ import annotations

import pytest

from bdchub.connectors.base import CallContext
from bdchub.connectors.hub import HubConnector
from bdchub.connectors.registry import schema_for
from bdchub.core.config import check_text
from bdchub.core.errors import ConfigError, PermanentError
from bdchub.core.ids import derive_id
from bdchub.core.secrets import secret_paths

CONFIG = """\
tenant: "320684"
connectors:
  province:
    type: hub
    base_url: https://hub.js.example.gov.cn
    app_key: hk-320684
    app_secret: "${{PROVINCE_HUB_SECRET}}"
    retry: {{attempts: 2}}
    breaker: {{failures: 3, reset_after: 30}}
  registration:
    type: fake
    responses: {{tax_cleared: {{ok: true}}}}
routes:
  tax_cleared_from_province:
    from: tax.cleared
    steps:
      - to: {{connector: {target}, operation: {operation}}}
      - report_hops: {report_to}
"""
ENV = {"PROVINCE_HUB_SECRET": "a-secret-of-sixteen-or-more"}
ORIGIN = "0190a0b0-0000-7000-8000-000000000001"


def check(**values: str):
    spec = {"target": "province", "operation": "tax.cleared", "report_to": "province", **values}
    return check_text(CONFIG.format(**spec), file="county.yaml", environ=ENV)


def test_a_county_config_with_a_peer_hub_and_a_hops_report_passes_hub_check():
    report = check()
    assert ("province", "hub") in report.connectors


def test_the_operation_of_a_hub_connector_must_be_the_message_type_that_crosses():
    with pytest.raises(ConfigError, match="peer hub: its operation is the message type"):
        check(operation="deliver")


def test_hops_are_reported_only_to_a_peer_hub():
    with pytest.raises(ConfigError, match="connector 'registration' is of type fake, not hub"):
        check(report_to="registration")


def test_the_app_secret_is_marked_secret_so_a_published_default_is_refused():
    block = {"type": "hub", "base_url": "https://x", "app_key": "k", "app_secret": "s" * 16}
    assert ("app_secret",) in set(secret_paths(block, schema_for("hub")))


def connector() -> HubConnector:
    return HubConnector("province", {"base_url": "https://hub.js.example.gov.cn",
                                     "app_key": "hk-320684", "app_secret": "s" * 16})


def test_the_envelope_keeps_the_id_the_chain_of_runs_started_from():
    """A parked copy has an id of its own; its calls' idempotency key starts with
    the origin, which is the id the peer must see."""
    context = CallContext(message_id="0190a0b0-0000-7000-8000-0000000000ff", tenant="320684",
                          business_no="YWH1", idempotency_key=f"{ORIGIN}:dispatch:0",
                          headers={"traceparent": "00-abc-def-01"})

    sent = connector().envelope("tax.cleared", {"tax_status": "cleared"}, context)

    assert sent == {"id": ORIGIN, "type": "tax.cleared", "tenant": "320684",
                    "business_no": "YWH1", "headers": {"traceparent": "00-abc-def-01"},
                    "body": {"tax_status": "cleared"}}


def test_a_hops_report_has_an_id_of_its_own_stable_for_its_step():
    context = CallContext(message_id=ORIGIN, tenant="320684", business_no="YWH1",
                          idempotency_key=f"{ORIGIN}:tax_cleared_from_province:1")

    sent = connector().envelope("hub.hops_reported", {"hops": []}, context)

    assert sent["id"] == derive_id(ORIGIN, "hub.hops_reported", context.idempotency_key)
    assert sent["id"] != ORIGIN


def test_a_call_outside_a_route_or_with_a_body_that_is_no_object_is_refused():
    with pytest.raises(PermanentError, match="no message id"):
        connector().envelope("tax.cleared", {}, CallContext())
    with pytest.raises(PermanentError, match="a message body is an object"):
        connector().envelope("tax.cleared", ["x"], CallContext(message_id=ORIGIN))
