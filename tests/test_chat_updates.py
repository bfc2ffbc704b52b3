"""The throttled message updates both chat platforms use (bot/chat_updates.py), with a recording
``deliver`` in place of a platform: what is written, when, and what is never lost."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import pytest

from bot.chat_updates import ThrottledMessage, UpdateBudget

INTERVAL = 0.2


@dataclass
class Recorder:
    """A platform that records each write, fails while ``failing`` is set, and notices a write
    that starts while another one is still running."""

    failing: bool = False
    raising: bool = False
    seconds: float = 0.0  # how long a write takes
    writes: list[tuple[float, str]] = field(default_factory=list)
    overlapped: bool = False
    _busy: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, state: str) -> bool:
        if not self._busy.acquire(blocking=False):
            self.overlapped = True
            self._busy.acquire()
        try:
            if self.raising:
                raise RuntimeError("the platform blew up")
            time.sleep(self.seconds)
            if self.failing:
                return False
            self.writes.append((time.monotonic(), state))
            return True
        finally:
            self._busy.release()

    @property
    def states(self) -> list[str]:
        return [state for _, state in self.writes]

    def wait_for(self, count: int, *, timeout: float = 3.0) -> None:
        end = time.monotonic() + timeout
        while len(self.writes) < count and time.monotonic() < end:
            time.sleep(0.01)
        assert len(self.writes) >= count, self.states


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def message(
    recorder: Recorder, *, min_interval: float = INTERVAL, budget: UpdateBudget | None = None
) -> ThrottledMessage[str]:
    return ThrottledMessage(deliver=recorder, min_interval=min_interval, budget=budget)


def test_the_first_state_is_written_at_once() -> None:
    recorder = Recorder()
    updates = message(recorder, min_interval=60)

    updates.update("started", final=False)

    assert recorder.states == ["started"]
    assert updates.delivered == "started"


def test_updates_that_come_too_soon_are_coalesced_and_the_newest_is_sent_later() -> None:
    recorder = Recorder()
    updates = message(recorder)

    updates.update("step 0", final=False)
    for step in range(1, 6):
        updates.update(f"step {step}", final=False)  # all within the interval: held back

    assert recorder.states == ["step 0"]
    recorder.wait_for(2)
    time.sleep(INTERVAL * 1.5)
    assert recorder.states == ["step 0", "step 5"]
    assert updates.latest == updates.delivered == "step 5"


def test_the_final_state_always_lands_and_never_sooner_than_the_interval() -> None:
    recorder = Recorder()
    updates = message(recorder)

    updates.update("step 0", final=False)
    updates.update("step 1", final=False)  # held back for the timer
    updates.update("done", final=True)  # the caller waits out the interval, then it is sent
    time.sleep(INTERVAL * 1.5)  # the timer was cancelled: nothing comes after the final

    assert recorder.states == ["step 0", "done"]
    (first, _), (final, _) = recorder.writes
    assert final - first >= INTERVAL * 0.95


def test_a_state_already_shown_is_not_written_again() -> None:
    recorder = Recorder()
    updates = message(recorder, min_interval=0)

    updates.update("done", final=False)
    updates.update("done", final=False)
    updates.update("done", final=True)

    assert recorder.states == ["done"]


def test_a_failed_write_is_tried_again_by_the_next_update_and_the_final_one() -> None:
    recorder = Recorder()
    updates = message(recorder, min_interval=0)
    updates.update("step 0", final=False)

    recorder.failing = True
    updates.update("step 1", final=False)
    assert updates.delivered == "step 0"
    updates.update("step 1", final=False)  # not written yet, so not "already shown"
    recorder.failing = False
    updates.update("done", final=True)

    assert recorder.states == ["step 0", "done"]
    assert updates.delivered == "done"


def test_until_a_first_write_succeeds_every_update_is_tried_at_once() -> None:
    recorder = Recorder(failing=True)
    updates = message(recorder, min_interval=60)

    updates.update("step 0", final=False)
    recorder.failing = False
    updates.update("step 1", final=False)  # nothing to edit yet: no reason to wait

    assert recorder.states == ["step 1"]


def test_progress_waits_for_the_shared_budget_and_the_final_does_not() -> None:
    clock = FakeClock()
    budget = UpdateBudget(per_minute=60, burst=1, clock=clock)
    recorder = Recorder()
    updates = message(recorder, min_interval=0, budget=budget)

    updates.update("step 0", final=False)  # the first write takes no token
    updates.update("step 1", final=False)  # the one token
    updates.update("step 2", final=False)  # none left: held back
    time.sleep(0.2)
    assert recorder.states == ["step 0", "step 1"]

    updates.update("done", final=True)  # never waits for the budget
    assert recorder.states == ["step 0", "step 1", "done"]


def test_a_held_back_update_is_sent_once_the_budget_refills() -> None:
    budget = UpdateBudget(per_minute=600, burst=1)  # a token every 0.1 s
    recorder = Recorder()
    updates = message(recorder, min_interval=0, budget=budget)

    updates.update("step 0", final=False)
    updates.update("step 1", final=False)
    updates.update("step 2", final=False)

    recorder.wait_for(3)
    assert recorder.states == ["step 0", "step 1", "step 2"]


def test_an_error_in_a_deferred_write_is_logged_not_lost_in_a_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    updates = message(recorder, min_interval=0.05)
    updates.update("step 0", final=False)
    recorder.raising = True
    updates.update("step 1", final=False)  # held back, then the timer's write raises

    end = time.monotonic() + 3
    while "deferred update" not in caplog.text and time.monotonic() < end:
        time.sleep(0.01)
    assert "a deferred update of a chat message failed" in caplog.text

    recorder.raising = False
    updates.update("done", final=True)
    assert recorder.states == ["step 0", "done"]


def test_an_error_in_a_direct_write_reaches_the_caller() -> None:
    updates = message(Recorder(raising=True))

    with pytest.raises(RuntimeError, match="blew up"):
        updates.update("done", final=True)


def test_many_threads_at_once_write_one_at_a_time_and_end_with_the_final_state() -> None:
    recorder = Recorder(seconds=0.01)
    updates = message(recorder, min_interval=0.05)

    def worker(index: int) -> None:
        for step in range(10):
            updates.update(f"worker {index} step {step}", final=False)
            time.sleep(0.005)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    updates.update("done", final=True)

    assert not recorder.overlapped
    assert recorder.states[-1] == "done"
    times = [at for at, _ in recorder.writes]
    # progress at most every interval (a write takes 0.01 s; the interval counts from its end)
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(times))


def test_updates_wait_for_the_budget() -> None:
    clock = FakeClock()
    budget = UpdateBudget(per_minute=60, burst=2, clock=clock)
    assert budget.try_take() and budget.try_take()
    assert not budget.try_take()
    assert budget.wait_seconds() == pytest.approx(1.0)
    clock.now += 1
    assert budget.try_take()
    budget.take_if_any()  # a final update: never refused
    assert budget.wait_seconds() == pytest.approx(1.0)


def test_the_budget_is_thread_safe() -> None:
    budget = UpdateBudget(per_minute=1, burst=10)
    taken: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        ok = budget.try_take()
        with lock:
            taken.append(ok)

    threads = [threading.Thread(target=take) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken.count(True) == 10
