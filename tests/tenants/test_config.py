"""``hub check`` of the tenants: section: each tenant block checked, every problem
at its file:line with a did-you-mean; a config of two counties passes; the
one-tenant county config needs no tenants: block."""

from __future__ import annotations

import pytest

from bdchub.core.config import check_text
from bdchub.core.errors import ConfigError

GOOD = """\
tenant: "320600"
connectors:
  legacy: {type: fake, responses: {submit_application: {}}}
  shared_djxt: {type: fake, responses: {submit_application: {}}}
tenants:
  "320684":
    connectors:
      legacy: {type: fake, responses: {submit_application: {}}}
  "320623":
    params: {county: "320623"}
    connectors:
      legacy: {use: shared_djxt}
    routes:
      archive: {from: application.submitted, steps: [{filter: "`true`"}]}
routes:
  forward:
    from: application.submitted
    steps: [{to: {connector: legacy, operation: submit_application}}]
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        check_text(text, "multi.yaml")
    return [str(p) for p in caught.value.problems] if hasattr(caught.value, "problems") \
        else str(caught.value).splitlines()


def test_a_config_of_two_counties_passes_and_counts_their_own_routes_and_connectors():
    report = check_text(GOOD, "multi.yaml")
    assert ("archive@320623", 1) in report.routes
    assert ("legacy@320684", "fake") in report.connectors


@pytest.mark.parametrize("change,where,says", [
    (('"320623":\n    params', '"320699":\n    params'), "multi.yaml:9:",
     "'320699' is not a GB/T 2260 division code"),
    (('"320623":\n    params', '"32062":\n    params'), "multi.yaml:9:",
     "6-digit GB/T 2260 division code"),
    (("      legacy: {use: shared_djxt}", "      legasy: {use: shared_djxt}"), "multi.yaml:12:",
     "(did you mean 'legacy'?)"),
    (("{use: shared_djxt}", "{use: shared_djx}"), "multi.yaml:12:",
     "(did you mean 'shared_djxt'?)"),
    (("legacy: {type: fake, responses: {submit_application: {}}}\n  \"320623\"",
      "legacy: {type: fake, responses: {submit: {}}}\n  \"320623\""), "multi.yaml:8:",
     "route 'forward' calls operation 'submit_application' of connector 'legacy'"),
    (('archive: {from: application.submitted, steps: [{filter: "`true`"}]}',
      'archive: {from: application.submitted, steps: [{to: {connector: legacy, '
      'operation: submit_applicaton}}]}'), "multi.yaml:14:",
     "(did you mean 'submit_application'?)"),
    (('archive: {from: application.submitted,',
      'archive: {from: {endpoint: {path: /api/v1/archive}},'), "multi.yaml:14:",
     "only in place of the shared route"),
])
def test_each_problem_of_a_tenant_block_is_reported_at_its_line(change, where, says):
    old, new = change
    assert old in GOOD
    problems = _problems(GOOD.replace(old, new, 1))
    assert any(p.startswith(where) and says in p for p in problems), problems


def test_an_inbound_client_naming_a_county_the_hub_does_not_serve_is_reported():
    text = GOOD + """\
inbound:
  clients:
    w: {app_key: k1, app_secret: "0123456789abcdef0123456789abcdef",
        tenants: ["320648", "3206*"]}
"""
    problems = _problems(text)
    assert any(p.startswith("multi.yaml:22:") and "'320648' is not one this hub serves" in p
               and "(did you mean '320684'?)" in p for p in problems), problems


def test_the_county_config_has_no_tenants_block_and_passes():
    from pathlib import Path

    from bdchub.core.config import check

    config = Path(__file__).resolve().parents[2] / "config.yaml"
    report = check(config)
    assert "tenants" not in report.config
    assert not any("@" in name for name, _ in report.routes)
