"""What `hub run` says it serves is what the inbound application serves (issue #11, item 8)."""

from __future__ import annotations

from bdchub.app.cli import _echo_builtin_endpoints
from bdchub.core import i18n
from bdchub.web.app import builtin_endpoints

from .conftest import config


def test_every_listed_builtin_endpoint_is_served_and_every_served_one_is_listed(make_app):
    app = make_app()
    listed = {(method, path) for method, path, _h, _w in builtin_endpoints()}

    served = {(method, template) for template, methods in app.exact.values() for method in methods}
    served |= {(method, template) for _p, template, methods in app.patterns for method in methods}

    assert served == listed
    assert ("POST", "/api/v1/applications") in listed
    assert ("GET", "/openapi.json") in listed


def test_hub_run_lists_the_builtin_endpoints_without_metrics_when_they_are_off(capsys):
    _echo_builtin_endpoints(config())
    shown = capsys.readouterr().out
    _echo_builtin_endpoints(config(metrics=False))
    without = capsys.readouterr().out

    assert "  POST   /api/v1/applications  submit an application (application.submitted)" in shown
    assert "  GET    /openapi.json  " in shown
    assert "/soap/inbound" in shown
    assert "/metrics" in shown and "/metrics" not in without


def test_the_listing_speaks_the_operators_language(capsys):
    i18n.set_language("zh_CN")
    _echo_builtin_endpoints(config())

    assert "提交登记申请" in capsys.readouterr().out
