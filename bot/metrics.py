"""Prometheus metrics (served at /metrics by `pgdb-bot run`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter("pgdb_commands_total", "Chat commands handled", ["command", "result"])
STEP_SECONDS = Histogram(
    "pgdb_workflow_step_seconds",
    "Duration of each workflow step",
    ["step"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STEP_FAILURES = Counter("pgdb_workflow_step_failures_total", "Failed workflow steps", ["step"])
FINDINGS = Gauge("pgdb_findings", "Findings of the last diagnostics pass", ["kind", "severity"])
LAST_DIAGNOSTICS = Gauge(
    "pgdb_last_successful_diagnostics_timestamp_seconds",
    "When the last diagnostics pass completed (Unix time)",
)
PASSES = Counter(
    "pgdb_diagnostics_passes_total",
    "Diagnostics passes by outcome: ok (findings announced), unobserved (a system could not "
    "be read), failed (the alert state could not be written)",
    ["outcome"],
)
LEADER = Gauge("pgdb_leader", "1 while this replica leads the scheduled diagnostics, else 0")
CALLS = Counter("pgdb_outgoing_calls_total", "Operations on outside systems", ["system", "call"])
CALL_ERRORS = Counter(
    "pgdb_outgoing_errors_total", "Failed operations on outside systems", ["system", "call"]
)


@contextmanager
def timed_step(step: str) -> Iterator[None]:
    """Time a workflow step; count it as failed when it raises."""
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        STEP_FAILURES.labels(step).inc()
        raise
    finally:
        STEP_SECONDS.labels(step).observe(time.perf_counter() - start)


class Instrumented:
    """Wraps an adapter so that every call on it is counted by system (and failures too).

    The wiring wraps each port's adapter once; adapters and the core stay unaware of metrics.
    """

    def __init__(self, target: object, *, system: str) -> None:
        self._target = target
        self._system = system

    # Methods that compute locally and call no outside system.
    LOCAL = frozenset({"location", "describe"})

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name.startswith("_") or name in self.LOCAL or not callable(attribute):
            return attribute
        return _counted(attribute, system=self._system, call=name)

    def __repr__(self) -> str:
        return f"Instrumented({self._target!r})"


def _counted(fn: Callable[..., Any], *, system: str, call: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        CALLS.labels(system, call).inc()
        try:
            return fn(*args, **kwargs)
        except Exception:
            CALL_ERRORS.labels(system, call).inc()
            raise

    return wrapper


class PrometheusMetrics:
    """The use cases' metrics port, counted in this process's Prometheus registry."""

    def command_handled(self, command: str, *, result: str) -> None:
        COMMANDS.labels(command, result).inc()

    def step(self, name: str) -> AbstractContextManager[None]:
        return timed_step(name)
