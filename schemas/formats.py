"""Domain format checkers: unit codes, ID numbers, credit codes, certificate numbers.

Each checker takes a value and returns None when it is valid, or a reason a
person can act on (translated, e.g. ``parcel feature code 'GA': A (collective
land ownership) only after J``). The same checkers are registered on
``FORMAT_CHECKER`` so JSON Schemas can say ``"format": "resident-id"``, and
``check(kind, value)`` serves ``hub code KIND VALUE...``.

Choices worth knowing (BRIEF §4 has the facts):

- Resident ID: 18 characters only (first-generation 15-digit numbers expired in
  2013). The check character must be an upper-case ``X``: GB 11643 prints it
  so, and a canonical message carries one spelling only; inbound mappers
  should call ``normalise_resident_id`` on what legacy systems send. The
  address code is *not* looked up in the division list (people keep numbers
  issued under abolished codes); only its province part must be a known
  province, or 83 (Taiwan residents' residence permits use 830000).
- Unit code, strict: the 6-digit county code must be in the division
  snapshot, current, abolished or statistical (development-zone codes such as
  320671 occur in registration data).
- Business number (业务号, YWH): 1 to 32 characters of ``0-9 A-Z a-z - _``,
  starting with a letter or digit. Legacy systems generate them freely; this
  is the widest form that still travels safely in file names, URLs, queue
  names and XML without escaping.
- Certificate / proof numbers: year from 2014 (the first unified certificates)
  to next year; place 1 to 20 Chinese characters; sequence 6 to 8 digits;
  brackets half- or full-width.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable

import jsonschema

from bdchub.core.i18n import _
from bdchub.schemas import divisions

Checker = Callable[[str], "str | None"]

# --------------------------------------------------------------------------
# Resident ID (GB 11643-1999)

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"
_EXTRA_ID_PROVINCES = {"83"}  # Taiwan residents' residence permits (港澳台居民居住证)
_EARLIEST_BIRTH = _dt.date(1880, 1, 1)


def resident_id_check_char(first17: str) -> str:
    """The check character for the first 17 digits of a resident ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need 17 digits")
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def normalise_resident_id(value: str) -> str:
    """Trim and upper-case a resident ID from a legacy system (``x`` -> ``X``)."""
    return value.strip().upper()


def _today() -> _dt.date:
    return _dt.date.today()


def check_resident_id(value: str) -> str | None:
    if len(value) != 18:
        return _("a resident ID has 18 characters, got {n}", n=len(value))
    body, last = value[:17], value[17]
    if not (body.isascii() and body.isdigit()):
        return _("the first 17 characters of a resident ID must be digits")
    if last == "x":
        return _("the check character must be an upper-case X")
    if not (last.isascii() and (last.isdigit() or last == "X")):
        return _("the check character must be a digit or X, got '{char}'", char=last)
    province = body[:2]
    if province not in _EXTRA_ID_PROVINCES and not divisions.is_known(province + "0000"):
        return _("address code '{code}' does not start with a province code", code=body[:6])
    birth = body[6:14]
    try:
        born = _dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
    except ValueError:
        return _("birth date '{date}' is not a real date", date=birth)
    if born > _today():
        return _("birth date '{date}' is in the future", date=birth)
    if born < _EARLIEST_BIRTH:
        return _("birth date '{date}' is before {year}", date=birth, year=_EARLIEST_BIRTH.year)
    expected = resident_id_check_char(body)
    if last != expected:
        return _("wrong check character '{got}', expected '{want}'", got=last, want=expected)
    return None


# --------------------------------------------------------------------------
# Unified social credit code (GB 32100-2015)

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
USCC_DEPARTMENTS = "123456789ANY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}


