"""A peer hub's 409 ``in_progress`` (it is still handing over the first copy of
the envelope) is recoverable: the ``hub`` connector sends again and, when its
attempts run out, the route parks the message; other 409s stay permanent.

The peer is a small HTTP server on loopback answering from a script."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bdchub.connectors.base import CallContext
from bdchub.connectors.resilience import build
from bdchub.core.errors import PermanentError, RecoverableError

ORIGIN = "0190a0b0-0000-7000-8000-0000000000aa"
IN_PROGRESS = (409, {"error": {"code": "in_progress",
                               "message": "the same request is still being handled"}},
               [("Retry-After", "1")])
ACCEPTED = (202, {"id": ORIGIN, "status": "accepted", "hub": "320684"}, [])
REUSED = (409, {"error": {"code": "idempotency_key_reused",
                          "message": "the key was used with other content"}}, [])


class Peer:
    """Answers each POST with the next scripted answer (the last one repeats)."""

    def __init__(self, answers: list[tuple[int, dict[str, Any], list[tuple[str, str]]]]):
        self.answers = list(answers)
        self.received: list[dict[str, Any]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer.received.append(json.loads(body))
                status, answer, headers = (peer.answers.pop(0) if len(peer.answers) > 1
                                           else peer.answers[0])
                raw = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in [("Content-Type", "application/json"), *headers]:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Peer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def waits() -> list[float]:
    return []


def county(peer: Peer, waits: list[float], attempts: int) -> Any:
    block = {"type": "hub", "base_url": peer.url, "app_key": "pk-province",
             "app_secret": "province-hub-secret-0123456789", "timeout": 5,
             "retry": {"attempts": attempts, "backoff": 0.01, "jitter": 0}}
    return build("county_320684", block, sleep=waits.append)


def send(connector: Any) -> Any:
    context = CallContext(message_id=ORIGIN, tenant="320684", business_no="3206842026000001",
                          idempotency_key=f"{ORIGIN}:tax_cleared_down:0")
    try:
        return connector.call("tax.cleared", {"tax_status": "cleared"}, context)
    finally:
        connector.close()


def test_a_peer_still_handling_the_first_copy_is_asked_again_after_its_retry_after(waits):
    with Peer([IN_PROGRESS, ACCEPTED]) as peer:
        ack = send(county(peer, waits, attempts=3))

    assert ack["status"] == "accepted"
    assert [e["id"] for e in peer.received] == [ORIGIN, ORIGIN]  # the same envelope twice
    assert waits and waits[0] >= 1.0  # the peer's Retry-After, not the 10 ms backoff


def test_in_progress_when_the_attempts_run_out_is_recoverable_so_the_route_parks(waits):
    with Peer([IN_PROGRESS]) as peer:
        with pytest.raises(RecoverableError, match="in_progress") as raised:
            send(county(peer, waits, attempts=2))

    assert raised.value.status == 409
    assert len(peer.received) == 2


def test_another_conflict_of_the_peer_is_permanent_and_not_sent_again(waits):
    with Peer([REUSED]) as peer:
        with pytest.raises(PermanentError, match="idempotency_key_reused"):
            send(county(peer, waits, attempts=3))

    assert len(peer.received) == 1
