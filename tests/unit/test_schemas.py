"""Canonical message schemas: the catalogue, its examples, and the violations it reports."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from bdchub.core import i18n
from bdchub.core.errors import MessageError
from bdchub.schemas import catalog
from bdchub.schemas.catalog import Violation, validate
from bdchub.schemas.formats import resident_id_check_char

EXPECTED = {
    "application", "acceptance_notice", "refusal_notice", "correction_request", "progress",
    "tax_declaration", "tax_clearance", "trade_contract_filing", "court_judgment",
    "court_seizure", "identity_verification_request", "identity_verification_result",
    "marriage_check_request", "marriage_check_result", "household_check_request",
    "household_check_result", "business_licence_check_request",
    "business_licence_check_result", "registration_result", "e_certificate", "appointment",
    "person_query", "unit_status_query", "register_extract", "no_property_certificate",
    "appointment_request", "appointment_reply",
    "review_result",
    "payment_request", "payment_notification", "payment_confirmation",
    "e_certificate_query",
    "material_update",
    "application_batch", "evaluation_request", "evaluation_grade",
    "credit_code_check_result", "face_comparison_result", "signature_verification_result",
    "medical_certificate_check_result", "notarial_certificate_check_result",
    "address_check_result", "financial_licence_check_result",
}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(autouse=True)
def english():
    i18n.set_language("en")
    yield
    i18n.set_language(None)


def _examples(kind: str) -> list[tuple[str, Path]]:
    return [(name, path) for name in catalog.names()
            for path in sorted((catalog.EXAMPLES_DIR / name).glob(f"{kind}-*.json"))]


def _id(param) -> str:
    return param.parent.name + "/" + param.stem if isinstance(param, Path) else str(param)


def _read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------- the catalogue

def test_catalogue_lists_every_canonical_message():
    assert set(catalog.names()) == EXPECTED
    assert "common" not in catalog.names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_is_valid_2020_12_with_id_title_and_chinese_description(name):
    schema = catalog.load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://bdc-hub.invalid/schemas/messages/{name}.schema.json"
    assert schema["title"] and not CJK.search(schema["title"])
    assert CJK.search(schema["description"])
    assert schema["additionalProperties"] is False
    assert catalog.describe(name) == schema["title"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_field_is_described_in_the_domain_terms(name):
    common = catalog.load("common")["$defs"]
    for field, spec in catalog.load(name)["properties"].items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", field), field
        target = spec
        if "$ref" in spec and "description" not in spec:
            target = common[spec["$ref"].rsplit("/", 1)[1]]
        assert CJK.search(target.get("description", "")), f"{name}.{field}"


def test_references_resolve_locally_and_never_over_the_network():
    for path in catalog.MESSAGES_DIR.glob("*.schema.json"):
        for ref in re.findall(r'"\$ref":\s*"([^"]+)"', path.read_text(encoding="utf-8")):
            assert ref.startswith(("#", "common.schema.json#")), (path.name, ref)
    for name in catalog.names():
        catalog.validator(name)  # builds; an unresolvable ref would raise on use
        assert validate(name, {}) != []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_schema_has_at_least_two_valid_and_three_invalid_examples(name):
    folder = catalog.EXAMPLES_DIR / name
    assert len(list(folder.glob("valid-*.json"))) >= 2
    assert len(list(folder.glob("invalid-*.json"))) >= 3


@pytest.mark.parametrize(("name", "path"), _examples("valid"), ids=_id)
def test_valid_example_passes(name, path):
    assert validate(name, _read(path)) == []


@pytest.mark.parametrize(("name", "path"), _examples("invalid"), ids=_id)
def test_invalid_example_fails_at_the_expected_path_for_the_expected_reason(name, path):
    doc = _read(path)
    expect = doc["expect"]
    found = validate(name, doc["message"])
    assert found, "expected a violation"
    at_path = [v for v in found if v.path == expect["path"]]
    assert at_path, f"nothing at {expect['path']}: {found}"
    assert any(expect["reason"] in v.message or expect["reason"] == v.keyword
               for v in at_path), at_path


@pytest.mark.parametrize(("name", "path"), _examples("invalid"), ids=_id)
def test_invalid_example_is_also_refused_with_a_chinese_message(name, path):
    i18n.set_language(None)
    found = validate(name, _read(path)["message"])
    assert found and all(CJK.search(v.message) for v in found), found


# --------------------------------------------------------------------- violations

def _application() -> dict:
    return _read(catalog.EXAMPLES_DIR / "application" / "valid-transfer-couple.json")


def test_format_violation_carries_the_checkers_reason_in_chinese_by_default():
    i18n.set_language(None)
    msg = _application()
    msg["unit_codes"][0] = "320614104003GA00029F00010002"
    assert validate("application", msg) == [Violation(
        "$.unit_codes[0]", "宗地（宗海）特征码“GA”：A（集体土地所有权）只能跟在 J 之后", "format")]


def test_missing_required_field_points_at_the_field():
    msg = _application()
    del msg["applicants"][1]["id_number"]
    assert validate("application", msg) == [
        Violation("$.applicants[1].id_number", "required field is missing", "required")]


def test_unknown_field_points_at_each_extra_field():
    msg = _application()
    msg["applicants"][0]["nickname"] = "老张"
    msg["zzz"] = 1
    assert [(v.path, v.keyword) for v in validate("application", msg)] == [
        ("$.applicants[0].nickname", "additionalProperties"),
        ("$.zzz", "additionalProperties"),
    ]


def test_id_type_1_requires_a_resident_id_and_8_a_credit_code():
    msg = _application()
    msg["applicants"][0]["id_number"] = "E12345678"
    assert validate("application", msg)[0].path == "$.applicants[0].id_number"
    msg["applicants"][0]["id_type"] = "3"  # passport: no national check
    assert validate("application", msg) == []
    msg["applicants"][0]["id_type"] = "8"
    assert "credit code" in validate("application", msg)[0].message


def test_share_is_required_only_for_co_ownership_by_shares():
    msg = _application()
    msg["applicants"][0]["co_ownership"] = "2"
    assert [v.path for v in validate("application", msg)] == ["$.applicants[0].share"]
    msg["applicants"][0]["share"] = "1/2"
    assert validate("application", msg) == []


def test_violations_are_sorted_by_path_with_numeric_indices():
    msg = _application()
    msg["materials"] = msg["materials"] * 3  # 12 materials
    for i in (2, 10):
        msg["materials"][i] = dict(msg["materials"][i], sha256="bad")
    msg["business_no"] = "业务"
    paths = [v.path for v in validate("application", msg)]
    assert paths == ["$.business_no", "$.materials[2].sha256", "$.materials[10].sha256"]


def test_violation_is_a_frozen_value():
    v = Violation("$.a", "m", "k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.path = "$.b"  # type: ignore[misc]
    assert str(v) == "$.a: m"


def test_non_object_body_is_refused_with_a_type_violation():
    assert validate("progress", []) == [Violation("$", "must be of type object, got []", "type")]


def test_odd_property_names_are_quoted_in_the_path():
    assert catalog.json_path(["rows", 0, "a b"]) == "$.rows[0]['a b']"


def test_ensure_valid_raises_message_error_with_every_violation():
    with pytest.raises(MessageError) as info:
        catalog.ensure_valid("progress", {"business_no": "x"})
    assert "progress" in str(info.value) and "(and 3 more)" in str(info.value)
    assert ("$.organisation", "required field is missing") in info.value.violations
    catalog.ensure_valid("progress", _read(catalog.EXAMPLES_DIR / "progress" / "valid-registered.json"))


def test_resident_ids_in_examples_have_real_check_digits():
    # Guard against hand-typed IDs: every 18-digit ID-like value in a valid
    # example carries the computed check character.
    for _name, path in _examples("valid"):
        for value in re.findall(r'"(\d{17}[\dX])"', path.read_text(encoding="utf-8")):
            if value[:2] in ("11", "31", "32"):
                assert value[17] == resident_id_check_char(value[:17]), (path.name, value)


# --------------------------------------------------------------------- unknown names

def test_unknown_schema_name_suggests_the_closest():
    with pytest.raises(MessageError, match="did you mean 'application'"):
        catalog.load("aplication")
    with pytest.raises(MessageError, match="marriage_check_request"):
        catalog.validate("marriage_check_requst", {})


def test_unknown_schema_name_without_close_match_lists_the_known_ones():
    with pytest.raises(MessageError, match="known: acceptance_notice"):
        catalog.validator("zzzz")


def test_load_returns_a_copy_the_caller_may_change():
    catalog.load("progress")["required"].clear()
    assert "stage" in catalog.load("progress")["required"]


def test_validator_is_cached_and_asserts_formats():
    assert catalog.validator("progress") is catalog.validator("progress")
    assert catalog.validator("progress").format_checker is not None


# ------------------------------------------------------- references resolved once

def _through_the_registry(name: str, instance) -> list[Violation]:
    """What validation reports when every $ref is followed through the registry."""
    from bdchub.schemas.formats import FORMAT_CHECKER

    checker = Draft202012Validator(catalog._load(name), registry=catalog._registry(),
                                   format_checker=FORMAT_CHECKER)
    found: set[Violation] = set()
    for error in checker.iter_errors(instance):
        found.update(catalog._violations(error))
    return sorted(found, key=catalog._sort_key)


def _broken_variants(example: dict) -> list:
    """The example with each field in turn removed, emptied, retyped and joined by a stranger."""
    out: list = [example, [], {"unknown": 1}]
    for key, value in example.items():
        out.append({k: v for k, v in example.items() if k != key})
        for bad in ("", 12, None, {"x": "y"}, ["z"], "not-a-valid-value" * 20):
            if bad != value:
                out.append({**example, key: bad})
        if isinstance(value, list) and value and isinstance(value[0], dict):
            item = value[0]
            for inner in item:
                out.append({**example, key: [{k: v for k, v in item.items() if k != inner}]})
                out.append({**example, key: [{**item, inner: 7}]})
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validators_report_exactly_what_following_the_references_reports(name):
    examples = [_read(p) for p in sorted((catalog.EXAMPLES_DIR / name).glob("*.json"))]
    for example in examples:
        for instance in _broken_variants(example):
            assert validate(name, instance) == _through_the_registry(name, instance), instance


def test_validators_follow_no_reference_while_validating():
    for name in catalog.names():
        assert "$ref" not in json.dumps(catalog.validator(name).schema), name


def _errors(checker, instance) -> set:
    # The error's own schema too: a pattern violation quotes its description.
    return {(tuple(e.absolute_path), e.validator, e.message, e.schema.get("description"))
            for e in checker.iter_errors(instance)}


def test_a_reference_with_assertions_beside_it_keeps_both():
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    shared = {"$id": "https://bdc-hub.invalid/t/shared.json",
              "$defs": {"code": {"type": "string", "pattern": "^[0-9]+$",
                                 "description": "digits"},
                        "pair": {"type": "array", "items": {"$ref": "#/$defs/code"}}}}
    schema = {"$id": "https://bdc-hub.invalid/t/msg.json", "type": "object",
              "properties": {"code": {"$ref": "shared.json#/$defs/code", "maxLength": 3,
                                      "description": "a short code"},
                             "pair": {"$ref": "shared.json#/$defs/pair"}}}
    registry = Registry().with_resources(
        [(s["$id"], Resource.from_contents(s, DRAFT202012)) for s in (shared, schema)])
    inlined = catalog._inlined(schema, registry)
    assert "$ref" not in json.dumps(inlined)
    for instance in ({"code": "12345"}, {"code": "1a"}, {"pair": ["1", "b"]}, {"code": 5}):
        by_ref = _errors(Draft202012Validator(schema, registry=registry), instance)
        inline = _errors(Draft202012Validator(inlined), instance)
        assert inline == by_ref, instance


def test_a_schema_whose_references_loop_keeps_them():
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    tree = {"$id": "https://bdc-hub.invalid/t/tree.json", "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    registry = Registry().with_resource(tree["$id"], Resource.from_contents(tree, DRAFT202012))
    assert catalog._inlined(tree, registry) is None


def test_every_schema_title_is_shown_in_chinese_by_default():
    from bdchub.core import i18n
    from bdchub.schemas import catalog

    with i18n.use_language("zh_CN"):
        chinese = {name: catalog.describe(name) for name in catalog.names()}
    with i18n.use_language("en"):
        english = {name: catalog.describe(name) for name in catalog.names()}
    untranslated = [name for name in chinese if chinese[name] == english[name]]
    assert not untranslated
