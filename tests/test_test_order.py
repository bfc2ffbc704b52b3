"""The parallel run's order (tests/conftest.py): under pytest-xdist's work stealing, every
worker starts with its share of the slow tests and ends with the quick ones. Checked against
xdist's own scheduler (its version is pinned), since the order relies on how it splits the
collection among the workers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from xdist.scheduler.worksteal import WorkStealingScheduling

from tests.conftest import slow_first_in_every_share


class FakeItem:
    """What the ordering reads of a test: its markers and its file."""

    def __init__(self, name: str, *markers: str, path: str) -> None:
        self.name, self.markers, self.path = name, set(markers), Path(path)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


class FakeWorker:
    """A worker as the scheduler sees it: the tests it was sent, by index."""

    def __init__(self, number: int) -> None:
        self.gateway = SimpleNamespace(id=f"gw{number}")
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def send_steal(self, indices: list[int]) -> None:
        """Stealing starts once a worker is idle: not in the first split."""


def collection() -> list[FakeItem]:
    return [
        *(FakeItem(f"quick{i}", path="tests/core/test_x.py") for i in range(50)),
        *(FakeItem(f"server{i}", "server", path="tests/handlers/test_y.py") for i in range(30)),
        *(FakeItem(f"e2e{i}", "server", path="tests/e2e/test_z.py") for i in range(20)),
        *(FakeItem(f"slow{i}", "server", "slow", path="tests/e2e/test_w.py") for i in range(7)),
    ]


def first_split(order: list[FakeItem], workers: int) -> list[list[str]]:
    """The names each worker receives from xdist's work-stealing scheduler at the start."""
    values: dict[str, Any] = {"tx": [f"{workers}*popen"], "numprocesses": workers}
    config = SimpleNamespace(getvalue=values.get, option=SimpleNamespace(**values))
    scheduler = WorkStealingScheduling(cast(pytest.Config, config))
    nodes = [FakeWorker(n) for n in range(workers)]
    for node in nodes:
        scheduler.add_node(cast(Any, node))
    for node in nodes:
        scheduler.add_node_collection(cast(Any, node), [item.name for item in order])
    scheduler.schedule()
    return [[order[i].name for i in node.sent] for node in nodes]


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_every_worker_starts_slow_and_ends_quick(workers: int) -> None:
    items = collection()

    order = cast(
        list[FakeItem],
        slow_first_in_every_share(cast(list[pytest.Item], items), workers=workers),
    )

    assert sorted(i.name for i in order) == sorted(i.name for i in items)
    shares = first_split(order, workers)
    assert sorted(name for share in shares for name in share) == sorted(i.name for i in items)
    for share in shares:
        assert share[0].startswith("slow"), share
        assert share[-1].startswith("quick"), share
    slow_counts = [sum(name.startswith("slow") for name in share) for share in shares]
    assert max(slow_counts) - min(slow_counts) <= 1, slow_counts
    # within a share, tests keep their file order (a module's tests stay together)
    for share in shares:
        quick = [int(name.removeprefix("quick")) for name in share if name.startswith("quick")]
        assert quick == sorted(quick)


def test_a_plain_run_keeps_the_file_order() -> None:
    items = cast(list[pytest.Item], collection())

    assert slow_first_in_every_share(items, workers=1) == items
