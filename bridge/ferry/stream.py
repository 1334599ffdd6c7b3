"""Hash (and optionally extract) file data straight from an image, reading each byte once.

Speed target: within 1.2x of plain ``hashlib.sha256`` over the same bytes.
Two things get there (measured in bench/bridge_ferry.py):

- within one file, a helper thread hashes chunk *k* while this thread reads
  chunk *k+1* (and writes chunk *k* to the staging copy); hashlib and the
  read/write system calls release the GIL, so the copy hides behind the hash;
- across files, a small pool works on several files at once.

The bytes hashed are the bytes written: both come from the same private
buffer, so a file changed under us between read and write cannot slip through.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence

from bdchub.core.errors import IntegrityError_
from bdchub.core.i18n import _

CHUNK = 4 * 1024 * 1024
PIPELINE_MIN = 2 * CHUNK
BUFFERS = 3

Advance = Callable[[int], None]

# Buffers are reused per thread: touching fresh memory costs page faults, which
# are dear on some virtual machines (several times the cost of the copy itself).
_local = threading.local()


def _buffers(chunk: int) -> list[memoryview]:
    cached = getattr(_local, "buffers", None)
    if cached is None or len(cached[0]) != chunk:
        cached = [memoryview(bytearray(chunk)) for _i in range(BUFFERS)]
        _local.buffers = cached
    return cached


def _noop(_n: int) -> None:
    return None


def _read_exact(fd: int, view: memoryview, offset: int) -> None:
    got = 0
    while got < len(view):
        try:
            n = os.preadv(fd, [view[got:]], offset + got)
        except OSError as exc:  # a scratched disc or a failing drive: the image's fault
            raise IntegrityError_(_("read error at byte {offset} of the image: {error}",
                                    offset=offset + got, error=exc.strerror or exc)) from exc
        if n == 0:
            raise IntegrityError_(_("the image ends inside a file: it is truncated"))
        got += n


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _chunks(extents: Sequence[tuple[int, int]], chunk: int):
    for offset, length in extents:
        done = 0
        while done < length:
            size = min(chunk, length - done)
            yield offset + done, size
            done += size


def digest(src_fd: int, extents: Sequence[tuple[int, int]], dst_fd: int | None = None,
           advance: Advance = _noop, chunk: int = CHUNK) -> str:
    """SHA-256 hex of the bytes at ``extents`` of ``src_fd``, copied to ``dst_fd`` if given."""
    total = sum(length for _o, length in extents)
    if total < PIPELINE_MIN:
        return _digest_serial(src_fd, extents, dst_fd, advance, chunk)
    return _digest_pipelined(src_fd, extents, dst_fd, advance, chunk)


def _digest_serial(src_fd: int, extents: Sequence[tuple[int, int]], dst_fd: int | None,
                   advance: Advance, chunk: int) -> str:
    h = hashlib.sha256()
    buf = _buffers(chunk)[0]
    for offset, size in _chunks(extents, chunk):
        view = buf[:size]
        _read_exact(src_fd, view, offset)
        h.update(view)
        if dst_fd is not None:
            _write_all(dst_fd, view)
        advance(size)
    return h.hexdigest()


def _digest_pipelined(src_fd: int, extents: Sequence[tuple[int, int]], dst_fd: int | None,
                      advance: Advance, chunk: int) -> str:
    h = hashlib.sha256()
    free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
    for buf in _buffers(chunk):
        free.put(buf)
    errors: list[BaseException] = []

    def hasher() -> None:
        while True:
            item = full.get()
            if item is None:
                return
            buf, size = item
            try:
                if not errors:
                    h.update(buf[:size])
                    advance(size)
            except BaseException as exc:  # handed to the reading thread below
                errors.append(exc)
            finally:
                free.put(buf)

    worker = threading.Thread(target=hasher, name="ferry-sha256", daemon=True)
    worker.start()
    try:
        for offset, size in _chunks(extents, chunk):
            buf = free.get()
            _read_exact(src_fd, buf[:size], offset)
            if dst_fd is not None:
                _write_all(dst_fd, buf[:size])
            full.put((buf, size))
    finally:
        full.put(None)
        worker.join()
    if errors:
        raise errors[0]
    return h.hexdigest()
