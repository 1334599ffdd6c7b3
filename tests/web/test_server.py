"""Through the hub's real inbound server (web.loopserver) on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bdchub.core import i18n
from bdchub.web.loopserver import start
from bdchub.web.signing import signed_headers

from .conftest import APP_KEY, LEGACY_KEY, LEGACY_SECRET, SECRET, TENANT
from .test_soap import STAGE_CHANGE, envelope


@pytest.fixture
def server(app):
    with start(app, "127.0.0.1", 0, threads=4) as running:
        yield running


def post_signed(server, path: str, body: bytes, **headers: str) -> requests.Response:
    all_headers = {"Content-Type": "application/json",
                   **signed_headers(APP_KEY, SECRET, "POST", path, body), **headers}
    return requests.post(server.url + path, data=body, headers=all_headers, timeout=10)


def test_application_over_http_is_accepted_and_published_once(server, hub, application):
    response = post_signed(server, "/api/v1/applications",
                           json.dumps(application, ensure_ascii=False).encode())

    assert response.status_code == 202, response.text
    assert [(e.type, e.tenant, e.business_no) for e in hub.published] == [
        ("application.submitted", TENANT, "YWH2024000001")]


def test_oversized_body_over_http_answers_413_json(server, hub, app):
    body = b" " * (app.max_body + 10)

    response = post_signed(server, "/api/v1/applications", body)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert hub.published == []


def test_content_length_far_beyond_the_limit_is_cut_without_sending_the_body(server, hub):
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/applications HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
        answer = sock.recv(4096)

    assert answer.startswith(b"HTTP/1.1 413")
    assert hub.published == []


def test_concurrent_requests_each_get_their_own_language(server):
    i18n.set_language(None)

    def ask(lang: str) -> str:
        body = b"{"
        response = post_signed(server, "/api/v1/applications", body, **{"Accept-Language": lang})
        return response.json()["error"]["message"]

    langs = ["en", "zh-CN"] * 20
    with ThreadPoolExecutor(8) as pool:
        messages = list(pool.map(ask, langs))

    for lang, message in zip(langs, messages, strict=True):
        assert message.startswith("the body") == (lang == "en"), (lang, message)


def test_zeep_client_calls_the_soap_endpoint_from_the_served_wsdl(server, hub):
    import zeep
    from zeep.wsse.username import UsernameToken

    client = zeep.Client(server.url + "/soap/inbound?wsdl",
                         wsse=UsernameToken(LEGACY_KEY, LEGACY_SECRET, use_digest=True))
    receipt = client.service.SubmitResult(
        YWH="YWH2024000002", RegType="100", RightType="4",
        UnitCode=["320684413219GB00029F00010002"], RegisteredAt="2024-05-10T15:00:00+08:00",
        Org="海门区不动产登记中心",
        RightHolder=[{"Name": "张三", "IdType": "1", "IdNumber": "110105199001011232"}],
        CertificateNo=["苏(2024)海门区不动产权第0001234号"])

    assert receipt.Accepted is True
    [published] = hub.published
    assert (published.type, published.business_no) == ("registration.recorded", "YWH2024000002")
    assert receipt.MessageId == published.id


def test_soap_over_http_with_signed_headers(server, hub):
    body = envelope(STAGE_CHANGE)
    headers = {"Content-Type": "text/xml; charset=utf-8",
               **signed_headers(LEGACY_KEY, LEGACY_SECRET, "POST", "/soap/inbound", body)}

    response = requests.post(server.url + "/soap/inbound", data=body, headers=headers, timeout=10)

    assert response.status_code == 200, response.text
    assert hub.published[0].type == "progress.reported"


# -------------------------------------------------------- several processes

MULTI = """
import os, sys, time
from pathlib import Path
from bdchub.web.server import PerProcess, serve

marks = Path(sys.argv[1])

def build():
    if (marks / "fail").exists():
        raise RuntimeError("no hub today")
    # Fails if another process is building at the same time.
    os.close(os.open(marks / "building", os.O_CREAT | os.O_EXCL))
    time.sleep(0.2)
    (marks / f"built-{os.getpid()}").touch()
    os.unlink(marks / "building")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    return app

def close(app):
    (marks / f"closed-{os.getpid()}").touch()

serve(PerProcess(build, close), "127.0.0.1", int(sys.argv[2]), threads=2, processes=2)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_multi(tmp_path):
    root = Path(__file__).resolve().parents[2]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", MULTI, str(tmp_path), str(port)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)},
                            stderr=subprocess.PIPE, text=True)
    return proc, port


def _pids(tmp_path, kind: str) -> set[str]:
    return {p.name.split("-", 1)[1] for p in tmp_path.glob(f"{kind}-*")}


def test_several_processes_serve_one_port_each_with_its_own_app_built_in_turn(tmp_path):
    proc, port = _run_multi(tmp_path)
    try:
        for _ in range(300):  # bounded: up to 30 s on a slow machine
            if len(_pids(tmp_path, "built")) == 2 or proc.poll() is not None:
                break
            time.sleep(0.1)
        built = _pids(tmp_path, "built")
        assert len(built) == 2, proc.stderr.read() if proc.poll() is not None else built

        answers = {requests.get(f"http://127.0.0.1:{port}/", timeout=10).text for _ in range(4)}
        assert answers <= built

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _pids(tmp_path, "closed") == built  # every process tore its app down


def test_a_server_process_that_dies_stops_the_others_and_fails_serve(tmp_path):
    (tmp_path / "fail").touch()
    proc, _port = _run_multi(tmp_path)
    try:
        assert proc.wait(timeout=60) != 0
        assert "exited with 1" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_several_processes_need_an_app_built_per_process(app):
    from bdchub.web.server import serve

    with pytest.raises(TypeError, match="PerProcess"):
        serve(app, "127.0.0.1", 0, processes=2)
