"""The worked examples of docs/developing.md run exactly as written there: a
package of one's own adds a connector type and a step kind, and a config uses
both through hub check and a running hub."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from bdchub.connectors.registry import CONNECTOR_TYPES
from bdchub.core.config import check_text
from bdchub.core.errors import ConfigError
from bdchub.routes.steps import STEP_KINDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "developing.md"
BLOCK = re.compile(r"```python\n# (mypkg/[a-z_]+\.py)\n(.*?)```", re.S)


@pytest.fixture
def mypkg(tmp_path, monkeypatch):
    """mypkg written from the doc's code blocks and its parts imported."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, code in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        (tmp_path / name).write_text(code, encoding="utf-8")
    # The step kind's registration is given inline in the doc; it goes in parts.py.
    with (package / "parts.py").open("a", encoding="utf-8") as fh:
        fh.write("\nfrom bdchub.routes.steps import STEP_KINDS\n"
                 "STEP_KINDS.register('stamp', 'mypkg.stamp:KIND')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("mypkg.parts")
    yield tmp_path
    CONNECTOR_TYPES.unregister("outbox")
    STEP_KINDS.unregister("stamp")
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


CONFIG = textwrap.dedent("""\
    tenant: "320684"
    connectors:
      legacy_drop: {type: outbox, folder: drop, timeout: 5}
    routes:
      to_legacy:
        from: application.submitted
        steps:
          - stamp: received_at
          - to: {connector: legacy_drop, operation: submit}
""")


def test_the_doc_has_both_examples():
    assert {name for name, _code in BLOCK.findall(DOC.read_text(encoding="utf-8"))} == {
        "mypkg/outbox.py", "mypkg/parts.py", "mypkg/stamp.py"}


def test_a_config_using_the_new_parts_passes_the_check(mypkg):
    report = check_text(CONFIG, "config.yaml")
    assert ("legacy_drop", "outbox") in report.connectors


def test_the_new_connector_type_is_checked_against_its_own_schema(mypkg):
    with pytest.raises(ConfigError, match="missing required key 'folder'"):
        check_text(CONFIG.replace("folder: drop, ", ""), "config.yaml")


def test_the_new_parts_run_in_a_hub(mypkg, tmp_path):
    from prometheus_client import CollectorRegistry

    from bdchub.routes.middleware import MetricsMiddleware
    from bdchub.routes.runtime import Hub

    config = {**check_text(CONFIG, "config.yaml").config, "__dir__": str(tmp_path)}
    hub = Hub.from_config(config, broker="memory://", store="sqlite://",
                          metrics=MetricsMiddleware(CollectorRegistry()))
    try:
        hub.send("application.submitted", {"business_no": "B-1"}, business_no="B-1")
        hub.run_until_idle()
        steps = [row["step"] for row in hub.trace("B-1")]
    finally:
        hub.stop()
    (dropped,) = (tmp_path / "drop").glob("submit-*.json")
    assert "received_at" in json.loads(dropped.read_text(encoding="utf-8"))
    assert steps == ["0:stamp", "1:to"]
