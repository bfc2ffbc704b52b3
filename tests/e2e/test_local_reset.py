"""`pgdb-bot console --reset` leaves a server as it found it; on a terminal the console keeps
its INFO log in a file and asks before a reset."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bot.adapters.file_secrets import FileSecretStore
from bot.adapters.local_git import DEFAULT_MANIFESTS_PATH as DEMO_PATH
from bot.core.secret import generate_password
from tests.e2e.test_local_mode import console
from tests.fixtures.postgres import (
    PREFIX_ROOT,
    dsn_user,
    fresh_database,
    owned_name,
    owned_prefix,
    unique_app,
    with_params,
)

pytestmark = pytest.mark.server  # the console as a subprocess, on the shared PostgreSQL


Snapshot = dict[str, Any]


def snapshot(superuser_dsn: str, database: str) -> Snapshot:
    """Every role and database of the server (with its object id, so a dropped and re-made one
    differs), and the schemas of ``database``. Other test runs' objects (their own prefix) come
    and go meanwhile: left out; everything else, ours included, must be exactly as it was."""

    def mine(name: str) -> bool:
        return not name.startswith(PREFIX_ROOT) or name.startswith(owned_prefix())

    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        roles = {r: o for r, o in conn.execute("SELECT rolname, oid::int FROM pg_roles") if mine(r)}
        databases = {
            d: o for d, o in conn.execute("SELECT datname, oid::int FROM pg_database") if mine(d)
        }
    with psycopg.connect(with_params(superuser_dsn, dbname=database)) as conn:
        schemas: dict[str, int] = dict(
            conn.execute("SELECT nspname, oid::int FROM pg_namespace").fetchall()
        )
    return {"roles": roles, "databases": databases, "schemas": schemas}


def assert_as_found(after: Snapshot, before: Snapshot) -> None:
    """Everything that was there is still there, the same object (same id); nothing new is
    local mode's or this test's. Another client may create objects of its own meanwhile (CI
    runs one): those are not compared."""
    for kind, found in before.items():
        assert {name: after[kind].get(name) for name in found} == found, kind
        new = set(after[kind]) - set(found)
        assert not {n for n in new if n.startswith(owned_prefix()) or n == "pgdb_bot"}, new


@pytest.fixture
def bot_database(pg_superuser_dsn: str) -> str:
    """The bot's schema in a database of its own: the shared server's `postgres` is others' too."""
    return fresh_database(pg_superuser_dsn, owner=dsn_user(pg_superuser_dsn))


@pytest.fixture
def bot_dsn(pg_superuser_dsn: str, bot_database: str) -> str:
    return with_params(pg_superuser_dsn, dbname=bot_database)


