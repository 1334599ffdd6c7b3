"""Callbacks named by their content (issue #10, finding 6, inbound part): a department
that posts the same callback again gets 202 and the same message id, so the routes'
idempotency records absorb the retry instead of making it a second message."""

from __future__ import annotations

import json

import pytest

from bdchub.core.errors import ConfigError

from .conftest import APPOINTMENT, PROVINCE_KEY, PROVINCE_SECRET, SignedClient
from .test_soap import STAGE_CHANGE, call, envelope, username_token

PATH = "/api/v1/inbound/legacy/stage-changes"
EVENT = {"XH": 17, "YWH": "YWH2024000001", "ZT": "02", "ZTMC": "受理",
         "BGSJ": "2024-05-02T10:00:00+08:00", "YY": None, "BZXM": [],
         "BDCDYH": "320684413219GB00029F00010002", "DJLX": "100", "QLLX": "4"}


def callback_app(make_app, **options):
    return make_app(endpoints=[{"method": "POST", "path": PATH, "route": "legacy_stage_change",
                                "reply": False, "type": "legacy.stage_changed", **options}])


def test_a_retried_callback_is_answered_202_with_the_same_message_id(make_app, hub):
    client = SignedClient(callback_app(make_app))

    first = client.post(PATH, EVENT)   # each post signs anew: a new nonce and timestamp
    again = client.post(PATH, EVENT)

    assert (first.status_code, again.status_code) == (202, 202)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert [e.id for _route, e in hub.submitted] == [first.get_json()["id"]] * 2


def test_key_order_and_white_space_do_not_make_a_retry_new(make_app, hub):
    client = SignedClient(callback_app(make_app))

    first = client.post(PATH, EVENT)
    reordered = json.dumps(dict(reversed(list(EVENT.items()))), ensure_ascii=False, indent=2)
    again = client.request("POST", PATH, data=reordered.encode("utf-8"))

    assert first.get_json()["id"] == again.get_json()["id"]


def test_another_event_another_client_or_another_tenant_is_another_message(make_app, hub):
    app = callback_app(make_app)
    county, province = SignedClient(app), SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET)

    ids = {county.post(PATH, EVENT).get_json()["id"],
           county.post(PATH, {**EVENT, "XH": 18, "ZT": "03", "ZTMC": "审核"}).get_json()["id"],
           province.post(PATH, EVENT).get_json()["id"],
           province.post(PATH + "?tenant=320600",
                         {k: v for k, v in EVENT.items()}).get_json()["id"]}

    assert len(ids) == 4


def test_a_declared_key_names_the_callback_whatever_else_changed(make_app, hub):
    client = SignedClient(callback_app(make_app, dedupe_key="XH"))

    first = client.post(PATH, EVENT)
    resent = client.post(PATH, {**EVENT, "BGSJ": "2024-05-02T10:00:05+08:00"})
    other = client.post(PATH, {**EVENT, "XH": 18})

    assert first.get_json()["id"] == resent.get_json()["id"] != other.get_json()["id"]


def test_a_declared_key_gives_the_id_the_event_has_on_every_path(make_app, hub):
    # The reconciler publishes a missed event under event_id too: a callback that
    # arrives late, after the reconciliation, is then the same message.
    from bdchub.core.ids import event_id

    from .conftest import TENANT

    client = SignedClient(callback_app(make_app, dedupe_key="XH"))
    answer = client.post(PATH, EVENT)

    assert answer.get_json()["id"] == event_id("legacy.stage_changed", TENANT, 17)


def test_a_body_without_the_declared_key_falls_back_to_its_content(make_app, hub):
    client = SignedClient(callback_app(make_app, dedupe_key="XH"))
    body = {k: v for k, v in EVENT.items() if k != "XH"}

    assert client.post(PATH, body).get_json()["id"] == client.post(PATH, body).get_json()["id"]
    assert client.post(PATH, body).get_json()["id"] != client.post(
        PATH, {**body, "ZT": "03"}).get_json()["id"]


def test_dedupe_none_makes_every_request_a_new_message(make_app, hub):
    client = SignedClient(callback_app(make_app, dedupe="none"))

    assert client.post(PATH, EVENT).get_json()["id"] != client.post(PATH, EVENT).get_json()["id"]


def test_submissions_without_an_idempotency_key_keep_fresh_ids(make_app, hub):
    # Applications are kept by business number (tests/web/test_idempotency.py); an
    # appointment without a key is a new request each time.
    client = SignedClient(make_app())

    first = client.post("/api/v1/appointments", APPOINTMENT)
    again = client.post("/api/v1/appointments", APPOINTMENT)

    assert first.get_json()["id"] != again.get_json()["id"]
    assert len(hub.published) == 2


def test_a_dedupe_key_that_is_not_jmespath_stops_the_app_at_start(make_app):
    with pytest.raises(ConfigError, match="dedupe_key"):
        callback_app(make_app, dedupe_key="XH[")


def test_hub_check_takes_the_options_and_refuses_an_unknown_mode():
    from bdchub.core.config import check_text

    endpoint = ("tenant: '320684'\nconnectors: {{}}\nroutes: {{}}\ninbound:\n  endpoints:\n"
                "    - {{path: /cb, route: r, reply: false, {options}}}\n")
    check_text(endpoint.format(options="dedupe: body, dedupe_key: XH"))
    with pytest.raises(ConfigError, match="dedupe"):
        check_text(endpoint.format(options="dedupe: always"))


def test_a_retried_soap_stage_change_is_the_same_message(client, hub):
    first = call(client, envelope(STAGE_CHANGE, username_token()), sign=False)
    again = call(client, envelope(STAGE_CHANGE, username_token()), sign=False)

    assert (first.status_code, again.status_code) == (200, 200)
    assert hub.published[0].id == hub.published[1].id
    assert again.get_data().count(hub.published[0].id.encode()) == 1


def test_hub_check_reports_a_dedupe_key_that_is_not_jmespath_at_its_line():
    from bdchub.core.config import check_text

    text = """\
tenant: "320684"
connectors: {}
routes: {}
inbound:
  endpoints:
    - {method: POST, path: /x, route: r, reply: false, type: a.b, dedupe_key: "XH["}
"""
    with pytest.raises(ConfigError) as err:
        check_text(text, "config.yaml")
    assert any(p.startswith("config.yaml:6:") and "inbound.endpoints[0].dedupe_key" in p
               and "JMESPath" in p for p in err.value.problems)

