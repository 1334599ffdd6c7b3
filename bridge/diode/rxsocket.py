"""The receiver's socket, with no way to send.

A one-way gate is one-way in hardware; the software on the internal side must
not even try. ``RecvOnlySocket`` wraps a bound UDP socket and exposes only
what receiving needs. The receiving modules never see the raw socket, and a
test scans them for send calls.
"""

from __future__ import annotations

import socket
import sys

from bdchub.core.errors import BridgeError
from bdchub.core.i18n import _

# Big enough to ride out a decode or a disk hiccup at full rate.
RCVBUF = 64 << 20
# Python's socket module does not export it; 33 on Linux (asm-generic/socket.h).
SO_RCVBUFFORCE: int | None = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform == "linux"
                                     else None)


class RecvOnlySocket:
    __slots__ = ("__sock",)

    def __init__(self, sock: socket.socket):
        self.__sock = sock

    def recv_into(self, buffer: bytearray | memoryview) -> int:
        return self.__sock.recv_into(buffer)

    def settimeout(self, seconds: float | None) -> None:
        self.__sock.settimeout(seconds)

    def fileno(self) -> int:
        return self.__sock.fileno()

    def getsockname(self) -> tuple[str, int]:
        return self.__sock.getsockname()[:2]

    @property
    def rcvbuf(self) -> int:
        return self.__sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def close(self) -> None:
        self.__sock.close()


def open_receive_socket(host: str, port: int, rcvbuf: int = RCVBUF) -> RecvOnlySocket:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(info[0], socket.SOCK_DGRAM)
    except OSError as exc:
        raise BridgeError(_("cannot open a socket on {host}:{port}: {error}",
                            host=host, port=port, error=exc)) from exc
    # SO_RCVBUFFORCE (needs CAP_NET_ADMIN) goes beyond net.core.rmem_max; the
    # plain option is capped by it, which is why both are tried.
    for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
            break
        except OSError:
            continue
    try:
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        raise BridgeError(_("cannot listen on {host}:{port}: {error}",
                            host=host, port=port, error=exc.strerror or exc)) from exc
    return RecvOnlySocket(sock)
