"""Each connector type's config schema is precise: good blocks pass, typos fail."""

from __future__ import annotations

import jsonschema
import pytest

from bdchub.connectors import registry

GOOD = {
    "rest": {"type": "rest", "base_url": "https://tax.example/api", "timeout": 5,
             "retry": {"attempts": 5, "backoff": 1}, "breaker": {"failures": 3},
             "limits": {"concurrency": 4, "rate": 10, "burst": 5},
             "auth": {"scheme": "gjgxjhpt", "rid": "R", "sid": "S", "secret": "x",
                      "refresh": {"url": "/api/exchange/refresh-secret"}},
             "tls": {"ca_bundle": "certs/ca.pem", "client_cert": "c.pem", "client_key": "c.key"},
             "operations": {"get": {"path": "/c/{no}", "query": {"page": "p"},
                                    "body": {"a": "b", "nested": {"c": "d"}},
                                    "response": "data", "expect": [200],
                                    "success": {"path": "code", "ok": ["0"]}}}},
    "soap": {"type": "soap", "wsdl": "wsdl/tax.wsdl", "soap_version": "1.2",
             "wsse": {"username": "u", "password": "p", "use_digest": True},
             "cache": {"kind": "sqlite", "path": "cache.db"},
             "operations": {"check": {"operation": "QueryClearance", "response": "Status"}},
             "probe": {"operation": "QueryClearance", "payload": {"BusinessNo": "x"}},
             "idempotency": {"header": "{urn:vendor:bdc}IdempotencyKey", "addressing": True,
                             "operations": ["ReceiveDeclaration"]}},
    "amqp": {"type": "amqp", "url": "amqp://u:p@10.0.0.1:5672/bdc", "exchange": "x",
             "exchange_type": "topic", "routing_key": "r.{tenant}", "queue": "q",
             "operations": {"push": {"action": "publish", "routing_key": "a"}}},
    "fake": {"type": "fake", "responses": {"x": 1}},
}

BAD = [
    ("rest", {"base_url": "ftp://x"}),
    ("rest", {"base_urll": "https://x"}),
    ("rest", {"auth": {"scheme": "bearer"}}),  # neither token nor client credentials
    ("rest", {"auth": {"scheme": "appkey", "app_key": "k"}}),
    ("rest", {"operations": {"get": {"path": "/x", "methd": "GET"}}}),
    ("rest", {"retry": {"attempt": 3}}),
    ("rest", {"tls": {"client_key": "k.pem"}}),  # a key without its certificate
    ("soap", {"soap_version": "1.3"}),
    ("soap", {"wsse": {"password": "p"}}),
    ("soap", {"idempotency": {}}),  # nowhere to put the key
    ("soap", {"idempotency": {"header": "IdempotencyKey"}}),  # no {namespace}
    ("soap", {"idempotency": {"operations": ["SubmitApplication"]}}),
    ("amqp", {"exchange_type": "x-delayed"}),
    ("amqp", {"operations": {"x": {"action": "delete"}}}),
]


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_schema_is_valid_and_accepts_a_full_block(kind):
    schema = registry.schema_for(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(GOOD[kind], schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("kind,change", BAD)
def test_schema_rejects_typos_and_impossible_values(kind, change):
    block = {**GOOD[kind], **change}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(block, registry.schema_for(kind),
                            cls=jsonschema.Draft202012Validator)


def test_every_key_of_the_common_schema_is_described():
    for key, spec in registry.COMMON_SCHEMA.items():
        assert spec.get("description"), key
        for sub, subspec in spec.get("properties", {}).items():
            assert subspec.get("description"), f"{key}.{sub}"
