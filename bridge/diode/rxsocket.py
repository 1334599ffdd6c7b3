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
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_GRO = 104  # linux/udp.h, Linux 5.0+; Python does not export it
# A coalesced read is at most one IPv4 datagram's worth; a little more room
# lets a too-large one show up as truncated instead of passing as whole.
BATCH_BUFFER = 1 << 17
_GRO_CMSG = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0


class RecvOnlySocket:
    __slots__ = ("__sock",)

    def __init__(self, sock: socket.socket):
        self.__sock = sock

    def recv_into(self, buffer: bytearray | memoryview) -> int:
        return self.__sock.recv_into(buffer)

    def enable_batches(self) -> bool:
        """Ask the kernel to hand over runs of equal datagrams of one sender in
        one read (UDP generic receive offload: a sender's segmented batch
        arrives as it left); True if it will. Datagrams stay whole: the
        kernel coalesces only datagrams of one size, the last may be shorter."""
        if sys.platform != "linux" or not _GRO_CMSG:
            return False
        try:
            self.__sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        except OSError:
            return False
        return True

    def recv_batch(self, buffer: bytearray | memoryview) -> tuple[int, int]:
        """Read into ``buffer``: (bytes read, datagram size). The datagram
        size is the bytes read unless the kernel coalesced several datagrams
        (``enable_batches``); then each is that size but the last, which may
        be shorter. A read cut short by ``buffer`` (-1, 0): nothing usable."""
        n, ancdata, flags, _addr = self.__sock.recvmsg_into([buffer], _GRO_CMSG)
        if flags & socket.MSG_TRUNC:
            return -1, 0
        for level, kind, data in ancdata:
            if level == SOL_UDP and kind == UDP_GRO and len(data) >= 2:
                size = int.from_bytes(data[:4] if len(data) >= 4 else data[:2],
                                      sys.byteorder)
                if 0 < size < n:
                    return n, size
        return n, n

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
