"""Smoke test of bench/http_route.py: in every shape the contenders do the same thing.

Correctness only, never speed: for a handful of requests of each shape
(``bench/http_shapes.py``), the direct call, the hub's HTTP route and the
Node-RED flow each answer the shape's expected body, the hub and Node-RED call
the echo backend as often as the shape says (two calls in shape c), and both
refuse the same invalid requests (the identity request's catalogue examples,
wrapped in the case for shapes b and c) with 422 at the path the catalogue
expects, without calling it. A tiny timed run of every shape yields a rate and
the targets of each. Each server runs in its own process on loopback.

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
    NODERED_MAIN,
    Contenders,
    check_contender,
    mapped,
    measure,
    nodered_ready,
    request_body,
    summarise,
    targets,
)
from bench.http_shapes import EXAMPLES, SHAPES, in_case, invalid_examples

pytestmark = pytest.mark.slow

INVALID = {"request_id": "IDV-20240506-0002", "name": "赵明", "id_number": "320684850312031",
           "purpose": "义务人身份核验"}
ROUTES = ["hub", "nodered"]
KEYS = list(SHAPES)


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


def _url(contenders: Contenders, name: str, shape: str = "a") -> str:
    if name == "nodered" and contenders.nodered is None:
        pytest.skip(f"SKIPPED LOUDLY: Node-RED not available: {contenders.nodered_reason}")
    return contenders.urls(shape)[name]


def _post(url: str, body: dict) -> tuple[int, object]:
    return post_json(url, json.dumps(body, ensure_ascii=False).encode())


def test_the_mapped_body_renames_to_the_legacy_fields():
    body = request_body()
    assert mapped(body) == {"QQBH": body["request_id"], "QLRMC": body["name"], "ZJZL": "1",
                            "ZJHM": body["id_number"], "HYYT": body["purpose"],
                            "RXZY": body["face_image"]["sha256"]}


def test_the_case_shapes_answer_with_the_business_number_and_both_checks():
    body = SHAPES["b"].body()
    assert SHAPES["b"].expected(body) == {"YWH": body["business_no"], **mapped(body["applicant"])}
    answer = SHAPES["c"].expected(body)
    assert answer["identity"] == {"XM": "张伟", "ZJHM": body["applicant"]["id_number"]}
    assert answer["household"] == {"ZJHM": body["applicant"]["id_number"],
                                   "YWH": body["business_no"]}


@pytest.mark.parametrize("shape", KEYS)
def test_direct_call_echoes_the_expected_body(contenders, shape):
    body = SHAPES[shape].body()
    assert check_contender(contenders, "direct", body, n=2, shape=shape) == \
        SHAPES[shape].expected(body)


@pytest.mark.parametrize("shape", KEYS)
@pytest.mark.parametrize("name", ROUTES)
def test_route_answers_the_expected_body_and_calls_the_backend_as_the_shape_does(
        contenders, name, shape):
    _url(contenders, name, shape)
    body = SHAPES[shape].body()
    assert check_contender(contenders, name, body, n=3, shape=shape) == \
        SHAPES[shape].expected(body)


@pytest.mark.parametrize("shape", ["a", "b"])
@pytest.mark.parametrize("name", ROUTES)
def test_route_leaves_out_rxzy_when_the_face_image_is_missing(contenders, name, shape):
    request = {k: v for k, v in request_body().items() if k != "face_image"}
    body = SHAPES[shape].wrap(request)
    status, answer = _post(_url(contenders, name, shape), body)
    assert (status, answer) == (200, SHAPES[shape].expected(body))
    assert "RXZY" not in answer


@pytest.mark.parametrize("shape", KEYS)
@pytest.mark.parametrize("name", ROUTES)
def test_route_refuses_an_invalid_resident_id_with_422_without_calling_the_backend(
        contenders, name, shape):
    url = _url(contenders, name, shape)
    before = contenders.echoed()
    status, answer = _post(url, SHAPES[shape].wrap(INVALID))
    assert status == 422, answer
    assert [v["path"] for v in answer["error"]["violations"]] == ["$.id_number"]
    assert contenders.echoed() == before


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
@pytest.mark.parametrize("shape", KEYS)
@pytest.mark.parametrize("name", ROUTES)
def test_route_judges_every_catalogue_example_as_the_schema_does(contenders, name, shape,
                                                                 example):
    """The same validation on both sides: the canonical examples of the schema,
    valid ones answered, invalid ones refused at the path the catalogue expects."""
    url = _url(contenders, name, shape)
    data = json.loads(example.read_text(encoding="utf-8"))
    request = data.get("message", data) if example.stem.startswith("invalid") else data
    body = SHAPES[shape].wrap(request)
    status, answer = _post(url, body)
    if example.stem.startswith("valid"):
        assert (status, answer) == (200, SHAPES[shape].expected(body))
    else:
        assert status == 422, answer
        paths = [v["path"] for v in answer["error"]["violations"]]
        assert data["expect"]["path"] in paths, paths


def test_the_catalogue_has_invalid_examples_to_refuse():
    assert len(invalid_examples()) >= 3
    assert in_case(INVALID)["applicant"] is INVALID


def test_a_tiny_run_of_every_shape_measures_each_contender_and_names_its_targets(contenders):
    runs = measure(contenders, KEYS, concurrency=2, duration=1, rounds=1, warmup=1)
    summary = summarise(runs, KEYS)
    nodered = contenders.nodered is not None
    for shape in KEYS:
        assert summary[shape]["hub_rps"] > 0
        assert summary[shape]["direct_rps"] > 0
        assert (summary[shape]["nodered_rps"] or 0) > 0 or not nodered
        assert summary[shape]["hub_failed"] == 0
    assert summary["c"]["direct_calls"] == 2
    names = [t["name"] for t in targets(summary, processes=1, store="sqlite", nodered=nodered)]
    assert "shape a: hub / direct (1 process, sqlite)" in names
    assert sum("p99/p50" in n for n in names) == len(KEYS)
    assert sum("hub / Node-RED" in n for n in names) == (len(KEYS) if nodered else 0)
