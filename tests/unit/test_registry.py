"""Parts are registered by name and imported only when first used."""

from __future__ import annotations

import sys

import pytest

from bdchub.core.errors import ConfigError
from bdchub.core.registry import Registry, load_parts
from bdchub.core.suggest import did_you_mean


def test_a_part_given_by_name_is_imported_when_first_asked_for(tmp_path, monkeypatch):
    (tmp_path / "lazy_part_probe.py").write_text("VALUE = 'loaded'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    parts: Registry[str] = Registry("thing")
    parts.register("probe", "lazy_part_probe:VALUE")

    assert "probe" in parts and "lazy_part_probe" not in sys.modules
    assert parts.get("probe") == "loaded"
    assert "lazy_part_probe" in sys.modules


def test_an_unknown_name_is_a_config_error_with_the_closest_name():
    parts: Registry[int] = Registry("thing")
    parts.register("enrich", 1)
    parts.register("publish", 2)

    with pytest.raises(ConfigError, match="did you mean 'publish'"):
        parts.get("publsh")


def test_a_target_that_cannot_be_imported_says_which_and_why():
    parts: Registry[object] = Registry("thing")
    parts.register("broken", "no_such_module_anywhere:Thing")

    with pytest.raises(ConfigError, match="no_such_module_anywhere"):
        parts.get("broken")


def test_the_packages_register_their_parts_through_the_entry_points():
    from bdchub.connectors.registry import CONNECTOR_TYPES
    from bdchub.core.config import SECTIONS
    from bdchub.routes.steps import STEP_KINDS

    load_parts()
    # the bridge adds its connector type, the web layer and the app floor their sections
    assert "diode" in CONNECTOR_TYPES
    assert {"inbound", "pollers", "bridge", "routes", "connectors", "masking"} <= set(
        SECTIONS.names())
    assert "require_materials" in STEP_KINDS


def test_did_you_mean_is_empty_when_nothing_is_close():
    assert did_you_mean("zzz", ["enrich", "publish"]) == ""
