"""Every message the connectors show people has its Chinese text."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from bdchub.core import i18n

ROOT = Path(__file__).resolve().parents[2]


def test_every_connector_msgid_is_translated():
    with (ROOT / "locale" / "zh_CN" / "connectors.po").open("rb") as fh:
        translated = {str(m.id) for m in read_po(fh) if m.id and m.string}
    used = {msg for path in sorted((ROOT / "connectors").glob("*.py"))
            for _line, msg, _comments, _ctx in extract_from_file("python", str(path),
                                                                 keywords={"_": None})}
    assert sorted(used - translated) == []


def test_errors_read_in_chinese_by_default():
    from bdchub.connectors.resilience import CircuitBreaker

    i18n.set_language("zh_CN")
    breaker = CircuitBreaker("tax", failures=1)
    breaker.record_failure()
    try:
        breaker.check("QueryClearance")
    except Exception as exc:  # noqa: BLE001
        assert "熔断器已打开" in str(exc)
    else:
        raise AssertionError("the open breaker let a call through")
