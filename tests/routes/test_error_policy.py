"""Error policies: what docs/configuration.md says the defaults are is what the
engine does (``routes.compiler.ErrorPolicy.from_config``)."""

from __future__ import annotations

import re
from pathlib import Path

from bdchub.routes.compiler import ErrorPolicy

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def documented_defaults() -> dict[str, str]:
    section = DOCS.read_text(encoding="utf-8").split("### Error policies", 1)[1]
    section = section.split("\n#", 1)[0]
    return dict(re.findall(r"^\| `([a-z_.]+)` \| ([^|]*) \|", section, re.M))


def test_the_documented_error_policy_defaults_are_the_engines():
    docs = documented_defaults()
    policy = ErrorPolicy.from_config({})
    assert int(docs["retry.attempts"]) == policy.attempts
    assert float(docs["retry.backoff"]) == policy.backoff
    assert float(docs["retry.max_backoff"]) == policy.max_backoff
    assert float(docs["park_for"]) == policy.park_for
    assert int(docs["park_max"]) == policy.park_max
    assert docs["then"].startswith(f"`{policy.then}`")
    with_fallback = ErrorPolicy.from_config({"fallback": "manual_review"})
    assert with_fallback.then == "fallback"
    assert "`fallback` when `fallback` is given" in docs["then"]
