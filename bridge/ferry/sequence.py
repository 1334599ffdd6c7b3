"""The sender's batch counter: monotonic, persisted before any disc carries a number.

A JSON file ``{"format": 1, "senders": {"<sender>": <last sequence>}}``,
rewritten atomically under an exclusive lock so two packs never hand out the
same number. Numbers are taken before the discs are built: a pack that fails
half-way burns its numbers, which the importer reports as a gap (gaps are
allowed; reuse is not).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bdchub.core.errors import BridgeError
from bdchub.core.i18n import _

from . import fsutil


class SequenceFile:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = self.path.with_name(self.path.name + ".lock")

    def _read(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            senders = doc["senders"]
            if not all(isinstance(v, int) and v >= 0 for v in senders.values()):
                raise ValueError("negative or non-integer sequence")
            return dict(senders)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BridgeError(_("sequence file {path} is damaged ({error}); restore it from "
                                "backup rather than restarting at 1", path=str(self.path),
                                error=exc)) from exc

    def last(self, sender: str) -> int:
        return self._read().get(sender, 0)

    def allocate(self, sender: str, count: int = 1) -> list[int]:
        """Reserve ``count`` consecutive numbers for ``sender`` and persist them."""
        with fsutil.locked(self._lock):
            senders = self._read()
            first = senders.get(sender, 0) + 1
            senders[sender] = first + count - 1
            body = json.dumps({"format": 1, "senders": senders}, ensure_ascii=False, indent=1)
            fsutil.atomic_write(self.path, body.encode("utf-8"))
        return list(range(first, first + count))
