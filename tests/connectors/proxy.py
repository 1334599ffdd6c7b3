"""A loopback TCP proxy whose behaviour a test switches: forward, refuse, hang.

Used to put a real broker behind faults the broker itself cannot fake: a
refused connection (closed at once), a peer that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class ToggleProxy:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.mode = "forward"  # forward | refuse | hang
        self.refuse_next = 0  # refuse this many connections, then forward
        self.accepted = 0
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            with self._lock:
                refuse = self.mode == "refuse" or self.refuse_next > 0
                if self.refuse_next > 0:
                    self.refuse_next -= 1
            if refuse:
                with contextlib.suppress(OSError):
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                client.close()
                continue
            self._track(client)
            if self.mode == "hang":
                continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        self._track(upstream)
        pair = {client: upstream, upstream: client}
        watch = selectors.DefaultSelector()  # select() fails past descriptor 1024
        try:
            for sock in pair:
                watch.register(sock, selectors.EVENT_READ)
            for _ in iter(int, 1):  # until a side closes or the proxy stops
                if self._stop.is_set():
                    return
                for key, _events in watch.select(0.1):
                    sock = key.fileobj
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except OSError:
            return
        finally:
            watch.close()
            client.close()
            upstream.close()

    def drop_all(self) -> None:
        """Cut every open connection (like a broker restart seen from the client)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self.drop_all()
        with contextlib.suppress(OSError):
            self.listener.close()
