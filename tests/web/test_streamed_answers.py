"""An application that answers with a generator (the console's audit export) is
streamed by the hub's server: each chunk goes out as it is made, chunked, never
gathered whole first; a list is still gathered and sent in one piece."""

from __future__ import annotations

import threading

import requests

from bdchub.web.loopserver import start


def test_a_generator_answer_is_sent_as_it_is_made():
    first_sent = threading.Event()  # set by the client once the first chunk is in
    closed = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/csv")])

        def chunks():
            try:
                yield b"heading\n"
                # A server that gathered the answer first would never send the heading:
                # the rest waits for the client to have it.
                assert first_sent.wait(10), "the first chunk was held back"
                yield b"row 1\n"
                yield b""
                yield b"row 2\n"
            finally:
                closed.set()

        return chunks()

    with start(app, "127.0.0.1", 0, threads=2) as server, \
            requests.get(server.url + "/export", stream=True, timeout=15) as answer:
        assert answer.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in answer.headers
        parts = answer.iter_content(chunk_size=None)
        assert next(parts) == b"heading\n"
        first_sent.set()
        assert b"".join(parts) == b"row 1\nrow 2\n"
    assert closed.wait(10)


def test_a_list_answer_is_still_gathered_and_sent_whole():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"all ", b"at once"]

    with start(app, "127.0.0.1", 0, threads=2) as server:
        answer = requests.get(server.url + "/", timeout=10)
    assert answer.content == b"all at once"
