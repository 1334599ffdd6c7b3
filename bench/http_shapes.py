"""The three shapes of the HTTP request/reply route (issue #15, target 1), in one place.

Each shape is what one contender must do for one POST: the hub's route and
endpoint (config), the equivalent Node-RED 4 flow (its nodes), the request
body, the answer every contender must give, the examples every contender must
refuse, and how many backend calls one request makes. ``bench/http_route.py``
measures them; ``tests/bench/test_http_route_smoke.py`` checks the contenders
agree; ``bench/request_budget.py`` may import a shape to profile it.

- ``a`` (identity): validate -> map -> to. The body has no business number, so
  the hub's store writes nothing for it.
- ``b`` (case check): the same check for a case: the body carries the case's
  business number, registration type and status around the identity request;
  validate (the request) -> map (the legacy names and YWH, the business number)
  -> to. The hub writes what a request/reply route writes for a case: its
  trace (one hop a step) and its progress row (status, registration type).
  Node-RED appends the same record (business number, progress, hops) to a
  file, without fsync, before it answers.
- ``c`` (application checks): the identity and household checks of
  ``online_application`` (config.yaml): validate -> enrich (identity, kept as a
  verification record) -> enrich (household, kept too) -> publish (a message
  for another route; the hub's embedded broker holds it durably and a route
  of the hub takes it) -> map the answer. Node-RED makes the two HTTP calls,
  merges both replies into the message, and appends the message it would
  publish, with the two records, to a file (no broker, no fsync) before it
  answers.

The backend is an echo: it answers what it received, so each call's reply is
the payload the route sent, and the answer follows from the request alone
(``Shape.expected``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "identity_verification_request"
EXAMPLES = ROOT / "schemas" / "messages" / "examples" / SCHEMA
EXAMPLE = EXAMPLES / "valid-with-face.json"
TENANT = "320684"
#: The case of shapes b and c (a business number in the registration system's form).
BUSINESS_NO = "2024050600123"
#: The message type shape c publishes, and the route of the hub that takes it.
PUBLISHED = "bench.applicant_checked"

#: The map step of shape a, target <- JMESPath; Node-RED's map function does the same.
MAPPING = {"QQBH": "request_id", "QLRMC": "name", "ZJZL": "'1'", "ZJHM": "id_number",
           "HYYT": "purpose", "RXZY": "face_image.sha256"}
#: Shape b: the same renames of the request inside the case, and the business number.
CASE_MAPPING = {"YWH": "business_no",
                **{k: (v if v.startswith("'") else f"applicant.{v}") for k, v in MAPPING.items()}}


def identity_request() -> dict[str, Any]:
    """The canonical example ``valid-with-face`` of the identity check request."""
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def in_case(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` as the check of an application (shapes b and c)."""
    return {"business_no": BUSINESS_NO, "registration_type": "200", "status": "checking",
            "applicant": request}


