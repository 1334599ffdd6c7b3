"""What the demos' runs share: a context manager over ``start`` and ``close``."""

from __future__ import annotations

from typing import Any, Self


class StartStop:
    """``with Run(...) as run:`` starts it and closes it after, also when it fails
    halfway through starting (what was started by then is stopped)."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
