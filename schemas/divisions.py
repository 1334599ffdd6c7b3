"""Administrative division codes (GB/T 2260), from the snapshot in ``data/divisions.csv``.

The snapshot is dated and shipped with the hub (see ``data/build_divisions.py``
for its sources): the 2023 list as ``current``, plus every code that appeared
in a GB/T 2260 revision from 1980-12 to 2019-04 and is gone now, as
``abolished`` with the last revision that listed it. Old codes matter: unit
codes, ID numbers and legacy data created under them stay valid (320684
海门市 was replaced by 320614 海门区 in 2020, yet certificates and unit codes
under 320684 are still in circulation). Where an abolished code went (its
successor, chains followed, or a split): ``schemas.successors``.

Province = first 2 digits + ``0000``; prefecture (city) = first 4 digits +
``00``. Municipalities (北京, 天津, 上海, 重庆) and county-level units directly
under a province (e.g. 429004 仙桃市) have no prefecture: ``city_code`` is None.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

DATA_FILE = Path(__file__).resolve().parent / "data" / "divisions.csv"

#: What the snapshot is, for messages that cite it.
SNAPSHOT = "GB/T 2260, 2023"

Status = Literal["current", "abolished", "statistical"]
Level = Literal["province", "prefecture", "county"]

#: Provincial-level abbreviations (简称) as printed on certificates, to the
#: province code. Where a province has two official abbreviations both are
#: listed (贵州 黔/贵, 云南 云/滇, 四川 川/蜀, 陕西 陕/秦, 甘肃 甘/陇).
PROVINCE_ABBREVIATIONS: dict[str, str] = {
    "京": "110000", "津": "120000", "冀": "130000", "晋": "140000", "蒙": "150000",
    "辽": "210000", "吉": "220000", "黑": "230000",
    "沪": "310000", "苏": "320000", "浙": "330000", "皖": "340000", "闽": "350000",
    "赣": "360000", "鲁": "370000",
    "豫": "410000", "鄂": "420000", "湘": "430000", "粤": "440000", "桂": "450000",
    "琼": "460000",
    "渝": "500000", "川": "510000", "蜀": "510000", "黔": "520000", "贵": "520000",
    "云": "530000", "滇": "530000", "藏": "540000",
    "陕": "610000", "秦": "610000", "甘": "620000", "陇": "620000", "青": "630000",
    "宁": "640000", "新": "650000",
    "台": "710000", "港": "810000", "澳": "820000",
}


@dataclass(frozen=True)
class Division:
    """One division code as the snapshot knows it."""

    code: str
    name: str
    level: Level
    province_code: str
    province_name: str
    city_code: str | None
    city_name: str | None
    status: Status
    #: For codes no longer current: the last revision (``YYYY-MM``) that listed it.
    last_seen: str | None

    @property
    def abolished(self) -> bool:
        return self.status == "abolished"

    @property
    def full_name(self) -> str:
        """``江苏省南通市海门区``; for a province or prefecture, up to itself."""
        parts = [self.province_name]
        if self.city_name and self.city_code != self.code:
            parts.append(self.city_name)
        if self.code != self.province_code:
            parts.append(self.name)
        return "".join(parts)


@dataclass(frozen=True)
class _Row:
    name: str
    status: Status
    last_seen: str | None


@cache
def _table() -> dict[str, _Row]:
    table: dict[str, _Row] = {}
    with DATA_FILE.open(encoding="utf-8", newline="") as fh:
        lines = (line for line in fh if not line.startswith("#"))
        for rec in csv.DictReader(lines):
            table[rec["code"]] = _Row(rec["name"], rec["status"], rec["last_seen"] or None)  # type: ignore[arg-type]
    return table


def _level(code: str) -> Level:
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "prefecture"
    return "county"


@cache
def lookup(code: str) -> Division | None:
    """The division for a 6-digit ``code``, current or historical; None if unknown."""
    if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
        return None
    table = _table()
    row = table.get(code)
    if row is None:
        return None
    prov_code = code[:2] + "0000"
    prov = table.get(prov_code)
    city_code: str | None = code[:4] + "00"
    city = table.get(city_code) if city_code != prov_code else None
    if city is None:
        city_code = None
    return Division(
        code=code,
        name=row.name,
        level=_level(code),
        province_code=prov_code,
        province_name=prov.name if prov else "",
        city_code=city_code,
        city_name=city.name if city else None,
        status=row.status,
        last_seen=row.last_seen,
    )


def is_known(code: str) -> bool:
    """True when ``code`` is in the snapshot (current, abolished or statistical)."""
    return isinstance(code, str) and code in _table()


def codes(*, status: Status | None = "current", level: Level | None = None) -> Iterator[str]:
    """Codes of the snapshot, sorted; ``status=None`` for every status."""
    for code, row in sorted(_table().items()):
        if status is not None and row.status != status:
            continue
        if level is not None and _level(code) != level:
            continue
        yield code


def province_for_abbreviation(abbr: str) -> str | None:
    """Province code for a certificate abbreviation (``苏`` -> ``320000``)."""
    return PROVINCE_ABBREVIATIONS.get(abbr)
