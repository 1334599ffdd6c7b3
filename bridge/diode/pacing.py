"""Constant-rate pacing.

Unpaced loopback UDP lost half its datagrams on the dev machine: the sender
simply outruns the receiver's socket buffer. The pacer keeps an absolute
schedule (bytes on the wire / rate) and sleeps only once a small burst is
ahead of it, because ``time.sleep`` costs ~60-100 µs whatever is asked for;
an absolute schedule makes the sleep overshoot self-correcting.
"""

from __future__ import annotations

import time

# IPv4 + UDP headers: what the link carries besides our datagram.
WIRE_OVERHEAD = 28


class Pacer:
    def __init__(self, rate_bps: float, *, burst_seconds: float = 0.0005,
                 max_debt_seconds: float = 0.002):
        self.seconds_per_byte = 8.0 / rate_bps
        self.burst = burst_seconds
        # After a stall (encoding, a slow disk) do not blast the backlog out
        # at full speed: that is exactly the burst that overflows a receiver.
        self.max_debt = max_debt_seconds
        self._next = time.perf_counter()

    def reset(self) -> None:
        self._next = time.perf_counter()

    def pace(self, nbytes: int, datagrams: int = 1) -> None:
        """Account ``datagrams`` datagrams of ``nbytes`` in all; sleep if we are
        ahead of schedule."""
        self._next += (nbytes + WIRE_OVERHEAD * datagrams) * self.seconds_per_byte
        ahead = self._next - time.perf_counter()
        if ahead > self.burst:
            time.sleep(ahead)
        elif ahead < -self.max_debt:
            self._next = time.perf_counter() - self.max_debt
