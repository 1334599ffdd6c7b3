"""Small clients for the sandbox's protocols, written from the README only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
import zeep
from zeep.wsse.username import UsernameToken

from bdchub.sandbox import Sandbox
from bdchub.sandbox.signing import appkey_headers, exchange_headers


def exchange_post(sb: Sandbox, name: str, path: str, body: Any, *, secret: str | None = None,
                  **header_overrides: Any) -> requests.Response:
    creds = sb.credentials[name]
    headers = exchange_headers(creds["rid"], creds["sid"], secret or creds["current_secret"])
    headers.update(header_overrides)
    return requests.post(sb.url(name) + path, json=body, headers=headers, timeout=5)


def appkey_request(sb: Sandbox, name: str, method: str, path: str, body: Any = None,
                   timeout: float = 5.0, **kwargs: Any) -> requests.Response:
    creds = sb.credentials[name]
    raw = json.dumps(body).encode() if body is not None else b""
    headers = appkey_headers(creds["app_key"], creds["app_secret"], method, path, raw, **kwargs)
    if body is not None:
        headers["Content-Type"] = "application/json"
    return requests.request(method, sb.url(name) + path, data=raw or None, headers=headers,
                            timeout=timeout)


def soap_client(sb: Sandbox, name: str, *, password: str | None = None, digest: bool = False,
                from_file: bool = False) -> zeep.Client:
    wsse = None
    if name in ("tax", "court"):
        creds = sb.credentials[name]
        wsse = UsernameToken(creds["username"], password or creds["password"], use_digest=digest)
    if from_file:
        client = zeep.Client(str(sb.wsdl_path(name)), wsse=wsse)
        binding = next(iter(client.wsdl.bindings))
        return client.create_service(binding, f"{sb.url(name)}/ws")
    return zeep.Client(sb.wsdl_url(name), wsse=wsse).service


class Catcher:
    """A loopback HTTP server recording the JSON POSTed to it (callback target)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.posts: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with catcher.cond:
                    catcher.posts.append({"path": self.path, "headers": dict(self.headers),
                                          "json": json.loads(body)})
                    catcher.cond.notify_all()
                self.send_response(catcher.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/inbound"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.posts) >= count, timeout=timeout)
            return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
