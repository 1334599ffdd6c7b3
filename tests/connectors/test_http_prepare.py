"""connectors.http.prepare builds what Session.prepare_request builds, for the
sessions make_session makes: same method, URL, headers and body."""

from __future__ import annotations

import pytest
import requests

from bdchub.connectors.http import RequestShape, prepare


def session(cookies: dict[str, str] | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers["User-Agent"] = "bdc-hub"
    s.headers["X-Region"] = "320684"
    for name, value in (cookies or {}).items():
        s.cookies.set(name, value, domain="dept.example", path="/")
    return s


CASES = [
    requests.Request("POST", "http://dept.example/api/verify", json={"name": "张三", "n": 1},
                     headers={"Idempotency-Key": "m-1:r:0"}),
    requests.Request("GET", "http://dept.example/contracts/HT%202024%2F07",
                     params={"page": "2", "q": "张"}),
    requests.Request("GET", "http://dept.example/a b/案件?x=1"),
    requests.Request("PUT", "https://用户.example:8443/x", data="plain text",
                     headers={"Content-Type": "text/plain", "X-Region": None}),
    requests.Request("POST", "http://user:pa%40ss@dept.example/login", data={"a": "1"}),
    requests.Request("DELETE", "http://dept.example/items/7"),
]


def shaped(s: requests.Session, request_: requests.Request) -> requests.PreparedRequest:
    """The request as a ``RequestShape`` of its method and headers prepares it."""
    shape = RequestShape(s, request_.method, request_.headers)
    return shape.prepare(request_.url, params=request_.params or None,
                         data=request_.data or None, json=request_.json)


@pytest.mark.parametrize("ours", [prepare, shaped], ids=["prepare", "RequestShape"])
@pytest.mark.parametrize("cookies", [None, {"SESSION": "abc"}])
@pytest.mark.parametrize("request_", CASES, ids=[f"{r.method} {r.url}" for r in CASES])
def test_prepare_matches_the_sessions_own_preparation(request_, cookies, ours):
    s = session(cookies)
    mine, theirs = ours(s, request_), s.prepare_request(request_)
    assert (mine.method, mine.url, mine.body) == (theirs.method, theirs.url, theirs.body)
    assert list(mine.headers.items()) == list(theirs.headers.items())  # same order too


def test_the_same_url_prepared_twice_is_the_same_and_a_bad_one_still_fails():
    s = session()
    first = prepare(s, CASES[2])
    assert prepare(s, CASES[2]).url == first.url
    for _ in range(2):  # a failure is not cached as an answer
        with pytest.raises(requests.exceptions.MissingSchema):
            prepare(s, requests.Request("GET", "dept.example/no-scheme"))


def test_a_shape_checks_the_blocks_headers_once_and_the_calls_headers_every_time():
    with pytest.raises(requests.exceptions.InvalidHeader):
        RequestShape(session(), "GET", {"X-Bad": "a\r\nb"})
    shape = RequestShape(session(), "POST")
    with pytest.raises(requests.exceptions.InvalidHeader):
        shape.prepare("http://dept.example/x", headers={"Idempotency-Key": "k\r\nX-Evil: 1"})


def test_a_body_that_is_not_json_fails_as_requests_fails_it():
    shape = RequestShape(session(), "POST")
    with pytest.raises(requests.exceptions.InvalidJSONError):
        shape.prepare("http://dept.example/x", json={"amount": float("nan")})


def test_requests_of_one_shape_do_not_share_their_headers():
    shape = RequestShape(session(), "POST", {"X-Op": "verify"})
    first = shape.prepare("http://dept.example/x", headers={"Idempotency-Key": "a"}, json={})
    first.headers["Authorization"] = "signed-a"  # what a signature adds to one request
    second = shape.prepare("http://dept.example/x", json={})
    assert "Idempotency-Key" not in second.headers
    assert "Authorization" not in second.headers
    assert second.headers["X-Op"] == "verify"
