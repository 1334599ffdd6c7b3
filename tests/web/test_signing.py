"""The app-key HMAC scheme shared with the sandbox and the REST connector, and nonces."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bdchub.web.signing import (
    AuthFailure,
    Client,
    MemoryNonceStore,
    StoreNonceStore,
    Verifier,
    sign,
    signed_headers,
)


def test_signature_is_hmac_sha256_over_the_agreed_six_lines():
    body = b'{"a":1}'
    expected = hmac.new(b"secret-0123456789",
                        b"ck\n1717400000\nnonce-123\nPOST\n/api/v1/applications\n"
                        + hashlib.sha256(body).hexdigest().encode(), hashlib.sha256).hexdigest()

    assert sign("secret-0123456789", "ck", "1717400000", "nonce-123", "post",
                "/api/v1/applications", body) == expected


def test_empty_body_hashes_as_sha256_of_nothing():
    expected = hmac.new(b"k" * 16, b"ck\n1\nnonce-123\nGET\n/p?q=1\n" +
                        hashlib.sha256(b"").hexdigest().encode(), hashlib.sha256).hexdigest()

    assert sign("k" * 16, "ck", "1", "nonce-123", "GET", "/p?q=1", b"") == expected


def verifier(now: float = 1_000_000.0, capacity: int = 1000) -> Verifier:
    client = Client("cw", "ck", "secret-0123456789", ("320684",))
    return Verifier({"cw": client}, MemoryNonceStore(capacity), clock_skew=300, clock=lambda: now)


def headers_for(method: str, path: str, body: bytes, **kw) -> dict[str, str]:
    return {k.lower(): v for k, v in
            signed_headers("ck", "secret-0123456789", method, path, body, **kw).items()}


def test_good_signature_names_the_client():
    assert verifier().verify("POST", "/x", headers_for("POST", "/x", b"b", timestamp=1_000_000),
                             b"b").name == "cw"


@pytest.mark.parametrize("change, reason", [
    ({"x-signature": "0" * 64}, "signature_mismatch"),
    ({"x-nonce": "short"}, "malformed_headers"),
    ({"x-timestamp": "soon"}, "malformed_headers"),
    ({"x-app-key": ""}, "missing_headers"),
])
def test_bad_headers_are_refused(change, reason):
    headers = {**headers_for("POST", "/x", b"b", timestamp=1_000_000), **change}

    with pytest.raises(AuthFailure) as failure:
        verifier().verify("POST", "/x", headers, b"b")
    assert (failure.value.code, failure.value.reason) == ("bad_signature", reason)


@pytest.mark.parametrize("skew, ok", [(300, True), (-300, True), (301, False), (-301, False)])
def test_clock_skew_is_allowed_up_to_the_limit(skew, ok):
    headers = headers_for("GET", "/x", b"", timestamp=1_000_000 + skew)
    if ok:
        verifier().verify("GET", "/x", headers, b"")
    else:
        with pytest.raises(AuthFailure, match="clock_skew"):
            verifier().verify("GET", "/x", headers, b"")


def test_a_forged_request_does_not_spend_the_nonce():
    v = verifier()
    good = headers_for("GET", "/x", b"", timestamp=1_000_000, nonce="nonce-0001")
    with pytest.raises(AuthFailure):
        v.verify("GET", "/x", {**good, "x-signature": "f" * 64}, b"")

    assert v.verify("GET", "/x", good, b"").name == "cw"


def test_nonce_store_forgets_nonces_after_their_ttl():
    now = [0.0]
    store = MemoryNonceStore(clock=lambda: now[0])
    assert store.remember("ck", "n1", 100.0, ttl=600)
    assert not store.remember("ck", "n1", 100.0, ttl=600)
    now[0] = 601.0
    assert store.remember("ck", "n2", 700.0, ttl=600)
    assert len(store) == 1


def test_nonce_store_is_bounded_and_never_lets_an_evicted_nonce_replay():
    store = MemoryNonceStore(capacity=1000, clock=lambda: 0.0)
    for i in range(1000):
        assert store.remember("ck", f"n{i}", float(i), ttl=600)

    assert store.remember("ck", "late", 2000.0, ttl=600)  # evicts n0 (ts 0)
    assert len(store) == 1000
    assert not store.remember("ck", "n0", 0.0, ttl=600)  # cannot prove it is new: refused
    assert store.remember("ck", "fresh", 2001.0, ttl=600)


def test_nonces_are_per_app_key():
    store = MemoryNonceStore()
    assert store.remember("a", "n", 1.0, ttl=10)
    assert store.remember("b", "n", 1.0, ttl=10)


@pytest.mark.parametrize("allowed, tenant, ok", [
    (("320684",), "320684", True), (("320684",), "320681", False),
    (("3206*",), "320681", True), (("32*",), "310101", False), (("*",), "110105", True),
])
def test_client_tenant_patterns(allowed, tenant, ok):
    assert Client("c", "k", "s", allowed).allows(tenant) is ok


def test_headers_signed_by_the_sandbox_helper_are_accepted():
    sandbox_signing = pytest.importorskip("bdchub.sandbox.signing")
    body = b'{"x": 1}'
    headers = sandbox_signing.appkey_headers("ck", "secret-0123456789", "POST",
                                             "/api/v1/messages/x.y?tenant=320684", body,
                                             timestamp=1_000_000)

    client = verifier().verify("POST", "/api/v1/messages/x.y?tenant=320684",
                               {k.lower(): v for k, v in headers.items()}, body)

    assert client.name == "cw"


# ------------------------------------------------------ shared by processes

def test_a_nonce_seen_by_one_process_is_a_replay_in_another_on_the_same_store(tmp_path):
    from bdchub.core.store import Store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    first, second = Store(url), Store(url)  # as two hub processes open it
    try:
        now = [1000.0]
        one = StoreNonceStore(first, clock=lambda: now[0])
        other = StoreNonceStore(second, clock=lambda: now[0])

        assert one.remember("ck-window", "nonce-0001", 1000.0, ttl=600)
        assert not other.remember("ck-window", "nonce-0001", 1000.0, ttl=600)
        assert not one.remember("ck-window", "nonce-0001", 1000.0, ttl=600)
        assert other.remember("ck-other", "nonce-0001", 1000.0, ttl=600)  # per app key

        now[0] += 601  # expired: the same nonce may come again, once
        assert other.remember("ck-window", "nonce-0001", now[0], ttl=600)
        assert not one.remember("ck-window", "nonce-0001", now[0], ttl=600)
    finally:
        first.close()
        second.close()


def test_expired_nonces_are_swept_from_the_store(tmp_path):
    from sqlalchemy import func, select

    from bdchub.core.store import NONCE_PURGE_EVERY, Store, request_nonces

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        nonces = StoreNonceStore(store, clock=lambda: now)
        now = 1000.0
        for n in range(5):
            assert nonces.remember("ck", f"nonce-{n:04d}", now, ttl=10)
        now += NONCE_PURGE_EVERY + 11
        assert nonces.remember("ck", "nonce-late", now, ttl=10)
        with store.engine.connect() as conn:
            left = conn.execute(select(func.count()).select_from(request_nonces)).scalar()
        assert left == 1
    finally:
        store.close()


def test_a_hub_on_a_shared_store_keeps_nonces_there_whatever_its_process_count():
    from bdchub.web.app import create_app
    from bdchub.web.fake import FakeHub

    from .conftest import TENANT

    # One `hub run` process is enough for a replay to reach another hub on the same store.
    for listen in ({}, {"processes": 2}):
        app = create_app(FakeHub(shared=True), {"tenant": TENANT, "inbound": {"listen": listen}})
        assert isinstance(app.nonces, StoreNonceStore)
    private = create_app(FakeHub(shared=False), {"tenant": TENANT, "inbound": {}})
    assert isinstance(private.nonces, MemoryNonceStore)


def test_a_replay_sent_to_another_server_process_is_refused_through_the_hub(application):
    from prometheus_client import CollectorRegistry

    from bdchub.web.app import create_app
    from bdchub.web.fake import FakeHub
    from bdchub.web.metrics import InboundMetrics

    from .conftest import SignedClient, config

    hub = FakeHub(shared=True)
    one, other = (create_app(hub, config(), metrics=InboundMetrics(CollectorRegistry()))
                  for _ in range(2))

    first = SignedClient(one).post("/api/v1/applications", application, nonce="nonce-shared-1")
    again = SignedClient(other).post("/api/v1/applications", application, nonce="nonce-shared-1")

    assert first.status_code == 202, first.get_json()
    assert (again.status_code, again.get_json()["error"]["code"]) == (401, "replayed_nonce")
    assert len(hub.published) == 1
