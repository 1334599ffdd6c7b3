"""Masking of personal data wherever the hub shows it: API answers, progress
records, ``hub trace``, ``hub dlq``, logs.

One rule set and one config block (``masking:`` at the top of config.yaml), so
every place that shows a person masks the same fields the same way (BRIEF §4):

- names keep the surname: 张三 -> 张*, 欧阳娜娜 -> 欧阳** (``name_keep_first``
  other than 1 keeps that many characters instead);
- ID numbers keep the first 6 and last 4: 110105********1234;
- phone numbers keep the first 3 and last 4: 138****5678;
- what rests in the store's progress rows keeps less (``stored``): ID numbers
  only their last 4 (**************1234), enough for a person to recognise
  their case among their own, no more (the guide asks for de-identification).

An organisation's name is not personal data: with ``organisations`` (a field and
its values, e.g. ``{field: id_type, values: ["6", "7", "8"]}``, the ID types of
organisation codes, credit codes and business licences) the name fields of a
record whose field holds one of the values are shown as they are, so a
mortgagee bank reads as the bank; its ID fields are masked as any other.
Without the rule every name is masked.

Fields are chosen by name (case-insensitive, at any depth); ``name_fields``,
``id_fields`` and ``phone_fields`` add to the built-in lists, never replace
them, so a config cannot unmask a field by forgetting it. With
``scan_values`` (the default) other strings are scanned too, so an
18-character resident ID or an 11-digit mobile number inside free text (a
note, an error, a step's detail) is masked as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

NAME_FIELDS = ("name", "qlrmc", "xm", "applicant_name", "agent_name", "contact_name",
               "name_man", "name_woman", "dlrmc", "sqrmc", "ywrmc", "owner", "holder")
ID_FIELDS = ("id_number", "zjh", "cert_num", "cert_num_man", "cert_num_woman", "id_no",
             "idcard", "sfzh", "dlrzjh", "credential_no")
PHONE_FIELDS = ("phone", "mobile", "telephone", "tel", "lxdh", "dh", "contact_phone", "sjhm")

# Two-character surnames (复姓) that are still common.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 "
    "端木 独孤 南宫 西门 万俟 闻人 轩辕 呼延 澹台 公冶 申屠 太史 钟离 濮阳 "
    "单于 赫连 东郭 百里 拓跋 第五".split())

_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8}\d{3}[\dXx]|\d{9})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")

_KEEP = {"type": "integer", "minimum": 0, "maximum": 32}
_FIELDS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}

#: The ``masking:`` section of config.yaml (registered by ``core.config``).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "how personal data is masked in answers, progress, hub trace / dlq and logs",
    "properties": {
        "name_keep_first": {**_KEEP, "default": 1,
                            "description": "characters of a name kept; 1 keeps the surname "
                                           "(two for compound surnames such as 欧阳)"},
        "id_keep_first": {**_KEEP, "default": 6},
        "id_keep_last": {**_KEEP, "default": 4},
        "phone_keep_first": {**_KEEP, "default": 3},
        "phone_keep_last": {**_KEEP, "default": 4},
        "name_fields": {**_FIELDS, "description": "more field names holding a person's name"},
        "id_fields": {**_FIELDS, "description": "more field names holding an ID number"},
        "phone_fields": {**_FIELDS, "description": "more field names holding a phone number"},
        "organisations": {
            "type": "object", "additionalProperties": False, "required": ["field", "values"],
            "description": "records of an organisation: those whose field holds one of the "
                           "values; their names are shown as they are (not personal data)",
            "properties": {
                "field": {"type": "string", "minLength": 1, "description": "e.g. id_type"},
                "values": {"type": "array", "minItems": 1, "uniqueItems": True,
                           "items": {"type": "string", "minLength": 1},
                           "description": "e.g. the organisation ID types 6, 7, 8"},
            },
        },
        "scan_values": {"type": "boolean", "default": True,
                        "description": "also mask ID and mobile numbers found in other text"},
        "stored": {
            "type": "object", "additionalProperties": False,
            "description": "what progress rows keep of the applicant's ID number at rest",
            "properties": {"id_keep_first": {**_KEEP, "default": 0},
                           "id_keep_last": {**_KEEP, "default": 4}},
        },
    },
}


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
    """The masking rules; call it on any JSON value for a masked copy."""

    def __init__(self, *, name_fields: Iterable[str] = (), id_fields: Iterable[str] = (),
                 phone_fields: Iterable[str] = (), name_keep: int = 1,
                 id_keep: tuple[int, int] = (6, 4), phone_keep: tuple[int, int] = (3, 4),
                 scan_values: bool = True, stored_id_keep: tuple[int, int] = (0, 4),
                 organisations: Mapping[str, Any] | None = None):
        self.rules: dict[str, str] = {}
        # (field, values): a record whose field holds one of the values is an organisation's.
        self.organisations: tuple[str, frozenset[str]] | None = (
            (str(organisations["field"]), frozenset(map(str, organisations["values"])))
            if organisations else None)
        for kind, builtin, extra in (("name", NAME_FIELDS, name_fields),
                                     ("id", ID_FIELDS, id_fields),
                                     ("phone", PHONE_FIELDS, phone_fields)):
            for field in (*builtin, *extra):
                self.rules[field.lower()] = kind
        self.name_keep = int(name_keep)
        self.id_keep = (int(id_keep[0]), int(id_keep[1]))
        self.phone_keep = (int(phone_keep[0]), int(phone_keep[1]))
        self.stored_id_keep = (int(stored_id_keep[0]), int(stored_id_keep[1]))
        self.scan_values = scan_values

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> Masker:
        """From the ``masking:`` block (missing keys take the defaults)."""
        block = block or {}
        stored = block.get("stored") or {}
        return cls(name_fields=block.get("name_fields", ()),
                   id_fields=block.get("id_fields", ()),
                   phone_fields=block.get("phone_fields", ()),
                   name_keep=block.get("name_keep_first", 1),
                   id_keep=(block.get("id_keep_first", 6), block.get("id_keep_last", 4)),
                   phone_keep=(block.get("phone_keep_first", 3), block.get("phone_keep_last", 4)),
                   scan_values=block.get("scan_values", True),
                   stored_id_keep=(stored.get("id_keep_first", 0),
                                   stored.get("id_keep_last", 4)),
                   organisations=block.get("organisations"))

    def name(self, value: str) -> str:
        value = (value or "").strip()
        if self.name_keep == 1:
            return mask_name(value)
        return mask_middle(value, self.name_keep, 0) if value else value

    def id_number(self, value: str) -> str:
        return mask_middle((value or "").strip(), *self.id_keep)

    def stored_id(self, value: str) -> str:
        """An ID number as a progress row keeps it (the ``stored`` rule)."""
        return mask_middle((value or "").strip(), *self.stored_id_keep)

    def phone(self, value: str) -> str:
        return mask_middle(value, *self.phone_keep)

    def text(self, value: str) -> str:
        """Mask ID and mobile numbers inside free text (whatever ``scan_values`` says:
        callers use it on errors and details, which are free text by nature)."""
        value = _RESIDENT_ID.sub(lambda m: self.id_number(m.group(0)), value or "")
        return _MOBILE.sub(lambda m: self.phone(m.group(0)), value)

    def field(self, key: str, value: Any) -> Any:
        kind = self.rules.get(key.lower())
        if kind is not None and isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if kind == "name":
                return self.name(text)
            if kind == "id":
                return self.id_number(text)
            return self.phone(text)
        return self(value)

    def is_organisation(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` is an organisation's by the ``organisations`` rule."""
        if self.organisations is None:
            return False
        field, values = self.organisations
        kind = record.get(field)
        return isinstance(kind, str | int) and not isinstance(kind, bool) and str(kind) in values

    def __call__(self, value: Any) -> Any:
        """A masked copy of any JSON value."""
        if isinstance(value, Mapping):
            organisation = self.is_organisation(value)
            return {k: (v if organisation and self.rules.get(k.lower()) == "name"
                        and isinstance(v, str) else self.field(k, v))
                    if isinstance(k, str) else self(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str) and self.scan_values:
            return self.text(value)
        return value


DEFAULT = Masker()

