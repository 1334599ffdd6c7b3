"""Background work of the sandbox: timers and outbound pushes (callbacks).

Both are single threads with bounded waits, stopped by ``Sandbox.stop``.
Pushes to one URL keep their order (legacy stage changes must arrive in
sequence); a failed push is retried a few times with backoff, then given up
and left in ``Pusher.log`` for tests to see.
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from .signing import appkey_headers


class Scheduler:
    def __init__(self, name: str = "sandbox-scheduler"):
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._counter), fn))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else 1.0
                    self._cond.wait(timeout=max(0.001, min(wait, 1.0)))
                if self._stopped:
                    return
                _when, _n, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # noqa: BLE001 - a sandbox timer must not kill the thread
                pass


class Pusher:
    """POSTs JSON to URLs the hub (or a test) configured, in order, with retries."""

    def __init__(self, attempts: int = 4, timeout: float = 5.0, backoff: float = 0.2):
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff
        self.log: deque[dict[str, Any]] = deque(maxlen=10000)
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-pusher", daemon=True)
        self._session = requests.Session()

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 2)
        self._session.close()

    def push(self, url: str, payload: Any, *, source: str, signer: tuple[str, str] | None = None,
             wait: bool = False) -> dict[str, Any] | None:
        """Queue a POST; with ``wait`` block until it is delivered or given up and
        return its log entry."""
        done = threading.Event() if wait else None
        self._queue.put((url, payload, source, signer, done))
        if done is None:
            return None
        done.wait(timeout=self.attempts * (self.timeout + 2))
        for entry in reversed(self.log):
            if entry.get("_event") is done:
                return {k: v for k, v in entry.items() if k != "_event"}
        return None

    def entries(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "_event"} for e in list(self.log)]

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            url, payload, source, signer, done = item
            body = json.dumps(payload, ensure_ascii=False).encode()
            entry: dict[str, Any] = {"url": url, "source": source, "payload": payload,
                                     "status": None, "error": None, "attempts": 0,
                                     "delivered": False, "_event": done}
            for attempt in range(self.attempts):
                if self._stop.is_set():
                    break
                entry["attempts"] = attempt + 1
                send_headers = {"Content-Type": "application/json; charset=utf-8",
                                "X-Sandbox-Source": source}
                if signer is not None:
                    path = requests.Request("POST", url).prepare().path_url
                    send_headers.update(appkey_headers(signer[0], signer[1], "POST", path, body))
                try:
                    resp = self._session.post(url, data=body, headers=send_headers,
                                              timeout=self.timeout)
                    entry["status"] = resp.status_code
                    entry["error"] = None
                    if resp.status_code < 500 and resp.status_code != 429:
                        entry["delivered"] = 200 <= resp.status_code < 300
                        break
                except requests.RequestException as exc:
                    entry["error"] = repr(exc)
                self._stop.wait(self.backoff * (2 ** attempt))
            self.log.append(entry)
            if done is not None:
                done.set()