def uscc_check_char(first17: str) -> str:
    """The check character for the first 17 characters of a credit code."""
    if len(first17) != 17 or any(c not in _USCC_VALUE for c in first17):
        raise ValueError("need 17 characters of the credit-code alphabet")
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def check_uscc(value: str) -> str | None:
    if len(value) != 18:
        return _("a unified social credit code has 18 characters, got {n}", n=len(value))
    for pos, char in enumerate(value, start=1):
        if char not in _USCC_VALUE:
            return _("character {pos} '{char}' is not allowed in a credit code "
                     "(digits and upper-case letters except I, O, S, V, Z)", pos=pos, char=char)
    if value[0] not in USCC_DEPARTMENTS:
        return _("registering department '{char}' is not one of 1-9, A, N, Y", char=value[0])
    if not value[2:8].isdigit():
        return _("characters 3 to 8 must be a 6-digit division code, got '{code}'",
                 code=value[2:8])
    expected = uscc_check_char(value[:17])
    if value[17] != expected:
        return _("wrong check character '{got}', expected '{want}'", got=value[17], want=expected)
    return None


# --------------------------------------------------------------------------
# Division code

def check_division(value: str) -> str | None:
    if len(value) != 6 or not value.isascii() or not value.isdigit():
        return _("a division code has 6 digits, got '{value}'", value=value)
    if not divisions.is_known(value):
        return _("division code '{code}' is not in the division snapshot ({snapshot})",
                 code=value, snapshot=divisions.SNAPSHOT)
    return None


# --------------------------------------------------------------------------
# Unit code (GB/T 37346-2019)

PARCEL_OWNERSHIP = {"G": "state-owned", "J": "collective", "Z": "ownership undetermined"}
PARCEL_USE = {
    "A": "collective land ownership",
    "B": "construction land use right, surface",
    "S": "construction land use right, above ground",
    "X": "construction land use right, below ground",
    "C": "homestead use right",
    "D": "contracted farmland",
    "E": "contracted forest land",
    "F": "contracted grassland",
    "H": "sea area",
    "G": "uninhabited island",
    "W": "use right undetermined",
    "Y": "other use",
}
ONLY_AFTER_J = {"A", "C"}
FIXTURE_CODES = {"F": "building", "L": "trees", "Q": "other fixture", "W": "no fixture"}

_DIGITS = re.compile(r"[0-9]+")


def _digits(value: str) -> bool:
    return bool(_DIGITS.fullmatch(value))


def check_unit_code(value: str) -> str | None:
    if len(value) != 28:
        return _("a unit code has 28 characters, got {n}", n=len(value))
    division, zone, subzone = value[0:6], value[6:9], value[9:12]
    feature, seq, fixture, fixture_no = value[12:14], value[14:19], value[19], value[20:28]
    if not _digits(division):
        return _("division part '{part}' must be 6 digits", part=division)
    if not divisions.is_known(division):
        return _("division part '{part}' is not in the division snapshot ({snapshot})",
                 part=division, snapshot=divisions.SNAPSHOT)
    if not _digits(zone):
        return _("cadastral zone '{part}' must be 3 digits", part=zone)
    if not _digits(subzone):
        return _("cadastral subzone '{part}' must be 3 digits", part=subzone)
    first, second = feature[0], feature[1]
    if first not in PARCEL_OWNERSHIP:
        return _("parcel feature code '{code}': first letter must be G (state-owned), "
                 "J (collective) or Z (undetermined)", code=feature)
    if second not in PARCEL_USE:
        return _("parcel feature code '{code}': second letter must be one of {letters}",
                 code=feature, letters=", ".join(PARCEL_USE))
    if second in ONLY_AFTER_J and first != "J":
        return _("parcel feature code '{code}': {letter} ({meaning}) only after J",
                 code=feature, letter=second, meaning=_(PARCEL_USE[second]))
    if not _digits(seq):
        return _("parcel sequence '{part}' must be 5 digits", part=seq)
    if fixture not in FIXTURE_CODES:
        return _("fixture feature code '{code}' must be F (building), L (trees), "
                 "Q (other) or W (none)", code=fixture)
    if not _digits(fixture_no):
        return _("fixture unit number '{part}' must be 8 digits", part=fixture_no)
    if fixture == "W" and fixture_no != "00000000":
        return _("fixture code W (none) needs fixture unit number 00000000, got '{part}'",
                 part=fixture_no)
    return None


def check_unit_code_lenient(value: str) -> str | None:
    if not 6 <= len(value) <= 28:
        return _("a unit code has 6 to 28 characters here, got {n}", n=len(value))
    if any(c.isspace() for c in value):
        return _("a unit code must not contain spaces")
    return None


