"""The inbox: where the receiver delivers, and how the hub picks objects up.

Layout::

    inbox/<name>                 delivered object (complete, verified, policy-checked)
    inbox/.meta/<name>.json      its manifest and receipt (written first)
    inbox/.processed/            where acknowledged objects go (``keep_processed``)

The receiver writes the sidecar, then renames the object in with
``os.replace`` after fsync, so a file visible under ``inbox/`` is always
complete. ``InboxWatcher`` yields delivered objects and removes each only
when acknowledged: what was being processed when the hub died is yielded
again (at-least-once; consumers dedupe by ``DeliveredObject.id``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdchub.core.errors import BridgeError
from bdchub.core.fsutil import fsync_dir
from bdchub.core.i18n import _

from ..policy import move_durably, unique_path

META = ".meta"
PROCESSED = ".processed"


def deliver(src: Path, inbox: Path, name: str, meta: dict[str, Any], tag: str) -> Path:
    """Move a verified object into the inbox with its sidecar; return its path."""
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / META).mkdir(exist_ok=True)
    dest = unique_path(inbox, name, tag)
    side = inbox / META / (dest.name + ".json")
    tmp = side.with_name("." + side.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump({**meta, "delivered_name": dest.name}, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, side)
    fsync_dir(side.parent)
    move_durably(src, dest)
    return dest


@dataclass(frozen=True)
class DeliveredObject:
    path: Path
    name: str
    kind: str  # "file" or "batch"
    size: int
    digest: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable identity for idempotent consumers: the sender's session/object."""
        return str(self.meta.get("ref") or f"{self.digest}:{self.name}")

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def messages(self) -> Any:
        """The JSON message batch carried by a ``batch`` object."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BridgeError(_("{name} is not a readable JSON batch: {error}",
                                name=self.name, error=exc)) from exc


class InboxWatcher:
    def __init__(self, inbox: str | os.PathLike[str], *, keep_processed: bool = True):
        self.inbox = Path(inbox)
        self.keep_processed = keep_processed

    def poll(self) -> list[DeliveredObject]:
        """Objects in the inbox now, oldest first."""
        if not self.inbox.is_dir():
            return []
        found = []
        for entry in os.scandir(self.inbox):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            side = self.inbox / META / (entry.name + ".json")
            try:
                meta = json.loads(side.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {}
            found.append((entry.stat().st_mtime_ns, DeliveredObject(
                path=Path(entry.path), name=str(meta.get("name", entry.name)),
                kind=str(meta.get("kind", "file")), size=int(meta.get("size", 0) or 0),
                digest=str(meta.get("digest", "")), meta=meta)))
        return [obj for _t, obj in sorted(found, key=lambda pair: (pair[0], pair[1].path.name))]

    def ack(self, obj: DeliveredObject) -> None:
        """The object has been handed on; take it out of the inbox."""
        side = self.inbox / META / (obj.path.name + ".json")
        if self.keep_processed:
            done = self.inbox / PROCESSED
            done.mkdir(exist_ok=True)
            if obj.path.exists():
                move_durably(obj.path, unique_path(done, obj.path.name, str(time.time_ns())))
        else:
            obj.path.unlink(missing_ok=True)
            fsync_dir(self.inbox)
        side.unlink(missing_ok=True)

    def watch(self, *, interval: float = 0.5, stop: threading.Event | None = None,
              max_items: int | None = None, timeout: float | None = None,
              ) -> Iterator[DeliveredObject]:
        """Yield delivered objects as they appear. An object is acknowledged
        when the consumer asks for the next one (or closes the generator
        after handling it); one that was being handled when the process died
        is yielded again."""
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self.poll()
            for obj in batch:
                yield obj
                self.ack(obj)
                seen += 1
                if max_items is not None and seen >= max_items:
                    return
            if stop is not None and stop.is_set():
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            if not batch:
                if stop is not None:
                    stop.wait(interval)
                else:
                    time.sleep(interval)

    def run(self, handler: Callable[[DeliveredObject], None], **kwargs: Any) -> int:
        """Call ``handler`` for each object; acknowledge only when it returns.
        If it raises, the object stays in the inbox and the error propagates."""
        count = 0
        for obj in self.watch(**kwargs):
            handler(obj)
            count += 1
        return count
