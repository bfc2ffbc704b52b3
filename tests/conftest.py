"""Fixtures for every fake and real backend live in tests/fixtures/, one module per system."""

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
