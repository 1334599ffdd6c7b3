"""Input hygiene at intake (issue #10, finding 8): control characters, bidi overrides
and isolates and other invisible formatting characters are refused wherever they
sit in a submitted body, with the field's JSON path, for the JSON API, the route
endpoints and the SOAP endpoint alike; ordinary Chinese text passes."""

from __future__ import annotations

import json

import pytest

from bdchub.web import hygiene

from .conftest import SignedClient
from .test_soap import RESULT, call, envelope, fault_of, username_token

REFUSED = {
    "NUL": "\x00",
    "bell (C0)": "\x07",
    "escape (C0)": "\x1b",
    "DEL": "\x7f",
    "next line (C1)": "\x85",
    "left-to-right embedding": "\u202a",
    "right-to-left embedding": "\u202b",
    "pop directional formatting": "\u202c",
    "left-to-right override": "\u202d",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "right-to-left isolate": "\u2067",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "right-to-left mark": "\u200f",
    "arabic letter mark": "\u061c",
    "zero width space": "\u200b",
    "zero width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "tag character": "\U000e0041",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
}


@pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
def test_each_refused_character_in_a_name_is_a_422_with_the_fields_path(client, hub,
                                                                        application, char):
    application["applicants"][0]["name"] = f"张{char}三"

    response = client.post("/api/v1/applications", application)

    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert [v["path"] for v in error["violations"]] == ["$.applicants[0].name"]
    assert f"U+{ord(char):04X}" in error["violations"][0]["message"]
    assert hub.published == []


def test_the_refusal_is_audited_with_the_path_and_never_the_text(client, hub, application):
    application["location"] = "海门市\u202e路号1"

    client.post("/api/v1/applications", application)

    [record] = hub.audited("inbound.rejected")
    assert (record["status"], record["reason"]) == (422, "forbidden_characters")
    assert record["violations"] == ["$.location"]
    assert "海门市" not in json.dumps(record, ensure_ascii=False)


@pytest.mark.parametrize("field, value", [
    ("location", "海门市人民路\n1号"),
    ("name", "张\t三"),
])
def test_tab_and_line_breaks_are_refused_in_one_line_fields(client, hub, application, field,
                                                            value):
    if field == "name":
        application["applicants"][0]["name"] = value
    else:
        application[field] = value

    response = client.post("/api/v1/applications", application)

    assert response.status_code == 422
    assert [v["path"] for v in response.get_json()["error"]["violations"]] == [
        "$.applicants[0].name" if field == "name" else "$.location"]


def test_free_text_may_hold_tabs_and_line_breaks(client, hub, application):
    application["remarks"] = "第一行\n第二行\t（附注）\r\n"

    response = client.post("/api/v1/applications", application)

    assert response.status_code == 202, response.get_json()


def test_ordinary_chinese_text_full_width_punctuation_and_ideographic_space_pass(
        client, hub, application):
    application["applicants"][0]["name"] = "欧阳　娜娜"  # U+3000 between family and given name
    application["location"] = "江苏省海门市海门街道人民路１８８号（金色家园）３幢，１单元！"
    application["remarks"] = "已核对：产权清晰；无查封。「备注」——见附件《说明》…"

    response = client.post("/api/v1/applications", application)

    assert response.status_code == 202, response.get_json()
    assert hub.published[0].body["applicants"][0]["name"] == "欧阳　娜娜"


def test_a_refused_character_in_a_key_names_the_object_holding_it(client, hub, application):
    application["applicants"][0]["na\u202eme"] = "张三"

    response = client.post("/api/v1/applications", application)

    assert response.status_code == 422
    assert [v["path"] for v in response.get_json()["error"]["violations"]] == ["$.applicants[0]"]


def test_route_endpoints_refuse_them_too(make_app, hub):
    app = make_app(endpoints=[{"method": "POST", "path": "/api/v1/inbound/legacy/stage-changes",
                               "route": "legacy_stage_change", "reply": False}])

    response = SignedClient(app).post("/api/v1/inbound/legacy/stage-changes",
                                      {"YWH": "YWH1", "ZTMC": "受理", "BZXM": ["身份\x00证明"]})

    assert response.status_code == 422
    assert [v["path"] for v in response.get_json()["error"]["violations"]] == ["$.BZXM[0]"]
    assert hub.submitted == []


def test_the_soap_endpoint_refuses_them_with_a_client_fault_naming_the_path(client, hub):
    bidi = RESULT.replace("<tns:Name>张三</tns:Name>", "<tns:Name>张&#x202E;三</tns:Name>")

    response = call(client, envelope(bidi, username_token()), sign=False)

    assert response.status_code == 500
    fault = fault_of(response)
    assert (fault["faultcode"], fault["code"]) == ("soap:Client", "schema_violation")
    assert fault["paths"] == ["$.right_holders[0].name"]
    assert hub.published == []


def test_a_body_nested_deeper_than_the_recursion_limit_is_still_checked():
    body: dict = {"name": "\u202e"}
    for _ in range(5000):
        body = {"x": body}

    assert [v["path"].count(".x") for v in hygiene.violations(body)] == [5000]


def test_private_use_and_variation_selectors_in_names_pass():
    # Legacy systems map rare name characters to private use; IVS pick a glyph variant.
    assert hygiene.violations({"name": "王\ue000", "holder_name": "葛\U000e0100"}) == []


def test_the_shipped_ranges_are_the_interpreters_own_for_their_unicode_version():
    import unicodedata

    from bdchub.web import refused_chars
    from bdchub.web.hygiene import refused_ranges

    if refused_chars.UNIDATA_VERSION != unicodedata.unidata_version:
        pytest.skip(f"web/refused_chars.py is for Unicode {refused_chars.UNIDATA_VERSION}, "
                    f"this interpreter has {unicodedata.unidata_version} (it computes its own)")
    assert list(refused_chars.RANGES) == refused_ranges()


def test_an_interpreter_with_other_unicode_tables_computes_its_own(monkeypatch):
    from bdchub.web import hygiene, refused_chars

    monkeypatch.setattr(refused_chars, "UNIDATA_VERSION", "0.0.0")
    monkeypatch.setattr(refused_chars, "RANGES", ())  # would refuse nothing
    hygiene._refused.cache_clear()
    try:
        assert hygiene.violations({"name": "张\u202e三"})
        assert not hygiene.violations({"name": "张\u3000三"})
    finally:
        hygiene._refused.cache_clear()
