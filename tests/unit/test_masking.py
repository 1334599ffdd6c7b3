"""Masking of names, ID numbers and phone numbers in answers and logs."""

from __future__ import annotations

import pytest

from bdchub.core.masking import DEFAULT, Masker, mask_name


@pytest.mark.parametrize("name, masked", [
    ("张三", "张*"), ("张三丰", "张**"), ("欧阳娜娜", "欧阳**"), ("李", "李*"),
])
def test_names_keep_the_surname(name, masked):
    assert mask_name(name) == masked


def test_id_numbers_keep_first_six_and_last_four():
    assert DEFAULT.id_number("110105199001011234") == "110105********1234"


def test_phones_keep_first_three_and_last_four():
    assert DEFAULT.phone("13812345678") == "138****5678"


def test_fields_are_masked_by_name_at_any_depth():
    record = {"qlrmc": "王小明", "zjh": "11010519900101123X", "lxdh": "13900001111",
              "parties": [{"name": "赵六", "id_number": "110105199001011234"}], "area": 89.5}

    assert DEFAULT(record) == {
        "qlrmc": "王**", "zjh": "110105********123X", "lxdh": "139****1111",
        "parties": [{"name": "赵*", "id_number": "110105********1234"}], "area": 89.5}


def test_id_and_mobile_numbers_in_free_text_are_masked():
    assert DEFAULT("申请人 110105199001011234 电话 13812345678") == \
        "申请人 110105********1234 电话 138****5678"


def test_rules_are_configurable():
    masker = Masker.from_config({"id_keep_first": 3, "id_keep_last": 3,
                                 "name_fields": ["holder_name"], "scan_values": False})

    assert masker({"holder_name": "张三", "id_number": "110105199001011234",
                   "note": "13812345678"}) == {
        "holder_name": "张*", "id_number": "110************234", "note": "13812345678"}


def test_configured_fields_add_to_the_built_in_ones_never_replace_them():
    masker = Masker.from_config({"id_fields": ["zjhm"]})

    assert masker({"zjhm": "110105199001011234", "sfzh": "110105199001011234"}) == {
        "zjhm": "110105********1234", "sfzh": "110105********1234"}


def test_a_name_keep_other_than_one_keeps_that_many_characters():
    assert Masker.from_config({"name_keep_first": 0}).name("张三") == "**"
    assert Masker.from_config({"name_keep_first": 2}).name("欧阳娜娜") == "欧阳**"


def test_verification_records_mask_the_numbers_departments_answer_with():
    # Household members and marriage rows come back from the exchange
    # platform under these names; hub trace shows them through this masker.
    record = {"entries": [{"name": "李四", "cert_num": "110105199001011234"}],
              "rows": [{"name_man": "王五", "cert_num_man": "11010519900101123X"}]}

    assert DEFAULT(record) == {
        "entries": [{"name": "李*", "cert_num": "110105********1234"}],
        "rows": [{"name_man": "王*", "cert_num_man": "110105********123X"}]}


def test_short_numbers_still_hide_most_digits():
    assert DEFAULT.id_number("E1234567") == "E1****67"


def test_what_progress_rows_keep_of_an_id_number_is_the_last_four_and_configurable():
    assert DEFAULT.stored_id("110105199001011234") == "**************1234"
    assert DEFAULT.stored_id(" 11010519900101123x ") == "**************123x"
    assert Masker.from_config({"stored": {"id_keep_last": 2}}).stored_id(
        "110105199001011234") == "****************34"


def test_the_stored_rule_is_checked_with_the_masking_block():
    from bdchub.core import config
    from bdchub.core.errors import ConfigError

    base = 'tenant: "320684"\nconnectors: {}\nroutes: {}\nmasking:\n  stored: '
    config.check_text(base + "{id_keep_first: 0, id_keep_last: 4}\n")
    with pytest.raises(ConfigError, match="masking.stored"):
        config.check_text(base + "{id_keep_middle: 4}\n")


def test_an_organisations_name_is_shown_as_it_is_when_its_id_type_says_so():
    masker = Masker.from_config({"organisations": {"field": "id_type", "values": ["6", "7", "8"]}})
    mortgage = {"kind": "mortgage", "right_holder": {
        "name": "江海农村商业银行股份有限公司海门支行", "id_type": "8",
        "id_number": "91320614MA1P8K6W29"}}
    holders = [{"name": "张三", "id_type": "1", "id_number": "110105199001011234"},
               {"name": "海门市人民医院", "id_type": 6, "id_number": "12320684F5M947JQUU"}]

    assert masker(mortgage)["right_holder"] == {
        "name": "江海农村商业银行股份有限公司海门支行", "id_type": "8",
        "id_number": "913206********6W29"}  # the code masked as any ID number
    assert [h["name"] for h in masker({"holders": holders})["holders"]] == ["张*", "海门市人民医院"]


def test_without_the_organisations_rule_every_name_is_masked():
    bank = {"name": "江海农村商业银行", "id_type": "8"}
    assert DEFAULT(bank)["name"] == "江*******"
    only_licences = Masker.from_config({"organisations": {"field": "id_type", "values": ["7"]}})
    assert only_licences(bank)["name"] == "江*******"
    # What is inside an organisation's record is masked on its own terms.
    nested = only_licences({"name": "某某公司", "id_type": "7",
                            "contact": {"name": "李四", "phone": "13812345678"}})
    assert nested == {"name": "某某公司", "id_type": "7",
                      "contact": {"name": "李*", "phone": "138****5678"}}


def test_the_organisations_rule_is_checked_with_the_masking_block():
    from bdchub.core import config
    from bdchub.core.errors import ConfigError

    base = 'tenant: "320684"\nconnectors: {}\nroutes: {}\nmasking:\n  organisations: '
    config.check_text(base + '{field: id_type, values: ["8"]}\n')
    with pytest.raises(ConfigError, match="masking.organisations"):
        config.check_text(base + "{field: id_type}\n")