def _search(mapping: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    import jmespath

    out = {}
    for target, expr in mapping.items():
        value = jmespath.search(expr, body)
        if value is not None:  # the hub's map leaves missing values out
            out[target] = value
    return out


def expected_a(body: dict[str, Any]) -> dict[str, Any]:
    return _search(MAPPING, body)


def expected_b(body: dict[str, Any]) -> dict[str, Any]:
    return _search(CASE_MAPPING, body)


def identity_payload(body: dict[str, Any]) -> dict[str, Any]:
    return {"XM": body["applicant"]["name"], "ZJHM": body["applicant"]["id_number"]}


def household_payload(body: dict[str, Any]) -> dict[str, Any]:
    return {"ZJHM": body["applicant"]["id_number"], "YWH": body["business_no"]}


def expected_c(body: dict[str, Any]) -> dict[str, Any]:
    return {"business_no": body["business_no"], "request_id": body["applicant"]["request_id"],
            "identity": identity_payload(body), "household": household_payload(body),
            "result": "checked"}


# -- the hub ----------------------------------------------------------------------

def _endpoint_route(description: str, steps: list[dict[str, Any]]) -> Callable[[str], dict]:
    """A request/reply route of the hub answering POST at the path it is given."""
    def route(path: str) -> dict[str, Any]:
        return {"description": description,
                "from": {"endpoint": {"method": "POST", "path": path, "reply": True}},
                "steps": steps}
    return route


_route_a = _endpoint_route(
    "identity check: validate, rename to legacy names, forward",
    [{"validate": SCHEMA}, {"map": MAPPING},
     {"to": {"connector": "legacy", "operation": "verify"}}])

_route_b = _endpoint_route(
    "identity check of a case: validate, rename, forward; trace and progress kept under "
    "the business number",
    [{"validate": {"schema": SCHEMA, "path": "applicant"}}, {"map": CASE_MAPPING},
     {"to": {"connector": "legacy", "operation": "verify"}}])

_route_c = _endpoint_route(
    "the identity and household checks of an application (online_application's), kept as "
    "verification records, published, answered",
    [{"validate": {"schema": SCHEMA, "path": "applicant"}},
     {"enrich": {"connector": "legacy", "operation": "verify_identity",
                 "payload": {"XM": "applicant.name", "ZJHM": "applicant.id_number"},
                 "into": "identity", "record": "identity"}},
     {"enrich": {"connector": "legacy", "operation": "household",
                 "payload": {"ZJHM": "applicant.id_number", "YWH": "business_no"},
                 "into": "household", "record": "household"}},
     {"publish": {"type": PUBLISHED,
                  "body": {"business_no": "business_no", "identity": "identity",
                           "household": "household"}}},
     {"map": {"business_no": "business_no", "request_id": "applicant.request_id",
              "identity": "identity", "household": "household", "result": "'checked'"}}])


#: The route of the hub that takes what shape c publishes (as appointment_reply takes
#: what appointment_booking publishes): without one, the embedded broker would route
#: the message nowhere and the publish would write nothing.
PUBLISHED_ROUTE = {
    "bench_applicant_checked": {
        "description": "takes what the application checks publish",
        "from": PUBLISHED,
        "steps": [{"filter": "business_no != ''"}],
    },
}

LEGACY_OPERATIONS = {name: {"method": "POST", "path": "/echo"}
                     for name in ("verify", "verify_identity", "household")}


# -- Node-RED ---------------------------------------------------------------------

#: Validates ``msg.payload`` (or its ``part``) with the hub's schema compiled in
#: settings.js; 422 with the violations as the hub words their paths.
_VALIDATE = """// Same check as the hub's validate step: the canonical schema, every violation,
// paths as JSONPath ($.field), a missing or unknown field named in the path.
const validate = global.get('validate');
const body = msg.payload;
const part = %(part)s;
function refuse(violations) {
    msg.statusCode = 422;
    msg.payload = {error: {code: 'schema_violation', violations: violations}};
    return [null, msg];
}
if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return refuse([{path: '$', message: 'must be a JSON object', keyword: 'type'}]);
}
const target = part ? body[part] : body;
if (target === null || typeof target !== 'object' || Array.isArray(target)) {
    return refuse([{path: '$', message: 'must be a JSON object', keyword: 'type'}]);
}
if (!validate(target)) {
    return refuse(validate.errors.map(e => {
        let path = '$' + e.instancePath.replace(/\\//g, '.');
        if (e.keyword === 'required') path += '.' + e.params.missingProperty;
        if (e.keyword === 'additionalProperties') path += '.' + e.params.additionalProperty;
        return {path: path, message: e.message, keyword: e.keyword};
    }));
}
return [msg, null];"""

#: The renames of the identity request ``b`` into ``out`` (missing values left out).
_RENAMES = """if (b.request_id != null) out.QQBH = b.request_id;
if (b.name != null) out.QLRMC = b.name;
out.ZJZL = '1';
if (b.id_number != null) out.ZJHM = b.id_number;
if (b.purpose != null) out.HYYT = b.purpose;
if (b.face_image != null && b.face_image.sha256 != null) out.RXZY = b.face_image.sha256;
msg.payload = out;
return msg;"""

_MAP_A = """// Same as the hub's map step: target <- source; missing (null) values are left out.
const b = msg.payload;
const out = {};
""" + _RENAMES

_MAP_B = """// Shape b: the renames of the request inside the case, and YWH (the business number).
const c = msg.payload;
const b = c.applicant;
msg.started = Date.now();
msg.body = c;  // kept for the record written after the call
const out = {};
if (c.business_no != null) out.YWH = c.business_no;
""" + _RENAMES

#: Shape b's stand-in for the hub's trace and progress: one JSON line, appended.
_RECORD_B = """// What the hub keeps for the case (progress, one hop a step), as one line for the
// file node; the answer waits in msg.answer.
const c = msg.body;
const now = Date.now();
msg.answer = msg.payload;
msg.filename = env.get('BDCHUB_RECORD_FILE');
msg.payload = JSON.stringify({business_no: c.business_no, tenant: '%(tenant)s',
    progress: {status: c.status, registration_type: c.registration_type},
    hops: [{step: 'validate'}, {step: 'map'},
           {step: 'to', connector: 'legacy', started_at: msg.started, duration_ms: now - msg.started}],
    at: now});
delete msg.body;
return msg;"""

_IDENTITY_C = """// First call: the identity check (the hub's first enrich payload).
const c = msg.payload;
msg.body = c;
msg.payload = {XM: c.applicant.name, ZJHM: c.applicant.id_number};
return msg;"""

_HOUSEHOLD_C = """// Merge the identity reply into the message, then the household check.
msg.body.identity = msg.payload;
delete msg.headers;  // the first reply's headers are not the second request's
msg.payload = {ZJHM: msg.body.applicant.id_number, YWH: msg.body.business_no};
return msg;"""

#: Shape c's stand-in for the hub's publish and its verification records.
_PUBLISH_C = """// Merge the household reply; the message the hub publishes and the two records,
// as one line for the file node (the publish stand-in); the answer waits in msg.answer.
const c = msg.body;
c.household = msg.payload;
msg.answer = {business_no: c.business_no, request_id: c.applicant.request_id,
              identity: c.identity, household: c.household, result: 'checked'};
msg.filename = env.get('BDCHUB_PUBLISH_FILE');
msg.payload = JSON.stringify({type: '%(published)s', tenant: '%(tenant)s',
    business_no: c.business_no,
    body: {business_no: c.business_no, identity: c.identity, household: c.household},
    records: [{kind: 'identity', result: c.identity}, {kind: 'household', result: c.household}],
    at: Date.now()});
delete msg.body;
return msg;"""

_ANSWER = """// The answer the record waited for.
msg.payload = msg.answer;
delete msg.answer;
delete msg.filename;
return msg;"""


def _function(id_: str, z: str, name: str, func: str, wires: list[list[str]],
              outputs: int = 1) -> dict[str, Any]:
    return {"id": id_, "type": "function", "z": z, "name": name, "func": func,
            "outputs": outputs, "timeout": 0, "noerr": 0, "initialize": "", "finalize": "",
            "libs": [], "wires": wires}


def _http_request(id_: str, z: str, name: str, wires: list[list[str]]) -> dict[str, Any]:
    return {"id": id_, "type": "http request", "z": z, "name": name, "method": "POST",
            "ret": "obj", "paytoqs": "ignore", "url": "${BDCHUB_ECHO_URL}", "tls": "",
            "persist": True, "proxy": "", "insecureHTTPParser": False, "authType": "",
            "senderr": False, "headers": [], "wires": wires}


def _file_append(id_: str, z: str, name: str, wires: list[list[str]]) -> dict[str, Any]:
    # Appends msg.payload and a newline to msg.filename (fs.appendFile: no fsync).
    return {"id": id_, "type": "file", "z": z, "name": name, "filename": "filename",
            "filenameType": "msg", "appendNewline": True, "createDir": True,
            "overwriteFile": "false", "encoding": "utf8", "wires": wires}


def _flow(key: str, label: str, path: str, middle: list[dict[str, Any]],
          part: str | None) -> list[dict[str, Any]]:
    """http in -> validate -> ``middle`` (wired in order) -> http response."""
    z = f"bdchub_{key}"
    first = middle[0]["id"]
    respond = f"{key}_respond"
    nodes: list[dict[str, Any]] = [
        {"id": z, "type": "tab", "label": label, "disabled": False, "info": ""},
        {"id": f"{key}_in", "type": "http in", "z": z, "name": f"POST {path}", "url": path,
         "method": "post", "upload": False, "swaggerDoc": "", "wires": [[f"{key}_validate"]]},
        _function(f"{key}_validate", z, f"validate {SCHEMA}",
                  _VALIDATE % {"part": json.dumps(part)}, [[first], [respond]], outputs=2),
    ]
    for i, node in enumerate(middle):
        node["z"] = z
        node["wires"] = [[middle[i + 1]["id"] if i + 1 < len(middle) else respond]]
        nodes.append(node)
    nodes.append({"id": respond, "type": "http response", "z": z, "name": "reply",
                  "statusCode": "", "headers": {}, "wires": []})
    return nodes


def _nodered_a(path: str) -> list[dict[str, Any]]:
    return _flow("a", "shape a: validate, map, REST out", path, [
        _function("a_map", "", "map to legacy names", _MAP_A, []),
        _http_request("a_rest", "", "POST legacy (echo backend)", []),
    ], None)


def _nodered_b(path: str) -> list[dict[str, Any]]:
    fill = {"tenant": TENANT}
    return _flow("b", "shape b: case check, record appended", path, [
        _function("b_map", "", "map to legacy names with YWH", _MAP_B, []),
        _http_request("b_rest", "", "POST legacy (echo backend)", []),
        _function("b_record", "", "progress and hops as one line", _RECORD_B % fill, []),
        _file_append("b_file", "", "append the record (no fsync)", []),
        _function("b_answer", "", "answer", _ANSWER, []),
    ], "applicant")


def _nodered_c(path: str) -> list[dict[str, Any]]:
    fill = {"tenant": TENANT, "published": PUBLISHED}
    return _flow("c", "shape c: two checks, publish stand-in", path, [
        _function("c_identity", "", "identity payload", _IDENTITY_C, []),
        _http_request("c_rest_identity", "", "POST identity check (echo)", []),
        _function("c_household", "", "merge identity, household payload", _HOUSEHOLD_C, []),
        _http_request("c_rest_household", "", "POST household check (echo)", []),
        _function("c_publish", "", "merge household, message to publish", _PUBLISH_C % fill, []),
        _file_append("c_file", "", "publish stand-in: append (no broker, no fsync)", []),
        _function("c_answer", "", "answer", _ANSWER, []),
    ], "applicant")


# -- the shapes -------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    key: str
    title: str
    path: str
    route: str
    hub_route: Callable[[str], dict[str, Any]]
    nodered: Callable[[str], list[dict[str, Any]]]
    body: Callable[[], dict[str, Any]]
    expected: Callable[[dict[str, Any]], dict[str, Any]]
    #: Builds the request of one invalid identity request (shapes b and c wrap it).
    wrap: Callable[[dict[str, Any]], dict[str, Any]]
    calls: int = 1  # backend calls per answered request
    #: what the hub writes per request, what Node-RED does instead (for tables and docs)
    writes: str = ""
    nodered_writes: str = ""
    extra_routes: dict[str, Any] = field(default_factory=dict)

    def hub_routes(self) -> dict[str, Any]:
        return {self.route: self.hub_route(self.path), **self.extra_routes}

    def endpoint(self) -> dict[str, Any]:
        return {"method": "POST", "path": self.path, "route": self.route, "reply": True,
                "auth": "none"}


def _same(body: dict[str, Any]) -> dict[str, Any]:
    return body


SHAPES: dict[str, Shape] = {
    "a": Shape("a", "validate -> map -> to, no business number", "/api/v1/bench/verify",
               "verify_identity", _route_a, _nodered_a, identity_request, expected_a, _same,
               writes="nothing (no business number)", nodered_writes="nothing"),
    "b": Shape("b", "validate -> map -> to, with a business number", "/api/v1/bench/case-check",
               "case_identity_check", _route_b, _nodered_b,
               lambda: in_case(identity_request()), expected_b, in_case,
               writes="trace (3 hops) and progress row under the business number, "
                      "group-committed to the store before the answer",
               nodered_writes="appends one JSON line (progress, hops) to a file, no fsync"),
    "c": Shape("c", "validate -> enrich -> enrich -> publish -> map",
               "/api/v1/bench/application-checks", "application_checks", _route_c, _nodered_c,
               lambda: in_case(identity_request()), expected_c, in_case, calls=2,
               writes="trace (5 hops), 2 verification records, the published message "
                      "(embedded broker; a hub route takes it)",
               nodered_writes="two http requests; appends the message and the two records "
                              "to a file (publish stand-in: no broker, no fsync)",
               extra_routes=PUBLISHED_ROUTE),
}


def invalid_examples() -> list[tuple[str, dict[str, Any], str]]:
    """(name, identity request, the path the catalogue expects refused)."""
    out = []
    for path in sorted(EXAMPLES.glob("invalid-*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out.append((path.stem, data["message"], data["expect"]["path"]))
    return out


def nodered_flow(keys: list[str] | None = None) -> list[dict[str, Any]]:
    """The Node-RED flow file of the shapes ``keys`` (all by default)."""
    nodes: list[dict[str, Any]] = []
    for key in keys or list(SHAPES):
        shape = SHAPES[key]
        nodes += shape.nodered(shape.path)
    return nodes
