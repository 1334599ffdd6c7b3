"""Starting, stopping, addressing and determinism of the sandbox."""

from __future__ import annotations

import socket

import pytest
import requests

from bdchub.sandbox import Sandbox, SandboxError

from .helpers import exchange_post, soap_client

EXPECTED = ["gov", "tax", "trade", "court", "civil", "police", "market", "legacy",
            "window_county", "window_province", "window_national",
            "public_sector", "health", "justice", "finance", "payment", "evaluation"]


def test_every_endpoint_listens_on_its_own_loopback_port_and_answers_health(sandbox):
    assert sandbox.names() == EXPECTED
    ports = set()
    for name in sandbox.names():
        url = sandbox.url(name)
        assert url.startswith("http://127.0.0.1:")
        ports.add(url.rsplit(":", 1)[1])
        reply = requests.get(url + "/_sandbox/health", timeout=5)
        assert reply.status_code == 200
        assert reply.json()["name"] == name
    assert len(ports) == len(EXPECTED)


def test_wsdl_urls_and_paths_exist_only_for_soap_endpoints(sandbox):
    for name in ("tax", "court", "legacy"):
        assert sandbox.wsdl_url(name) == f"{sandbox.url(name)}/ws?wsdl"
        assert sandbox.wsdl_path(name).is_file()
        assert sandbox.wsdl_path(name).parent.name == "wsdl"
    with pytest.raises(KeyError):
        sandbox.wsdl_url("gov")


def test_served_wsdl_points_at_the_live_url(sandbox):
    text = requests.get(sandbox.wsdl_url("legacy"), timeout=5).text
    assert f'location="{sandbox.url("legacy")}/ws"' in text
    assert "127.0.0.1:0" not in text
    assert f"{sandbox.url('legacy')}/ws?xsd=legacy.xsd" in text


def test_stop_is_idempotent_and_closes_the_ports():
    sb = Sandbox(seed=1).start()
    port = int(sb.url("gov").rsplit(":", 1)[1])
    sb.stop()
    sb.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_stop_never_raises_even_when_never_started():
    Sandbox(seed=1).stop()


def _started_on_some_base_port() -> tuple[Sandbox, int]:
    # Other processes may hold ports in a probed range: try a few.
    for _attempt in range(10):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + len(EXPECTED) > 65535:
            continue
        sb = Sandbox(seed=1, base_port=base)
        try:
            return sb.start(), base
        except SandboxError:
            continue
    raise AssertionError("no free run of ports found")


def test_base_port_gives_consecutive_ports_and_a_taken_port_is_a_clear_error():
    first, base = _started_on_some_base_port()
    with first:
        assert [int(first.url(n).rsplit(":", 1)[1]) for n in first.names()] == \
            list(range(base, base + len(EXPECTED)))
        with pytest.raises(SandboxError, match="cannot listen"):
            Sandbox(seed=1, base_port=base).start()


def test_keep_alive_connections_are_reused(sandbox):
    session = requests.Session()
    url = sandbox.url("window_county") + "/_sandbox/health"
    before = sandbox.connections_accepted("window_county")
    for _ in range(6):
        assert session.get(url, timeout=5).status_code == 200
    assert sandbox.connections_accepted("window_county") - before == 1
    session.close()


def test_down_refuses_connections_until_up(clean_sandbox):
    sb = clean_sandbox
    url = sb.url("police")
    sb.down("police")
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_sandbox/health", timeout=2)
    sb.up("police")
    assert sb.url("police") == url
    assert requests.get(url + "/_sandbox/health", timeout=2).status_code == 200


def test_same_seed_gives_same_data_secrets_and_answers():
    answers = []
    for _ in range(2):
        with Sandbox(seed=7) as sb:
            person = sb.data["people"][3]
            face = exchange_post(sb, "gov", "/api/face/compare",
                                 {"name": person["name"], "cert_num": person["cert_num"],
                                  "image": "aGVsbG8="}).json()["data"]["score"]
            legacy = soap_client(sb, "legacy")
            ywh = legacy.SubmitApplication(DJLX="200", QLLX="4", BDCDYH=sb.data["units"][0],
                                           QLR=[{"QLRMC": person["name"], "ZJZL": "1",
                                                 "ZJH": person["cert_num"]}])["YWH"]
            for _step in range(5):
                result = legacy.Advance(YWH=ywh)
            answers.append((sb.data, sb.credentials["tax"], face, ywh, result["BDCQZH"]))
    assert answers[0][0] == answers[1][0]
    assert answers[0][1:] == answers[1][1:]
    assert "不动产权第" in answers[0][4]


def test_different_seeds_give_different_data():
    a, b = Sandbox(seed=1), Sandbox(seed=2)
    assert a.data["people"] != b.data["people"]
    assert a.credentials["tax"]["password"] != b.credentials["tax"]["password"]


def test_seeded_identities_pass_their_own_checksums(sandbox):
    from bdchub.sandbox.data import valid_resident_id, valid_unit_code, valid_uscc

    assert all(valid_resident_id(p["cert_num"]) for p in sandbox.data["people"])
    assert all(valid_uscc(c["uscc"]) for c in sandbox.data["companies"])
    assert {c["uscc"][0] for c in sandbox.data["companies"]} >= {"9", "N", "Y"}
    assert all(valid_unit_code(u) for u in sandbox.data["units"])
    assert valid_resident_id("11010519491231002X")
    assert not valid_resident_id("110105194912310021")
    assert not valid_unit_code("320684413219GA00029F00010002")


def test_credentials_document_every_endpoint(sandbox):
    creds = sandbox.credentials
    assert set(creds["gov"]) >= {"rid", "sid", "app_secret_refresh_url", "app_key",
                                 "initial_secret", "current_secret"}
    assert set(creds["tax"]) >= {"username", "password"}
    assert set(creds["trade"]) >= {"token_url", "client_id", "client_secret"}
    assert creds["basic"]["username"] == creds["police"]["username"]
    for name in ("market", "window_county", "window_province", "window_national"):
        assert set(creds[name]) >= {"app_key", "app_secret"}
    assert creds["trade"]["token_url"] == sandbox.url("trade") + "/oauth/token"


def test_credentials_name_every_signed_department_including_payment_and_evaluation(sandbox):
    creds = sandbox.credentials
    assert creds["payment"] == sandbox.endpoint("payment").credentials
    assert {"app_key", "app_secret", "push_app_key", "push_app_secret"} <= set(creds["payment"])
    assert creds["evaluation"] == sandbox.endpoint("evaluation").credentials
    creds["payment"]["app_key"] = "changed"  # a copy: the caller cannot change the sandbox
    assert sandbox.credentials["payment"]["app_key"] != "changed"


def test_a_stopped_internal_network_leaves_nothing_to_write_into_its_removed_folder(tmp_path):
    import shutil

    from bdchub.core import audit
    from bdchub.sandbox.internal import InternalNetwork

    root = tmp_path / "internal"
    net = InternalNetwork(root).start()
    net.audit.record("received", "disc-1")  # as a disc or a transfer would
    net.stop()
    shutil.rmtree(root)
    audit._close_all()  # what interpreter exit runs: its audit log is closed already
    assert not root.exists()
