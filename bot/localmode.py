"""Local mode: with no configuration at all, `pgdb-bot console` still works.

It uses a reachable local PostgreSQL (or starts a private one in the state directory), a demo
GitOps repository and a file secret store, and says where each is. What it creates on a server
is noted in the state directory (``bot/localrecords.py``) for ``console --reset``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bot.adapters.local_git import init_demo_repo
from bot.adapters.postgres.migrations import BotSchema
from bot.config import Settings
from bot.core.errors import PgdbError
from bot.localrecords import (
    Ledger,
    LedgerError,
    RecordingDatabase,
    describe_server,
    schema_oid,
    server_key,
)
from bot.pgcluster import PrivateCluster
from handlers.context import Services

PRIVATE_PORT = 54329
LOG_FILE = "pgdb-bot.log"
USUAL_SUPERUSER = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Candidate:
    """A server local mode may use, and how the note names it."""

    dsn: str
    label: str


def candidate_dsns() -> list[Candidate]:
    """The usual local superuser (``postgres`` on 127.0.0.1:5432) first, then libpq's defaults
    (PGHOST, PGPORT, PGUSER… or the local socket as the OS user). PGHOST or PGPORT say where
    the server is: then only libpq's defaults are tried."""
    candidates = []
    if not (os.environ.get("PGHOST") or os.environ.get("PGPORT")):
        candidates.append(Candidate(USUAL_SUPERUSER, "postgres@127.0.0.1:5432"))
    candidates.append(Candidate("dbname=postgres", "libpq's defaults"))
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
    """Start (or reuse) the private server; its DSN and a sentence saying where it is."""
    directory = private_cluster_dir(state_dir)
    port = _running_port(directory / "data")
    if port is None and _port_free(PRIVATE_PORT):
        port = PRIVATE_PORT
    cluster = PrivateCluster(directory, port=port)
    running = cluster.is_running()
    how = "uses its private server (already running)" if running else "started its private server"
    cluster.start()
    stop = f"pg_ctl -D {cluster.data_dir} stop"
    if os.geteuid() == 0:
        stop = f"runuser -u postgres -- {stop}"
    where = (
        f"local mode {how} in {cluster.directory} (data in {cluster.data_dir}) on "
        f"127.0.0.1:{cluster.port}; it keeps running: stop it with `{stop}`, or remove it "
        "with `pgdb-bot console --reset`"
    )
    return cluster.dsn(), where


def _usable(dsn: str) -> str | None:
    """Where ``dsn`` leads (``user@host:port``) when it is reachable and may create roles
    (superuser or CREATEROLE); None otherwise."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            if not (row and row[0]):
                return None
            return f"{conn.info.user}@{conn.info.host}:{conn.info.port}"
    except psycopg.Error:
        return None


def is_local(settings: Settings) -> bool:
    """Local mode proper: the demo repo or a folder of secrets, neither GitHub nor Infisical.
    Only then does the console note what it creates (``--reset`` removes only that)."""
    return not settings.github_enabled and settings.infisical_store() is None


def log_file_of(settings: Settings) -> Path:
    """Where the console writes its log on a terminal."""
    return settings.default_state_dir() / LOG_FILE


def _note_schema(dsn: str, *, name: str, ledger: Ledger) -> None:
    """Create the bot's schema now when it is missing, and note that local mode created it.
    A schema that is already there is someone else's (or an earlier session's, noted then)."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            if schema_oid(conn, name) is not None:
                return
        BotSchema(dsn, name=name).migrate()
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            oid = schema_oid(conn, name)
            server = server_key(conn)
        if oid is not None:
            ledger.record_schema(server, name=name, oid=oid)
    except LedgerError:
        raise  # says which file and what to do
    except (psycopg.Error, PgdbError):
        return  # unreachable or refused: the first command says so, with what to do


def _note_private(dsn: str, *, ledger: Ledger) -> None:
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            ledger.mark_private(server_key(conn))
    except psycopg.Error:
        return


def servers_of(settings: Settings) -> tuple[str | None, dict[str | None, str]]:
    """Where the bot keeps its state, and each environment's admin connection (``None``: the
    single environment; with ``PGDB_CONFIG``, by name)."""
    if settings.config is None:
        single: dict[str | None, str] = {None: settings.pg_dsn} if settings.pg_dsn else {}
        return settings.state_dsn or settings.pg_dsn, single
    from bot.environments import resolve

    declared = resolve(settings, settings.config)
    admin: dict[str | None, str] = {
        name: s.pg_dsn for name, s in declared.settings.items() if s.pg_dsn
    }
    return declared.state_dsn, admin


def recording(services: Services, settings: Settings) -> Services:
    """``services`` whose managed databases (each environment's) note each role they create
    in the ledger. Local mode only: with GitHub or Infisical, ``--reset`` could not undo the
    rest."""
    if not is_local(settings):
        return services
    ledger = Ledger(settings.default_state_dir())
    _, admin = servers_of(settings)

    def wrapped(env: Services, dsn: str | None) -> Services:
        if dsn is None:
            return env
        database = RecordingDatabase(env.database, dsn=dsn, ledger=ledger)
        return dataclasses.replace(env, database=database)

    if services.fleet is None:
        return wrapped(services, admin.get(None))
    environments = {
        name: wrapped(env, admin.get(name)) for name, env in services.fleet.environments.items()
    }
    fleet = dataclasses.replace(services.fleet, environments=environments)
    first = next(iter(environments.values()))
    return dataclasses.replace(first, fleet=fleet)


def prepare(settings: Settings) -> tuple[Settings, list[str]]:
    """Fill in what is not configured; return the settings and notes telling where things are."""
    state_dir = settings.default_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    notes: list[str] = []
    updates: dict[str, object] = {}

    local = is_local(settings)
    ledger = Ledger(state_dir)
    if settings.pg_dsn:
        notes.append(f"PostgreSQL: {describe_server(settings.pg_dsn)} (PGDB_PG_DSN)")
        dsn = settings.pg_dsn
    else:
        dsn = choose_server(state_dir, notes, ledger=ledger if local else None)
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
    prepared = settings.model_copy(update=updates)
    if local:
        state_dsn, _ = servers_of(prepared)
        if state_dsn:
            _note_schema(state_dsn, name=prepared.state_schema, ledger=ledger)
    return prepared, notes


def choose_server(state_dir: Path, notes: list[str], *, ledger: Ledger | None) -> str:
    """The first usable candidate, else the private server (noted as local mode's)."""
    tried = []
    for candidate in candidate_dsns():
        where = _usable(candidate.dsn)
        if where is not None:
            how = f"found through {candidate.label}"
            if where == candidate.label:  # postgres@127.0.0.1:5432 itself
                how = "the first server local mode tries"
            notes.append(f"PostgreSQL: {where} ({how})")
            return candidate.dsn
        tried.append(candidate.label)
    dsn, where = start_private_server(state_dir)
    notes.append(
        f"PostgreSQL: no server through {' nor '.join(tried)} let local mode create roles, "
        f"so {where}"
    )
    if ledger is not None:
        _note_private(dsn, ledger=ledger)
    return dsn
