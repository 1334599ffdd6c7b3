"""The fields a canonical string is signed over: a scheme works out only those its
template uses, and signs exactly what the template says over them."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import requests

from bdchub.connectors.auth import make_auth, request_fields, template_fields
from bdchub.core.errors import ConfigError


def signed(template: str) -> requests.PreparedRequest:
    request = requests.Request("POST", "http://dept.example/api/v1/check?page=2&q=%E5%BC%A0",
                               json={"name": "张三"}).prepare()
    auth = make_auth("dept", {"scheme": "appkey", "app_key": "K", "app_secret": "S",
                              "canonical": template}, requests.Session(), "http://dept.example")
    auth.apply(request, 5.0)
    return request


def expected(text: str) -> str:
    return hmac.new(b"S", text.encode(), hashlib.sha256).hexdigest()


def test_a_template_over_every_field_signs_each_of_them():
    template = "{method}|{path}|{query}|{path_query}|{body_sha256}|{body}|{nonce}|{timestamp}"
    request = signed(template)
    body = request.body
    text = "|".join(["POST", "/api/v1/check", "page=2&q=%E5%BC%A0",
                     "/api/v1/check?page=2&q=%E5%BC%A0", hashlib.sha256(body).hexdigest(),
                     body.decode(), request.headers["X-Nonce"], request.headers["X-Timestamp"]])
    assert request.headers["X-Signature"] == expected(text)


def test_the_default_template_signs_the_agreed_six_lines():
    request = signed("{app_key}\n{timestamp}\n{nonce}\n{method}\n{path_query}\n{body_sha256}")
    text = "\n".join(["K", request.headers["X-Timestamp"], request.headers["X-Nonce"], "POST",
                      "/api/v1/check?page=2&q=%E5%BC%A0",
                      hashlib.sha256(request.body).hexdigest()])
    assert request.headers["X-Signature"] == expected(text)


def test_only_the_fields_a_template_names_are_worked_out():
    assert template_fields("{method} {path_query!s} {body_sha256:>64}") == {
        "method", "path_query", "body_sha256"}
    request = requests.Request("POST", "http://dept.example/x", data="a").prepare()
    assert set(request_fields(request, {"method"})) == {"method"}
    assert set(request_fields(request)) == {"method", "path", "query", "path_query",
                                            "body_sha256", "body"}


def test_a_template_that_cannot_be_filled_is_still_a_configuration_error():
    with pytest.raises(ConfigError):
        signed("{method}{")
    with pytest.raises(ConfigError):
        signed("{unknown_field}")
