"""One chat message kept up to date while a command runs, on any platform.

A command shows its progress as one message edited in place. Written at every step, that
would hit the platforms' rate limits, so the updates of one message are throttled: a message
is written at most every ``min_interval`` seconds (and, where the platform also limits edits
across all messages, only with a token from a shared :class:`UpdateBudget`); an update that
comes too soon is held back, replaced by any newer one, and sent by a timer; the final state
is always delivered; a state already delivered is never sent again.

The platform adapter says *how* a state is written (post it the first time, edit it after,
fall back when the platform refuses); this module alone says *when*.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

State = TypeVar("State")

# A held-back update is looked at again no sooner than this (a timer that fires a little
# early, or a budget about to refill, is not a reason to spin).
MIN_TIMER_SECONDS = 0.05


class UpdateBudget:
    """A token bucket for message edits that a platform limits across all messages (Slack's
    ``chat.update``: Tier 3, about 50 a minute per workspace): progress updates wait for a
    token, final ones never do (they take one if there is one)."""

    def __init__(
        self,
        *,
        per_minute: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = burst
        self._tokens = burst
        self._clock = clock
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def try_take(self) -> bool:
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def take_if_any(self) -> None:
        with self._lock:
            self._refill()
            self._tokens = max(0.0, self._tokens - 1)

    def wait_seconds(self) -> float:
        with self._lock:
            self._refill()
            return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate


class ThrottledMessage(Generic[State]):
    """The updates of one message, written through ``deliver`` no more often than allowed.

    ``deliver(state)`` writes ``state`` and returns True, or returns False when it could not
    (the adapter has logged why): the state is then not taken as delivered, and the next
    update, or the final one, tries again. An exception from ``deliver`` reaches the caller of
    :meth:`update` (or the log, from the timer).

    - The first state is written at once (there is nothing to edit yet).
    - After that, a progress update is written when ``min_interval`` has passed since the
      last write and the budget (if any) has a token; otherwise it is held back and a timer
      writes the newest state as soon as both allow.
    - A final update cancels the timer and is always written, after ``min_interval`` has
      passed since the last write (the caller waits), never waiting for the budget.
    - One write at a time; a state equal to the one last delivered is not written again.
    """

    def __init__(
        self,
        *,
        deliver: Callable[[State], bool],
        min_interval: float,
        budget: UpdateBudget | None = None,
        what: str = "a chat message",
    ) -> None:
        self._deliver = deliver
        self._min_interval = min_interval
        self._budget = budget
        self._what = what
        self._lock = threading.Lock()  # guards the fields below
        self._send_lock = threading.Lock()  # one write at a time, the newest state each time
        self._latest: State | None = None
        self._delivered: State | None = None
        self._last_write = float("-inf")
        self._timer: threading.Timer | None = None

    @property
    def latest(self) -> State | None:
        """The newest state given, delivered or not."""
        with self._lock:
            return self._latest

    @property
    def delivered(self) -> State | None:
        """The state last written (None before the first write succeeds)."""
        with self._lock:
            return self._delivered

    def update(self, state: State, *, final: bool) -> None:
        """Show ``state``: now, later (a progress update that comes too soon) or never (the
        state already shown)."""
        with self._lock:
            self._latest = state
            if final:
                self._cancel_timer()
            elif state == self._delivered:
                return
            elif self._delivered is not None and (self._timer is not None or self._due() > 0):
                self._arm_timer()
                return
        self._flush(final=final)

    # -- under self._lock --

    def _due(self) -> float:
        return self._last_write + self._min_interval - time.monotonic()

    def _may_write_now(self) -> bool:
        """The interval has passed, and a token is taken when there is a budget."""
        return self._due() <= 0 and (self._budget is None or self._budget.try_take())

    def _arm_timer(self) -> None:
        if self._timer is not None:
            return
        wait = self._budget.wait_seconds() if self._budget is not None else 0.0
        self._timer = threading.Timer(max(self._due(), wait, MIN_TIMER_SECONDS), self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pending(self) -> State | None:
        """The newest state when it is not the one delivered."""
        target = self._latest
        return None if target is None or target == self._delivered else target

    # -- writing: one at a time, under self._send_lock --

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self._flush(final=False)
        except Exception:  # a timer thread has no caller to tell
            log.exception("a deferred update of %s failed", self._what)

    def _flush(self, *, final: bool) -> None:
        with self._send_lock:
            with self._lock:
                if self._pending() is None:
                    return
                wait = self._due()
                if not final and self._delivered is not None and not self._may_write_now():
                    self._arm_timer()  # another write came first: this one waits its turn
                    return
            if final:
                if wait > 0:
                    time.sleep(wait)
                if self._budget is not None:
                    self._budget.take_if_any()
            with self._lock:
                target = self._pending()
            if target is None:
                return
            try:
                delivered = self._deliver(target)
            finally:
                with self._lock:
                    self._last_write = time.monotonic()
            if delivered:
                with self._lock:
                    self._delivered = target
