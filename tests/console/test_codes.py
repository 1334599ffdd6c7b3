"""The names the statistics page shows beside registration types and channels: the
common schema's Chinese names by default, English with ?lang=en, for the channels
of applications and of inbound clients alike."""

from __future__ import annotations

import re

import pytest

from bdchub.console import codes
from bdchub.core import i18n
from bdchub.schemas import catalog
from bdchub.web.config_schema import CHANNELS as CLIENT_CHANNELS

from .conftest import PASSWORDS
from .test_statistics import cases, console  # noqa: F401 - the statistics' fixtures


def _schema_names(defn: str) -> dict[str, str]:
    text = catalog.load("common")["$defs"][defn]["description"].split("：", 1)[-1]
    return dict(re.findall(r"([A-Za-z0-9_]+) ([^，,]+)", text))


@pytest.mark.parametrize("kind, defn", [("type", "registration_type"),
                                        ("channel", "channel")])
def test_the_chinese_names_are_the_schemas_for_every_code_it_lists(chinese, kind, defn):
    schema = _schema_names(defn)
    assert codes.names(kind, schema) == schema


def test_every_channel_an_inbound_client_may_have_is_named(chinese):
    named = codes.names("channel", CLIENT_CHANNELS)
    assert set(named) == set(CLIENT_CHANNELS)
    assert named["county"] == "县级一窗平台" and named["legacy"] == "不动产登记系统"


def test_the_names_are_english_when_asked_and_unknown_codes_have_none():
    with i18n.use_language("en"):
        assert codes.names("type", ["200", "999"]) == {"200": "transfer registration"}
        assert codes.names("channel", ["bank"]) == {"bank": "bank branch"}


def test_the_statistics_data_names_the_types_and_channels_it_counts(browser, cases,  # noqa: F811
                                                                     chinese):
    browser.login("sun", PASSWORDS["sun"])
    doc = browser.get("/api/statistics").json
    assert doc["names"] == {"type": {"100": "首次登记", "200": "转移登记"},
                            "channel": {"bank": "银行网点", "county_window": "县级一窗平台"},
                            "division": {"320684": "海门市"}}
    english = browser.get("/api/statistics?lang=en").json
    assert english["names"]["type"]["200"] == "transfer registration"
