"""Local mode: with no configuration at all, `pgdb-bot console` still works (SPEC §10).

It uses a reachable local PostgreSQL (or starts a private one in the state directory), a demo
GitOps repository and a file secret store, and says where each is.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import psycopg

from bot.adapters.local_git import init_demo_repo
from bot.config import Settings
from bot.pgcluster import PrivateCluster

PRIVATE_PORT = 54329


def candidate_dsns() -> list[str]:
    """libpq's defaults first (PGHOST, PGPORT, PGUSER… or the local socket as the OS user),
    then the usual local superuser, unless PGHOST/PGPORT say where the server is."""
    candidates = ["dbname=postgres"]
    if not (os.environ.get("PGHOST") or os.environ.get("PGPORT")):
        candidates.append("postgresql://postgres@127.0.0.1:5432/postgres")
    return candidates


def private_cluster_dir(state_dir: Path) -> Path:
    """Where the private server lives. As root, initdb runs as the ``postgres`` OS user, who
    cannot enter root's home: the data then goes under /var/tmp instead."""
    if os.geteuid() != 0:
        return state_dir / "postgres"
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return Path("/var/tmp") / f"pgdb-bot-{digest}"  # noqa: S108 (a fixed, per-state-dir name)


def _running_port(data_dir: Path) -> int | None:
    """The port of a server already running on ``data_dir`` (line 4 of postmaster.pid)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, IndexError, ValueError):
        return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_private_server(state_dir: Path) -> tuple[str, str]:
    """Start (or reuse) the private server; its DSN and a note saying where it is."""
    directory = private_cluster_dir(state_dir)
    port = _running_port(directory / "data")
    if port is None and _port_free(PRIVATE_PORT):
        port = PRIVATE_PORT
    cluster = PrivateCluster(directory, port=port)
    cluster.start()
    stop = f"pg_ctl -D {cluster.data_dir} stop"
    if os.geteuid() == 0:
        stop = f"runuser -u postgres -- {stop}"
    note = (
        f"PostgreSQL: a private server in {cluster.data_dir} on 127.0.0.1:{cluster.port} "
        f"(it keeps running; stop it with `{stop}`)"
    )
    return cluster.dsn(), note


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
        dsn = next((d for d in candidate_dsns() if _usable(d)), None)
        if dsn is not None:
            notes.append(f"PostgreSQL: the local server at `{dsn}` (libpq defaults)")
        else:
            dsn, note = start_private_server(state_dir)
            notes.append(note)
        updates["pg_dsn"] = dsn

    repo = settings.gitops_repo or state_dir / "gitops"
    if settings.gitops_repo is None and not settings.github_enabled:  # GitHub: no demo repo
        init_demo_repo(
            repo,
            manifests_path=settings.gitops_path,
            base_branch=settings.gitops_base_branch,
            namespace=settings.namespace,
            cluster=settings.cluster,
        )
        updates["gitops_repo"] = repo
    notes.append(
        f"GitOps repo: GitHub {settings.github_repo} at {settings.github_api_url}"
        f" (branch {settings.gitops_base_branch})"
        if settings.github_enabled
        else f"GitOps repo: {repo} (branch {settings.gitops_base_branch}; see `git log --all`)"
    )

    if settings.infisical_store() is not None:  # Infisical is the store: no folder is made
        notes.append(
            f"Secrets: Infisical project {settings.infisical_project}, env {settings.env},"
            f" at {settings.infisical_url} (under {settings.secrets_prefix})"
        )
        return settings.model_copy(update=updates), notes
    secrets_dir: Path = settings.secrets_dir or state_dir / "secrets"
    if settings.secrets_dir is None:
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(secrets_dir, 0o700)
        updates["secrets_dir"] = secrets_dir
    notes.append(f"Secrets: {secrets_dir / settings.env} (one 0600 file per key)")
    return settings.model_copy(update=updates), notes
