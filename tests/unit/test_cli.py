"""The `hub` command line, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VALID_ID = "11010519491231002X"          # GB 11643 example, check character X
VALID_USCC = "91350100M000100Y43"
VALID_UNIT = "320684413219GB00029F00010002"


def hub(*args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", lang, *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_check_passes_on_the_shipped_config():
    result = hub("check", "-c", "config.yaml")
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_check_exits_2_with_file_line_and_suggestion(tmp_path: Path):
    bad = tmp_path / "config.yaml"
    bad.write_text((ROOT / "config.yaml").read_text(encoding="utf-8").replace(
        "routes:", "routs:", 1), encoding="utf-8")
    result = hub("check", "-c", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:" in result.stderr
    assert "did you mean 'routes'?" in result.stderr


def test_check_of_missing_file_prints_error_without_traceback(tmp_path: Path):
    result = hub("check", "-c", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert result.stderr.startswith("Error: config file not found")
    assert "Traceback" not in result.stderr


def test_errors_are_chinese_by_default(tmp_path: Path):
    result = hub("check", "-c", str(tmp_path / "absent.yaml"), lang="zh_CN")
    assert result.stderr.startswith("错误: 找不到配置文件")


def test_code_reports_each_value_and_exits_1_when_any_is_invalid():
    wrong_check = VALID_ID[:-1] + "1"
    result = hub("code", "id", VALID_ID, wrong_check)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"{VALID_ID}: valid")
    assert lines[1].startswith(f"{wrong_check}: invalid")


@pytest.mark.parametrize("kind, value", [("id", VALID_ID), ("uscc", VALID_USCC),
                                         ("unit", VALID_UNIT), ("division", "320684"),
                                         ("cert", "苏(2017)海门市不动产权第0000183号")])
def test_code_accepts_valid_values(kind: str, value: str):
    result = hub("code", kind, value)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_refuses_parcel_feature_code_out_of_rule():
    result = hub("code", "unit", VALID_UNIT.replace("GB", "GA"))
    assert result.returncode == 1
    assert "invalid" in result.stdout


def test_code_with_unknown_kind_suggests_one():
    result = hub("code", "uscc2", VALID_USCC)
    assert result.returncode == 1
    assert "did you mean 'uscc'?" in result.stderr


def test_validate_prints_each_violation_with_its_json_path(tmp_path: Path):
    examples = ROOT / "schemas" / "messages" / "examples" / "application"
    valid = sorted(examples.glob("valid-*.json"))[0]
    body = json.loads(valid.read_text(encoding="utf-8"))
    body["applicants"][0]["id_type"] = "1"
    body["applicants"][0]["id_number"] = VALID_ID[:-1] + "1"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    result = hub("validate", "application", str(valid), str(bad))
    assert result.returncode == 1
    assert f"{valid}: valid (application)" in result.stdout
    assert "$.applicants[0].id_number" in result.stdout


def test_validate_reports_malformed_json_with_line(tmp_path: Path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "a": 1,\n}\n', encoding="utf-8")
    result = hub("validate", "application", str(broken))
    assert result.returncode == 1
    assert f"{broken}:3:1: not valid JSON" in result.stdout


def test_validate_with_unknown_schema_suggests_one(tmp_path: Path):
    result = hub("validate", "aplication", str(tmp_path / "x.json"))
    assert result.returncode == 1
    assert "application" in result.stderr and "Traceback" not in result.stderr


def test_schemas_lists_the_canonical_messages():
    result = hub("schemas")
    assert result.returncode == 0
    names = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"application", "progress", "tax_clearance", "court_seizure"} <= names


def test_version_is_printed():
    result = hub("--version")
    assert result.returncode == 0 and "0.1.0" in result.stdout


def _commands(group, prefix=()):
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_that_reads_the_config_takes_the_one_config_option():
    from bdchub.hub import cli

    found = {}
    for path, command in _commands(cli):
        for param in command.params:
            if param.name == "config_path":
                found[" ".join(path)] = (tuple(param.opts), param.envvar)
    assert {"check", "run", "demo", "dlq list", "trace", "send", "ferry import",
            "bridge receive"} <= set(found)
    assert set(found.values()) == {(("-c", "--config"), "HUB_CONFIG")}


def test_check_reads_the_config_named_by_hub_config(tmp_path: Path):
    import os

    result = subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", "en", "check"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env={**os.environ, "HUB_CONFIG": str(ROOT / "config.yaml")})
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
