"""Smoke test of bench/http_route.py: the three contenders do the same thing.

Correctness only, never speed: for a handful of requests, the direct call, the
hub's HTTP route and the Node-RED flow each answer the same mapped body, the
hub and Node-RED really call the echo backend once per request, and both
refuse the same invalid body (a 15-digit resident ID) with 422 at
``$.id_number`` without calling it. Each server runs in its own process on
loopback.

The Node-RED cases are skipped, loudly, when ``bench/nodered/node_modules`` is
absent (``npm install --prefix bench/nodered``; ``bench/http_route.py``
installs it on first use). The echo backend needs ``node`` itself.
"""

from __future__ import annotations

import json
import shutil

import pytest

from bench.common import post_json
from bench.http_route import (
    EXAMPLE,
    NODERED_MAIN,
    Contenders,
    check_contender,
    mapped,
    nodered_ready,
    request_body,
)

pytestmark = pytest.mark.slow

INVALID = {"request_id": "IDV-20240506-0002", "name": "赵明", "id_number": "320684850312031",
           "purpose": "义务人身份核验"}
ROUTES = ["hub", "nodered"]
EXAMPLES = sorted(EXAMPLE.parent.glob("*.json"))


@pytest.fixture(scope="module")
def contenders(tmp_path_factory):
    if not shutil.which("node"):
        pytest.skip("SKIPPED LOUDLY: node is not installed; the echo backend "
                    "(bench/nodered/echo.js) needs Node.js")
    with Contenders(threads=4, nodered=NODERED_MAIN.exists(),
                    workdir=tmp_path_factory.mktemp("http-route")) as running:
        if running.nodered is None:
            running.nodered_reason = nodered_ready(install=False) or running.nodered_reason
        yield running


def _url(contenders: Contenders, name: str) -> str:
    if name == "nodered" and contenders.nodered is None:
        pytest.skip(f"SKIPPED LOUDLY: Node-RED not available: {contenders.nodered_reason}")
    return contenders.urls()[name]


def test_the_mapped_body_renames_to_the_legacy_fields():
    body = request_body()
    assert mapped(body) == {"QQBH": body["request_id"], "QLRMC": body["name"], "ZJZL": "1",
                            "ZJHM": body["id_number"], "HYYT": body["purpose"],
                            "RXZY": body["face_image"]["sha256"]}


def test_direct_call_echoes_the_mapped_body(contenders):
    assert check_contender(contenders, "direct", request_body(), n=3) == mapped(request_body())


@pytest.mark.parametrize("name", ROUTES)
def test_route_answers_the_mapped_body_and_calls_the_backend_once_per_request(contenders, name):
    _url(contenders, name)
    assert check_contender(contenders, name, request_body(), n=5) == mapped(request_body())


@pytest.mark.parametrize("name", ROUTES)
def test_route_leaves_out_rxzy_when_the_face_image_is_missing(contenders, name):
    body = {k: v for k, v in request_body().items() if k != "face_image"}
    raw = json.dumps(body, ensure_ascii=False).encode()
    status, answer = post_json(_url(contenders, name), raw)
    assert (status, answer) == (200, mapped(body))
    assert "RXZY" not in answer


@pytest.mark.parametrize("name", ROUTES)
def test_route_refuses_an_invalid_resident_id_with_422_without_calling_the_backend(
        contenders, name):
    url = _url(contenders, name)
    before = contenders.echoed()
    status, answer = post_json(url, json.dumps(INVALID, ensure_ascii=False).encode())
    assert status == 422, answer
    assert [v["path"] for v in answer["error"]["violations"]] == ["$.id_number"]
    assert contenders.echoed() == before


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("name", ROUTES)
def test_route_judges_every_catalogue_example_as_the_schema_does(contenders, name, example):
    """The same validation on both sides: the canonical examples of the schema,
    valid ones answered, invalid ones refused at the path the catalogue expects."""
    url = _url(contenders, name)
    data = json.loads(example.read_text(encoding="utf-8"))
    body = data.get("message", data) if example.stem.startswith("invalid") else data
    status, answer = post_json(url, json.dumps(body, ensure_ascii=False).encode())
    if example.stem.startswith("valid"):
        assert (status, answer) == (200, mapped(body))
    else:
        assert status == 422, answer
        paths = [v["path"] for v in answer["error"]["violations"]]
        assert data["expect"]["path"] in paths, paths
