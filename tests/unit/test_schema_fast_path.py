"""The compiled fast check (fastjsonschema) in schemas.catalog.validate may only
say "valid" where the 2020-12 validator agrees: checked on every example and on
thousands of mutations of the valid ones."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import fastjsonschema
import pytest

from bdchub.schemas import catalog

EXAMPLES = Path(catalog.__file__).parent / "messages" / "examples"
ODD_VALUES = [None, True, False, 0, 1, -1, 1.5, "", " ", "x" * 300, "张", [], {}, [1], {"a": 1}]


def fast_says_valid(name: str, instance) -> bool:
    check = catalog._fast(name)
    assert check is not None
    try:
        check(instance)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def full_says_valid(name: str, instance) -> bool:
    return not any(True for _ in catalog.validator(name).iter_errors(instance))


def mutations(doc, depth: int = 2) -> Iterator:
    """``doc`` with one value dropped or replaced, down to ``depth`` levels."""
    if depth == 0:
        return
    if isinstance(doc, dict):
        for key in doc:
            dropped = {k: v for k, v in doc.items() if k != key}
            yield dropped
            for odd in ODD_VALUES:
                yield {**doc, key: odd}
            for inner in mutations(doc[key], depth - 1):
                yield {**doc, key: inner}
        yield {**doc, "unexpected_field": "x"}
    elif isinstance(doc, list):
        for i in range(len(doc)):
            yield doc[:i] + doc[i + 1:]
            for inner in mutations(doc[i], depth - 1):
                yield doc[:i] + [inner] + doc[i + 1:]
        if doc:
            yield doc + [copy.deepcopy(doc[0])]


FAST = [n for n in catalog.names() if catalog._fast(n) is not None]


def test_most_schemas_have_a_fast_check():
    assert len(FAST) >= len(catalog.names()) - 2, sorted(set(catalog.names()) - set(FAST))


@pytest.mark.parametrize("name", FAST)
def test_fast_check_agrees_with_the_validator_on_examples_and_mutations(name):
    folder = EXAMPLES / name
    checked = 0
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        full = full_says_valid(name, doc)
        assert fast_says_valid(name, doc) == full, path.name
        assert full == path.name.startswith("valid"), path.name
        if not full:
            continue
        for variant in mutations(doc):
            if fast_says_valid(name, variant):
                assert full_says_valid(name, variant), (path.name, variant)
            checked += 1
    assert checked > 50


def test_validate_answers_the_validators_violations_when_the_fast_check_refuses():
    doc = json.loads((EXAMPLES / "application" / "invalid-missing-applicants.json")
                     .read_text(encoding="utf-8"))
    found = catalog.validate("application", doc)
    assert found and any("applicants" in v.message or "applicants" in v.path for v in found)


def test_a_schema_with_keywords_draft_07_reads_differently_gets_no_fast_check():
    assert catalog._fast_safe({"type": "object", "properties": {"a": {"type": "string"}}})
    assert not catalog._fast_safe({"type": "array", "prefixItems": [{"type": "string"}]})
    assert not catalog._fast_safe({"type": "array", "items": [{"type": "string"}]})
    assert not catalog._fast_safe({"properties": {"a": {"dependentRequired": {"a": ["b"]}}}})
    assert not catalog._fast_safe({"unevaluatedProperties": False})
