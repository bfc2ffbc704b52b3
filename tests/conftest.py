"""Fixtures for every fake and real backend live in tests/fixtures/, one module per system."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.gitrepo",
    "tests.fixtures.bot",
]
