"""The OpenAPI 3.1 document of the inbound API, built from the canonical schemas.

OpenAPI 3.1 schema objects are JSON Schema 2020-12, so the catalogue's schemas
go in as they are, with their references rewritten to ``#/components/schemas``:
``common.schema.json#/$defs/party`` becomes ``#/components/schemas/common.party``.
``$id`` is dropped because it would change the base that those references
resolve against. Built once per application; served as bytes.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .validation import Schemas

_FILE_REF = re.compile(r"^(?:.*/)?([A-Za-z0-9_]+)\.schema\.json(?:#(.*))?$")
_COMPONENT = "#/components/schemas/"

ERROR_CODES = ["schema_violation", "malformed_json", "too_large", "bad_signature",
               "replayed_nonce", "unknown_type", "unsupported_media_type", "tenant_forbidden",
               "type_forbidden", "read_forbidden", "not_found", "method_not_allowed",
               "bad_request", "idempotency_key_reused", "business_no_reused", "in_progress",
               "unavailable", "upstream_error", "timeout", "internal_error",
               "header_too_large", "malformed_xml", "unsafe_xml", "version_mismatch"]


def _target(ref: str, owner: str) -> str:
    m = _FILE_REF.match(ref)
    if m:
        name, fragment = m.group(1), m.group(2) or ""
    elif ref.startswith("#"):
        name, fragment = owner, ref[1:]
    else:
        return ref
    if fragment in ("", "/"):
        return _COMPONENT + name
    if fragment.startswith("/$defs/") or fragment.startswith("/definitions/"):
        _, _, rest = fragment.split("/", 2)
        def_name, _, pointer = rest.partition("/")
        return _COMPONENT + name + "." + def_name + ("/" + pointer if pointer else "")
    return _COMPONENT + name + fragment  # a path inside a component: still resolvable


def _rewrite(node: Any, owner: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = _target(value, owner)
            elif key in ("$id", "$schema", "$defs", "definitions"):
                continue
            else:
                out[key] = _rewrite(value, owner)
        return out
    if isinstance(node, list):
        return [_rewrite(item, owner) for item in node]
    return node


def _components(schemas: Schemas, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    todo = [*names, "common"]
    done: set[str] = set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        try:
            raw = copy.deepcopy(schemas.load(name))
        except Exception:  # noqa: BLE001 - a referenced file the catalogue lacks
            continue
        defs = {**raw.get("definitions", {}), **raw.get("$defs", {})}
        if name != "common" or not defs:
            out[name] = _rewrite(raw, name)
        for key, value in defs.items():
            out[f"{name}.{key}"] = _rewrite(value, name)
        for ref in _refs(raw):
            m = _FILE_REF.match(ref)
            if m and m.group(1) not in done:
                todo.append(m.group(1))
    return out


def _refs(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _COMPONENT + name}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


COMMON_ERRORS = {
    "400": "malformed JSON or a bad parameter (malformed_json, bad_request)",
    "401": "missing or bad signature, stale timestamp, replayed nonce",
    "403": "the client may not send this type (type_forbidden), read cases (read_forbidden) "
           "or act for this tenant (tenant_forbidden)",
    "413": "body larger than max_body_bytes (too_large)",
    "415": "not application/json (unsupported_media_type)",
    "422": "the body breaks its schema; every violation has path and message",
    "503": "the hub could not take the message durably; retry later (unavailable)",
}

#: What a write may answer besides (``web.idempotency``).
CONFLICT = ("idempotency_key_reused: the Idempotency-Key was used for another request; "
            "business_no_reused: this client already submitted the application's business "
            "number with other content (corrected materials go to .../materials); "
            "in_progress: the first request with this key is still being handed over "
            "(Retry-After)")

ACCEPTED_HEADERS = {
    "Idempotent-Replayed": {"schema": {"const": "true"},
                            "description": "this is the answer of an earlier request with the "
                                           "same Idempotency-Key (or, for an application, "
                                           "business number); nothing was forwarded again"},
}


def _submit_op(summary: str, schema: str, op_id: str, *, params: list | None = None) -> dict:
    return {
        "summary": summary,
        "operationId": op_id,
        "parameters": [{"$ref": "#/components/parameters/Tenant"},
                       {"$ref": "#/components/parameters/IdempotencyKey"}, *(params or [])],
        "requestBody": {"required": True, "content": _json(_ref(schema))},
        "responses": {
            "202": {"description": "accepted: handed durably to the hub",
                    "headers": {"Location": {"schema": {"type": "string"},
                                             "description": "progress of the business"},
                                **ACCEPTED_HEADERS},
                    "content": _json(_ref("Accepted"))},
            **{code: _error(text) for code, text in COMMON_ERRORS.items()},
            "409": _error(CONFLICT),
        },
    }


def build(schemas: Schemas, *, endpoints: list[dict[str, Any]] | None = None,
          server_url: str | None = None, version: str = "1.0.0") -> dict[str, Any]:
    endpoints = endpoints or []
    names = schemas.all_names() + [e["schema"] for e in endpoints if e.get("schema")]
    components = _components(schemas, sorted(set(names)))
    components.update({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": ERROR_CODES},
                    "message": {"type": "string", "description": "for people; Chinese unless "
                                                                 "Accept-Language: en or ?lang=en"},
                    "request_id": {"type": "string", "description": "quote it to the hub's operators"},
                    "violations": {"type": "array", "items": {
                        "type": "object", "required": ["path", "message"],
                        "properties": {"path": {"type": "string", "examples": ["$.applicants[0].id_number"]},
                                       "message": {"type": "string"},
                                       "keyword": {"type": "string"}}}},
                }}},
        },
        "Accepted": {
            "type": "object", "required": ["id", "business_no", "status"],
            "properties": {"id": {"type": "string", "format": "uuid", "description": "message id"},
                           "business_no": {"type": "string"},
                           "type": {"type": "string"},
                           "status": {"const": "accepted"}},
        },
        "ProgressAnswer": {
            "type": "object", "required": ["progress"],
            "properties": {"business_no": {"type": "string"}, "tenant": {"type": "string"},
                           "id_number": {"type": "string", "description": "masked"},
                           "progress": {"type": "array", "items": {"type": "object"},
                                        "description": "progress records, names/IDs/phones masked"}},
        },
        "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    })
    business_no = {"name": "business_no", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}}
    paths: dict[str, Any] = {
        "/api/v1/applications": {"post": _submit_op(
            "Submit a registration application (application.submitted)", "application",
            "submitApplication")},
        "/api/v1/appointments": {"post": _submit_op(
            "Book an appointment (appointment.requested)", "appointment_request",
            "requestAppointment")},
        "/api/v1/applications/{business_no}/materials": {"post": _submit_op(
            "Add or replace materials of an application (application.materials_updated)",
            "material_update", "updateMaterials", params=[business_no])},
        "/api/v1/messages/{type}": {"post": {
            **_submit_op("Submit a message of a known type", "GenericMessage", "submitMessage",
                         params=[{"name": "type", "in": "path", "required": True,
                                  "schema": {"enum": sorted(schemas.types)}}]),
            "description": "Known types and their schemas: " + ", ".join(
                f"{t} ({n})" for t, n in sorted(schemas.types.items())) + ". Unknown type: 404.",
        }},
        "/api/v1/progress/{business_no}": {"get": {
            "summary": "Progress of one business (masked)", "operationId": "progressByBusinessNo",
            "parameters": [{"$ref": "#/components/parameters/Tenant"}, business_no],
            "responses": {"200": {"description": "progress records",
                                  "content": _json(_ref("ProgressAnswer"))},
                          "404": _error("no such business, or none the client may read "
                                        "(not_found)"),
                          **{c: _error(t) for c, t in COMMON_ERRORS.items() if c in ("400", "401", "403")}},
        }},
        "/api/v1/progress": {"get": {
            "summary": "Progress of every business of one applicant (masked)",
            "operationId": "progressByApplicant",
            "parameters": [{"$ref": "#/components/parameters/Tenant"},
                           {"name": "id_number", "in": "query", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 64}}],
            "responses": {"200": {"description": "progress records",
                                  "content": _json(_ref("ProgressAnswer"))},
                          "404": _error("no business of this applicant the client may read "
                                        "(not_found)"),
                          **{c: _error(t) for c, t in COMMON_ERRORS.items() if c in ("400", "401", "403")}},
        }},
        "/api/v1/health": {"get": {
            "summary": "Liveness", "operationId": "health", "security": [],
            "responses": {"200": {"description": "up", "content": _json(_ref("Health"))}}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics", "operationId": "metrics", "security": [],
            "responses": {"200": {"description": "text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {
            "summary": "This document", "operationId": "openapi", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": _json({"type": "object"})}}}},
        "/soap/inbound": {
            "get": {"summary": "WSDL of the SOAP endpoint (?wsdl)", "operationId": "wsdl",
                    "security": [],
                    "parameters": [{"name": "wsdl", "in": "query", "required": True,
                                    "allowEmptyValue": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "WSDL 1.1",
                                          "content": {"text/xml": {"schema": {"type": "string"}}}}}},
            "post": {"summary": "SOAP 1.1: ReportStageChange, SubmitResult",
                     "operationId": "soapInbound",
                     "description": "Authenticated with the same signed headers, or a WS-Security "
                                    "UsernameToken with PasswordDigest.",
                     "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                     "requestBody": {"required": True,
                                     "content": {"text/xml": {"schema": {"type": "string"}}}},
                     "responses": {"200": {"description": "SOAP response",
                                           "content": {"text/xml": {"schema": {"type": "string"}}}},
                                   "500": {"description": "SOAP fault",
                                           "content": {"text/xml": {"schema": {"type": "string"}}}}}},
        },
    }
    components["GenericMessage"] = {
        "description": "the schema of the message type in the path",
        "oneOf": [_ref(n) for n in sorted(set(schemas.types.values()))],
    }
    for endpoint in endpoints:
        if endpoint.get("reply", True) and endpoint.get("file"):
            # web.relay: the file itself, passed on only when it matches its SHA-256
            ok = {"200": {"description": "the file, checked against its SHA-256 "
                                         "(X-Content-SHA256)",
                          "content": {"application/octet-stream": {
                              "schema": {"type": "string", "contentMediaType":
                                         "application/octet-stream"}}}},
                  "502": _error("the file does not match the SHA-256 of its metadata")}
        elif endpoint.get("reply", True):
            ok = {"200": {"description": "the route's reply body",
                          "content": _json({"type": "object"})}}
        else:
            ok = {"202": {"description": "queued for the route", "headers": ACCEPTED_HEADERS,
                          "content": _json(_ref("Accepted"))},
                  "409": _error(CONFLICT)}
        op = {
            "summary": f"Route {endpoint['route']}",
            "operationId": "route_" + re.sub(r"[^A-Za-z0-9_]", "_", endpoint["route"]) + "_"
                           + endpoint["method"].lower(),
            "responses": {**ok, **{c: _error(t) for c, t in COMMON_ERRORS.items()}},
        }
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in re.findall(r"\{([^}]+)\}", endpoint["path"])]
        if not endpoint.get("reply", True):
            params.append({"$ref": "#/components/parameters/IdempotencyKey"})
        if params:
            op["parameters"] = params
        if endpoint.get("auth") == "none":
            op["security"] = []
        if endpoint["method"] in ("POST", "PUT", "PATCH"):
            op["requestBody"] = {"required": True, "content": _json(
                _ref(endpoint["schema"]) if endpoint.get("schema") else {"type": "object"})}
        paths.setdefault(endpoint["path"], {})[endpoint["method"].lower()] = op

    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "bdc-hub inbound API",
            "version": version,
            "description": (
                "互联网+不动产登记 integration hub: one-window platforms submit applications, "
                "appointments and material updates, and query progress (answers masked).\n\n"
                "Every /api/v1 call except health is signed: X-App-Key, X-Timestamp (Unix "
                "seconds), X-Nonce (8-64 of [A-Za-z0-9_-], single use), X-Signature = hex "
                "HMAC-SHA256(app_secret, app_key\\ntimestamp\\nnonce\\nMETHOD\\npath\\n"
                "sha256_hex(body)) where path includes ?query when present. Act for a tenant "
                "(6-digit division code) with X-Tenant, ?tenant= or the body's tenant field.\n\n"
                "Every write takes an Idempotency-Key header; an application is also known "
                "by its client and business number, so sending it again answers the first "
                "answer. See docs/inbound-api.md."),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "parameters": {"Tenant": {
                "name": "X-Tenant", "in": "header", "required": False,
                "description": "6-digit division code of the county acted for; default the hub's",
                "schema": {"type": "string", "pattern": r"^\d{6}$"}},
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "a key of the client's choosing, new for every logical "
                                   "request and the same on its retries (IETF draft "
                                   "httpapi-idempotency-key-header): a repeat within the "
                                   "retention (default one day) answers the first answer "
                                   "and forwards nothing; with another body 409",
                    "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"}}},
            "securitySchemes": {
                name: {"type": "apiKey", "in": "header", "name": header}
                for name, header in (("AppKey", "X-App-Key"), ("Timestamp", "X-Timestamp"),
                                     ("Nonce", "X-Nonce"), ("Signature", "X-Signature"))},
        },
        "security": [{"AppKey": [], "Timestamp": [], "Nonce": [], "Signature": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url.rstrip("/")}]
    return doc
