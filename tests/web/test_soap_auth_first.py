"""SOAP requests that authenticate with WS-Security are authenticated before their
body is parsed (issue #10, finding 9: 2.3 MB with 200,000 attributes raised the hub
by some 60 MB before the token was looked at). Only the envelope's Header is read
for the token, streamed, under hard limits; the body becomes a tree only once the
client is known."""

from __future__ import annotations

import tracemalloc

import pytest

from bdchub.core import safexml
from bdchub.web import soap

from .test_soap import NS, SOAP, STAGE_CHANGE, call, envelope, fault_of, username_token

ATTRIBUTES = 200_000


def attribute_bomb(header: str, *, well_formed: bool = True) -> bytes:
    """A ReportStageChange whose operation element carries 200,000 attributes (~2.3 MB)."""
    attrs = " ".join(f"a{n}='x'" for n in range(ATTRIBUTES))
    operation = f'<tns:ReportStageChange xmlns:tns="{NS}" {attrs}><tns:YWH>Y1</tns:YWH>'
    tail = "</tns:ReportStageChange></soap:Body></soap:Envelope>" if well_formed else "<"
    return (f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Header>{header}</soap:Header>'
            f"<soap:Body>{operation}{tail}").encode()


@pytest.fixture
def whole_parses(monkeypatch):
    """Every document parsed whole into a tree by the SOAP endpoint."""
    parsed: list[int] = []
    real = safexml.parse

    def spy(data: bytes):
        parsed.append(len(data))
        return real(data)

    monkeypatch.setattr(safexml, "parse", spy)
    return parsed


@pytest.fixture
def big_app(make_app):
    from .conftest import SignedClient

    return SignedClient(make_app(max_body_bytes=8 * 1024 * 1024))


@pytest.mark.parametrize("token, reason", [
    (username_token(secret="wrong-secret-0123456789"), "signature_mismatch"),
    ("", "missing_headers"),
])
def test_an_attribute_bomb_with_a_bad_or_no_token_is_refused_before_its_body_is_parsed(
        big_app, hub, whole_parses, token, reason):
    response = call(big_app, attribute_bomb(token), sign=False)

    assert response.status_code == 401
    assert fault_of(response)["faultcode"] == "soap:Client"
    assert hub.audited("inbound.rejected")[0]["reason"] == reason
    assert whole_parses == []
    assert hub.published == []


def test_a_body_broken_past_the_header_is_not_read_before_the_token_is_checked(big_app, hub):
    # Were the body parsed first, this would be a 400 (not well-formed), not a 401.
    response = call(big_app, attribute_bomb(username_token(secret="wrong-secret-0123456789"),
                                            well_formed=False), sign=False)

    assert (response.status_code, fault_of(response)["code"]) == (401, "bad_signature")


def test_with_a_good_token_the_body_is_parsed_and_taken(big_app, hub, whole_parses):
    response = call(big_app, envelope(STAGE_CHANGE, username_token()), sign=False)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(whole_parses) == 1
    assert hub.published[0].type == "progress.reported"


def test_reading_the_token_of_a_bomb_keeps_memory_to_the_header():
    bomb = attribute_bomb(username_token())

    tracemalloc.start()
    try:
        token = soap.read_token(bomb)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert token is not None and token.digest
    assert peak < 256 * 1024 < len(bomb) // 8


@pytest.mark.parametrize("header", [
    "<x:Pad xmlns:x='urn:x'>" + "<x:e/>" * (soap.HEADER_ELEMENTS + 1) + "</x:Pad>",
    "<x:Pad xmlns:x='urn:x' " + " ".join(f"a{n}='1'" for n in range(soap.HEADER_ATTRIBUTES + 1))
    + "/>",
    "".join(f"<x:d{n} xmlns:x='urn:x'>" for n in range(soap.HEADER_DEPTH))
    + "".join(f"</x:d{n}>" for n in reversed(range(soap.HEADER_DEPTH))),
    "<x:Pad xmlns:x='urn:x'>" + "x" * soap.HEADER_BYTES + "</x:Pad>",
], ids=["elements", "attributes", "depth", "bytes"])
def test_a_header_beyond_the_limits_counts_as_no_token(big_app, hub, whole_parses, header):
    response = call(big_app, envelope(STAGE_CHANGE, header + username_token()), sign=False)

    assert (response.status_code, fault_of(response)["code"]) == (401, "bad_signature")
    assert hub.audited("inbound.rejected")[0]["reason"] == "header_too_large"
    assert whole_parses == []


def test_an_envelope_start_tag_bomb_is_refused_within_the_header_budget(big_app, hub,
                                                                        whole_parses):
    attrs = " ".join(f"a{n}='x'" for n in range(ATTRIBUTES))
    body = f'<soap:Envelope xmlns:soap="{SOAP}" {attrs}><soap:Body/></soap:Envelope>'.encode()

    response = call(big_app, body, sign=False)

    assert response.status_code == 401
    assert whole_parses == []


def test_a_dtd_in_the_header_is_refused_before_anything_is_parsed(client, hub, whole_parses):
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]>' + envelope(
        STAGE_CHANGE, username_token()).split(b"?>", 1)[1]

    response = call(client, body, sign=False)

    assert fault_of(response)["code"] == "unsafe_xml"
    assert whole_parses == []


def test_the_token_is_read_from_the_header_and_nothing_after_it():
    body = envelope("<<<never read>>>", username_token(key="ck-x"))

    token = soap.read_token(body)

    assert token is not None and token.username == "ck-x" and token.digest


def test_no_header_means_no_token():
    assert soap.read_token(f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body/>'
                           "</soap:Envelope>".encode()) is None
