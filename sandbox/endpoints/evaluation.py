"""``evaluation`` — the province's good-bad evaluation system (政务服务"好差评"),
REST/JSON with app-key HMAC auth.

The county's business system (here the hub) reports each case it closes (办件,
keyed by the business number as ``projectNo``) and then the applicant's grade of
it; a grade the applicant gives at the province itself (its portal, the SMS link,
the hall's evaluator) is pulled by the county. One case, one grade (一事一评).

Levels ``evalLevel``: 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意.
Channels ``evalChannel``: 1 网上（PC）, 2 移动端, 3 政务服务大厅评价器, 4 自助终端,
5 短信, 6 电话. Results ``handleResult``: 1 办结, 2 不予受理或不予登记.

- ``POST /api/evaluation/requests {projectNo, areaCode, handleResult, finishTime,
  deptName, serviceName?, remark?}`` → ``{evaluationId, projectNo, duplicate}``; the same
  ``projectNo`` again answers the first (``duplicate: true``).
- ``POST /api/evaluation/grades {projectNo, evalLevel, evalContent?, evalTime,
  evalChannel}`` → the grade ``{gradeId, projectNo, evalLevel, evalLevelName,
  evalContent, evalTime, evalChannel, source: county, acked, duplicate}``; 404
  ``NO_EVALUATION_REQUEST`` for a case never reported, 400 ``BAD_LEVEL``, 409
  ``ALREADY_GRADED`` when the case has another grade (the same one again answers the
  first, ``duplicate: true``).
- ``POST /api/evaluation/grades/pull {after?, limit? ≤ 500}`` → ``{grades, last, more}``:
  the grades given at the province (``source: province``) with ``seq > after``.
- ``POST /api/evaluation/grades/{gradeId}/ack`` → the grade, ``acked: true`` (the county
  has it); 404 ``NOT_FOUND``.

Tests have an applicant grade at the province with ``grade_at_province(project_no,
level, content="", channel="5")`` (or ``POST {url}/_sandbox/grades`` with the fields of
a grade). Credentials (``credentials``: ``app_key``, ``app_secret``) derive from the
seed, like every other endpoint's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from bdchub.core.i18n import _

from ..rest import AppKeyAuth, RestEndpoint, require, route
from ..server import HttpError, Request, Response

LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
CHANNELS = ("1", "2", "3", "4", "5", "6")
RESULTS = ("1", "2")
MAX_PULL = 500


def _now() -> str:
    return dt.datetime.now().astimezone().replace(microsecond=0).isoformat()


class EvaluationEndpoint(RestEndpoint):
    protocol = "REST/JSON + app-key HMAC"

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        digest = hashlib.sha256(f"bdc-sandbox:{sandbox.seed}:{name}".encode()).hexdigest()
        self.credentials = {"app_key": f"ak-eval-{digest[:12]}", "app_secret": digest[12:52]}
        self.auth = AppKeyAuth(self.credentials["app_key"], self.credentials["app_secret"])
        self.requests: dict[str, dict[str, Any]] = {}  # projectNo -> evaluation request
        self.grades: dict[str, dict[str, Any]] = {}    # projectNo -> its grade
        self._by_id: dict[str, dict[str, Any]] = {}
        self._seq = 0

    def authenticate(self, req: Request) -> None:
        self.auth.check(req)

    # -- the county reports a closed case and its grade
    @route("POST", "/api/evaluation/requests", "evaluation.request")
    def request(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "projectNo", "areaCode", "handleResult", "finishTime", "deptName")
        if str(body["handleResult"]) not in RESULTS:
            raise HttpError(400, "BAD_RESULT", _("handleResult must be one of {values}",
                                                 values=", ".join(RESULTS)))
        no = str(body["projectNo"])
        with self.lock:
            known = self.requests.get(no)
            if known is not None:
                return {"evaluationId": known["evaluationId"], "projectNo": no, "duplicate": True}
            self._seq += 1
            entry = {**body, "projectNo": no, "evaluationId": f"PJ{self._seq:010d}",
                     "receivedAt": _now()}
            self.requests[no] = entry
        return {"evaluationId": entry["evaluationId"], "projectNo": no, "duplicate": False}

    @route("POST", "/api/evaluation/grades", "evaluation.grade")
    def grade(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "projectNo", "evalLevel", "evalTime", "evalChannel")
        no = str(body["projectNo"])
        with self.lock:
            if no not in self.requests:
                raise HttpError(404, "NO_EVALUATION_REQUEST",
                                _("no closed case {value} was reported for evaluation",
                                  value=no))
            return self._record(no, body, source="county")

    # -- grades given at the province, pulled by the county
    @route("POST", "/api/evaluation/grades/pull", "evaluation.pull")
    def pull(self, req: Request) -> Any:
        body = req.json_object()
        after = _int(body.get("after"), 0)
        limit = min(max(_int(body.get("limit"), 100), 1), MAX_PULL)
        with self.lock:
            pending = sorted((g for g in self.grades.values()
                              if g["source"] == "province" and g["seq"] > after),
                             key=lambda g: g["seq"])
        page = [dict(g) for g in pending[:limit]]
        return {"grades": page, "last": page[-1]["seq"] if page else after,
                "more": len(pending) > limit}

    @route("POST", r"/api/evaluation/grades/(?P<grade_id>[A-Za-z0-9_-]+)/ack", "evaluation.ack")
    def ack(self, req: Request, grade_id: str) -> Any:
        with self.lock:
            found = self._by_id.get(grade_id)
            if found is None:
                raise HttpError(404, "NOT_FOUND", _("no grade {value}", value=grade_id))
            found["acked"] = True
            return dict(found)

    def grade_at_province(self, project_no: str, level: int, content: str = "",
                          channel: str = "5") -> dict[str, Any]:
        """The applicant grades case ``project_no`` at the province (the SMS link, by
        default); what the county's pull then finds."""
        with self.lock:
            if project_no not in self.requests:
                raise ValueError(_("no closed case {value} was reported for evaluation",
                                   value=project_no))
            return self._record(project_no, {"evalLevel": level, "evalContent": content,
                                             "evalTime": _now(), "evalChannel": channel},
                                source="province")

    def control(self, action: str, req: Request) -> Response | None:
        if action == "grades":
            body = req.json_object()
            require(body, "projectNo", "evalLevel")
            try:
                grade = self.grade_at_province(str(body["projectNo"]), _int(body["evalLevel"], 0),
                                               str(body.get("evalContent") or ""),
                                               str(body.get("evalChannel") or "5"))
            except ValueError as exc:
                raise HttpError(404, "NO_EVALUATION_REQUEST", str(exc)) from None
            return Response.json(grade, 201)
        return None

    def _record(self, no: str, body: dict[str, Any], *, source: str) -> dict[str, Any]:
        """Keep case ``no``'s grade (under the lock): one per case."""
        level = _int(body.get("evalLevel"), 0)
        if level not in LEVELS:
            raise HttpError(400, "BAD_LEVEL", _("evalLevel must be 1 to 5"))
        channel = str(body.get("evalChannel") or "")
        if channel not in CHANNELS:
            raise HttpError(400, "BAD_CHANNEL", _("evalChannel must be one of {values}",
                                                  values=", ".join(CHANNELS)))
        content = str(body.get("evalContent") or "")
        known = self.grades.get(no)
        if known is not None:
            if (known["evalLevel"], known["evalContent"]) == (level, content):
                return {**known, "duplicate": True}
            raise HttpError(409, "ALREADY_GRADED",
                            _("case {value} was graded already ({level})", value=no,
                              level=known["evalLevelName"]))
        self._seq += 1
        grade = {"gradeId": f"PJG{self._seq:010d}", "seq": self._seq, "projectNo": no,
                 "evaluationId": self.requests[no]["evaluationId"], "evalLevel": level,
                 "evalLevelName": LEVELS[level], "evalContent": content,
                 "evalTime": str(body.get("evalTime") or _now()), "evalChannel": channel,
                 "source": source, "acked": False}
        self.grades[no] = grade
        self._by_id[grade["gradeId"]] = grade
        return {**grade, "duplicate": False}


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
