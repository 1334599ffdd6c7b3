"""The provincial good-bad evaluation system (``evaluation``): app-key HMAC, one request
and one grade per case, grades given at the province pulled by sequence, fault knobs."""

from __future__ import annotations

import json
import uuid

import requests

from bdchub.sandbox.signing import appkey_headers


def _call(sb, path: str, body=None, *, secret: str | None = None) -> requests.Response:
    creds = sb.endpoint("evaluation").credentials
    raw = json.dumps(body if body is not None else {}).encode()
    headers = appkey_headers(creds["app_key"], secret or creds["app_secret"], "POST", path, raw)
    headers["Content-Type"] = "application/json"
    return requests.post(sb.url("evaluation") + path, data=raw, headers=headers, timeout=5)


def _case() -> str:
    return f"320684-2024-{uuid.uuid4().hex[:8].upper()}"


def _request(sb, no: str, result: str = "1") -> requests.Response:
    return _call(sb, "/api/evaluation/requests", {
        "projectNo": no, "areaCode": "320684", "handleResult": result,
        "finishTime": "2024-05-20T16:00:00+08:00", "deptName": "海门市不动产登记中心"})


def _grade(sb, no: str, level: int = 5, content: str = "") -> requests.Response:
    return _call(sb, "/api/evaluation/grades", {
        "projectNo": no, "evalLevel": level, "evalContent": content,
        "evalTime": "2024-05-21T09:00:00+08:00", "evalChannel": "2"})


def test_requests_need_the_app_key_signature(clean_sandbox):
    no = _case()
    bad = _call(clean_sandbox, "/api/evaluation/requests", {"projectNo": no},
                secret="0" * 40)
    assert bad.status_code == 401 and bad.json()["code"] == "INVALID_SIGNATURE"
    assert no not in clean_sandbox.endpoint("evaluation").requests


def test_a_case_is_reported_once_and_a_repeat_gets_the_first_answer(clean_sandbox):
    no = _case()
    first = _request(clean_sandbox, no).json()["data"]
    again = _request(clean_sandbox, no).json()["data"]
    assert first["duplicate"] is False and again["duplicate"] is True
    assert again["evaluationId"] == first["evaluationId"]
    assert _request(clean_sandbox, _case(), result="3").json()["code"] == "BAD_RESULT"


def test_a_case_is_graded_once_and_only_after_it_was_reported(clean_sandbox):
    sb = clean_sandbox
    no = _case()
    early = _grade(sb, no)
    assert early.status_code == 404 and early.json()["code"] == "NO_EVALUATION_REQUEST"
    _request(sb, no)
    assert _grade(sb, no, level=6).json()["code"] == "BAD_LEVEL"
    graded = _grade(sb, no, level=4, content="满意").json()["data"]
    assert (graded["evalLevelName"], graded["source"], graded["duplicate"]) == ("满意", "county",
                                                                              False)
    assert _grade(sb, no, level=4, content="满意").json()["data"]["duplicate"] is True
    other = _grade(sb, no, level=1)
    assert other.status_code == 409 and other.json()["code"] == "ALREADY_GRADED"


def test_grades_given_at_the_province_are_pulled_after_a_sequence_and_acknowledged(
        clean_sandbox):
    sb = clean_sandbox
    evaluation = sb.endpoint("evaluation")
    start = _call(sb, "/api/evaluation/grades/pull", {}).json()["data"]["last"]
    reported_by_county, *at_province = (_case() for _ in range(3))
    for no in (reported_by_county, *at_province):
        _request(sb, no)
    _grade(sb, reported_by_county)  # the county's own grade is not the county's to pull
    given = [evaluation.grade_at_province(no, level, "短信评价") for no, level
             in zip(at_province, (2, 5), strict=True)]

    page = _call(sb, "/api/evaluation/grades/pull", {"after": start, "limit": 1}).json()["data"]
    assert [g["projectNo"] for g in page["grades"]] == [at_province[0]] and page["more"] is True
    rest = _call(sb, "/api/evaluation/grades/pull", {"after": page["last"]}).json()["data"]
    assert [g["projectNo"] for g in rest["grades"]] == [at_province[1]] and rest["more"] is False
    assert rest["grades"][0]["evalChannel"] == "5" and rest["grades"][0]["source"] == "province"

    acked = _call(sb, f"/api/evaluation/grades/{given[0]['gradeId']}/ack").json()["data"]
    assert acked["acked"] is True and evaluation.grades[at_province[0]]["acked"] is True
    assert _call(sb, "/api/evaluation/grades/PJG404/ack").status_code == 404


def test_the_evaluation_system_takes_the_generic_fault_knobs(clean_sandbox):
    sb = clean_sandbox
    sb.faults("evaluation").set(error_rate=1.0, error_status=503)
    no = _case()
    down = _request(sb, no)
    assert down.status_code == 503 and down.json()["code"] == "INJECTED_FAULT"
    assert no not in sb.endpoint("evaluation").requests
    sb.clear_faults("evaluation")
    assert _request(sb, no).status_code == 200
