"""One writer at a time on an embedded SQLite store, across every process that opens it.

SQLite lets one connection write at a time. A writer that finds the file locked
is put off by SQLite's busy handler, which sleeps and tries again (1, 2, 5, 10,
15, 20, 25 … 100 ms between tries): with two hub processes on one store (``hub
run`` with ``inbound.listen.processes: 2``, or two ``hub run``) a request whose
write met the other process's transaction slept on, and another transaction
could take the lock while it slept. Issue #15 measured p99 of 342-951 ms.

Here every writer of the store, in every process, first takes an exclusive
``flock`` on a file beside the database (``<store>.writer``): the kernel wakes a
waiter the moment the holder lets go, so a write waits only as long as the
transaction ahead of it takes. Within a process a re-entrant thread lock comes
first (threads queue there, not on the file), and a thread that already holds
the lock takes it again freely. A program that writes the database without
this lock (the sqlite3 shell) is still kept out by SQLite's own locking.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: SQLite's own locking alone
    fcntl = None  # type: ignore[assignment]

#: Appended to the database's file name: the file every process locks.
SUFFIX = ".writer"


class WriterLock:
    """The store's write lock: this process's threads, then every process's."""

    def __init__(self, database: str | None):
        self._threads = threading.RLock()
        self._depth = 0
        self.path = database + SUFFIX if database and fcntl is not None else None
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> WriterLock:
        self._threads.acquire()
        try:
            if self._depth == 0 and self.path is not None:
                if self._fd is None or self._pid != os.getpid():
                    # A descriptor inherited over fork shares its lock with the parent:
                    # each process opens its own.
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        self._depth += 1
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        with self._threads:
            fd, self._fd = self._fd, None
        if fd is not None and self._pid == os.getpid():
            os.close(fd)
