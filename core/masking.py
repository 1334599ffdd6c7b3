"""Masking of personal data for answers, screens and logs.

Rules (BRIEF §4, configurable through ``inbound.masking``):

- names keep the surname: 张三 -> 张*, 欧阳娜娜 -> 欧阳**;
- ID numbers keep the first 6 and last 4: 110105********1234;
- phone numbers keep the first 3 and last 4: 138****5678.

Fields are chosen by name (case-insensitive, at any depth). With
``scan_values`` other strings are scanned too, so an 18-character resident ID
or an 11-digit mobile number inside free text (a note, an address) is masked
as well. The web answers (``Masker``) and the route engine's progress records
(``routes.progress.Masking``) share these rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

NAME_FIELDS = ("name", "qlrmc", "xm", "applicant_name", "agent_name", "contact_name",
               "name_man", "name_woman", "dlrmc", "sqrmc", "ywrmc", "owner", "holder")
ID_FIELDS = ("id_number", "zjh", "cert_num_man", "cert_num_woman", "id_no", "idcard",
             "sfzh", "dlrzjh", "credential_no")
PHONE_FIELDS = ("phone", "mobile", "telephone", "tel", "lxdh", "dh", "contact_phone",
                "sjhm")

# Two-character surnames (复姓) that are still common.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 "
    "端木 独孤 南宫 西门 万俟 闻人 轩辕 呼延 澹台 公冶 申屠 太史 钟离 濮阳 "
    "单于 赫连 东郭 百里 拓跋 第五".split())

_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8}\d{3}[\dXx]|\d{9})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_name(value: str) -> str:
    value = value.strip()
    if not value:
        return value
    keep = 2 if len(value) > 2 and value[:2] in COMPOUND_SURNAMES else 1
    return value[:keep] + "*" * max(1, len(value) - keep)


def mask_middle(value: str, head: int, tail: int) -> str:
    """Keep ``head`` characters at the start and ``tail`` at the end."""
    n = len(value)
    if n == 0:
        return value
    if n <= head + tail:  # short numbers (passports, landlines) keep less
        head, tail = min(head, n // 4), min(tail, n // 4)
    return value[:head] + "*" * (n - head - tail) + (value[n - tail:] if tail else "")


class Masker:
    def __init__(self, *, name_fields: Iterable[str] = NAME_FIELDS,
                 id_fields: Iterable[str] = ID_FIELDS, phone_fields: Iterable[str] = PHONE_FIELDS,
                 id_keep: tuple[int, int] = (6, 4), phone_keep: tuple[int, int] = (3, 4),
                 scan_values: bool = True):
        self.rules: dict[str, str] = {}
        for kind, fields in (("name", name_fields), ("id", id_fields), ("phone", phone_fields)):
            for field in fields:
                self.rules[field.lower()] = kind
        self.id_keep = tuple(id_keep)
        self.phone_keep = tuple(phone_keep)
        self.scan_values = scan_values

    @classmethod
    def from_config(cls, block: dict[str, Any] | None) -> Masker:
        block = block or {}
        return cls(name_fields=block.get("name_fields", NAME_FIELDS),
                   id_fields=block.get("id_fields", ID_FIELDS),
                   phone_fields=block.get("phone_fields", PHONE_FIELDS),
                   id_keep=tuple(block.get("id_keep", (6, 4))),
                   phone_keep=tuple(block.get("phone_keep", (3, 4))),
                   scan_values=block.get("scan_values", True))

    def id_number(self, value: str) -> str:
        return mask_middle(value, *self.id_keep)

    def phone(self, value: str) -> str:
        return mask_middle(value, *self.phone_keep)

    def text(self, value: str) -> str:
        """Mask ID and mobile numbers inside free text."""
        value = _RESIDENT_ID.sub(lambda m: self.id_number(m.group(0)), value)
        return _MOBILE.sub(lambda m: self.phone(m.group(0)), value)

    def field(self, key: str, value: Any) -> Any:
        kind = self.rules.get(key.lower())
        if kind is not None and isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if kind == "name":
                return mask_name(text)
            if kind == "id":
                return self.id_number(text)
            return self.phone(text)
        return self(value)

    def __call__(self, value: Any) -> Any:
        """A masked copy of any JSON value."""
        if isinstance(value, dict):
            return {k: self.field(k, v) if isinstance(k, str) else self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str) and self.scan_values:
            return self.text(value)
        return value


DEFAULT = Masker()
