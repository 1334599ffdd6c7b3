"""config.yaml is checked in full before anything starts, with precise errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bdchub.core import config
from bdchub.core.errors import ConfigError

GOOD = """\
tenant: "320684"
name: 海门区不动产登记中心
broker:
  url: ${BROKER_URL:sqla+sqlite:///var/broker.db}
  prefetch: ${PREFETCH:16}
connectors:
  legacy:
    type: fake
    timeout: 5
    responses:
      submit_application: {YWH: "202600001"}
  window:
    type: fake
    responses:
      push_progress: {ok: true}
checklists:
  transfer:
    "200": [{name: 购房合同}, {name: 完税凭证}]
routes:
  online_application:
    from: application.submitted
    steps:
      - require_materials: {checklist: transfer}
      - to: {connector: legacy, operation: submit_application, into: legacy}
      - choice:
          when:
            - condition: "body.legacy.YWH != null"
              steps:
                - to: {connector: window, operation: push_progress}
          otherwise:
            - publish: application.rejected
      - publish: application.forwarded
"""


def check(text: str, environ: dict[str, str] | None = None) -> config.CheckReport:
    return config.check_text(textwrap.dedent(text), "config.yaml", environ or {})


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(text, environ)
    return info.value.problems


def only_problem(text: str, environ: dict[str, str] | None = None) -> str:
    found = problems(text, environ)
    assert len(found) == 1, found
    return found[0]


def test_good_config_passes_and_counts_nested_steps():
    report = check(GOOD)
    assert report.connectors == [("legacy", "fake"), ("window", "fake")]
    assert report.routes == [("online_application", 6)]


def test_environment_defaults_fill_in_and_keep_their_type():
    data = check(GOOD).config
    assert data["broker"]["url"] == "sqla+sqlite:///var/broker.db"
    assert data["broker"]["prefetch"] == 16


def test_environment_value_overrides_default():
    data = check(GOOD, {"PREFETCH": "64"}).config
    assert data["broker"]["prefetch"] == 64


def test_misspelt_key_names_file_line_column_and_suggests_the_right_key():
    text = GOOD.replace("    timeout: 5", "    timout: 5")
    assert only_problem(text) == (
        "config.yaml:9:5: connectors.legacy.timout: unknown key 'timout' "
        "(did you mean 'timeout'?); allowed keys: type, description, timeout, retry, "
        "breaker, limits, responses, operations")


def test_unknown_top_level_key_is_an_error_not_ignored():
    problem = only_problem(GOOD + "routs: {}\n")
    assert problem.startswith("config.yaml:33:1: routs: unknown key 'routs'")
    assert "did you mean 'routes'?" in problem


def test_wrong_type_says_what_was_expected():
    text = GOOD.replace("    timeout: 5", "    timeout: fast")
    assert only_problem(text) == ("config.yaml:9:14: connectors.legacy.timeout: "
                                  "expected a number, found text 'fast'")


def test_missing_required_key_is_named():
    text = GOOD.replace('tenant: "320684"\n', "")
    assert only_problem(text) == "config.yaml:1:1: (top level): missing required key 'tenant'"


def test_tenant_must_be_a_division_code():
    problem = only_problem(GOOD.replace('"320684"', '"32068"'))
    assert problem.startswith("config.yaml:1:9: tenant: '32068' does not have the expected form")


def test_route_naming_unknown_connector_suggests_the_closest():
    text = GOOD.replace("{connector: legacy,", "{connector: legcy,")
    assert only_problem(text) == (
        "config.yaml:24:25: routes.online_application.steps[1].to.connector: "
        "no connector named 'legcy' under connectors: (did you mean 'legacy'?)")


def test_route_naming_unknown_operation_lists_the_operations():
    text = GOOD.replace("operation: push_progress", "operation: push_progres")
    problem = only_problem(text)
    assert "steps[2].choice.when[0].steps[0].to.operation" in problem
    assert "(did you mean 'push_progress'?)" in problem


def test_unknown_connector_type_suggests_the_closest():
    text = GOOD.replace("    type: fake\n    timeout", "    type: sopa\n    timeout")
    problem = only_problem(text)
    assert problem.startswith("config.yaml:8:11: connectors.legacy.type: unknown connector type 'sopa'")
    assert "(did you mean 'soap'?)" in problem


def test_unknown_step_kind_suggests_the_closest():
    text = GOOD.replace("      - publish: application.forwarded", "      - publsh: application.forwarded")
    problem = only_problem(text)
    assert problem.startswith("config.yaml:32:9: routes.online_application.steps[3].publsh: unknown step")
    assert "(did you mean 'publish'?)" in problem


def test_unknown_checklist_is_an_error():
    problem = only_problem(GOOD.replace("{checklist: transfer}", "{checklist: transfr}"))
    assert "no checklist named 'transfr'" in problem and "did you mean 'transfer'?" in problem


def test_unset_variable_without_default_names_the_variable_and_the_fix():
    text = GOOD.replace("${BROKER_URL:sqla+sqlite:///var/broker.db}", "${BROKER_URL}")
    assert only_problem(text) == (
        "config.yaml:4:8: broker.url: environment variable BROKER_URL is not set; "
        "set it, or give a default as ${BROKER_URL:default}")


def test_escaped_dollar_is_kept_literally():
    data = check(GOOD.replace("name: 海门区不动产登记中心", "name: $${NOT_A_VAR}")).config
    assert data["name"] == "${NOT_A_VAR}"


def test_yaml_syntax_error_points_at_the_line():
    problem = only_problem(GOOD.replace("  prefetch: ${PREFETCH:16}", "  prefetch: [16"))
    assert problem.startswith("config.yaml:")
    assert "YAML syntax error" in problem
    line = int(problem.split(":")[1])
    assert 5 <= line <= 7


def test_duplicate_key_is_refused_not_silently_overwritten():
    text = GOOD.replace("  window:\n", "  legacy:\n")
    problem = only_problem(text)
    assert problem.startswith("config.yaml:12:3: connectors.legacy: key 'legacy' appears twice (first at line 7)")


def test_yaml_tags_that_build_python_objects_are_refused():
    problem = only_problem(GOOD + "extra: !!python/object/apply:os.system [echo]\n")
    assert "YAML" in problem


def test_every_problem_is_reported_at_once():
    text = GOOD.replace("    timeout: 5", "    timout: 5").replace("{connector: legacy,", "{connector: legcy,")
    assert len(problems(text)) == 2


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        config.check(tmp_path / "nope.yaml")


def test_load_adds_the_config_folder_for_relative_paths(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(GOOD, encoding="utf-8")
    data = config.load(path, environ={})
    assert data["__dir__"] == str(tmp_path.resolve())


def test_messages_are_chinese_by_default():
    from bdchub.core import i18n

    i18n.set_language(None)
    try:
        text = GOOD.replace("    timeout: 5", "    timout: 5")
        problem = only_problem(text)
    finally:
        i18n.set_language("en")
    assert "未知的键 'timout'（您是不是要写 'timeout'？）" in problem


def test_tenant_must_be_a_known_division_code():
    problem = only_problem(GOOD.replace('"320684"', '"329999"'))
    assert problem.startswith("config.yaml:1:9: tenant: '329999' is not a GB/T 2260 division code")


def test_an_invalid_expression_is_reported_by_the_check_at_its_line():
    text = GOOD.replace("- require_materials: {checklist: transfer}",
                        "- filter: \"registration_type == [\"")
    problem = only_problem(text)
    assert problem.startswith("config.yaml:23:17: routes.online_application.steps[0].filter: ")
    assert "not a valid JMESPath expression" in problem


def test_a_request_reply_route_that_awaits_is_reported_by_the_check():
    text = GOOD.replace("    from: application.submitted",
                        "    from: {endpoint: {path: /v1/apply}}").replace(
        "      - publish: application.forwarded",
        "      - await: {types: [tax.cleared], timeout: 60}")
    assert "cannot await other messages" in only_problem(text)


def test_every_problem_of_the_file_is_reported_at_once():
    text = (GOOD.replace("    timeout: 5", "    timout: 5")
            .replace("      - publish: application.forwarded", "      - publsh: x.y")
            .replace("{checklist: transfer}", "{checklist: transfr}"))
    with pytest.raises(ConfigError) as err:
        config.check_text(text, "config.yaml")
    assert [p.split(":")[1] for p in err.value.problems] == ["9", "23", "32"]


# -- SOAP calls against the service's own WSDL (connectors.wsdl) --------------------------

ROOT = Path(__file__).resolve().parents[2]
WSDL_DIR = ROOT / "schemas" / "wsdl"
SHIPPED_WSDLS = {"HUB_LEGACY_WSDL": "legacy.wsdl", "HUB_TAX_WSDL": "tax.wsdl",
                 "HUB_COURT_WSDL": "court.wsdl"}


def with_legacy_soap(text: str) -> str:
    return text.replace("    type: fake\n    timeout: 5\n    responses:\n"
                        "      submit_application: {YWH: \"202600001\"}\n",
                        f"    type: soap\n    wsdl: {WSDL_DIR / 'legacy.wsdl'}\n")


def test_a_soap_operation_the_wsdl_lacks_is_refused_with_did_you_mean_and_its_line():
    text = with_legacy_soap(GOOD).replace("operation: submit_application",
                                          "operation: ReportStageChange")
    assert only_problem(text) == (
        "config.yaml:22:44: routes.online_application.steps[1].to.operation: connector "
        "'legacy' has no operation 'ReportStageChange' in its WSDL (did you mean "
        "'ReportStageChanges'?); it has: Accept, Advance, BookAppointment, "
        "IssueNoPropertyCertificate, QueryProgress, QueryProperties, QueryUnitStatus, "
        "ReceiveCourtOrder, ReceiveReviewResult, ReceiveTaxResult, Refuse, ReportStageChanges, "
        "RequestCorrection, SubmitApplication, SupplementMaterials")


def test_a_soap_payload_key_the_operation_does_not_take_is_refused_at_the_key():
    text = with_legacy_soap(GOOD).replace(
        "{connector: legacy, operation: submit_application, into: legacy}",
        "{connector: legacy, operation: QueryProgress, into: legacy, payload: {YHW: business_no}}")
    problem = only_problem(text)
    assert problem.startswith("config.yaml:22:83: routes.online_application.steps[1].to."
                              "payload.YHW: ")
    assert "'QueryProgress' of connector 'legacy' takes no parameter 'YHW' (did you mean " \
           "'YWH'?); its parameters: YWH" in problem


def test_the_shipped_config_fits_the_wsdls_of_the_systems_it_calls(tmp_path: Path):
    environ = {var: str(WSDL_DIR / name) for var, name in SHIPPED_WSDLS.items()}
    shipped = ROOT / "config.yaml"
    config.check(shipped, environ)
    # It was really checked: one operation misspelt in a copy is refused.
    broken = tmp_path / "config.yaml"
    broken.write_text(shipped.read_text(encoding="utf-8").replace(
        "operation: ReceiveTaxResult", "operation: ReceiveTaxResults"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.check(broken, environ)
    assert len(info.value.problems) == 1
    assert "(did you mean 'ReceiveTaxResult'?)" in info.value.problems[0]
