"""The flow letters agree across config.yaml, docs/flows.md and the config tests, and
docs/testing-config.md lists every shipped config test file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _letters(pattern: str, text: str) -> list[str]:
    return re.findall(pattern, text, flags=re.MULTILINE)


def test_every_flow_has_one_letter_in_order_in_the_config_and_the_docs():
    flows = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8")
    config = (ROOT / "config.yaml").read_text(encoding="utf-8")
    sections = _letters(r"^## ([a-z])\. ", flows)
    table = _letters(r"^\| ([a-z])\. ", flows)
    header = _letters(r"^#   ([a-z])\. ", config)
    expected = [chr(ord("a") + i) for i in range(len(sections))]
    assert sections == table == header == expected


def test_testing_config_lists_every_shipped_config_test_and_each_names_a_flow_that_is():
    listed = (ROOT / "docs" / "testing-config.md").read_text(encoding="utf-8")
    flows = _letters(r"^## ([a-z])\. ", (ROOT / "docs" / "flows.md").read_text(encoding="utf-8"))
    for path in sorted((ROOT / "config.tests").glob("*.yaml")):
        assert f"| `{path.name}` |" in listed, f"docs/testing-config.md does not list {path.name}"
        named = _letters(r"流程 ([a-z])\b", path.read_text(encoding="utf-8"))
        assert set(named) <= set(flows), (path.name, named)