# --------------------------------------------------------------------------
# Certificate and proof numbers

_CERT = re.compile(
    r"(?P<abbr>.)[(（](?P<year>[0-9]{4})[)）](?P<place>.*?)不动产(?P<kind>权|证明)第"
    r"(?P<seq>[^号]*)号"
)
_PLACE = re.compile(r"[\u4e00-\u9fff]{1,20}")
_EARLIEST_CERT_YEAR = 2014


def _check_numbered(value: str, kind: str) -> str | None:
    m = _CERT.fullmatch(value)
    if m is None:
        if kind == "权":
            return _("expected a certificate number like 苏(2017)海门市不动产权第0000183号")
        return _("expected a proof number like 苏(2017)海门市不动产证明第0000183号")
    if m["kind"] != kind:
        if kind == "权":
            return _("this is a proof number (不动产证明), not a certificate number (不动产权)")
        return _("this is a certificate number (不动产权), not a proof number (不动产证明)")
    if divisions.province_for_abbreviation(m["abbr"]) is None:
        return _("'{abbr}' is not a provincial abbreviation", abbr=m["abbr"])
    year = int(m["year"])
    if not _EARLIEST_CERT_YEAR <= year <= _today().year + 1:
        return _("year {year} is outside {first} to {last}", year=year,
                 first=_EARLIEST_CERT_YEAR, last=_today().year + 1)
    if not _PLACE.fullmatch(m["place"]):
        return _("place '{place}' must be 1 to 20 Chinese characters", place=m["place"])
    if not (_digits(m["seq"]) and 6 <= len(m["seq"]) <= 8):
        return _("sequence '{seq}' must be 6 to 8 digits", seq=m["seq"])
    return None


def check_certificate_no(value: str) -> str | None:
    return _check_numbered(value, "权")


def check_proof_no(value: str) -> str | None:
    return _check_numbered(value, "证明")


# --------------------------------------------------------------------------
# Business number

_BUSINESS_NO = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,31}")


def check_business_no(value: str) -> str | None:
    if not 1 <= len(value) <= 32:
        return _("a business number has 1 to 32 characters, got {n}", n=len(value))
    if not _BUSINESS_NO.fullmatch(value):
        return _("a business number may hold only letters, digits, '-' and '_', "
                 "and starts with a letter or digit")
    return None


# --------------------------------------------------------------------------
# Dates and times (own checks: jsonschema's need optional packages or accept
# ISO 8601 basic forms such as 20230101)

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def check_date(value: str) -> str | None:
    if _DATE.fullmatch(value):
        try:
            _dt.date.fromisoformat(value)
            return None
        except ValueError:
            pass
    return _("'{value}' is not a date (YYYY-MM-DD)", value=value)


def check_date_time(value: str) -> str | None:
    if _DATE_TIME.fullmatch(value):
        text = value.replace("t", "T").replace(" ", "T").replace("z", "Z").replace("Z", "+00:00")
        text = re.sub(r"\.([0-9]{1,9})", lambda m: "." + m[1][:6].ljust(6, "0"), text)
        try:
            _dt.datetime.fromisoformat(text)
            return None
        except ValueError:
            pass
    return _("'{value}' is not a date-time with offset (e.g. 2024-05-01T09:30:00+08:00)",
             value=value)


# --------------------------------------------------------------------------
# ID document by type (QLR.zjzl)

ID_TYPES = {
    "1": "resident ID",
    "2": "Hong Kong, Macao or Taiwan ID",
    "3": "passport",
    "4": "household register",
    "5": "military ID",
    "6": "organisation code",
    "7": "business licence",
    "8": "unified social credit code",
    "99": "other",
}


def check_id_document(id_type: str, id_number: str) -> str | None:
    """Check ``id_number`` as the document ``id_type`` (zjzl) says it is.

    Types 1 and 8 have check characters and are checked fully; the others
    have no single national format, so only blank or oversized values are refused.
    """
    if id_type not in ID_TYPES:
        return _("unknown ID type '{id_type}'", id_type=id_type)
    if id_type == "1":
        return check_resident_id(id_number)
    if id_type == "8":
        return check_uscc(id_number)
    if not id_number.strip() or len(id_number) > 64:
        return _("an ID number has 1 to 64 characters")
    return None


