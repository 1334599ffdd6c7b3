"""Where an abolished GB/T 2260 code went: its successor, from ``data/successors.csv``.

The table is dated and shipped with the hub (changes up to 2023, the year of the
snapshot's current list; ``data/build_successors.py`` says how it is built and
from what). Each abolished code of the snapshot has a row naming one successor,
several (a split: the area went to more than one code, so no single successor),
or none (neither source names one).

``successor`` follows chains (320625 海门县 -> 320684 海门市 -> 320614 海门区) to a
current code; ``succession`` says what was tried, for messages that must
explain why a code has no successor.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from . import divisions

DATA_FILE = Path(__file__).resolve().parent / "data" / "successors.csv"

#: What the table is, for messages that cite it.
TABLE = "GB/T 2260 successors, changes up to 2023"

#: How a code's succession ends:
#: ``current`` the code (or the last of its chain) is current;
#: ``split`` its area went to several codes: no single successor;
#: ``no_successor`` abolished, and the table names none;
#: ``not_gbt`` a statistical code (development zones …), not a GB/T 2260 code;
#: ``unknown`` not in the snapshot at all.
Ending = Literal["current", "split", "no_successor", "not_gbt", "unknown"]

# A chain longer than this is a fault in the table, not history: the longest real
# ones (county -> county-level city under the province -> under a prefecture ->
# district) have four links.
_MAX_LINKS = 16


@dataclass(frozen=True)
class Succession:
    """What became of ``code``: the chain of codes followed and how it ended."""

    code: str
    #: ``code`` and each successor followed, in order (``code`` alone when current).
    chain: tuple[str, ...]
    ending: Ending
    #: the codes a split went to (``ending == "split"``), else empty.
    parts: tuple[str, ...] = ()

    @property
    def successor(self) -> str | None:
        """The current code ``code`` maps to (itself when current); None when there
        is no single one."""
        return self.chain[-1] if self.ending == "current" else None

    @property
    def retired(self) -> bool:
        """True when ``code`` is no longer current (whether or not it has a successor)."""
        return self.ending != "current" or len(self.chain) > 1


@cache
def _table() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    with DATA_FILE.open(encoding="utf-8", newline="") as fh:
        lines = (line for line in fh if not line.startswith("#"))
        for rec in csv.DictReader(lines):
            table[rec["code"]] = tuple(c for c in rec["successors"].split(";") if c)
    return table


def _status(code: str) -> str | None:
    division = divisions.lookup(code)
    return division.status if division else None


@cache
def succession(code: str) -> Succession:
    """What became of the 6-digit ``code`` (see ``Succession``)."""
    chain = [code]
    table = _table()
    while True:
        here = chain[-1]
        status = _status(here)
        if status == "current":
            return Succession(code, tuple(chain), "current")
        if status == "statistical":
            return Succession(code, tuple(chain), "not_gbt")
        if status is None:
            return Succession(code, tuple(chain), "unknown")
        following = table.get(here, ())
        if len(following) > 1:
            return Succession(code, tuple(chain), "split", following)
        if not following or following[0] in chain or len(chain) > _MAX_LINKS:
            return Succession(code, tuple(chain), "no_successor")
        chain.append(following[0])


def successor(code: str) -> str | None:
    """The current code for ``code``: itself when current, its successor (chains
    followed) when abolished and succeeded by one code; None for a split, an
    abolished code with no successor, or a code not in GB/T 2260
    (``succession(code).ending`` says which)."""
    return succession(code).successor
