"""The good-bad evaluation (好差评) through config.yaml and the sandbox's provincial
evaluation system: a closed case's evaluation request, the applicant's grade from the
window or pulled from the province, recorded on the case; grades for open or unknown
cases refused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdchub.demo.samples import now_iso

from .conftest import Flows, _flows


@pytest.fixture
def evaluated(clean_sandbox: Any, tmp_path: Path) -> Iterator[Flows]:
    """``flows`` with the province's grades pulled every 0.2 s (pollers.evaluation_grades)."""
    yield from _flows(clean_sandbox, tmp_path, env={"HUB_EVALUATION_POLL_SECONDS": "0.2"})


def _at_province(flows: Flows, path: str, no: str) -> list[dict[str, Any]]:
    return flows.received("evaluation", path=path,
                          where=lambda body: body.get("projectNo") == no)


def _records(flows: Flows, no: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in flows.hub.store.verifications_for(no) if r["kind"] == kind]


def _grade(no: str, grade: str = "very_satisfied", **extra: Any) -> dict[str, Any]:
    return {"business_no": no, "grade": grade, "graded_at": now_iso(),
            "evaluation_channel": "app", **extra}


def _archived(flows: Flows, sample: str, client: str) -> str:
    body = flows.samples[sample]
    flows.submit(client, body)
    no = body["business_no"]
    flows.wait(lambda: flows.stage(no) == "archive", what=f"archive {no}")
    return no


def test_a_closed_case_gets_its_evaluation_request_at_the_province_by_business_number(flows):
    no = _archived(flows, "first", "national_window")
    request = flows.wait(lambda: _at_province(flows, "/api/evaluation/requests", no),
                         what="evaluation request")[0]["body"]
    assert request["handleResult"] == "1" and request["areaCode"] == "320684"
    assert request["deptName"] == "海门市不动产登记中心"
    record = flows.wait(lambda: _records(flows, no, "evaluation_request"), what="record")[0]
    assert record["result"]["evaluationId"] == flows.sb.endpoint("evaluation").requests[no][
        "evaluationId"]

    refused = flows.samples["refusal"]  # a unit the register holds as seized: 不予受理
    flows.submit("province_window", refused)
    request = flows.wait(lambda: _at_province(flows, "/api/evaluation/requests",
                                              refused["business_no"]),
                         what="evaluation request of the refusal")[0]["body"]
    assert request["handleResult"] == "2" and "查封" in request["remark"]


def test_the_applicants_grade_from_the_window_reaches_the_province_and_is_recorded(flows):
    no = _archived(flows, "first", "national_window")
    flows.wait(lambda: _records(flows, no, "evaluation_request"), what="evaluation request")
    resp = flows.post("national_window", "/api/v1/evaluations",
                      _grade(no, "basically_satisfied", comment="等候时间略长"))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"business_no": no, "grade": "basically_satisfied",
                           "result": "accepted"}
    sent = flows.wait(lambda: _at_province(flows, "/api/evaluation/grades", no),
                      what="grade at the province")[0]["body"]
    assert (sent["evalLevel"], sent["evalChannel"], sent["evalContent"]) == (3, "2", "等候时间略长")
    record = flows.wait(lambda: _records(flows, no, "evaluation_grade"), what="grade record")[0]
    assert record["result"]["evalLevelName"] == "基本满意" and record["operation"] == "submit_grade"
    assert flows.sb.endpoint("evaluation").grades[no]["source"] == "county"
    assert flows.stage(no) == "archive"  # a grade moves nothing of the case's progress


def test_a_grade_given_at_the_province_is_pulled_acknowledged_and_recorded(evaluated):
    flows = evaluated
    no = _archived(flows, "first", "national_window")
    flows.wait(lambda: _records(flows, no, "evaluation_request"), what="evaluation request")
    given = flows.sb.endpoint("evaluation").grade_at_province(no, 1, "窗口推诿", channel="5")
    record = flows.wait(lambda: _records(flows, no, "evaluation_grade"), what="grade record")[0]
    assert record["operation"] == "ack_grade" and record["result"]["acked"] is True
    assert record["result"]["gradeId"] == given["gradeId"]
    assert flows.sb.endpoint("evaluation").grades[no]["acked"] is True
    # Pulled from the province, so not reported to it again.
    assert not _at_province(flows, "/api/evaluation/grades", no)


def test_a_grade_for_an_open_or_an_unknown_case_is_refused_and_goes_nowhere(flows):
    flows.sb.configure(auto_advance=None)  # the case stays where the window left it
    body = flows.samples["first"]
    no = body["business_no"]
    flows.submit("national_window", body)
    flows.wait(lambda: flows.stage(no) == "application", what="stage application")

    open_case = flows.post("national_window", "/api/v1/evaluations", _grade(no))
    assert open_case.status_code == 409
    assert open_case.json()["error"]["code"] == "case_not_closed"
    assert "尚未办结" in open_case.json()["error"]["message"]

    unknown = copy.deepcopy(_grade(no))
    unknown["business_no"] = no[:-1] + ("9" if no[-1] != "9" else "8")
    missing = flows.post("national_window", "/api/v1/evaluations", unknown)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_case"

    assert not [r for r in flows.received("evaluation") if r["path"] in (
        "/api/evaluation/requests", "/api/evaluation/grades")]
    assert not _records(flows, no, "evaluation_grade")
    assert flows.stage(no) == "application"