def test_reset_removes_only_what_local_mode_created(
    tmp_path: Path, pg_superuser_dsn: str, bot_database: str, bot_dsn: str
) -> None:
    database = bot_database
    state_dir = tmp_path / "state"
    new_app, old_app = unique_app("new"), unique_app("old")
    # A role that was there before local mode, with its password in the store: `create`
    # adopts it. And a database local mode never made.
    password = generate_password()
    with psycopg.connect(pg_superuser_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(old_app), sql.Literal(password.reveal())
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(owned_name("keep"))))
    FileSecretStore(state_dir / "secrets", env="dev").write(
        old_app, username=old_app, password=password, database=old_app
    )
    before = snapshot(pg_superuser_dsn, database)

    onboarded = console(
        state_dir, f"/pgdb create {new_app}\n/pgdb create {old_app}\n", PGDB_PG_DSN=bot_dsn
    )

    assert onboarded.returncode == 0, onboarded.stderr
    assert f"/{database} (PGDB_PG_DSN)" in onboarded.stderr  # where, not only which variable
    assert f"Onboarded `{new_app}`" in onboarded.stdout
    assert f"Onboarded `{old_app}`" in onboarded.stdout
    during = snapshot(pg_superuser_dsn, database)
    assert new_app in during["roles"] and "pgdb_bot" in during["schemas"]

    # Off a terminal and without --yes it asks nobody: it refuses, and removes nothing.
    refused = console(state_dir, "", "--reset", PGDB_PG_DSN=bot_dsn)

    assert refused.returncode == 2
    assert "add --yes" in refused.stderr.lower()
    # what it would have removed, and the role it would have left
    would_remove, _, would_leave = refused.stdout.partition("It leaves")
    assert f"role `{new_app}`" in would_remove and f"role `{old_app}`" not in would_remove
    assert "stored passwords go with the secret files" in would_leave
    assert f"role `{old_app}`" in would_leave and "local mode did not create it" in would_leave
    assert_as_found(snapshot(pg_superuser_dsn, database), during)

    reset = console(state_dir, "", "--reset", "--yes", PGDB_PG_DSN=bot_dsn)

    assert reset.returncode == 0, reset.stdout + reset.stderr
    removed, _, left = reset.stdout.partition("\nRemoved:\n")[2].partition("\nLeft:\n")
    assert f"role `{new_app}`" in removed
    assert "schema `pgdb_bot`" in removed
    assert f"the demo GitOps repository: {state_dir / 'gitops'}" in removed
    assert f"the secret files: {state_dir / 'secrets'}" in removed
    assert f"role `{old_app}`" in left and "local mode did not create it" in left
    assert f"role `{old_app}`" not in removed
    assert_as_found(snapshot(pg_superuser_dsn, database), before)
    assert not state_dir.exists()

    again = console(state_dir, "", "--reset", "--yes", PGDB_PG_DSN=bot_dsn)
    assert again.returncode == 0
    assert "Nothing to remove" in again.stdout


def test_reset_leaves_a_role_that_now_owns_what_local_mode_did_not_make(
    tmp_path: Path, pg_superuser_dsn: str, bot_database: str, bot_dsn: str
) -> None:
    database = bot_database
    state_dir = tmp_path / "state"
    app = unique_app("owner")
    assert console(state_dir, f"/pgdb create {app}\n", PGDB_PG_DSN=bot_dsn).returncode == 0
    theirs = owned_name("theirs")
    with psycopg.connect(pg_superuser_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(theirs), sql.Identifier(app)
            )
        )

    first = console(state_dir, "", "--reset", "--yes", PGDB_PG_DSN=bot_dsn)

    assert first.returncode == 1, first.stdout + first.stderr
    left = first.stdout.partition("\nLeft:\n")[2]
    assert f"role `{app}`" in left and f"owner of database {theirs}" in left
    after = snapshot(pg_superuser_dsn, database)
    assert theirs in after["databases"] and app in after["roles"]
    assert "pgdb_bot" not in after["schemas"]
    # the records of what is left stay: once the database is gone, a second reset finishes
    with psycopg.connect(pg_superuser_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(theirs)))

    second = console(state_dir, "", "--reset", "--yes", PGDB_PG_DSN=bot_dsn)

    assert second.returncode == 0, second.stdout + second.stderr
    assert f"role `{app}`" in second.stdout.split("Removed:")[1]
    assert app not in snapshot(pg_superuser_dsn, database)["roles"]
    assert not state_dir.exists()


# --- on a terminal ------------------------------------------------------------------------


