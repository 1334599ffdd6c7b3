"""core.writer_lock: the writers of one SQLite store, in every process, take turns on
a lock file, and a waiting writer goes on as soon as the one before it is done."""

from __future__ import annotations

import fcntl
import os
import threading

from bdchub.core.store import Finish, Store
from bdchub.core.writer_lock import SUFFIX, WriterLock


def _held_elsewhere(path: str) -> bool:
    """Whether another open file (another process) would have to wait for the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_store_write_waits_for_another_process_holding_the_writer_lock(tmp_path):
    database = str(tmp_path / "store.db")
    store = Store(f"sqlite:///{database}")
    other = WriterLock(database)  # its own open file: as another process's
    other.__enter__()
    wrote = threading.Event()

    def write():
        store.finish(Finish(message_id="m-1", route="r", outcome="completed", tenant="320684",
                            business_no="B-1", type="t", record_processed=False,
                            progress={"status": "paid", "last_type": "t"}))
        wrote.set()

    writer = threading.Thread(target=write)
    writer.start()
    held_back = not wrote.wait(timeout=1)
    other.__exit__(None, None, None)
    writer.join(timeout=30)
    assert held_back and wrote.is_set()
    assert store.progress("320684", "B-1")["status"] == "paid"
    store.close()
    other.close()


def test_a_thread_takes_the_lock_again_and_lets_go_of_the_file_last(tmp_path):
    database = str(tmp_path / "store.db")
    lock = WriterLock(database)
    with lock:
        with lock:
            pass
        assert _held_elsewhere(database + SUFFIX)  # the outer hold goes on
    assert not _held_elsewhere(database + SUFFIX)
    lock.close()


def test_a_store_in_memory_has_no_lock_file(tmp_path):
    lock = WriterLock(None)
    with lock:
        pass
    assert lock.path is None
    assert list(tmp_path.iterdir()) == []
