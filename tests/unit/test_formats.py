"""Domain format checkers: what a clerk's data must look like, and what we tell them when not."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bdchub.core import i18n
from bdchub.core.errors import MessageError
from bdchub.schemas import divisions, formats
from bdchub.schemas.formats import (
    FORMAT_CHECKER,
    KINDS,
    USCC_ALPHABET,
    USCC_DEPARTMENTS,
    check,
    check_id_document,
    resident_id_check_char,
    uscc_check_char,
)

ROOT = Path(__file__).resolve().parents[2]
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def english():
    i18n.set_language("en")
    yield
    i18n.set_language(None)


def make_id(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


def make_uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


# --------------------------------------------------------------------- unit code (strict)

@pytest.mark.parametrize("code", [
    "320684413219GB00029F00010002",  # BRIEF example, under the abolished code 320684
    "320614104003GB00030W00000000",  # land only: W + 00000000
    "320614107012JC00051F00010001",  # homestead after J
    "320614107012JA00001W00000000",  # collective land ownership after J
    "310115012005GS00123Q00000001",
    "320614104003ZW00002L00000003",
    "320671001001GX00001F00010001",  # statistical (development-zone) division code
])
def test_unit_code_in_gbt_37346_form_is_accepted(code):
    assert check("unit", code) is None


@pytest.mark.parametrize(("code", "reason"), [
    ("320684413219GA00029F00010002", "parcel feature code 'GA': A (collective land ownership) only after J"),
    ("320684413219ZC00029F00010002", "parcel feature code 'ZC': C (homestead use right) only after J"),
    ("320684413219XB00029F00010002", "first letter must be G (state-owned), J (collective) or Z"),
    ("320684413219GZ00029F00010002", "second letter must be one of"),
    ("320684413219GB00029W00010002", "fixture code W (none) needs fixture unit number 00000000"),
    ("320684413219GB00029K00010002", "fixture feature code 'K'"),
    ("320684413219GB0002AF00010002", "parcel sequence '0002A'"),
    ("320684413219GB00029F0001000A", "fixture unit number '0001000A'"),
    ("32068441321GB00029F00010002", "a unit code has 28 characters, got 27"),
    ("999999413219GB00029F00010002", "division part '999999' is not in the division snapshot"),
    ("32068A413219GB00029F00010002", "division part '32068A' must be 6 digits"),
    ("3206844A3219GB00029F00010002", "cadastral zone '4A3'"),
    ("320684413 19GB00029F00010002", "cadastral subzone ' 19'"),
    ("320684413219gb00029F00010002", "parcel feature code 'gb'"),
])
def test_unit_code_refusal_names_the_wrong_part(code, reason):
    assert reason in check("unit", code)


def test_unit_code_refusal_is_in_chinese_by_default():
    i18n.set_language(None)
    assert check("unit", "320684413219GA00029F00010002") == \
        "宗地（宗海）特征码“GA”：A（集体土地所有权）只能跟在 J 之后"


_FEATURES = [f + s for f in "GJZ" for s in formats.PARCEL_USE
             if s not in formats.ONLY_AFTER_J or f == "J"]
_COUNTIES = sorted(divisions.codes(status=None, level="county"))
_digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def unit_codes(draw):
    division = draw(st.sampled_from(_COUNTIES))
    zone = draw(st.from_regex(r"[0-9]{6}", fullmatch=True))
    feature = draw(st.sampled_from(_FEATURES))
    seq = draw(st.from_regex(r"[0-9]{5}", fullmatch=True))
    fixture = draw(st.sampled_from("FLQW"))
    number = "00000000" if fixture == "W" else draw(st.from_regex(r"[0-9]{8}", fullmatch=True))
    return division + zone + feature + seq + fixture + number


@PROPERTY
@given(unit_codes())
def test_generated_valid_unit_codes_pass(code):
    assert check("unit", code) is None
    assert check("unit-lenient", code) is None


def test_every_letter_pair_follows_the_only_after_j_rule():
    for first in "GJZ":
        for second in formats.PARCEL_USE:
            code = f"320684413219{first}{second}00029F00010002"
            ok = second not in ("A", "C") or first == "J"
            assert (check("unit", code) is None) is ok, code


# --------------------------------------------------------------------- unit code (lenient)

@pytest.mark.parametrize("code", ["320684", "320684413219", "320684413219GB00029F00010002", "ABC-12"])
def test_partial_unit_code_is_accepted_for_national_access(code):
    assert check("unit-lenient", code) is None


@pytest.mark.parametrize(("code", "reason"), [
    ("32068", "6 to 28 characters"),
    ("320684413219GB00029F000100021", "6 to 28 characters"),
    ("320684 413219", "must not contain spaces"),
    ("320684\t413219", "must not contain spaces"),
])
def test_lenient_unit_code_refuses_short_long_or_spaced(code, reason):
    assert reason in check("unit-lenient", code)


# --------------------------------------------------------------------- resident ID

def test_resident_id_with_correct_check_digit_is_accepted():
    assert check("id", make_id("11010519491231002")) is None
    assert make_id("11010519491231002") == "11010519491231002X"


def test_resident_id_with_wrong_check_digit_is_refused():
    assert check("id", "110105194912310021") == "wrong check character '1', expected 'X'"


def test_resident_id_with_lower_case_x_is_refused_but_normalisable():
    # Canonical messages carry one spelling; mappers normalise legacy input.
    assert "upper-case X" in check("id", "11010519491231002x")
    assert check("id", formats.normalise_resident_id(" 11010519491231002x ")) is None


def test_resident_id_under_abolished_address_code_is_accepted():
    # 320621 海安县 became 海安市 (320685) in 2018; numbers issued before stay valid.
    assert divisions.lookup("320621").abolished
    assert check("id", make_id("32062119780203018")) is None


def test_resident_id_address_code_missing_from_division_list_is_accepted():
    assert not divisions.is_known("329999")
    assert check("id", make_id("32999919800101001")) is None


def test_resident_id_of_taiwan_resident_permit_is_accepted():
    assert check("id", make_id("83000019900101002")) is None


@pytest.mark.parametrize(("first17", "reason"), [
    ("99010519800101001", "does not start with a province code"),
    ("32068419870230042", "birth date '19870230' is not a real date"),
    ("32068419871322042", "not a real date"),
    ("32068420990101031", "birth date '20990101' is in the future"),
    ("32068418000101031", "is before 1880"),
])
def test_resident_id_with_impossible_parts_is_refused(first17, reason):
    assert reason in check("id", make_id(first17))


def test_resident_id_born_today_is_accepted_and_tomorrow_is_not(monkeypatch):
    monkeypatch.setattr(formats, "_today", lambda: dt.date(2024, 5, 6))
    assert check("id", make_id("32061420240506001")) is None
    assert "in the future" in check("id", make_id("32061420240507001"))


@pytest.mark.parametrize(("value", "reason"), [
    ("320684850312031", "18 characters, got 15"),
    ("3206841985031203101", "18 characters, got 19"),
    ("32068419850312A031", "first 17 characters"),
    ("32068419850312031Y", "digit or X"),
    ("３２０６８４１９８５０３１２０３１X", "first 17 characters"),  # full-width digits
])
def test_malformed_resident_id_is_refused(value, reason):
    assert reason in check("id", value)


_PROVINCES = sorted(c[:2] for c in divisions.codes(level="province"))


@st.composite
def resident_ids(draw):
    prov = draw(st.sampled_from(_PROVINCES))
    rest = draw(st.from_regex(r"[0-9]{4}", fullmatch=True))
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today()))
    seq = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    return make_id(prov + rest + born.strftime("%Y%m%d") + seq)


@PROPERTY
@given(resident_ids())
def test_generated_valid_resident_ids_pass(value):
    assert check("id", value) is None


@PROPERTY
@given(resident_ids(), st.data())
def test_any_single_character_change_to_a_resident_id_is_refused(value, data):
    # Weights are non-zero mod 11 and a digit changes by less than 11, so the
    # mod-11 sum always moves: every single substitution is caught (or the
    # change breaks the date or province first).
    pos = data.draw(st.integers(0, 17))
    alphabet = "0123456789X" if pos == 17 else "0123456789"
    new = data.draw(st.sampled_from([c for c in alphabet if c != value[pos]]))
    changed = value[:pos] + new + value[pos + 1:]
    assert check("id", changed) is not None


# --------------------------------------------------------------------- USCC

@pytest.mark.parametrize("first17", [
    "91320614MA1N2P3Q4",  # company (工商)
    "N2320614MA0R7T5U1",  # village collective economic organisation: N is valid
    "Y1310115MC2H4J6K8",  # other departments: Y is valid
    "12320614MB1A2C3D4",  # public institution
    "A1100000MA0000000",
])
def test_uscc_with_correct_check_character_is_accepted(first17):
    assert check("uscc", make_uscc(first17)) is None


def test_uscc_check_character_follows_gb_32100():
    # 3 ** i mod 31 are the weights; (31 - sum mod 31) mod 31 indexes the alphabet.
    assert formats.USCC_WEIGHTS == tuple(pow(3, i, 31) for i in range(17))
    assert uscc_check_char("00000000000000000") == "0"
    assert uscc_check_char("10000000000000000") == USCC_ALPHABET[30]


def test_uscc_with_wrong_check_character_is_refused():
    good = make_uscc("91320614MA1N2P3Q4")
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    assert f"wrong check character '{bad[17]}', expected '{good[17]}'" == check("uscc", bad)


@pytest.mark.parametrize(("value", "reason"), [
    ("91320614MA1N2P3Q", "18 characters, got 16"),
    ("91320614MA1N2P3QI4", "character 17 'I' is not allowed"),
    ("91320614MA1N2P3Qo4", "character 17 'o' is not allowed"),
    ("B1320614MA1N2P3Q44", "registering department 'B'"),
    ("0132061 MA1N2P3Q44", "character 8 ' '"),
    ("913206A4MA1N2P3Q44", "6-digit division code"),
])
def test_malformed_uscc_is_refused(value, reason):
    assert reason in check("uscc", value)


@st.composite
def usccs(draw):
    dept = draw(st.sampled_from(USCC_DEPARTMENTS))
    kind = draw(st.sampled_from(USCC_ALPHABET))
    division = draw(st.from_regex(r"[0-9]{6}", fullmatch=True))
    org = "".join(draw(st.lists(st.sampled_from(USCC_ALPHABET), min_size=9, max_size=9)))
    return make_uscc(dept + kind + division + org)


@PROPERTY
@given(usccs())
def test_generated_valid_usccs_pass(value):
    assert check("uscc", value) is None


@PROPERTY
@given(usccs(), st.data())
def test_any_single_character_change_to_a_uscc_is_refused(value, data):
    # Weights 3**i are units mod 31 and two alphabet values differ by less than
    # 31, so every single substitution moves the check.
    pos = data.draw(st.integers(0, 17))
    new = data.draw(st.sampled_from([c for c in USCC_ALPHABET if c != value[pos]]))
    assert check("uscc", value[:pos] + new + value[pos + 1:]) is not None


# --------------------------------------------------------------------- certificates and proofs

@pytest.mark.parametrize("value", [
    "苏(2017)海门市不动产权第0000183号",
    "沪(2017)浦字不动产权第015342号",
    "沪（2023）浦字不动产权第021876号",
    "沪(2023）浦字不动产权第021876号",
    "黔(2019)贵阳市不动产权第12345678号",
    "滇(2020)昆明市不动产权第0123456号",
])
def test_certificate_number_in_usual_forms_is_accepted(value):
    assert check("cert", value) is None


@pytest.mark.parametrize("value", [
    "苏(2024)海门区不动产证明第0004567号",
    "沪（2024）浦字不动产证明第030112号",
])
def test_proof_number_is_accepted(value):
    assert check("proof", value) is None


@pytest.mark.parametrize(("kind", "value", "reason"), [
    ("cert", "苏(2024)海门区不动产证明第0004567号", "this is a proof number"),
    ("proof", "苏(2017)海门市不动产权第0000183号", "this is a certificate number"),
    ("cert", "申(2017)浦字不动产权第015342号", "'申' is not a provincial abbreviation"),
    ("cert", "苏(2009)海门市不动产权第0000183号", "year 2009 is outside 2014"),
    ("cert", "苏(2017)海门市不动产权第01834号", "sequence '01834' must be 6 to 8 digits"),
    ("cert", "苏(2017)海门市不动产权第018340001号", "6 to 8 digits"),
    ("cert", "苏(2017)不动产权第0000183号", "place '' must be 1 to 20 Chinese characters"),
    ("cert", "苏(2017)Haimen不动产权第0000183号", "place 'Haimen'"),
    ("cert", "苏[2017]海门市不动产权第0000183号", "expected a certificate number like"),
    ("proof", "苏2017海门不动产证明0000183", "expected a proof number like"),
    ("cert", "苏(2017)海门市房权证第0000183号", "expected a certificate number like"),
])
def test_wrong_certificate_or_proof_number_is_refused(kind, value, reason):
    assert reason in check(kind, value)


def test_certificate_abbreviations_cover_all_34_provincial_units():
    assert len(set(divisions.PROVINCE_ABBREVIATIONS.values())) == 34
    for abbr in divisions.PROVINCE_ABBREVIATIONS:
        assert check("cert", f"{abbr}(2020)某地不动产权第000001号") is None


# --------------------------------------------------------------------- division and business number

@pytest.mark.parametrize("code", ["320614", "320684", "310115", "110000", "320671"])
def test_division_code_known_to_snapshot_is_accepted(code):
    assert check("division", code) is None


@pytest.mark.parametrize(("code", "reason"), [
    ("999999", "not in the division snapshot"),
    ("32061", "6 digits"),
    ("32061A", "6 digits"),
    ("３２０６１４", "6 digits"),
])
def test_division_code_unknown_or_malformed_is_refused(code, reason):
    assert reason in check("division", code)


@pytest.mark.parametrize("value", ["2024050600123", "SH-2024-0610-0042", "a", "YWH_01", "X" * 32])
def test_business_number_of_letters_digits_dash_underscore_is_accepted(value):
    assert check("business-no", value) is None


@pytest.mark.parametrize(("value", "reason"), [
    ("", "1 to 32 characters, got 0"),
    ("X" * 33, "1 to 32 characters, got 33"),
    ("2024/0506", "only letters, digits"),
    ("-2024", "starts with a letter or digit"),
    ("业务2024", "only letters, digits"),
])
def test_business_number_with_other_characters_is_refused(value, reason):
    assert reason in check("business-no", value)


# --------------------------------------------------------------------- dispatch and registration

def test_check_knows_every_kind_the_cli_offers():
    assert KINDS == ("unit", "unit-lenient", "id", "uscc", "cert", "proof", "division", "business-no")


def test_unknown_kind_raises_message_error_listing_the_kinds():
    with pytest.raises(MessageError, match="unit-lenient"):
        check("passport", "E12345678")


@pytest.mark.parametrize("name", [
    "bdc-unit-code", "bdc-unit-code-lenient", "resident-id", "uscc", "bdc-cert-no",
    "bdc-proof-no", "division-code", "business-no", "date", "date-time",
])
def test_formats_are_registered_on_the_format_checker(name):
    assert name in FORMAT_CHECKER.checkers


def test_format_checker_carries_the_reason_as_cause():
    with pytest.raises(Exception) as info:
        FORMAT_CHECKER.check("320684413219GA00029F00010002", "bdc-unit-code")
    assert "only after J" in str(info.value.cause)
    assert FORMAT_CHECKER.conforms(12345, "resident-id")  # non-strings are left to "type"


@pytest.mark.parametrize(("value", "ok"), [
    ("2024-05-01T09:30:00+08:00", True),
    ("2024-05-01T01:30:00Z", True),
    ("2024-05-01T09:30:00.123456789+08:00", True),
    ("2024-05-01T09:30:00", False),
    ("2024-02-30T09:30:00+08:00", False),
    ("20240501T093000+0800", False),
])
def test_date_time_needs_rfc_3339_with_offset(value, ok):
    assert (formats.check_date_time(value) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [("2024-02-29", True), ("2023-02-29", False), ("20240229", False)])
def test_date_is_extended_iso_form_only(value, ok):
    assert (formats.check_date(value) is None) is ok


@pytest.mark.parametrize(("id_type", "value", "ok"), [
    ("1", "11010519491231002X", True),
    ("1", "110105194912310021", False),
    ("8", make_uscc("N2320614MA0R7T5U1"), True),
    ("8", "N2320614MA0R7T5U10", False),
    ("3", "E12345678", True),
    ("2", "A123456(7)", True),
    ("99", "   ", False),
    ("10", "E12345678", False),
])
def test_id_number_is_checked_by_its_document_type(id_type, value, ok):
    assert (check_id_document(id_type, value) is None) is ok


# --------------------------------------------------------------------- translations

def _msgids() -> set[str]:
    found: set[str] = {*formats.PARCEL_OWNERSHIP.values(), *formats.PARCEL_USE.values(),
                       *formats.FIXTURE_CODES.values()}
    for path in (ROOT / "schemas").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "_" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found.add(node.args[0].value)
    return found


def test_every_message_of_the_schemas_area_has_a_chinese_translation():
    with (ROOT / "locale" / "zh_CN" / "schemas.po").open("rb") as fh:
        catalogue = {m.id: m.string for m in read_po(fh) if m.id}
    missing = sorted(m for m in _msgids() if not catalogue.get(m))
    assert missing == []


def test_chinese_translations_keep_the_placeholders():
    import string

    with (ROOT / "locale" / "zh_CN" / "schemas.po").open("rb") as fh:
        for m in read_po(fh):
            if not m.id:
                continue
            names = {f for _, f, _, _ in string.Formatter().parse(m.id) if f}
            assert names == {f for _, f, _, _ in string.Formatter().parse(m.string) if f}, m.id


# --------------------------------------------------------------------- describe (for `hub code`)

def test_describe_explains_a_valid_unit_code_part_by_part():
    text = formats.describe("unit", "320684413219GB00029F00010002")
    assert text.startswith("江苏省南通市海门市 (abolished; last listed 2019-04)")
    assert "parcel GB: state-owned, construction land use right, surface" in text
    assert text.endswith("fixture F: building")


def test_describe_reads_place_birth_date_and_sex_from_a_resident_id():
    assert formats.describe("id", "11010519491231002X") == "北京市朝阳区; born 1949-12-31; female"
    assert formats.describe("id", make_id("32999919800101001")).startswith("address code 329999")


def test_describe_names_the_province_of_a_certificate_in_chinese_by_default():
    i18n.set_language(None)
    assert formats.describe("cert", "沪(2017)浦字不动产权第015342号") == "上海市，2017 年，浦字，第 015342 号"


def test_describe_says_nothing_about_an_invalid_value():
    assert formats.describe("unit", "320684413219GA00029F00010002") == ""
    assert formats.describe("business-no", "2024050600123") == ""
