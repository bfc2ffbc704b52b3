"""Fixtures for every fake and real backend live in tests/fixtures/, one module per system."""

from typing import Any

import pytest

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.gitrepo",
    "tests.fixtures.bot",
    "tests.fixtures.kubernetes",
    "tests.fixtures.github",
    "tests.fixtures.slack",
    "tests.fixtures.infisical",
    "tests.fixtures.mattermost",
]


# Fixtures that need PostgreSQL or a loopback server (pytest follows their dependencies, so
# bot_env, admin_dsn, state_dsn... are caught through these). A test using none of them runs in
# `make test-fast` (`pytest -m "not server"`); one that starts a server or the bot's process by
# itself says so with `@pytest.mark.server`.
SERVER_FIXTURES = frozenset(
    {
        "pg_superuser_dsn",
        "scram_cluster",
        "fake_github",
        "infisical",
        "fake_kube",
        "fake_mattermost",
        "slack_api",
        "slack_socket",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``server`` every test that uses a server fixture, whatever its file; under
    pytest-xdist, order the tests so that every worker starts with the slow ones."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        items[:] = slow_first_in_every_share(items, workers=int(workerinput["workercount"]))


def _weight(item: pytest.Item) -> int:
    """How long a test is expected to take: ``slow`` > the bot as a process (tests/e2e) >
    PostgreSQL or a fake server > in memory."""
    if item.get_closest_marker("slow"):
        return 3
    if "e2e" in item.path.parts:
        return 2
    return 1 if item.get_closest_marker("server") else 0


def slow_first_in_every_share(items: list[pytest.Item], *, workers: int) -> list[pytest.Item]:
    """The tests dealt into ``workers`` shares, heaviest first within each, concatenated.

    ``--dist worksteal`` (the Makefile's) hands each worker one contiguous share of the
    collection, sized as below, and idle workers then steal from the end of the others' queues.
    A slow test at the end of a share, or all of tests/e2e in one share, would leave one
    worker running while the others wait; here each share starts with its part of the slow
    tests and ends with the quick in-memory ones, which fill the last seconds. Every worker
    computes the same order (xdist requires it): a stable sort, then a round-robin deal.
    """
    if workers < 2:
        return items
    ordered = sorted(items, key=_weight, reverse=True)  # stable: file order within a weight
    sizes, left = [], len(ordered)
    for share in range(workers):  # xdist's split: len(pending) // nodes remaining
        sizes.append(left // (workers - share))
        left -= sizes[-1]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    share = 0
    for item in ordered:
        while len(shares[share]) == sizes[share]:
            share = (share + 1) % workers
        shares[share].append(item)
        share = (share + 1) % workers
    return [item for part in shares for item in part]
