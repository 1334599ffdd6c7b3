"""JSON Schema of the ``inbound:`` block of config.yaml (the web layer).

The config loader validates the block against ``INBOUND_SCHEMA`` and applies
the defaults; ``web.app.create_app`` applies them again (``with_defaults``) so
a hand-built dict works too. Example::

    tenant: "320684"
    inbound:
      listen: {host: 127.0.0.1, port: 8080}
      limits: {header_timeout: 10, connections_per_address: 256}
      max_body_bytes: 10485760
      clock_skew: 300
      clients:
        county_window:
          app_key: ck-320684
          app_secret: ${COUNTY_WINDOW_SECRET}
          tenants: ["320684"]
          channel: county
      endpoints:
        - {method: POST, path: /api/v1/verify, route: verify_identity, schema: application}
"""

from __future__ import annotations

import copy
from typing import Any

MIB = 1024 * 1024

CHANNELS = ["county", "province", "national", "bank", "department", "developer",
            "agency", "legacy", "internal", "hub", "other"]

#: Which cases a client may read: those it submitted, those submitted by any client
#: of its channel, every case of the tenants it may act for, or none.
READS = ["own", "channel", "tenant", "none"]

_SUBMITS = ["application.submitted", "application.materials_updated", "appointment.requested"]
#: One-window platforms also pass on the applicant's grade of a closed case (好差评).
_WINDOWS = [*_SUBMITS, "evaluation.submitted"]

#: What a client may send and read when its block does not say, by channel
#: (``web.permissions`` explains the model). One-window platforms submit applications,
#: appointments and grades; developers submit applications and batches
#: (``developer.*``); a bank and an agency submit through their batch endpoints
#: (``bank.*``, ``agency.*``); departments, legacy systems and the rest send only what
#: they list, the types their callback endpoints take. Deny by default: a client nobody
#: classified can do nothing until its block says what.
CHANNEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "county": {"sends": _WINDOWS, "reads": "own"},
    "province": {"sends": _WINDOWS, "reads": "own"},
    "national": {"sends": _WINDOWS, "reads": "own"},
    "developer": {"sends": [*_SUBMITS, "developer.*"], "reads": "own"},
    "bank": {"sends": ["bank.*", "application.materials_updated"], "reads": "own"},
    "agency": {"sends": ["agency.*", "application.materials_updated"], "reads": "own"},
    "department": {"sends": [], "reads": "none"},
    "legacy": {"sends": [], "reads": "none"},
    "internal": {"sends": [], "reads": "none"},
    # Another bdc-hub (federation, ``web.federation``): it forwards what its routes
    # made, of any type but a hub event it does not own, and reads nothing.
    "hub": {"sends": ["#"], "reads": "none"},
    "other": {"sends": [], "reads": "none"},
}

_TYPE = r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+"

CLIENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["app_key", "app_secret", "tenants"],
    "properties": {
        "app_key": {"type": "string", "minLength": 1, "maxLength": 128,
                    "pattern": r"^[A-Za-z0-9._~-]+$",
                    "description": "public key id sent as X-App-Key (and as the WS-Security Username)"},
        "app_secret": {"type": "string", "minLength": 1, "secret": True,
                       "description": "shared HMAC secret (16 characters or more once expanded); "
                                      "write ${VAR} and keep it in the environment"},
        "tenants": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "string", "pattern": r"^(\*|\d{2,6}\*?)$"},
                    "description": "division codes this client may act for: '320684' exactly, "
                                   "'3206*' a city, '32*' a province, '*' all"},
        "channel": {"enum": CHANNELS, "default": "other",
                    "description": "who the client is: county/province/national one-window "
                                   "platform, bank, developer, agency, department, legacy "
                                   "system, another hub (federation) …"},
        "sends": {"type": "array", "uniqueItems": True,
                  "items": {"type": "string",
                            "pattern": r"^([a-z][a-z0-9_]*|\*|#)(\.([a-z][a-z0-9_]*|\*|#))*$"},
                  "description": "message types the client may send, or patterns (* one word, "
                                 "# any words: application.*); never reaches a hub event "
                                 "(see owns); default by channel"},
        "owns": {"type": "array", "uniqueItems": True,
                 "items": {"type": "string", "pattern": "^" + _TYPE + "$"},
                 "description": "hub events this client is the source of (e.g. the "
                                "registration system's progress.reported and "
                                "registration.recorded through the SOAP endpoint): only a "
                                "legacy, department, internal or peer hub client may "
                                "own one"},
        "reads": {"enum": READS,
                  "description": "cases whose progress it may read: own (it submitted them), "
                                 "channel (a client of its channel did), tenant (all of the "
                                 "tenants it may act for), none; default by channel"},
        "enabled": {"type": "boolean", "default": True},
        "description": {"type": "string"},
    },
}

ENDPOINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["path", "route"],
    "properties": {
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
        "path": {"type": "string", "pattern": r"^/[A-Za-z0-9._~/{}-]*$",
                 "description": "request path; {name} segments are passed on as headers path.name"},
        "route": {"type": "string", "minLength": 1,
                  "description": "route that handles the request"},
        "reply": {"type": "boolean", "default": True,
                  "description": "true: run the route in the request (run_sync) and answer its "
                                 "reply body; false: queue the request for the route, answer 202"},
        "type": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$",
                 "description": "message type of the request envelope; default inbound.<route>"},
        "schema": {"type": "string",
                   "description": "canonical schema the request body must satisfy (422 if not)"},
        "auth": {"enum": ["signature", "none"], "default": "signature",
                 "description": "none only for loopback tools and benchmarks"},
        "dedupe": {"enum": ["body", "none"],
                   "description": "reply: false only. body (the default there): the message "
                                  "id is derived from the client, endpoint, tenant and the "
                                  "canonical body, so a retried callback is the same message "
                                  "and is absorbed; none: every request is a new message"},
        "dedupe_key": {"type": "string", "minLength": 1,
                       "description": "JMESPath into the body naming what identifies a "
                                      "callback (e.g. XH, the event sequence) instead of the "
                                      "whole body; a body without it falls back to the body"},
        "profile": {"type": "string", "pattern": r"^[^.\s]+\.[^.\s]+$",
                    "description": "connector.record: the body, in the sender's own field "
                                   "names, is mapped into canonical ones by that record of "
                                   "the connector's profile before anything else reads it "
                                   "(connectors.profile)"},
        "case": {"type": "string", "minLength": 1,
                 "description": "reply: true only. JMESPath into the route's answer naming the "
                                "business number of the case it belongs to: only a client that "
                                "may read that case (its reads) gets it, masked; any other, and "
                                "an answer naming no case, gets 404 as for an unknown case "
                                "(web.relay)"},
        "file": {"type": "object", "additionalProperties": False,
                 "required": ["content", "sha256"],
                 "description": "reply: true only. The answer is a file another platform sent: "
                                "answered as itself only when its bytes hash to the SHA-256 of "
                                "the platform's metadata, else 502 file_hash_mismatch, audited, "
                                "nothing passed on (web.relay); each a JMESPath into the "
                                "route's answer",
                 "properties": {
                     "content": {"type": "string", "minLength": 1,
                                 "description": "the file, base64"},
                     "sha256": {"type": "string", "minLength": 1,
                                "description": "its SHA-256 (hex) as the metadata gives it"},
                     "media_type": {"type": "string", "minLength": 1,
                                    "description": "its media type (default "
                                                   "application/octet-stream)"},
                     "name": {"type": "string", "minLength": 1,
                              "description": "its file name"}}},
    },
}

LIMITS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "what one client may hold of the inbound server (web.loopserver)",
    "properties": {
        "header_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600,
                           "default": 10,
                           "description": "seconds from a connection's start (or a request's "
                                          "first byte) to the end of its headers; a slower "
                                          "client is cut off"},
        "body_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                         "default": 60,
                         "description": "seconds from the end of the headers to the end of "
                                        "the body; a slower client is cut off"},
        "connections_per_address": {"type": "integer", "minimum": 0, "maximum": 1_000_000,
                                    "default": 256,
                                    "description": "connections one client address (an IPv6 "
                                                   "/64) may hold open; more are closed at "
                                                   "once; 0: no cap"},
        "max_connections": {"type": "integer", "minimum": 16, "maximum": 1_000_000,
                            "default": 4096,
                            "description": "connections one server process holds open at "
                                           "most; more are closed at once"},
        "max_requests": {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 1000,
                         "description": "requests one server process works on at once; "
                                        "more are answered 503"},
    },
}

IDEMPOTENCY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "repeated inbound writes (Idempotency-Key, applications by business "
                   "number) answered with their first answer (web.idempotency)",
    "properties": {
        "retention": {"type": "number", "minimum": 60, "maximum": 90 * 86400,
                      "default": 86400,
                      "description": "seconds an accepted request's answer is kept for its "
                                     "repeats (default one day)"},
        "wait": {"type": "number", "minimum": 0, "maximum": 60, "default": 5,
                 "description": "seconds a repeat waits for the first request's answer "
                                "before it is answered 409 in_progress"},
        "lease": {"type": "number", "minimum": 10, "maximum": 3600, "default": 300,
                  "description": "seconds a first request may take to be handed over before "
                                 "a repeat may take its place (its process died); longer "
                                 "than the broker's publish timeout (120)"},
        "business_no": {"type": "boolean", "default": True,
                        "description": "also keep applications by (client, business number) "
                                       "when they carry no Idempotency-Key"},
    },
}

INBOUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean", "default": True},
        "listen": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "default": "127.0.0.1"},
                "port": {"type": "integer", "minimum": 0, "maximum": 65535, "default": 8080},
                "threads": {"type": "integer", "minimum": 1, "maximum": 256, "default": 8,
                            "description": "worker threads per server process, for work that "
                                           "blocks (submissions, queries, SOAP); request/"
                                           "reply routes wait on the event loop instead"},
                "processes": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1,
                              "description": "server processes on the one socket, each with "
                                             "its own hub (web.server.serve); more than one "
                                             "uses more cores than one interpreter can"},
            },
        },
        "limits": LIMITS_SCHEMA,
        "idempotency": IDEMPOTENCY_SCHEMA,
        "public_url": {"type": "string", "pattern": r"^https?://",
                       "description": "base URL callers use (behind the gatekeeper / proxy); "
                                      "for the WSDL soap:address and the OpenAPI servers"},
        "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 1024 * MIB,
                           "default": 10 * MIB},
        "clock_skew": {"type": "number", "minimum": 1, "maximum": 3600, "default": 300,
                       "description": "seconds a request timestamp may differ from ours"},
        "nonce_ttl": {"type": "number", "minimum": 1,
                      "description": "seconds a nonce is remembered; default 2 x clock_skew"},
        "nonce_capacity": {"type": "integer", "minimum": 1000, "default": 1_000_000,
                           "description": "nonces held in memory at most"},
        "suspension_refresh": {"type": "number", "minimum": 0, "maximum": 300, "default": 5,
                               "description": "seconds a process answers from its last read "
                                              "of the suspended clients and channels (hub "
                                              "channel suspend) before it reads the store "
                                              "again: how long a suspension or resumption "
                                              "takes at most to reach every process; 0 reads "
                                              "it for every request"},
        "language": {"enum": ["zh_CN", "en"],
                     "description": "language of answers when the caller asks for none; "
                                    "default the hub's (HUB_LANG, else Chinese)"},
        "clients": {"type": "object", "additionalProperties": CLIENT_SCHEMA,
                    "propertyNames": {"pattern": r"^[A-Za-z0-9_.-]+$"},
                    "default": {}},
        "endpoints": {"type": "array", "items": ENDPOINT_SCHEMA, "default": []},
        "message_types": {"type": "object",
                          "additionalProperties": {"type": "string"},
                          "description": "extra types accepted on POST /api/v1/messages/{type}: "
                                         "message type -> canonical schema name"},
        "metrics": {"type": "boolean", "default": True, "description": "serve GET /metrics"},
    },
}

_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "listen": {"host": "127.0.0.1", "port": 8080, "threads": 8, "processes": 1},
    "limits": {key: spec["default"] for key, spec in LIMITS_SCHEMA["properties"].items()},
    "idempotency": {key: spec["default"]
                    for key, spec in IDEMPOTENCY_SCHEMA["properties"].items()},
    "max_body_bytes": 10 * MIB,
    "clock_skew": 300,
    "nonce_capacity": 1_000_000,
    "suspension_refresh": 5,
    "clients": {},
    "endpoints": [],
    "message_types": {},
    "metrics": True,
}


def with_defaults(block: dict[str, Any] | None) -> dict[str, Any]:
    """The block with every default filled in (a copy)."""
    merged = copy.deepcopy(_DEFAULTS)
    for key, value in (block or {}).items():
        if key in ("listen", "limits", "idempotency"):
            merged[key].update(value or {})
        else:
            merged[key] = copy.deepcopy(value)
    merged.setdefault("nonce_ttl", 2 * float(merged["clock_skew"]))
    for client in merged["clients"].values():
        client.setdefault("channel", "other")
        client.setdefault("enabled", True)
        defaults = CHANNEL_DEFAULTS.get(client["channel"], CHANNEL_DEFAULTS["other"])
        client.setdefault("sends", list(defaults["sends"]))
        client.setdefault("owns", [])
        client.setdefault("reads", defaults["reads"])
    merged["endpoints"] = [endpoint_defaults(e) for e in merged["endpoints"]]
    return merged


def endpoint_defaults(endpoint: dict[str, Any]) -> dict[str, Any]:
    """An endpoint with its defaults, the same as the route engine gives them."""
    out = dict(endpoint)
    out.setdefault("method", "POST")
    out.setdefault("auth", "signature")
    out.setdefault("reply", True)
    out.setdefault("dedupe", "none" if out["reply"] else "body")
    out.setdefault("type", "inbound." + "".join(c if c.isalnum() else "_"
                                                for c in str(out["route"]).lower()))
    return out
