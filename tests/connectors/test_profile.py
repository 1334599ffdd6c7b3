"""A connector's profile: operations named in the county's words, mapped to the vendor's.

Routes call ``submit_application`` with a canonical payload; the connector's
block says once what the vendor calls it, how the payload becomes the
vendor's, how its reply becomes canonical, and which replies are refusals.
A refusal is a permanent error carrying the system's own message, never a
delivered call. The second vendor here (``data/djxt.wsdl``, ``djxt.py``)
shares no operation or field name with the sandbox's registration system.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bdchub import connectors
from bdchub.connectors.profile import Profile, leading_field
from bdchub.core import config
from bdchub.core.errors import ConfigError, PermanentError, RecoverableError

from .djxt import REFUSED, WSDL, Djxt

QUICK = {"retry": {"attempts": 3, "backoff": 0.01, "jitter": 0}, "timeout": 5}

#: The second vendor's profile, as a county would write it (trimmed to what is tested).
DJXT = {
    "type": "soap",
    "success": {"path": "SuccessFlag", "ok": ["1"], "message_path": "ResponseInfo"},
    "records": {
        "party": {"Name": "name", "CertType": "id_type", "CertNo": "id_number",
                  "Share": "share"},
        "stage_change": {
            "business_no": "CaseNo", "sequence": "Seq", "time": "ChangedAt",
            "stage": "(StatusCode=='SQ' && 'application') || (StatusCode=='SL' && 'acceptance')"
                     " || (StatusCode=='BSL' && 'refusal')",
            "reason": "Reason"},
    },
    "operations": {
        "submit_application": {
            "operation": "CreateCase",
            "payload": {"CaseNo": "business_no", "RegType": "registration_type",
                        "RightType": "right_type", "UnitNo": "unit_codes[0]",
                        "Holder": {"each": "applicants", "as": "party"},
                        "Material": "materials[].name"},
            "reply": {"business_no": "CaseNo"}},
        "query_progress": {
            "operation": "GetCaseStatus", "payload": {"CaseNo": "business_no"},
            "reply": {"changes": {"each": "Trail", "as": "stage_change"}}},
        "receive_tax_result": {
            "operation": "PostTaxResult",
            "payload": {"CaseNo": "business_no", "Paid": "status == 'paid'"}},
    },
}

APPLICATION = {
    "business_no": "320684-2026-W10001", "registration_type": "200", "right_type": "4",
    "unit_codes": ["320684413219GB00029F00010002"],
    "applicants": [{"name": "张三", "id_type": "1", "id_number": "11010519900101123X",
                    "share": "50%", "phone": None}],
    "materials": [{"name": "不动产登记申请书"}, {"name": "买卖合同"}],
}


@pytest.fixture
def djxt():
    system = Djxt().start()
    yield system
    system.stop()


@pytest.fixture
def wsdl_dir(tmp_path):
    shutil.copy(WSDL, tmp_path / "djxt.wsdl")
    return tmp_path


def build(system: Djxt, metrics, **extra):
    block = {**DJXT, **QUICK, "wsdl": system.url + "?wsdl", **extra}
    return connectors.build("legacy", block, metrics=metrics, sleep=lambda s: None)


def errors_of(metrics, operation: str, error: str) -> float:
    value = metrics.registry.get_sample_value(
        "bdchub_connector_errors_total",
        {"connector": "legacy", "operation": operation, "error": error})
    return value or 0.0


# -- the mapping, on its own --------------------------------------------------------

def test_a_profile_maps_canonical_fields_to_the_vendors_and_leaves_out_what_is_null():
    op = Profile("legacy", DJXT, vendor_key="operation").operation("submit_application")
    assert op.vendor == "CreateCase"
    assert op.request(APPLICATION) == {
        "CaseNo": "320684-2026-W10001", "RegType": "200", "RightType": "4",
        "UnitNo": "320684413219GB00029F00010002",
        "Holder": [{"Name": "张三", "CertType": "1", "CertNo": "11010519900101123X",
                    "Share": "50%"}],
        "Material": ["不动产登记申请书", "买卖合同"]}


def test_a_record_maps_each_item_of_a_list_and_a_single_item_alike():
    op = Profile("legacy", DJXT, vendor_key="operation").operation("query_progress")
    change = {"Seq": 7, "CaseNo": "N1", "StatusCode": "SL", "ChangedAt": "2026-03-01T09:00:00"}
    expected = {"business_no": "N1", "sequence": 7, "time": "2026-03-01T09:00:00",
                "stage": "acceptance"}
    assert op.result({"SuccessFlag": 1, "Trail": [change, change]}, connector="legacy") == {
        "changes": [expected, expected]}
    # A SOAP list of one may come back as the item itself.
    assert op.result({"SuccessFlag": 1, "Trail": change}, connector="legacy") == {
        "changes": [expected]}


def test_an_operation_not_in_the_profile_goes_to_the_vendor_by_its_own_name():
    profile = Profile("legacy", DJXT, vendor_key="operation")
    op = profile.operation("ListChanges")
    assert op.vendor == "ListChanges" and op.request({"AfterSeq": 3}) == {"AfterSeq": 3}
    # The block's success rule judges it too.
    with pytest.raises(PermanentError, match="busy"):
        op.result({"SuccessFlag": 0, "ResponseInfo": "busy"}, connector="legacy")


def test_codes_are_compared_as_text_whatever_their_type():
    rule = {"path": "CG", "ok": [True, "0", 1], "message_path": "XX"}
    op = Profile("x", {"operations": {"op": {"success": rule}}}).operation("op")
    for code in (True, "true", "0", 0, 1, "1", 1.0):
        op.result({"CG": code}, connector="x")
    for code in (False, "false", "2", 2):
        with pytest.raises(PermanentError):
            op.result({"CG": code, "XX": "no"}, connector="x")


def test_a_recoverable_code_is_retryable_and_null_in_ok_accepts_a_reply_without_the_code():
    rule = {"path": "code", "ok": ["0", None], "recoverable": ["BUSY"], "message_path": "msg"}
    op = Profile("x", {"operations": {"op": {"success": rule}}}).operation("op")
    assert op.result({"data": 1}, connector="x") == {"data": 1}
    with pytest.raises(RecoverableError, match="try later"):
        op.result({"code": "BUSY", "msg": "try later"}, connector="x")


def test_a_reply_without_the_success_rules_path_names_the_operation_and_the_path():
    op = Profile("legacy", DJXT, vendor_key="operation").operation("receive_tax_result")
    with pytest.raises(PermanentError) as info:
        op.result({"Result": 1, "Info": "ok"}, connector="legacy")
    message = str(info.value)
    assert "receive_tax_result (PostTaxResult)" in message
    assert "SuccessFlag" in message and "Result, Info" in message


def test_bad_expressions_and_unknown_records_are_config_errors_naming_their_keys():
    block = {"records": {"party": {"Name": "name"}},
             "operations": {"submit": {"payload": {"A": "a[", "B": {"each": "b", "as": "pary"}},
                                       "success": {"path": "==", "ok": ["1"]}}}}
    with pytest.raises(ConfigError) as info:
        Profile("legacy", block)
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("connectors.legacy.operations.submit.payload.A: 'a['")
    assert problems[1] == ("connectors.legacy.operations.submit.payload.B.as: no record named "
                           "'pary' under records: (did you mean 'party'?)")
    assert problems[2].startswith("connectors.legacy.operations.submit.success.path: '=='")


def test_leading_field_is_what_a_path_reads_first():
    assert leading_field("SuccessFlag") == "SuccessFlag"
    assert leading_field("Result.Code") == "Result"
    assert leading_field("Items[0].Code") == "Items"
    assert leading_field("length(Items)") is None


# -- SOAP against the second vendor ------------------------------------------------------

def test_a_soap_reply_saying_refused_is_a_permanent_error_with_the_systems_message(djxt,
                                                                                 metrics):
    djxt.refused_units.add(APPLICATION["unit_codes"][0])
    with build(djxt, metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call("submit_application", APPLICATION)
    assert REFUSED in str(info.value)
    assert info.value.system_message == REFUSED
    assert info.value.operation == "submit_application (CreateCase)"
    assert len(djxt.calls("CreateCase")) == 1  # refused: not retried
    assert errors_of(metrics, "submit_application", "permanent") == 1


def test_the_vendor_receives_its_own_field_names_and_the_route_gets_canonical_ones(djxt,
                                                                                 metrics):
    with build(djxt, metrics) as conn:
        assert conn.call("submit_application", APPLICATION) == {
            "business_no": "320684-2026-W10001"}
        djxt.change("320684-2026-W10001", "SL", push=False)
        answer = conn.call("query_progress", {"business_no": "320684-2026-W10001"})
    [sent] = djxt.calls("CreateCase")
    assert sent["body"]["UnitNo"] == "320684413219GB00029F00010002"
    assert sent["body"]["Holder"]["CertNo"] == "11010519900101123X"
    assert [c["stage"] for c in answer["changes"]] == ["application", "acceptance"]
    assert [c["sequence"] for c in answer["changes"]] == [1, 2]


def test_a_success_rule_whose_path_is_not_in_the_reply_fails_the_call_permanently(djxt,
                                                                                metrics):
    rule = {"path": "CG", "ok": [True], "message_path": "XX"}  # the other vendor's words
    with build(djxt, metrics, success=rule) as conn, pytest.raises(PermanentError) as info:
        conn.call("submit_application", APPLICATION)
    assert "submit_application (CreateCase)" in str(info.value)
    assert "has no CG" in str(info.value) and "SuccessFlag" in str(info.value)


def test_a_refusal_is_dead_lettered_with_the_systems_message_and_not_delivered(djxt, metrics):
    from bdchub.routes.middleware import MetricsMiddleware
    from bdchub.routes.runtime import Hub

    djxt.refused_units.add(APPLICATION["unit_codes"][0])
    legacy = build(djxt, metrics)
    cfg = {"tenant": "320684", "connectors": {"legacy": {"type": "fake"}}, "routes": {
        "forward": {"from": "application.submitted",  # the default error policy: park
                    "steps": [{"to": {"connector": "legacy",
                                      "operation": "submit_application"}}]}}}
    hub = Hub.from_config(cfg, broker="memory://", store="sqlite://",
                          connectors={"legacy": legacy},
                          metrics=MetricsMiddleware(CollectorRegistry()), sleep=lambda s: None)
    try:
        hub.send("application.submitted", APPLICATION, business_no=APPLICATION["business_no"])
        hub.run_until_idle()
        [dead] = hub.dlq_list()  # at once: a refusal is not parked to be tried again
        assert dead["reason"] == "permanent" and REFUSED in dead["last_error"]
        assert len(djxt.calls("CreateCase")) == 1
        assert [(h["step"], h["outcome"]) for h in hub.trace(APPLICATION["business_no"])
                if h["route"] == "forward"][-1][1] == "dead_letter"
    finally:
        hub.kill()
        legacy.close()


# -- hub check -------------------------------------------------------------------------

CONFIG = """\
tenant: "320684"
connectors:
  legacy:
    type: soap
    wsdl: djxt.wsdl
    success: {path: SuccessFlag, ok: ["1"], message_path: ResponseInfo}
    operations:
      submit_application:
        operation: CreateCase
        payload: {CaseNo: business_no, UnitNo: "unit_codes[0]"}
      receive_tax_result:
        operation: PostTaxResult
        payload: {CaseNo: business_no}
