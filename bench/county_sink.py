"""A county hub's envelope API at its cheapest, for the province benchmarks.

``POST /api/v1/hub/envelopes`` answers what a county hub answers (202, the
acknowledgement ``id``, ``status``, ``hub``, ``received_at``: ``web.federation``)
without checking the signature or handing anything over, so the province hub's
dispatch is what is measured and not the county's work. ``GET /count`` says how
many envelopes it took (``total``) and how many distinct ids (``unique``);
``POST /reset`` forgets them.

One asyncio loop in its own process, HTTP/1.1 keep-alive as the hub connector's
pooled session uses it::

    python bench/county_sink.py PORT
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys


class Sink:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.total = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, _sep, rest = head.partition(b"\r\n")
                length = 0
                for header in rest.split(b"\r\n"):
                    name, _c, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                writer.write(self.answer(line, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def answer(self, line: bytes, body: bytes) -> bytes:
        method, _s, rest = line.partition(b" ")
        path = rest.partition(b" ")[0]
        if method == b"GET" and path == b"/count":
            return _reply(200, {"total": self.total, "unique": len(self.ids)})
        if method == b"POST" and path == b"/reset":
            self.ids.clear()
            self.total = 0
            return _reply(200, {"total": 0, "unique": 0})
        if method == b"GET" and path == b"/api/v1/health":
            return _reply(200, {"status": "ok"})
        if method != b"POST":
            return _reply(404, {"error": {"code": "not_found"}})
        envelope = json.loads(body or b"{}")
        self.total += 1
        self.ids.add(str(envelope.get("id")))
        return _reply(202, {"id": envelope.get("id"), "business_no": envelope.get("business_no"),
                            "status": "accepted", "hub": envelope.get("tenant"),
                            "received_at": dt.datetime.now().astimezone().isoformat(
                                timespec="seconds")})


def _reply(status: int, data: object) -> bytes:
    payload = json.dumps(data).encode()
    reason = {200: b"OK", 202: b"Accepted", 404: b"Not Found"}[status]
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: keep-alive\r\n\r\n" % (status, reason, len(payload))) + payload


async def main(port: int) -> None:
    sink = Sink()
    server = await asyncio.start_server(sink.serve, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
