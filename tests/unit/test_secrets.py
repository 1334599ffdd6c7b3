"""Secrets in the config: which values are secrets (their schema says so), which
still hold the published default written in the file, and secrets read from files
(``${file:…}`` and ``VAR_FILE``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError
from bdchub.core.secrets import DEMO_SECRETS_KEY, refuse, secret_paths

CONFIG = """\
tenant: "320684"
inbound:
  clients:
    county_window:
      app_key: ik-county
      app_secret: ${HUB_CLIENT_COUNTY_SECRET:demo-only-county-window-secret}
      tenants: ["320684"]
    bank:
      app_key: ik-bank
      app_secret: ${HUB_CLIENT_BANK_SECRET:demo-only-bank-secret}
      tenants: ["320684"]
connectors:
  gov:
    type: rest
    base_url: ${HUB_GOV_URL:http://127.0.0.1:18080}
    auth:
      scheme: gjgxjhpt
      rid: ${HUB_GOV_RID:RID320684}
      sid: SID320684
      secret: ${HUB_GOV_SECRET:d59d103141ecaa29d79c94823e0cc9a6c21e9a9f}
    operations: {ping: {method: GET, path: /ping}}
  police:
    type: rest
    base_url: http://127.0.0.1:18085
    auth: {scheme: basic, username: bdc, password: "${HUB_POLICE_PASSWORD:2f76a62c}"}
    operations: {ping: {method: GET, path: /ping}}
routes: {}
"""


def demo(text: str = CONFIG, environ: dict[str, str] | None = None) -> list[str]:
    report = config_mod.check_text(text, "config.yaml", environ=environ or {})
    return [str(s) for s in report.demo_secrets]


def test_every_secret_left_at_its_written_default_is_named_with_its_line_and_variable():
    found = demo()
    assert found == [
        "config.yaml:6:19: inbound.clients.county_window.app_secret: still the published "
        "demo value; set HUB_CLIENT_COUNTY_SECRET (or HUB_CLIENT_COUNTY_SECRET_FILE)",
        "config.yaml:10:19: inbound.clients.bank.app_secret: still the published demo value; "
        "set HUB_CLIENT_BANK_SECRET (or HUB_CLIENT_BANK_SECRET_FILE)",
        "config.yaml:20:15: connectors.gov.auth.secret: still the published demo value; "
        "set HUB_GOV_SECRET (or HUB_GOV_SECRET_FILE)",
        "config.yaml:25:52: connectors.police.auth.password: still the published demo "
        "value; set HUB_POLICE_PASSWORD (or HUB_POLICE_PASSWORD_FILE)"]


def test_a_secret_from_the_environment_is_not_a_demo_value_and_defaults_of_other_keys_never_are():
    found = demo(environ={"HUB_CLIENT_COUNTY_SECRET": "x" * 32, "HUB_CLIENT_BANK_SECRET": "y" * 32,
                          "HUB_GOV_SECRET": "z" * 40, "HUB_POLICE_PASSWORD": "p" * 20})
    # The URL and the requester id took their defaults too: they are no secrets.
    assert found == []


def test_a_schema_marks_its_secrets_whichever_branch_of_a_oneof_the_value_takes():
    from bdchub.connectors.auth import AUTH_SCHEMA

    basic = {"scheme": "basic", "username": "u", "password": "p"}
    appkey = {"scheme": "appkey", "app_key": "k", "app_secret": "s"}
    bearer = {"scheme": "bearer", "token_url": "/t", "client_id": "c", "client_secret": "s"}
    assert set(secret_paths(basic, AUTH_SCHEMA, ("auth",))) == {("auth", "password")}
    assert set(secret_paths(appkey, AUTH_SCHEMA, ())) == {("app_secret",)}
    assert set(secret_paths(bearer, AUTH_SCHEMA, ())) == {("client_secret",)}


def test_the_shipped_config_left_unset_names_every_client_and_connector_secret():
    loaded = config_mod.load(Path(__file__).resolve().parents[2] / "config.yaml", environ={})
    paths = [s.path for s in loaded[DEMO_SECRETS_KEY]]
    assert "inbound.clients.county_window.app_secret" in paths
    assert "inbound.clients.legacy.app_secret" in paths
    assert "connectors.gov.auth.secret" in paths
    assert "connectors.tax.wsse.password" in paths
    assert "connectors.internal_gate.key" in paths  # the diode's HMAC key
    assert not [p for p in paths if p.endswith((".app_key", ".rid", ".base_url", ".url"))]
    with pytest.raises(ConfigError) as err:
        refuse(loaded)
    assert err.value.exit_code == 2
    assert len(err.value.problems) == 1  # one message, one line a secret
    assert "connectors.gov.auth.secret" in str(err.value) and "HUB_GOV_SECRET" in str(err.value)


def test_a_config_built_in_code_has_no_demo_secrets():
    refuse({"tenant": "320684", "inbound": {"clients": {}}})


def test_hub_service_refuses_a_config_with_demo_secrets_unless_its_caller_runs_the_demo(
        tmp_path: Path):
    from bdchub.app.service import HubService

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    loaded = config_mod.load(path, environ={})
    with pytest.raises(ConfigError, match="HUB_CLIENT_COUNTY_SECRET"):
        HubService.from_config(loaded, broker="memory://", store="sqlite://")
    service = HubService.from_config(loaded, broker="memory://", store="sqlite://",
                                     demo_secrets=True, build_connectors=False)
    service.hub.close()


# -- secrets from files ---------------------------------------------------------

def test_a_file_reference_reads_the_secret_without_its_trailing_newline(tmp_path: Path):
    secret = tmp_path / "county_secret"
    secret.write_text("s3cret-from-a-file-0123456789\n", encoding="utf-8")
    text = CONFIG.replace("${HUB_CLIENT_COUNTY_SECRET:demo-only-county-window-secret}",
                          "${file:" + str(secret) + "}")
    report = config_mod.check_text(text, "config.yaml", environ={})
    client = report.config["inbound"]["clients"]["county_window"]
    assert client["app_secret"] == "s3cret-from-a-file-0123456789"
    assert not [s for s in report.demo_secrets if "county_window" in s.path]


def test_a_variable_named_with_file_supplies_the_unset_variable(tmp_path: Path):
    secret = tmp_path / "gov_secret"
    secret.write_text("0123456789abcdef0123\r\n", encoding="utf-8")
    report = config_mod.check_text(CONFIG, "config.yaml",
                                   environ={"HUB_GOV_SECRET_FILE": str(secret)})
    assert report.config["connectors"]["gov"]["auth"]["secret"] == "0123456789abcdef0123"
    assert not [s for s in report.demo_secrets if s.path == "connectors.gov.auth.secret"]


def test_an_unreadable_secret_file_is_a_load_error_at_its_line(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(CONFIG, "config.yaml",
                              environ={"HUB_GOV_SECRET_FILE": str(missing)})
    assert str(err.value).startswith(
        f"config.yaml:20:15: connectors.gov.auth.secret: cannot read the secret file "
        f"HUB_GOV_SECRET_FILE={missing}")
    text = CONFIG.replace("${HUB_POLICE_PASSWORD:2f76a62c}", "${file:" + str(missing) + "}")
    with pytest.raises(ConfigError, match=r"config\.yaml:25:\d+: connectors\.police\.auth\."
                                          r"password: cannot read the secret file"):
        config_mod.check_text(text, "config.yaml", environ={})


def test_a_variable_set_both_itself_and_as_a_file_is_refused(tmp_path: Path):
    secret = tmp_path / "gov_secret"
    secret.write_text("0123456789abcdef0123", encoding="utf-8")
    with pytest.raises(ConfigError, match="both HUB_GOV_SECRET and HUB_GOV_SECRET_FILE"):
        config_mod.check_text(CONFIG, "config.yaml", environ={
            "HUB_GOV_SECRET": "x" * 20, "HUB_GOV_SECRET_FILE": str(secret)})


# -- hub check warns, a reload refuses ---------------------------------------------

SECRET_VARIABLES = ("HUB_CLIENT_COUNTY_SECRET", "HUB_CLIENT_BANK_SECRET", "HUB_GOV_SECRET",
                    "HUB_POLICE_PASSWORD")


@pytest.fixture
def own_values(monkeypatch) -> None:
    """Every secret of CONFIG set in the environment, as a deployment sets them."""
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, f"own-{name.lower()}-value")


def test_hub_check_passes_a_config_with_demo_secrets_but_warns_naming_each(
        tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from bdchub.hub import cli

    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--lang", "en", "check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    warning = result.stderr
    assert "hub run refuses to start with them" in warning
    lines = CONFIG.splitlines()
    for variable in SECRET_VARIABLES:
        line = next(n for n, text in enumerate(lines, 1) if variable + ":" in text)
        assert f"{path}:{line}:" in warning and variable in warning, (variable, warning)

    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, "set-by-the-county")
    quiet = CliRunner().invoke(cli, ["--lang", "en", "check", "-c", str(path)])
    assert quiet.exit_code == 0 and "demo values" not in quiet.stderr, quiet.stderr


def test_a_reload_that_would_bring_back_a_demo_secret_is_refused_naming_it(
        tmp_path: Path, own_values, monkeypatch):
    from bdchub.app.service import HubService

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    service = HubService.from_config(config_mod.load(path), broker="memory://",
                                     store="sqlite://", web=False, build_connectors=False)
    try:
        reloader = service.reloader()
        assert reloader.reload().status == "applied"  # the same file: nothing to change
        monkeypatch.delenv("HUB_POLICE_PASSWORD")  # the file's default is back
        answer = reloader.reload()
        assert (answer.status, answer.reason) == ("refused", "demo_secrets")
        assert len(answer.problems) == 1
        assert "connectors.police.auth.password" in answer.problems[0]
        assert "HUB_POLICE_PASSWORD" in answer.problems[0]
    finally:
        service.stop(timeout=5)


def test_the_demo_reloads_its_own_published_secrets(tmp_path: Path):
    from bdchub.app.service import HubService

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    service = HubService.from_config(config_mod.load(path, environ={}), broker="memory://",
                                     store="sqlite://", web=False, build_connectors=False,
                                     demo_secrets=True)
    try:
        answer = service.reloader().reload()
        assert answer.reason != "demo_secrets", answer
    finally:
        service.stop(timeout=5)
