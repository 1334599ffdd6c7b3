"""File-system durability shared by the bridge's inboxes, quarantine and ferry."""

from __future__ import annotations

import os


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries to disk: a rename or a new file in it survives
    a crash only once its directory is synced, not just the file itself."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