routes:
  submit:
    from: application.submitted
    steps:
      - to:
          connector: legacy
          operation: submit_application
          payload: {business_no: business_no, unit_codes: unit_codes}
"""


def check(folder: Path, text: str) -> list[str]:
    path = folder / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    try:
        config.check(path, {})
    except ConfigError as exc:
        return exc.problems
    return []


def line_of(folder: Path, needle: str) -> int:
    lines = (folder / "config.yaml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_a_profile_that_fits_the_wsdl_passes_with_canonical_keys_in_the_route(wsdl_dir):
    assert check(wsdl_dir, CONFIG) == []


def test_a_profile_operation_naming_a_missing_vendor_operation_is_a_config_error(wsdl_dir):
    [problem] = check(wsdl_dir, CONFIG.replace("operation: CreateCase", "operation: CreateCas"))
    where = f"{wsdl_dir / 'config.yaml'}:{line_of(wsdl_dir, 'CreateCas')}:"
    assert problem.startswith(where), problem
    assert "connectors.legacy.operations.submit_application.operation" in problem
    assert "(did you mean 'CreateCase'?)" in problem


def test_a_mapped_field_the_vendor_operation_does_not_take_is_a_config_error(wsdl_dir):
    [problem] = check(wsdl_dir, CONFIG.replace("UnitNo: ", "UnitNum: "))
    assert problem.startswith(f"{wsdl_dir / 'config.yaml'}:{line_of(wsdl_dir, 'UnitNum')}:")
    assert "operations.submit_application.payload.UnitNum" in problem
    assert "(did you mean 'UnitNo'?)" in problem


def test_a_success_path_the_wsdl_reply_does_not_have_is_a_config_error(wsdl_dir):
    text = CONFIG.replace("        payload: {CaseNo: business_no}\n",
                          "        payload: {CaseNo: business_no}\n"
                          "        success: {path: Result, ok: [\"1\"]}\n")
    [problem] = check(wsdl_dir, text)
    assert "connectors.legacy.operations.receive_tax_result.success.path" in problem
    assert "receive_tax_result (PostTaxResult)" in problem and "SuccessFlag" in problem


def test_an_invalid_expression_in_a_profile_is_reported_at_its_line_by_hub_check(wsdl_dir):
    [problem] = check(wsdl_dir, CONFIG.replace('UnitNo: "unit_codes[0]"',
                                               'UnitNo: "unit_codes[0"'))
    assert problem.startswith(f"{wsdl_dir / 'config.yaml'}:{line_of(wsdl_dir, 'unit_codes[0')}:")
    assert "operations.submit_application.payload.UnitNo" in problem


def test_a_rest_profile_is_checked_by_hub_check_too(tmp_path):
    text = """\
    tenant: "320684"
    connectors:
      trade:
        type: rest
        base_url: http://127.0.0.1:9
        operations:
          find_filing:
            path: /filings
            reply: {rows: {each: data, as: filling}}
        records:
          filing: {filing_no: htbh}
    routes: {}
    """
    [problem] = check(tmp_path, text)
    assert "connectors.trade.operations.find_filing.reply.rows.as" in problem
    assert "(did you mean 'filing'?)" in problem


def test_a_callback_endpoint_naming_a_record_the_profile_lacks_is_a_config_error(wsdl_dir):
    text = CONFIG.replace("    operations:\n", "    records:\n"
                          "      stage_change: {business_no: CaseNo, sequence: Seq}\n"
                          "    operations:\n", 1)
    text += ("inbound:\n"
             "  endpoints:\n"
             "    - {path: /api/v1/inbound/legacy/stage-changes, route: submit, reply: false,\n"
             "       type: legacy.stage_changed, profile: legacy.stage_chang,\n"
             "       dedupe_key: sequence}\n")
    [problem] = check(wsdl_dir, text)
    assert problem.startswith(f"{wsdl_dir / 'config.yaml'}:{line_of(wsdl_dir, 'stage_chang,')}:")
    assert "inbound.endpoints[0].profile" in problem
    assert "(did you mean 'stage_change'?)" in problem
    assert check(wsdl_dir, text.replace("stage_chang,", "stage_change,")) == []


def test_a_callback_in_the_systems_words_is_mapped_by_its_record():
    from bdchub.connectors.profile import record_mapping

    canonical = record_mapping({"legacy": DJXT}, "legacy.stage_change")
    assert canonical({"Seq": 3, "CaseNo": "N1", "StatusCode": "BSL", "Reason": "已查封",
                      "Extra": "dropped"}) == {
        "business_no": "N1", "sequence": 3, "stage": "refusal", "reason": "已查封"}
    with pytest.raises(ConfigError, match="no record 'stage'"):
        record_mapping({"legacy": DJXT}, "legacy.stage")
