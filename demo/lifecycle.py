"""What the demos' runs share: a context manager over ``start`` and ``close``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self


class StartStop(ABC):
    """``with Run(...) as run:`` starts it and closes it after, also when it fails
    halfway through starting (what was started by then is stopped)."""

    @abstractmethod
    def start(self) -> None:
        """Start the run's parts, in order."""

    @abstractmethod
    def close(self) -> None:
        """Stop whatever was started (also after a start that failed halfway)."""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
