"""Runs commands after the chat platform has been answered (the ack never waits for work).

A bounded pool of its own, apart from any framework's listener pool, so a burst of slow
commands cannot delay the next acknowledgement; on shutdown it stops taking commands and lets
running ones finish up to a deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from bot import memory

log = logging.getLogger(__name__)


class ShuttingDown(Exception):
    """The runner takes no new commands: the process is stopping."""


class CommandRunner:
    def __init__(self, *, workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgdb-command")
        self._workers = workers
        self._lock = threading.Lock()
        self._running: set[Future[None]] = set()
        self._closed = False

    def submit(self, work: Callable[[], None], *, what: str) -> None:
        """Run ``work`` soon, in the background; exceptions are logged, never raised here."""
        with self._lock:
            if self._closed:
                raise ShuttingDown("pgdb-bot is restarting: run the command again in a minute")
            future = self._pool.submit(self._guarded, work, what)
            self._running.add(future)
        future.add_done_callback(self._forget)

    @staticmethod
    def _guarded(work: Callable[[], None], what: str) -> None:
        try:
            work()
        except Exception:
            log.exception("background work failed: %s", what)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._running.discard(future)
            idle = not self._running
        if idle:
            memory.trim()  # the last command is done: hand what it freed back to the system

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def queued(self) -> int:
        """Commands waiting for a free worker (the others are running)."""
        return max(0, self.in_flight - self._workers)

    def shutdown(self, *, deadline_seconds: float) -> bool:
        """Stop taking work; wait for running work up to the deadline. True if all finished."""
        with self._lock:
            self._closed = True
        end = time.monotonic() + deadline_seconds
        while self.in_flight and time.monotonic() < end:
            time.sleep(0.05)
        finished = self.in_flight == 0
        if not finished:
            log.warning("%d command(s) still running at shutdown", self.in_flight)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return finished
