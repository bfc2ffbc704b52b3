"""The suite is safe on a shared server: it drops only what carries its run's name prefix.

The cleanup is tested the way it runs: a small pytest session, started here in a subprocess
with the suite's PostgreSQL fixtures, creates objects of its own while "another client" (a
developer, a concurrent run) creates some on the same server during its tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bot.core.names import parse_app_name
from tests.fixtures.postgres import (
    PREFIX_ROOT,
    creator_role,
    drop_owned_objects,
    owned_name,
    owned_objects,
    owned_prefix,
    run_prefix,
    unique_app,
)

ROOT = Path(__file__).resolve().parents[1]

INNER_CONFTEST = 'pytest_plugins = ["tests.fixtures.postgres"]\n'

# Run inside the nested session. `others.txt` names what "another client" creates there.
INNER_TESTS = '''
import json
from pathlib import Path

import psycopg
from psycopg import sql

from bot.core.secret import generate_password
from bot.adapters.postgres.roles import PostgresDatabase
from tests.fixtures.postgres import dsn_user, fresh_database, run_prefix, unique_app

HERE = Path(__file__).parent
OTHERS = json.loads((HERE / "others.json").read_text())


def exists(dsn, catalog, column, name):
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(
            sql.Identifier(catalog), sql.Identifier(column)
        )
        return conn.execute(query, (name,)).fetchone() is not None


def test_1_creates_objects_while_another_client_does(pg_superuser_dsn, createrole_dsn):
    (HERE / "prefix.txt").write_text(run_prefix())
    app = unique_app()
    PostgresDatabase(createrole_dsn).create_role(app, password=generate_password())
    database = fresh_database(pg_superuser_dsn, owner=dsn_user(pg_superuser_dsn))
    (HERE / "mine.json").write_text(json.dumps({"role": app, "database": database}))
    # meanwhile, another client on the same server (its own connection, its own names)
    with psycopg.connect(pg_superuser_dsn, autocommit=True) as other:
        for role in OTHERS["roles"]:
            other.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for database in OTHERS["databases"]:
            other.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    assert exists(pg_superuser_dsn, "pg_roles", "rolname", app)


def test_2_after_it_only_the_runs_objects_are_gone(pg_superuser_dsn):
    mine = json.loads((HERE / "mine.json").read_text())
    assert not exists(pg_superuser_dsn, "pg_roles", "rolname", mine["role"])
    assert not exists(pg_superuser_dsn, "pg_database", "datname", mine["database"])
    for role in OTHERS["roles"]:
        assert exists(pg_superuser_dsn, "pg_roles", "rolname", role)
    for database in OTHERS["databases"]:
        assert exists(pg_superuser_dsn, "pg_database", "datname", database)


def test_3_maybe_leaves_something_under_the_runs_prefix(pg_superuser_dsn):
    """Under the run's prefix but not this worker's: only the final check can find it."""
    if OTHERS["leave_behind"]:
        with psycopg.connect(pg_superuser_dsn, autocommit=True) as conn:
            name = run_prefix() + "elsewhere-forgotten"
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
'''


def nested_pytest(
    directory: Path, superuser_dsn: str, *, others: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """A fresh pytest run (its own run token) of INNER_TESTS against the shared server."""
    (directory / "conftest.py").write_text(INNER_CONFTEST)
    (directory / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    (directory / "others.json").write_text(json.dumps(others))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PGDB_"))}
    env.update(PGDB_TEST_DSN=superuser_dsn, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--rootdir",
            str(directory),
            str(directory),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=180,
        check=False,
    )


def drop(superuser_dsn: str, *, roles: list[str], databases: list[str]) -> None:
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        for database in databases:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_names_carry_the_prefix_and_stay_valid_app_names() -> None:
    assert owned_prefix().startswith(run_prefix())
    assert run_prefix().startswith(PREFIX_ROOT) and len(run_prefix()) > len(PREFIX_ROOT) + 4
    for name in [unique_app(), unique_app("bot"), unique_app("longer")]:
        assert name.startswith(owned_prefix())
        assert parse_app_name(name) == name
        assert len(name) <= 40
    assert owned_name("state").startswith(owned_prefix())
    assert creator_role().startswith(owned_prefix())
    assert unique_app() != unique_app()


def test_objects_another_client_creates_during_a_test_survive_its_cleanup(
    tmp_path: Path, pg_superuser_dsn: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    # a developer's own objects, and a concurrent run's (another token under the same root)
    concurrent = f"{PREFIX_ROOT}{uuid.uuid4().hex[:8]}-gw0-"
    roles = [f"dev-{tag}", f"{concurrent}t{tag}"]
    databases = [f"dev_{tag}", f"{concurrent}state-{tag}"]
    try:
        inner = nested_pytest(
            tmp_path,
            pg_superuser_dsn,
            others={"roles": roles, "databases": databases, "leave_behind": False},
        )
        assert inner.returncode == 0, inner.stdout + inner.stderr
        assert "3 passed" in inner.stdout

        # the other client's objects survived the tests' cleanup and the session's end...
        with psycopg.connect(pg_superuser_dsn) as conn:
            found_roles = {
                r
                for (r,) in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (roles,)
                )
            }
            found_dbs = {
                d
                for (d,) in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (databases,)
                )
            }
        assert found_roles == set(roles)
        assert found_dbs == set(databases)
        # ...and nothing with the nested run's prefix is left, its CREATEROLE account included
        prefix = (tmp_path / "prefix.txt").read_text()
        assert prefix.startswith(PREFIX_ROOT) and prefix != run_prefix()
        assert owned_objects(pg_superuser_dsn, prefix) == ([], [])
    finally:
        drop(pg_superuser_dsn, roles=roles, databases=databases)


def test_something_left_under_the_runs_prefix_fails_the_run_loudly(
    tmp_path: Path, pg_superuser_dsn: str
) -> None:
    inner = nested_pytest(
        tmp_path,
        pg_superuser_dsn,
        others={"roles": [], "databases": [], "leave_behind": True},
    )
    prefix = (tmp_path / "prefix.txt").read_text()

    assert "3 passed" in inner.stdout  # every test passed...
    assert inner.returncode == 1, inner.stdout + inner.stderr  # ...yet the run failed
    assert "left objects with its prefix" in inner.stdout
    assert f"{prefix}elsewhere-forgotten" in inner.stdout
    assert owned_objects(pg_superuser_dsn, prefix) == ([], [])  # and it was dropped


@pytest.mark.parametrize("prefix", ["", PREFIX_ROOT, "t", "postgres"])
def test_dropping_by_a_prefix_that_is_not_a_runs_is_refused(
    pg_superuser_dsn: str, prefix: str
) -> None:
    with pytest.raises(ValueError, match="refusing"):
        drop_owned_objects(pg_superuser_dsn, prefix)
