"""connectors.http.prepare builds what Session.prepare_request builds, for the
sessions make_session makes: same method, URL, headers and body."""

from __future__ import annotations

import pytest
import requests

from bdchub.connectors.http import prepare


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


@pytest.mark.parametrize("cookies", [None, {"SESSION": "abc"}])
@pytest.mark.parametrize("request_", CASES, ids=[f"{r.method} {r.url}" for r in CASES])
def test_prepare_matches_the_sessions_own_preparation(request_, cookies):
    s = session(cookies)
    ours, theirs = prepare(s, request_), s.prepare_request(request_)
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers)


def test_the_same_url_prepared_twice_is_the_same_and_a_bad_one_still_fails():
    s = session()
    first = prepare(s, CASES[2])
    assert prepare(s, CASES[2]).url == first.url
    for _ in range(2):  # a failure is not cached as an answer
        with pytest.raises(requests.exceptions.MissingSchema):
            prepare(s, requests.Request("GET", "dept.example/no-scheme"))
