"""`pgdb-bot console` with no configuration at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from bot.localmode import private_cluster_dir
from bot.pgcluster import find_binary, free_port

pytestmark = pytest.mark.server  # the console as a subprocess, on a real PostgreSQL


def console(
    state_dir: Path, commands: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``pgdb-bot console [args]`` in a pipe, with only ``env`` configured (and the state dir)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PGDB_", "PG"))}
    clean.update(PGDB_STATE_DIR=str(state_dir), **env)
    return subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        input=commands,
        capture_output=True,
        text=True,
        env=clean,
        cwd=state_dir.parent,
        timeout=180,
        check=False,
    )


@pytest.fixture
def unreachable_state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir whose private server is stopped and removed after the test."""
    state_dir = tmp_path / "state"
    yield state_dir
    data = private_cluster_dir(state_dir) / "data"
    if (data / "postmaster.pid").exists():
        stop = [str(find_binary("pg_ctl")), "-D", str(data), "stop", "-m", "immediate"]
        if os.geteuid() == 0:
            stop = ["runuser", "-u", "postgres", "--", *stop]
        subprocess.run(stop, capture_output=True, check=False)
    shutil.rmtree(private_cluster_dir(state_dir), ignore_errors=True)


def test_no_reachable_server_starts_a_private_one_and_reset_removes_it(
    unreachable_state_dir: Path,
) -> None:
    closed = str(free_port())
    nowhere = {"PGHOST": "127.0.0.1", "PGPORT": closed}

    first = console(unreachable_state_dir, "/pgdb create docspell\n", **nowhere)
    again = console(unreachable_state_dir, "/pgdb status docspell\n", **nowhere)

    assert first.returncode == 0, first.stderr
    assert "Onboarded `docspell`" in first.stdout
    # it says why, what and where: libpq's defaults only (PGHOST/PGPORT are set), then its own
    directory = private_cluster_dir(unreachable_state_dir)
    assert (
        "PostgreSQL: no server through libpq's defaults let local mode create roles, so local "
        f"mode started its private server in {directory} (data in {directory / 'data'})"
    ) in first.stderr
    assert "uses its private server (already running)" in again.stderr
    assert "GitOps repo:" in first.stderr and "Secrets:" in first.stderr
    # the second run reuses the same server, repo and store
    assert "✅ credentials stored" in again.stdout
    assert "✅ role" in again.stdout
    password = (unreachable_state_dir / "secrets/dev/postgresql/docspell/password").read_text()
    port = (directory / "data/postmaster.pid").read_text().splitlines()[3]
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres") as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'docspell'"
        ).fetchone()
    assert row == (True, False)
    assert password not in first.stdout + first.stderr + again.stdout + again.stderr
    branches = subprocess.run(
        ["git", "-C", str(unreachable_state_dir / "gitops"), "branch", "--list", "pgdb/*"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "pgdb/docspell" in branches

    reset = console(unreachable_state_dir, "", "--reset", "--yes", **nowhere)

    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert f"the private PostgreSQL server in {directory} (stopped, deleted)" in reset.stdout
    assert not directory.exists()
    assert not unreachable_state_dir.exists()  # the repo, the secrets, the records: all gone
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2)


def test_a_reachable_local_server_is_used(
    tmp_path: Path, scram_superuser_dsn: str, scram_clean_roles: None
) -> None:
    # The session's private cluster stands in for a developer's local server (with a password,
    # as Debian sets it up): the bot writes its own schema into its `postgres` database.
    server = conninfo_to_dict(scram_superuser_dsn)
    out = console(
        tmp_path / "state",
        "/pgdb create t-localmode\n",
        PGHOST="127.0.0.1",
        PGPORT=str(server["port"]),
        PGUSER=str(server["user"]),
        PGPASSWORD=str(server["password"]),
    )

    assert out.returncode == 0, out.stderr
    assert (
        f"PostgreSQL: {server['user']}@127.0.0.1:{server['port']} (found through libpq's defaults)"
        in out.stderr
    )
    assert "Onboarded `t-localmode`" in out.stdout
    with psycopg.connect(scram_superuser_dsn, autocommit=True) as conn:  # leave no trace behind
        conn.execute("DELETE FROM pgdb_bot.workflows WHERE app = 't-localmode'")
        conn.execute("DELETE FROM pgdb_bot.audit_log WHERE app = 't-localmode'")
