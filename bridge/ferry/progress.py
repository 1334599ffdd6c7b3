"""How long operations report progress, without the API depending on a terminal."""

from __future__ import annotations

import threading
from typing import Protocol


class Progress(Protocol):
    """``advance`` may be called from worker threads."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...

    def stop(self) -> None: ...


class NoProgress:
    def start(self, label: str, total: int) -> None:
        return None

    def advance(self, amount: int) -> None:
        return None

    def stop(self) -> None:
        return None


class RichProgress:
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=True)
        self._task: int | None = None
        self._lock = threading.Lock()

    def start(self, label: str, total: int) -> None:
        with self._lock:
            if self._task is None:
                self._bar.start()
            else:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(label, total=max(total, 1))

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, amount)

    def stop(self) -> None:
        with self._lock:
            if self._task is not None:
                self._bar.stop()
                self._task = None
