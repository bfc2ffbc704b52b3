"""Guardrails in the core: what ``--connections``, ``--statement-timeout``, ``--extension`` and
``--schema`` accept; sizes; the Database manifest with options, validated against the CRD schema
that ships in the package, and edited in place with comments and formatting kept."""

from __future__ import annotations

import pytest

from bot.core.limits import (
    NO_LIMIT,
    DatabaseOptions,
    RoleLimits,
    limits_command,
    parse_connection_limit,
    parse_names,
    parse_statement_timeout,
)
from bot.core.manifests.layout import ManifestSettings
from bot.core.manifests.render import edit_database, read_database, render_database
from bot.core.manifests.validate import validate_database
from bot.core.names import parse_app_name
from bot.core.sizes import format_size, format_timeout, parse_size
from handlers.settings import Layout

APP = parse_app_name("docspell")

HAND_WRITTEN = """\
# Docspell's database, written by hand before the bot
apiVersion: postgresql.cnpg.io/v1
kind: Database
metadata:
  name: docspell
  namespace: databases
spec:
  cluster:
    name: postgresql-shared   # the shared cluster
  name: docspell
  owner: docspell
  ensure: present
  databaseReclaimPolicy: retain
  extensions:
    - name: pg_trgm     # search
      ensure: present
"""


def test_options_render_into_a_manifest_the_crd_schema_accepts() -> None:
    text = render_database(
        APP,
        settings=ManifestSettings(),
        options=DatabaseOptions(
            connection_limit=20, extensions=("vector", "pg_trgm"), schemas=("app",)
        ),
    )

    assert validate_database(text) == []
    assert "connectionLimit: 20\n" in text
    assert "  schemas:\n    - name: app\n      owner: docspell\n      ensure: present\n" in text
    assert read_database(text).extensions == ("vector", "pg_trgm")


def test_a_wrong_type_is_caught_by_the_crd_schema() -> None:
    text = render_database(APP, settings=ManifestSettings()).replace(
        "ensure: present", "ensure: present\n  connectionLimit: twenty"
    )

    assert any("connectionLimit" in problem for problem in validate_database(text))


def test_the_edit_keeps_comments_and_formatting_and_adds_only_what_is_missing() -> None:
    edited = edit_database(HAND_WRITTEN, connection_limit=40, extensions=("pg_trgm", "vector"))

    assert (
        edited
        == HAND_WRITTEN.replace(
            "  databaseReclaimPolicy: retain\n",
            "  connectionLimit: 40\n  databaseReclaimPolicy: retain\n",
        )
        + "    - name: vector\n      ensure: present\n"
    )
    assert validate_database(edited) == []
    assert edit_database(edited, connection_limit=40, extensions=("vector",)) == edited
    with pytest.raises(ValueError, match="not a `kind: Database`"):
        edit_database("kind: InfisicalSecret\nspec: {}\n", connection_limit=1)


@pytest.mark.parametrize(
    ("raw", "expected"), [("20", 20), ("1", 1), ("-1", NO_LIMIT), ("10000", 10_000)]
)
def test_connection_limits(raw: str, expected: int) -> None:
    assert parse_connection_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-2", "ten", "1e3", "10001", "²"])
def test_bad_connection_limits_say_what_is_valid(raw: str) -> None:
    with pytest.raises(ValueError, match="a whole number from 1 to 10,000"):
        parse_connection_limit(raw)


@pytest.mark.parametrize(
    ("raw", "ms"), [("30s", 30_000), ("500ms", 500), ("5m", 300_000), ("0", 0), ("1h", 3_600_000)]
)
def test_statement_timeouts(raw: str, ms: int) -> None:
    assert parse_statement_timeout(raw) == ms


def test_names_are_validated_and_deduplicated() -> None:
    assert parse_names("vector, pg_trgm,vector,uuid-ossp", what="extension") == (
        "vector",
        "pg_trgm",
        "uuid-ossp",
    )
    for bad in ("public", "pg_catalog", "Media", "a;b"):
        with pytest.raises(ValueError, match="cannot be an app's schema"):
            parse_names(bad, what="schema")
    with pytest.raises(ValueError, match="not an extension name"):
        parse_names("vector;drop", what="extension")


def test_sizes_and_their_display() -> None:
    assert parse_size("5GiB") == 5 * 1024**3
    assert parse_size("20Gi") == 20 * 1024**3
    assert parse_size("500M") == 500_000_000
    assert parse_size("1024") == 1024
    assert format_size(6 * 1024**3) == "6.0 GiB" and format_size(200 * 1024**2) == "200 MiB"
    assert format_timeout(30_000) == "30s" and format_timeout(0) == "none"
    assert RoleLimits(connection_limit=20).describe() == (
        "connection limit 20, statement timeout none"
    )


def test_update_branches_never_collide_with_onboardings() -> None:
    assert Layout().update_branch(APP) == "pgdb-update/docspell"
    assert not Layout().update_branch(APP).startswith("pgdb/")
    prod = Layout(environment="prod", branch_scope="prod", owns_unscoped=False)
    assert prod.update_branch(APP) == "pgdb-update/prod--docspell"


def test_the_limits_command_takes_back_what_it_shows() -> None:
    for ms in (0, 500, 30_000, 300_000, 7_200_000):
        command = limits_command(
            "docspell", RoleLimits(connection_limit=20, statement_timeout_ms=ms)
        )
        assert parse_statement_timeout(command.rsplit(" ", 1)[1]) == ms
