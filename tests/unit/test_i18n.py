"""Every message shown to people has its Chinese text, with the same placeholders."""

from __future__ import annotations

import string

import pytest

from bdchub.core import i18n
from tools.i18n_check import missing, translated

_FORMATTER = string.Formatter()


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in _FORMATTER.parse(text) if name}


def test_every_message_in_the_code_has_a_chinese_translation():
    gaps = missing()
    assert not gaps, "\n".join(f"{where[0]}: {msg!r}" for msg, where in sorted(gaps.items()))


def test_translations_use_only_the_placeholders_of_their_source_text():
    from babel.messages.pofile import read_po

    wrong = []
    for po in sorted(i18n.LOCALE_DIR.joinpath("zh_CN").glob("*.po")):
        with po.open("rb") as fh:
            for msg in read_po(fh):
                if not msg.id or not msg.string or isinstance(msg.id, tuple):
                    continue
                try:
                    extra = _fields(msg.string) - _fields(msg.id)
                except ValueError as exc:
                    wrong.append(f"{po.name}: {msg.id!r}: {exc}")
                    continue
                if extra:
                    wrong.append(f"{po.name}: {msg.id!r} uses {sorted(extra)}")
    assert not wrong, "\n".join(wrong)


def test_chinese_is_the_default_and_english_can_be_chosen(monkeypatch):
    monkeypatch.delenv("HUB_LANG", raising=False)
    i18n.set_language(None)
    assert i18n.gettext("Error") == "错误"
    monkeypatch.setenv("HUB_LANG", "en")
    assert i18n.gettext("Error") == "Error"
    i18n.set_language("zh")
    assert i18n.gettext("missing required key '{key}'", key="tenant") == "缺少必填键 'tenant'"


def test_a_broken_translation_falls_back_to_the_english_text(monkeypatch):
    monkeypatch.setitem(i18n._catalogue("zh_CN"), "hello {name}", "你好 {nome}")
    i18n.set_language("zh_CN")
    assert i18n.gettext("hello {name}", name="张三") == "hello 张三"


@pytest.mark.parametrize("lang", ["zh_CN"])
def test_catalogue_is_not_empty(lang):
    assert len(translated(lang)) > 300
