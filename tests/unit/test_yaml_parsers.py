"""The config is read with libyaml's parser where PyYAML has it (start-up and
``hub check`` spend most of their parse there): it must give exactly what the
pure-Python parser gives, values, locations and ``${VAR:default}`` alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bdchub.core import yamlsource

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False),
                                reason="PyYAML built without libyaml: one parser only")


def _parsed(monkeypatch, loader: type, text: str, environ: dict[str, str]):
    monkeypatch.setattr(yamlsource, "_LOADER", loader)
    return yamlsource.parse_yaml(text, "config.yaml", environ)


@pytest.mark.parametrize("config", ["config.yaml", "config.province.yaml"])
def test_both_parsers_read_the_shipped_configs_alike(monkeypatch, config):
    path = ROOT / config
    if not path.exists():
        pytest.skip(f"{config} is not in this checkout")
    text = path.read_text(encoding="utf-8")
    fast = _parsed(monkeypatch, yaml.CSafeLoader, text, {})
    pure = _parsed(monkeypatch, yaml.SafeLoader, text, {})
    assert fast.data == pure.data
    assert fast.defaulted == pure.defaulted
    for key_path in list(pure.values)[:: max(1, len(pure.values) // 200)]:
        assert str(fast.where(key_path)) == str(pure.where(key_path)), key_path


def test_an_unquoted_variable_takes_the_type_it_would_have_written_plainly(monkeypatch):
    text = 'port: ${PORT:8080}\nflag: ${ON:false}\nquoted: "${PORT:8080}"\n'
    for loader in (yaml.CSafeLoader, yaml.SafeLoader):
        data = _parsed(monkeypatch, loader, text, {}).data
        assert data == {"port": 8080, "flag": False, "quoted": "8080"}, loader
        assert _parsed(monkeypatch, loader, text, {"PORT": "9"}).data["port"] == 9
