"""Small file-system helpers of the ferry: atomic writes, locks, moves that
never half-land (directory fsync is ``core.fsutil.fsync_dir``)."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bdchub.core.fsutil import fsync_dir


def write_file(path: Path, data: bytes, *, sync: bool = False) -> None:
    with open(path, "xb") as fh:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Write ``data`` so that readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed) for this block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def move_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; across file systems copy beside ``dst`` first, then rename.

    Either way ``dst`` appears complete in one step.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.partial")
    shutil.copytree(src, tmp)
    os.rename(tmp, dst)
    shutil.rmtree(src, ignore_errors=True)


def tree_fsync(root: Path) -> None:
    """fsync every directory under ``root`` (files were synced as they were written)."""
    for dirpath, _dirs, _files in os.walk(root):
        fsync_dir(Path(dirpath))
