"""Fixtures for every fake and real backend live in tests/fixtures/, one module per system."""

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``server`` every test that uses a server fixture, whatever its file."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
