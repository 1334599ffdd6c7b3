"""docs/inbound-api.md's worked signing example is right (issue #11, item 8): every value
it shows is what web/signing.py computes, and the request it shows is taken by a hub."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from bdchub.web.app import builtin_endpoints, create_app
from bdchub.web.fake import FakeHub
from bdchub.web.metrics import InboundMetrics
from bdchub.web.signing import body_hash, sign, string_to_sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "inbound-api.md"


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def blocks(text: str) -> list[tuple[str, str]]:
    """(info string, content) of each fenced block, content without its last line feed."""
    return [(info, body) for info, body in re.findall(r"```(\w*)\n(.*?)\n```", text, re.S)]


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    found = blocks(section("### Worked example"))
    client, body, to_sign, request, query_to_sign = (b for _i, b in found[:5])
    credentials = dict(line.split(":", 1) for line in client.splitlines())
    headers = dict(line.split(": ", 1) for line in request.splitlines()[1:])
    method, target, _version = request.splitlines()[0].split(" ")
    return {"app_key": credentials["app_key"].strip(),
            "app_secret": credentials["app_secret"].strip(),
            "body": body, "to_sign": to_sign, "method": method, "target": target,
            "headers": headers, "query_to_sign": query_to_sign,
            "text": section("### Worked example")}


def test_the_string_to_sign_and_the_signature_are_what_web_signing_computes(example):
    headers, body = example["headers"], example["body"].encode("utf-8")
    expected = string_to_sign(example["app_key"], headers["X-Timestamp"], headers["X-Nonce"],
                              example["method"], example["target"], body)

    assert example["to_sign"].encode("utf-8") == expected
    assert body_hash(body) in example["text"]
    assert headers["X-Signature"] == sign(example["app_secret"], example["app_key"],
                                          headers["X-Timestamp"], headers["X-Nonce"],
                                          example["method"], example["target"], body)


def test_the_query_example_is_signed_with_its_query(example):
    lines = example["query_to_sign"].split("\n")
    app_key, timestamp, nonce, method, target, digest = lines
    signature = re.search(r"X-Signature: ([0-9a-f]{64})`", example["text"]).group(1)

    assert digest == hashlib.sha256(b"").hexdigest()
    assert "?" in target
    assert signature == sign(example["app_secret"], app_key, timestamp, nonce, method, target,
                             b"")


def test_the_worked_example_is_accepted_by_a_hub_whose_clock_is_at_its_timestamp(example):
    headers = example["headers"]
    hub = FakeHub()
    # The case the example corrects was sent back for correction (补正).
    hub.add_progress("320684", "YWH2024000001", {"stage": "correction"}, client="county_window")
    app = create_app(hub, {"tenant": "320684", "inbound": {"clients": {"county_window": {
        "app_key": example["app_key"], "app_secret": example["app_secret"],
        "tenants": ["320684"], "channel": "county"}}}},
        metrics=InboundMetrics(CollectorRegistry()), clock=lambda: int(headers["X-Timestamp"]))

    response = Client(app).open(example["target"], method=example["method"],
                                data=example["body"].encode("utf-8"), headers=headers)

    assert response.status_code == 202, response.get_json()
    assert hub.published[0].business_no == "YWH2024000001"


def test_the_page_lists_every_builtin_endpoint():
    text = DOC.read_text(encoding="utf-8")
    table = text[:text.index("\n## Signing")]
    rows = {(m, p.split("?")[0]) for m, p in re.findall(r"^\| (GET|POST) \| `([^`]+)`", table,
                                                       re.M)}

    assert rows == {(method, path) for method, path, _h, _w in builtin_endpoints()}