def on_terminal(state_dir: Path, typed: str, *args: str, **env: str) -> tuple[int, str]:
    """``pgdb-bot console [args]`` with a terminal for stdin, stdout and stderr, ``typed`` typed
    into it; its exit status and everything the terminal showed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PGDB_", "PG"))}
    clean.update(PGDB_STATE_DIR=str(state_dir), TERM="dumb", **env)
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "console", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=clean,
        cwd=state_dir.parent,
        close_fds=True,
    )
    os.close(child)
    os.write(main, typed.encode())
    shown = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        status = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    return status, shown.decode(errors="replace").replace("\r\n", "\n")


def test_on_a_terminal_the_log_goes_to_a_file_and_reset_asks(
    tmp_path: Path, pg_superuser_dsn: str, bot_dsn: str
) -> None:
    state_dir = tmp_path / "state"
    app = unique_app("tty")
    log_file = state_dir / "pgdb-bot.log"

    status, shown = on_terminal(state_dir, f"/pgdb create {app}\nexit\n", PGDB_PG_DSN=bot_dsn)

    assert status == 0, shown
    assert f"The log is in {log_file}" in shown
    assert f"Onboarded `{app}`" in shown
    logged = log_file.read_text()
    assert "command create: ok" in logged and f"Onboarding `{app}`: role done" in logged
    assert "command create: ok" not in shown and " INFO " not in shown
    assert (log_file.stat().st_mode & 0o777) == 0o600

    declined_status, declined = on_terminal(state_dir, "n\n", "--reset", PGDB_PG_DSN=bot_dsn)

    assert "Remove all of this? [y/N]" in declined
    assert "Nothing removed." in declined and declined_status == 1
    assert log_file.exists()

    status, removed = on_terminal(state_dir, "y\n", "--reset", PGDB_PG_DSN=bot_dsn)

    assert status == 0, removed
    assert f"the log: {log_file}" in removed and f"role `{app}`" in removed
    assert not state_dir.exists()
    with psycopg.connect(pg_superuser_dsn) as conn:
        gone = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (app,)).fetchone()
    assert gone is None


def test_reset_with_two_environments_reaches_each_server_with_its_password(
    tmp_path: Path, pg_superuser_dsn: str, scram_superuser_dsn: str, scram_clean_roles: None
) -> None:
    """dev on the shared server, prod on the session's scram cluster (it checks passwords: the
    reset takes prod's from the environments file), the bot's state in a database of its own."""
    state_dir = tmp_path / "state"
    state_db = fresh_database(pg_superuser_dsn, owner=dsn_user(pg_superuser_dsn))
    dev_path, prod_path = DEMO_PATH, "apps/04-databases/postgresql-shared-prod/base"
    config = tmp_path / "environments.yaml"
    config.write_text(
        "environments:\n"
        f"  dev: {{pg_dsn: '{pg_superuser_dsn}', gitops_path: {dev_path}}}\n"
        f"  prod: {{pg_dsn: '{scram_superuser_dsn}', gitops_path: {prod_path},"
        " secrets_env: prod}\n"
        f"state_dsn: '{with_params(pg_superuser_dsn, dbname=state_db)}'\n"
    )
    dev_app, prod_app = unique_app("dev"), unique_app("prod")
    before = snapshot(pg_superuser_dsn, state_db), snapshot(scram_superuser_dsn, "postgres")

    dev = console(state_dir, f"/pgdb create {dev_app}\n", PGDB_CONFIG=str(config))
    assert f"Onboarded `{dev_app}`" in dev.stdout, dev.stdout + dev.stderr
    repo = state_dir / "gitops"  # local mode's demo repo: prod's folder added as a team would
    (repo / prod_path).mkdir(parents=True)
    (repo / prod_path / "kustomization.yaml").write_text(
        (repo / dev_path / "kustomization.yaml").read_text()
    )
    for args in (("add", "-A"), ("commit", "-qm", "prod folder")):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    prod = console(state_dir, f"/pgdb create {prod_app} --env prod\n", PGDB_CONFIG=str(config))
    assert f"Onboarded `{prod_app}`" in prod.stdout, prod.stdout + prod.stderr
    with psycopg.connect(scram_superuser_dsn) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (prod_app,)).fetchone()

    reset = console(state_dir, "", "--reset", "--yes", PGDB_CONFIG=str(config))

    assert reset.returncode == 0, reset.stdout + reset.stderr
    removed = reset.stdout.partition("\nRemoved:\n")[2]
    assert f"role `{dev_app}`" in removed and f"role `{prod_app}`" in removed
    assert "schema `pgdb_bot` (the bot's records) in " in removed and state_db in removed
    assert_as_found(snapshot(pg_superuser_dsn, state_db), before[0])
    assert_as_found(snapshot(scram_superuser_dsn, "postgres"), before[1])
    assert not state_dir.exists()
