"""Small measuring helpers shared by the sections."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from bot.metrics import CALLS

T = TypeVar("T")


def port_calls() -> dict[str, float]:
    """Calls per system so far, from the same counters /metrics serves."""
    totals: dict[str, float] = {}
    for metric in CALLS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                system = sample.labels["system"]
                totals[system] = totals.get(system, 0) + sample.value
    return totals


@contextmanager
def counting() -> Iterator[dict[str, float]]:
    """Yields a dict filled, on exit, with the calls per system made inside the block."""
    before = port_calls()
    delta: dict[str, float] = {}
    yield delta
    after = port_calls()
    delta.update({k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)})


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
