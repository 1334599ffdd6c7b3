"""The shipped GB/T 2260 successor table: where an abolished code went."""

from __future__ import annotations

import csv

import pytest

from bdchub.schemas import divisions, successors
from bdchub.schemas.successors import succession, successor


def test_current_codes_map_to_themselves():
    for code in ("320614", "320000", "320600", "110101", "429004"):
        assert successor(code) == code
        assert succession(code).chain == (code,) and not succession(code).retired


def test_haimen_city_maps_to_haimen_district():
    # 2020: 撤销县级海门市，设立南通市海门区.
    assert successor("320684") == "320614"
    assert succession("320684").retired


def test_chains_are_followed_to_the_current_code():
    # 海门县 became 海门市 in 1994, which became 海门区 in 2020.
    found = succession("320625")
    assert found.chain == ("320625", "320684", "320614")
    assert found.successor == "320614" and found.ending == "current"


def test_merged_districts_map_to_the_district_they_joined():
    assert successor("320611") == "320613"   # 港闸区 into 崇川区, 2020
    assert successor("330103") == "330105"   # 下城区 into 拱墅区, 2021
    assert successor("110103") == "110101"   # 崇文区 into 东城区, 2010


def test_a_split_code_has_no_single_successor_and_names_its_parts():
    # 2021: 江干区 abolished, its area to 上城区 and the new 钱塘区.
    found = succession("330104")
    assert found.successor is None and successor("330104") is None
    assert found.ending == "split" and set(found.parts) == {"330102", "330114"}
    # 2000: 锡山市 became 锡山区, 惠山区 and (part of) 新吴区.
    assert succession("320283").ending == "split"


def test_abolished_prefecture_with_no_successor_says_so():
    # 2019: 莱芜市 merged into 济南市; its districts went to 济南, the city's own
    # code to no single county.
    found = succession("371200")
    assert found.successor is None and found.ending == "no_successor"


def test_codes_outside_gbt_2260_have_no_successor():
    assert succession("320671").ending == "not_gbt"   # a development zone's statistical code
    assert succession("999999").ending == "unknown"
    assert successor("999999") is None


def test_every_abolished_code_has_a_row_and_every_successor_is_in_the_snapshot():
    with successors.DATA_FILE.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert {r["code"] for r in rows} == set(divisions.codes(status="abolished"))
    for row in rows:
        assert row["basis"] in {"revisions", "records", "revisions+records", "none", "conflict"}
        for code in filter(None, row["successors"].split(";")):
            assert divisions.is_known(code), (row["code"], code)


@pytest.mark.parametrize("code", list(divisions.codes(status="abolished"))[::50])
def test_a_successor_found_is_always_current(code):
    found = successor(code)
    if found is not None:
        assert divisions.lookup(found).status == "current"
