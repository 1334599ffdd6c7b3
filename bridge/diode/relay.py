"""A userspace lossy link for tests and benchmarks (the diode's fake sibling).

``LossyRelay`` listens on a loopback UDP port and forwards to the receiver,
dropping (independently or in Gilbert-Elliott bursts), duplicating,
reordering and corrupting datagrams from a seeded random generator, so a
failure can be replayed. Loopback only: it never touches a real network.
"""

from __future__ import annotations

import random
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .rxsocket import SO_RCVBUFFORCE


@dataclass(frozen=True)
class LinkModel:
    loss: float = 0.0  # independent loss probability
    burst_loss: float = 0.0  # Gilbert-Elliott long-run loss rate (0 = off)
    burst_length: float = 8.0  # mean datagrams per bad period
    bad_loss: float = 0.8  # loss probability while in the bad state
    duplicate: float = 0.0
    reorder: float = 0.0  # probability a datagram is held back ...
    reorder_depth: int = 8  # ... by up to this many datagrams
    corrupt: float = 0.0  # probability of flipping bytes in a datagram
    seed: int = 1

    @property
    def expected_loss(self) -> float:
        return 1 - (1 - self.loss) * (1 - self.burst_loss)


class GilbertElliott:
    """Two-state Markov loss: long good stretches, short bad bursts.
    Long-run loss = P(bad) * bad_loss; mean burst = 1 / P(bad -> good)."""

    def __init__(self, mean_loss: float, mean_burst: float, bad_loss: float, rng: random.Random):
        self.rng = rng
        self.bad_loss = bad_loss
        p_bad = min(0.999, mean_loss / bad_loss)
        self.r = 1.0 / max(mean_burst, 1.0)  # bad -> good
        self.p = p_bad * self.r / (1.0 - p_bad)  # good -> bad
        self.bad = False

    def drop(self) -> bool:
        if self.bad:
            if self.rng.random() < self.r:
                self.bad = False
        elif self.rng.random() < self.p:
            self.bad = True
        return self.bad and self.rng.random() < self.bad_loss


@dataclass
class RelayStats:
    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0


class LossyRelay:
    def __init__(self, target: tuple[str, int], model: LinkModel | None = None,
                 listen: tuple[str, int] = ("127.0.0.1", 0),
                 gate: Callable[[int], bool] | None = None,
                 tamper: Callable[[bytes], bytes] | None = None):
        self.target = target
        self.model = model or LinkModel()
        # gate(i) -> False drops the i-th datagram (1-based): scripted outages.
        self.gate = gate
        # tamper(datagram) -> datagram: an active attacker on the link.
        self.tamper = tamper
        self.stats = RelayStats()
        self._in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            if opt is not None:
                try:
                    self._in.setsockopt(socket.SOL_SOCKET, opt, 64 << 20)
                    break
                except OSError:
                    continue
        self._in.bind(listen)
        self._in.settimeout(0.1)
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paused = threading.Event()  # set: drop everything (a cable pulled)

    @property
    def address(self) -> tuple[str, int]:
        return self._in.getsockname()[:2]

    def start(self) -> LossyRelay:
        self._thread = threading.Thread(target=self._run, name="lossy-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._in.close()
        self._out.close()

    def __enter__(self) -> LossyRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_forever(self) -> None:
        """Blocking variant (for a relay in its own process)."""
        self._run()

    def _run(self) -> None:
        m = self.model
        rng = random.Random(m.seed)
        ge = GilbertElliott(m.burst_loss, m.burst_length, m.bad_loss, rng) \
            if m.burst_loss > 0 else None
        held: deque[tuple[int, bytes]] = deque()
        buf = bytearray(65536)
        view = memoryview(buf)
        out, target, st = self._out, self.target, self.stats
        count = 0
        while not self._stop.is_set():
            try:
                n = self._in.recv_into(buf)
            except TimeoutError:
                while held:  # idle: release what was held back
                    out.sendto(held.popleft()[1], target)
                continue
            except OSError:
                return
            st.received += 1
            count += 1
            if self.paused.is_set() or (self.gate is not None and not self.gate(count)):
                st.dropped += 1
                continue
            lost = (m.loss > 0 and rng.random() < m.loss)
            if ge is not None and ge.drop():
                lost = True
            if lost:
                st.dropped += 1
            else:
                data: bytes | memoryview = view[:n]
                if self.tamper is not None:
                    data = self.tamper(bytes(data))
                if m.corrupt > 0 and rng.random() < m.corrupt:
                    damaged = bytearray(view[:n])
                    for _i in range(rng.randint(1, 3)):
                        pos = rng.randrange(n)
                        damaged[pos] ^= 1 << rng.randrange(8)
                    data = bytes(damaged)
                    st.corrupted += 1
                if m.reorder > 0 and rng.random() < m.reorder:
                    held.append((count + rng.randint(1, m.reorder_depth), bytes(data)))
                    st.reordered += 1
                else:
                    out.sendto(data, target)
                    st.forwarded += 1
                    if m.duplicate > 0 and rng.random() < m.duplicate:
                        out.sendto(data, target)
                        st.duplicated += 1
            while held and held[0][0] <= count:
                out.sendto(held.popleft()[1], target)
                st.forwarded += 1
