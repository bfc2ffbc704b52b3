"""What every in-memory fake shares: the calls it received, the failures a test injects, and a
clock a test moves by hand."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.errors import BackendUnavailable, PgdbError

# A fixed start, so that records, alerts and approvals carry predictable times.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    """``Services.clock`` and the fakes' own clock: time moves only when the test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@dataclass
class _Fault:
    error: PgdbError
    times: int | None  # None: until healed


class Faults:
    """The call log and the injected failures of one fake.

    ``fail("observe")`` makes that method raise ``BackendUnavailable`` (the port's error for an
    unreachable system) until ``heal()``; ``fail()`` with no method fails every call;
    ``times=1`` fails only the next call. ``calls`` names every port method called, in order.
    """

    system = "test"  # as BackendUnavailable names it: "PostgreSQL", "git", ...

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._faults: dict[str, _Fault] = {}
        self._lock = threading.RLock()

    def fail(self, *methods: str, error: PgdbError | None = None, times: int | None = None) -> None:
        for method in methods:
            if not callable(getattr(self, method, None)):
                raise AttributeError(f"{type(self).__name__} has no method {method!r} to fail")
        error = error or BackendUnavailable(self.system, "connection refused (a test made it fail)")
        with self._lock:
            for method in methods or ("*",):
                self._faults[method] = _Fault(error, times)

    def heal(self, *methods: str) -> None:
        """Stop failing ``methods`` (every method when none is named)."""
        with self._lock:
            if not methods:
                self._faults.clear()
            for method in methods:
                self._faults.pop(method, None)

    def called(self, method: str) -> int:
        """How many times ``method`` was called."""
        with self._lock:
            return self.calls.count(method)

    def _enter(self, method: str) -> None:
        """Record the call; raise the failure injected for it, if any."""
        with self._lock:
            self.calls.append(method)
            key = method if method in self._faults else "*"
            fault = self._faults.get(key)
            if fault is None:
                return
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[key]
        raise fault.error
