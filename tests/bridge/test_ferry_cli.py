"""Disc ferry command line (`hub ferry …`), its messages and its small parsers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bdchub.bridge.cli.ferry import ferry_group
from bdchub.bridge.ferry import spec
from bdchub.core import i18n
from bdchub.core.errors import BridgeError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "outbound/附件").mkdir(parents=True)
    (tmp_path / "outbound/审核结果.json").write_text('{"type": "review.result", "tenant": "320684"}',
                                                 encoding="utf-8")
    (tmp_path / "outbound/附件/宗地图.pdf").write_bytes(b"%PDF-1.7\n" + b"x" * 5000)
    return tmp_path


def _run(site: Path, *args: str) -> object:
    return CliRunner().invoke(ferry_group, list(args), catch_exceptions=True,
                              env={"HUB_FERRY_AUDIT": str(site / "audit.jsonl")})


def _pack(site: Path, key: str, *extra: str) -> list[Path]:
    result = _run(site, "pack", "--from", str(site / "outbound"), "--out", str(site / "discs"),
                  "--key", key, "--sender", "county-320684",
                  "--sequence-file", str(site / "seq.json"), "--json", *extra)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return [Path(d["image"]) for d in json.loads(result.output)["discs"]]


def test_keygen_pack_verify_import_with_ed25519(site: Path):
    result = _run(site, "keygen", "--type", "ed25519", "--out", str(site / "keys/ferry"))
    assert result.exit_code == 0
    private, public = site / "keys/ferry.pem", site / "keys/ferry.pub.pem"
    assert private.stat().st_mode & 0o077 == 0

    images = _pack(site, str(private), "--medium", "cd", "--expires", "3d")
    assert len(images) == 1

    verified = _run(site, "verify", *map(str, images), "--key", str(public),
                    "--ledger", str(site / "ledger.db"))
    assert verified.exit_code == 0, verified.output
    assert "verified" in verified.output

    imported = _run(site, "import", *map(str, images), "--key", str(public),
                    "--inbox", str(site / "inbox"), "--quarantine", str(site / "q"),
                    "--ledger", str(site / "ledger.db"), "--json")
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.output)
    assert report["ok"] and report["batches"][0]["status"] == "delivered"
    kinds = {i["relpath"]: (i["kind"], i["content_type"]) for i in report["batches"][0]["items"]}
    assert kinds == {"data/messages/审核结果.json": ("message", "json"),
                     "data/files/附件/宗地图.pdf": ("file", "pdf")}


def test_import_of_a_replay_exits_with_an_error_naming_the_image(site: Path):
    key = site / "shared.key"
    key.write_text("k" * 64)
    images = _pack(site, str(key))
    args = ["import", *map(str, images), "--key", str(key), "--inbox", str(site / "inbox"),
            "--quarantine", str(site / "q"), "--ledger", str(site / "ledger.db")]
    assert _run(site, *args).exit_code == 0
    again = _run(site, *args)
    assert isinstance(again.exception, BridgeError)
    assert images[0].name in str(again.exception)
    assert "replay" in again.output


def test_tiny_medium_size_option_splits(site: Path):
    key = site / "shared.key"
    key.write_text("k" * 64)
    for i in range(6):
        (site / f"outbound/r{i}.json").write_text(json.dumps({"pad": "x" * 200_000}))
    images = _pack(site, str(key), "--medium-size", "1M", "--headroom", "10%")
    assert len(images) >= 2
    assert all(p.stat().st_size <= 0.9 * (1 << 20) for p in images)


def test_pack_without_items_is_a_clear_error(site: Path):
    key = site / "shared.key"
    key.write_text("k" * 64)
    result = _run(site, "pack", "--out", str(site / "d"), "--key", str(key), "--sender", "s1")
    assert isinstance(result.exception, BridgeError)
    assert "nothing to pack" in str(result.exception)


def test_short_shared_key_is_refused(site: Path):
    key = site / "short.key"
    key.write_text("too short")
    result = _run(site, "pack", "--from", str(site / "outbound"), "--out", str(site / "d"),
                  "--key", str(key), "--sender", "s1")
    assert isinstance(result.exception, BridgeError)


def test_hub_prints_refusals_in_chinese_without_traceback(site: Path):
    key = site / "shared.key"
    key.write_text("k" * 64)
    junk = site / "junk.iso"
    junk.write_bytes(b"\0" * 40_000)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hub.py"), "ferry", "import", str(junk), "--key", str(key),
         "--inbox", str(site / "inbox"), "--quarantine", str(site / "q"),
         "--ledger", str(site / "l.db"), "--audit", str(site / "a.jsonl")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HUB_LANG": "zh_CN"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("错误: ")
    assert "拒收" in proc.stderr
    assert "不是可读的 ISO 9660 映像" in proc.stdout


def test_every_ferry_message_has_a_chinese_translation():
    sys.path.insert(0, str(ROOT))
    from tools.i18n_check import missing

    gaps = {msg: where for msg, where in missing().items()
            if any(w.startswith("bridge/ferry/") for w in where)}
    assert gaps == {}


def test_chinese_translations_keep_their_placeholders():
    from babel.messages.pofile import read_po

    with (ROOT / "locale/zh_CN/ferry.po").open("rb") as fh:
        for msg in read_po(fh):
            if msg.id:
                import re

                names = set(re.findall(r"\{(\w+)", str(msg.id)))
                assert names == set(re.findall(r"\{(\w+)", str(msg.string))), msg.id


def test_errors_read_in_chinese_by_default():
    i18n.set_language("zh_CN")
    try:
        with pytest.raises(BridgeError, match="无效的时长"):
            spec.parse_duration("soon")
    finally:
        i18n.set_language("en")


def test_pack_takes_a_list_file_of_items(site: Path):
    key = site / "shared.key"
    key.write_text("k" * 64)
    listing = site / "items.txt"
    listing.write_text(f"# today's results\n{site / 'outbound/审核结果.json'}\n\n", encoding="utf-8")
    result = _run(site, "pack", "--list", str(listing), "--out", str(site / "discs"),
                  "--key", str(key), "--sender", "county-320684",
                  "--sequence-file", str(site / "seq.json"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["discs"][0]["items"] == 1
