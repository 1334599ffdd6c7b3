"""Tunables shared by the sender, the receiver, the CLI and the connector."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

from . import wire
from .fec import DEFAULT_K_MAX, MAX_SYMBOLS

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)(?:bit/s|bps|b/s)?\s*$")


def parse_rate(text: str | float | int) -> float:
    """'200M' -> 200e6 bit/s; plain numbers are bit/s."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _RATE.match(text)
        if not match:
            raise ConfigError(_("cannot read rate {rate!r}; write e.g. 200M or 1G", rate=text))
        value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[
            match.group(2).lower()]
    if value <= 0:
        raise ConfigError(_("rate must be positive, got {rate}", rate=text))
    return value


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(_("expected HOST:PORT, got {value!r}", value=text))
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class DiodeSettings:
    rate_bps: float = 200e6
    datagram_size: int = wire.DEFAULT_DATAGRAM
    loss_rate: float = 0.02
    target_failure: float = 1e-9
    overhead: float | None = None  # parity/source; None = derived from loss and target
    k_max: int = DEFAULT_K_MAX
    passes: int = 1
    interleave_blocks: int = 256
    manifest_every: int = 128  # data datagrams between manifest copies
    manifest_copies: int = 3  # copies at the start of each object and pass
    heartbeat_interval: float = 0.5
    hash_name: str = "sha256"
    ec_type: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not wire.MIN_DATAGRAM <= self.datagram_size <= wire.MAX_DATAGRAM:
            problems.append(_("datagram size must be {lo}..{hi} bytes, got {value}",
                              lo=wire.MIN_DATAGRAM, hi=wire.MAX_DATAGRAM,
                              value=self.datagram_size))
        if not 1 <= self.k_max < MAX_SYMBOLS:
            problems.append(_("k_max must be 1..254, got {value}", value=self.k_max))
        if not 1 <= self.passes <= 100:
            problems.append(_("passes must be 1..100, got {value}", value=self.passes))
        if self.rate_bps <= 0:
            problems.append(_("rate must be positive, got {rate}", rate=self.rate_bps))
        if not 0 <= self.loss_rate < 0.5:
            problems.append(_("loss rate must be in [0, 0.5), got {loss}", loss=self.loss_rate))
        if not 0 < self.target_failure < 1:
            problems.append(_("target failure probability must be in (0, 1), got {target}",
                              target=self.target_failure))
        if self.overhead is not None and not 0 <= self.overhead <= 10:
            problems.append(_("overhead must be 0..10, got {overhead}", overhead=self.overhead))
        if self.interleave_blocks < 1 or self.manifest_every < 1 or self.manifest_copies < 1:
            problems.append(_("interleave_blocks, manifest_every and manifest_copies must be >= 1"))
        if self.heartbeat_interval <= 0:
            problems.append(_("heartbeat interval must be positive"))
        if problems:
            raise ConfigError(problems)

    @property
    def symbol_size(self) -> int:
        return self.datagram_size - wire.HEADER_SIZE