# --------------------------------------------------------------------------
# Registration

#: ``hub code`` kinds, their checkers and their JSON Schema format names.
_KIND_TABLE: dict[str, tuple[str, Checker]] = {
    "unit": ("bdc-unit-code", check_unit_code),
    "unit-lenient": ("bdc-unit-code-lenient", check_unit_code_lenient),
    "id": ("resident-id", check_resident_id),
    "uscc": ("uscc", check_uscc),
    "cert": ("bdc-cert-no", check_certificate_no),
    "proof": ("bdc-proof-no", check_proof_no),
    "division": ("division-code", check_division),
    "business-no": ("business-no", check_business_no),
}
KINDS: tuple[str, ...] = tuple(_KIND_TABLE)
FORMATS: dict[str, Checker] = {fmt: fn for fmt, fn in _KIND_TABLE.values()}
FORMATS.update({"date": check_date, "date-time": check_date_time})


class FormatReason(ValueError):
    """Raised inside FORMAT_CHECKER so the reason reaches ``ValidationError.cause``."""


def _as_format(fn: Checker) -> Callable[[object], bool]:
    def run(instance: object) -> bool:
        if not isinstance(instance, str):
            return True  # formats constrain strings only; "type" speaks for the rest
        reason = fn(instance)
        if reason is not None:
            raise FormatReason(reason)
        return True

    run.__name__ = fn.__name__
    return run


def _build_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()
    for name, fn in FORMATS.items():
        checker.checks(name, raises=FormatReason)(_as_format(fn))
    return checker


FORMAT_CHECKER: jsonschema.FormatChecker = _build_checker()


def _place(code: str) -> str:
    div = divisions.lookup(code)
    if div is None:
        return _("address code {code}", code=code)
    if div.status == "abolished":
        return _("{name} (abolished; last listed {date})", name=div.full_name, date=div.last_seen)
    if div.status == "statistical":
        return _("{name} (statistical code, not in GB/T 2260)", name=div.full_name)
    return div.full_name


def describe(kind: str, value: str) -> str:
    """What a *valid* ``value`` of ``kind`` says, for ``hub code``; "" when nothing to add."""
    if check(kind, value) is not None:
        return ""
    if kind == "division":
        return _place(value)
    if kind == "unit" or (kind == "unit-lenient" and check_unit_code(value) is None):
        feature, fixture = value[12:14], value[19]
        return _("{place}; parcel {feature}: {ownership}, {use}; fixture {fixture}: {meaning}",
                 place=_place(value[:6]), feature=feature,
                 ownership=_(PARCEL_OWNERSHIP[feature[0]]), use=_(PARCEL_USE[feature[1]]),
                 fixture=fixture, meaning=_(FIXTURE_CODES[fixture]))
    if kind == "unit-lenient":
        return _place(value[:6]) if value[:6].isdigit() and divisions.is_known(value[:6]) else ""
    if kind == "id":
        born = f"{value[6:10]}-{value[10:12]}-{value[12:14]}"
        sex = _("male") if int(value[16]) % 2 else _("female")
        return _("{place}; born {date}; {sex}", place=_place(value[:6]), date=born, sex=sex)
    if kind == "uscc":
        return _("registering department {dept}, type {type}; {place}",
                 dept=value[0], type=value[1], place=_place(value[2:8]))
    if kind in ("cert", "proof"):
        m = _CERT.fullmatch(value)
        assert m is not None
        prov = divisions.lookup(divisions.PROVINCE_ABBREVIATIONS[m["abbr"]])
        return _("{province}, year {year}, {place}, number {seq}",
                 province=prov.name if prov else m["abbr"], year=m["year"],
                 place=m["place"], seq=m["seq"])
    return ""


def check(kind: str, value: str) -> str | None:
    """Check ``value`` as ``kind`` (one of ``KINDS``); None when valid, else the reason."""
    try:
        _fmt, fn = _KIND_TABLE[kind]
    except KeyError:
        from bdchub.core.errors import MessageError

        raise MessageError(_("unknown kind '{kind}'; choose one of {kinds}",
                             kind=kind, kinds=", ".join(KINDS))) from None
    return fn(value)
