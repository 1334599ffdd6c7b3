"""Forward error correction sized to the object.

Reed-Solomon over GF(2^8) gives at most 255 symbols per code word, so an object
is cut into B blocks of about k source symbols each, and every block gets m
parity symbols. Small fixed groups fail on big objects (the brief: a 32-of-40
group at 5 % loss fails 1.3e-4 of the time, so a 1 GiB file fails ~95 %), so m
is chosen per object: the *object* fails if any block loses more than m of its
k+m symbols, and we want

    P(object fails) = 1 - (1 - P(Bin(k+m, p) > m)) ** B  <=  target.

The sender interleaves the symbols of many blocks, so a burst of lost datagrams
costs each block at most a symbol or two and the binomial model still holds.

pyeclib is the codec (its wheels bundle ISA-L). A pyeclib fragment is an
80-byte header + the symbol. With checksums off that header depends only on
(k, m, fragment index, block length), never on the data, so it is not sent:
the receiver rebuilds it from a template made by encoding zeros once.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cache, lru_cache

from bdchub.core.errors import BridgeError, ConfigError
from bdchub.core.i18n import _

MAX_SYMBOLS = 255  # GF(2^8) Reed-Solomon: k + m <= 255
# isa_l_rs_cauchy is MDS for every (k, m); isa_l_rs_vand is not guaranteed to
# be for m > 4 (liberasurecode documents that some erasure patterns of the
# Vandermonde matrix are not invertible), so Cauchy is preferred when present.
EC_PREFERENCE = ("isa_l_rs_cauchy", "isa_l_rs_vand", "liberasurecode_rs_vand")
DEFAULT_K_MAX = 64
# ISA-L codes a block at several GB/s while its k symbols and m parities stay
# in the CPU cache; 64 symbols of a 64 KiB datagram (4 MiB) do not, and coded
# ~20x slower here. Big symbols get fewer per block.
BLOCK_BYTES_MAX = 1 << 20


def binomial_tail(n: int, p: float, m: int) -> float:
    """P(X > m) for X ~ Binomial(n, p), summed in log space (no underflow)."""
    if m >= n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma
    base = lg(n + 1)
    total = 0.0
    for x in range(m + 1, n + 1):
        total += math.exp(base - lg(x + 1) - lg(n - x + 1) + x * lp + (n - x) * lq)
    return min(1.0, total)


def object_failure(block_failure: float, blocks: int) -> float:
    """1 - (1 - q)^B without cancellation for tiny q."""
    if blocks <= 0 or block_failure <= 0.0:
        return 0.0
    return -math.expm1(blocks * math.log1p(-min(block_failure, 1.0 - 1e-300)))


@dataclass(frozen=True)
class Plan:
    """How one object is cut and protected. ``blocks``, ``symbol_size`` and
    ``parity`` travel in the manifest; the rest is derived on both sides."""

    size: int
    symbol_size: int
    blocks: int
    parity: int
    ec_type: str

    @property
    def source_symbols(self) -> int:
        return -(-self.size // self.symbol_size)

    @property
    def k_hi(self) -> int:
        return -(-self.source_symbols // self.blocks) if self.blocks else 0

    @property
    def big_blocks(self) -> int:
        """Blocks 0..big_blocks-1 hold k_hi source symbols, the rest k_hi - 1."""
        if not self.blocks:
            return 0
        return self.source_symbols - self.blocks * (self.k_hi - 1)

    def k_of(self, block: int) -> int:
        return self.k_hi if block < self.big_blocks else self.k_hi - 1

    def n_of(self, block: int) -> int:
        return self.k_of(block) + self.parity

    def block_offset(self, block: int) -> int:
        """Byte offset of a block in the (padded) object."""
        big = min(block, self.big_blocks)
        return (big * self.k_hi + (block - big) * (self.k_hi - 1)) * self.symbol_size

    @property
    def padded_size(self) -> int:
        return self.source_symbols * self.symbol_size

    @property
    def total_symbols(self) -> int:
        return self.source_symbols + self.blocks * self.parity

    @property
    def overhead(self) -> float:
        return self.blocks * self.parity / self.source_symbols if self.source_symbols else 0.0

    def failure_probability(self, loss: float) -> float:
        """P(object cannot be decoded) from one pass at independent loss ``loss``."""
        if not self.blocks:
            return 0.0
        small = self.blocks - self.big_blocks
        q_hi = binomial_tail(self.k_hi + self.parity, loss, self.parity)
        q_lo = binomial_tail(self.k_hi - 1 + self.parity, loss, self.parity) if small else 0.0
        ok = (1.0 - object_failure(q_hi, self.big_blocks)) * (1.0 - object_failure(q_lo, small))
        return 1.0 - ok

    def validate(self) -> None:
        """Reject impossible plans (a manifest is signed, but a bug must not
        crash the receiver)."""
        if self.size < 0 or self.symbol_size <= 0 or self.parity < 0 or self.blocks < 0:
            raise BridgeError(_("invalid FEC plan: {plan}", plan=self))
        if self.size and not (1 <= self.blocks <= self.source_symbols):
            raise BridgeError(_("invalid FEC plan: {plan}", plan=self))
        if self.size and self.k_hi + self.parity > MAX_SYMBOLS:
            raise BridgeError(_("invalid FEC plan: {plan}", plan=self))
        if not self.size and self.blocks:
            raise BridgeError(_("invalid FEC plan: {plan}", plan=self))


def _split(source_symbols: int, k_max: int) -> tuple[int, int]:
    blocks = -(-source_symbols // k_max)
    return blocks, -(-source_symbols // blocks)


def plan_object(size: int, symbol_size: int, *, loss: float, target: float,
                k_max: int = DEFAULT_K_MAX, overhead: float | None = None,
                ec_type: str | None = None) -> Plan:
    """Choose blocks and parity so the object meets ``target`` at ``loss``.

    With an explicit ``overhead`` (parity / source) that ratio is used as is;
    otherwise the smallest parity meeting the target. If even 255-symbol code
    words cannot meet it, k is lowered (more parity per block) until they do.
    """
    ec = ec_type or default_ec_type()
    if size == 0:
        return Plan(0, symbol_size, 0, 0, ec)
    if not 0.0 <= loss < 0.5:
        raise ConfigError(_("loss rate must be in [0, 0.5), got {loss}", loss=loss))
    if not 0.0 < target < 1.0:
        raise ConfigError(_("target failure probability must be in (0, 1), got {target}",
                            target=target))
    k_max = max(1, min(k_max, MAX_SYMBOLS - 1, BLOCK_BYTES_MAX // symbol_size))
    source = -(-size // symbol_size)
    if overhead is not None:
        if overhead < 0:
            raise ConfigError(_("overhead must be >= 0, got {overhead}", overhead=overhead))
        k_cap = k_max
        while True:
            blocks, k = _split(source, k_cap)
            m = math.ceil(k * overhead - 1e-9)
            if k + m <= MAX_SYMBOLS or k_cap == 1:
                return Plan(size, symbol_size, blocks, min(m, MAX_SYMBOLS - k), ec)
            k_cap = max(1, MAX_SYMBOLS * k_cap // (k + m))
    k_cap = k_max
    while k_cap >= 1:
        blocks, k = _split(source, k_cap)
        for m in range(0, MAX_SYMBOLS - k + 1):
            candidate = Plan(size, symbol_size, blocks, m, ec)
            if candidate.failure_probability(loss) <= target:
                return candidate
        k_cap //= 2
    raise ConfigError(_("no Reed-Solomon plan reaches failure probability {target} at "
                        "{loss:.1%} loss; lower the loss rate or raise the target",
                        target=target, loss=loss))


@cache
def available_ec_types() -> tuple[str, ...]:
    """The pyeclib backends that actually load here, in preference order."""
    from pyeclib.ec_iface import ECDriver

    found = []
    for name in EC_PREFERENCE:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ECDriver(k=4, m=2, ec_type=name)
        except Exception:  # noqa: BLE001 - any backend failure means "not available"
            continue
        found.append(name)
    return tuple(found)


def default_ec_type() -> str:
    types = available_ec_types()
    if not types:
        raise BridgeError(_("no Reed-Solomon backend is available in pyeclib "
                            "(tried {names})", names=", ".join(EC_PREFERENCE)))
    return types[0]


@lru_cache(maxsize=64)
def _driver(ec_type: str, k: int, m: int):  # noqa: ANN202 - pyeclib has no stubs
    from pyeclib.ec_iface import ECDriver

    if ec_type not in available_ec_types():
        raise BridgeError(_("Reed-Solomon backend {name} is not available here "
                            "(available: {names})", name=ec_type,
                            names=", ".join(available_ec_types()) or "-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ECDriver(k=k, m=m, ec_type=ec_type)


@lru_cache(maxsize=64)
def _templates(ec_type: str, k: int, m: int, symbol_size: int) -> tuple[bytes, ...]:
    frags = _driver(ec_type, k, m).encode(bytes(k * symbol_size))
    return tuple(bytes(f[:len(f) - symbol_size]) for f in frags)


def encode_parity(ec_type: str, k: int, m: int, block: bytes) -> list[memoryview]:
    """The m parity symbols of one block of exactly k * symbol_size bytes."""
    if m == 0:
        return []
    symbol_size = len(block) // k
    frags = _driver(ec_type, k, m).encode(block)
    head = len(frags[0]) - symbol_size
    return [memoryview(f)[head:] for f in frags[k:]]


def decode_block(ec_type: str, k: int, m: int, symbol_size: int,
                 symbols: dict[int, bytes | memoryview]) -> bytes:
    """Rebuild the k * symbol_size source bytes from any k symbols."""
    if len(symbols) < k:
        raise BridgeError(_("cannot decode a block from {have} of {need} symbols",
                            have=len(symbols), need=k))
    if all(i in symbols for i in range(k)):
        return b"".join(bytes(symbols[i]) for i in range(k))
    templates = _templates(ec_type, k, m, symbol_size)
    chosen = sorted(symbols)[:k]
    frags = [templates[i] + bytes(symbols[i]) for i in chosen]
    try:
        return _driver(ec_type, k, m).decode(frags)
    except Exception as exc:  # noqa: BLE001 - pyeclib raises its own tree
        raise BridgeError(_("Reed-Solomon decoding failed: {error}", error=exc)) from exc
