"""Local mode: with no configuration at all, `pgdb-bot console` still works (SPEC §10).

It uses a reachable local PostgreSQL (or starts a private one in the state directory), a demo
GitOps repository and a file secret store, and says where each is.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from bot.adapters.local_git import init_demo_repo
from bot.config import Settings
from bot.pgcluster import PrivateCluster

CANDIDATE_DSNS = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "dbname=postgres",  # libpq defaults: the local socket, as the OS user
)
PRIVATE_PORT = 54329


def _usable(dsn: str) -> bool:
    """Reachable, and allowed to create roles (superuser or CREATEROLE)."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def prepare(settings: Settings) -> tuple[Settings, list[str]]:
    """Fill in what is not configured; return the settings and notes telling where things are."""
    state_dir = settings.default_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    notes: list[str] = []
    updates: dict[str, object] = {}

    if settings.pg_dsn:
        notes.append("PostgreSQL: PGDB_PG_DSN")
    else:
        dsn = next((d for d in CANDIDATE_DSNS if _usable(d)), None)
        if dsn is not None:
            notes.append(f"PostgreSQL: the local server at {dsn}")
        else:
            cluster = PrivateCluster(state_dir / "postgres", port=PRIVATE_PORT)
            if not cluster.is_running():
                cluster.start()
            dsn = cluster.dsn()
            notes.append(
                f"PostgreSQL: a private server in {state_dir / 'postgres'} on port "
                f"{PRIVATE_PORT} (stop it with pg_ctl -D {state_dir / 'postgres'} stop)"
            )
        updates["pg_dsn"] = dsn

    repo = settings.gitops_repo or state_dir / "gitops"
    if settings.gitops_repo is None:
        init_demo_repo(
            repo,
            manifests_path=settings.gitops_path,
            base_branch=settings.gitops_base_branch,
            namespace=settings.namespace,
            cluster=settings.cluster,
        )
        updates["gitops_repo"] = repo
    notes.append(f"GitOps repo: {repo} (branch {settings.gitops_base_branch}; see `git log --all`)")

    secrets_dir: Path = settings.secrets_dir or state_dir / "secrets"
    if settings.secrets_dir is None:
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(secrets_dir, 0o700)
        updates["secrets_dir"] = secrets_dir
    notes.append(f"Secrets: {secrets_dir / settings.env} (one 0600 file per key)")
    return settings.model_copy(update=updates), notes
