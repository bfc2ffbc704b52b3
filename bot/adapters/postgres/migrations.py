"""The bot's own schema (``PGDB_STATE_SCHEMA``) and its migrations: one ordered list for every
store kept there (``state``, ``alerts``, ``approvals``), applied once per process before the
first statement, under an advisory lock so replicas starting together serialise.

``BotSchema`` is the object those stores are given: it names their tables and runs their
statements on its ``Server`` (UTC session time zone), so each store holds only its own SQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.rows import RowFactory

from bot.adapters.postgres.connection import (
    LOCK_CLASS_MIGRATIONS,
    Connection,
    Server,
)
from bot.core.errors import BackendUnavailable, PgdbError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MIGRATIONS: Final[list[tuple[int, str]]] = [
    (
        1,
        """
        CREATE TABLE {schema}.audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            username text NOT NULL,
            platform text NOT NULL,
            command text NOT NULL,
            app text,
            result text NOT NULL,
            detail text NOT NULL DEFAULT '',
            correlation_id text NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_log_at ON {schema}.audit_log (at);
        CREATE TABLE {schema}.workflows (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            app text NOT NULL,
            kind text NOT NULL,
            requester text NOT NULL,
            status text NOT NULL,
            step text NOT NULL DEFAULT '',
            detail text NOT NULL DEFAULT '',
            proposal_url text,
            message_link text,
            started_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX workflows_app_latest ON {schema}.workflows (app, id DESC);
        CREATE TABLE {schema}.alert_state (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL,
            app text,
            fingerprint text NOT NULL,
            first_seen timestamptz NOT NULL DEFAULT now(),
            last_sent timestamptz,
            resolved_at timestamptz,
            thread_ref text
        );
        CREATE INDEX alert_state_kind_app ON {schema}.alert_state (kind, app);
        CREATE INDEX alert_state_fingerprint ON {schema}.alert_state (fingerprint);
        """,
    ),
    (
        2,
        """
        ALTER TABLE {schema}.alert_state
            ADD COLUMN severity text NOT NULL DEFAULT 'warning',
            ADD COLUMN message text NOT NULL DEFAULT '',
            ADD COLUMN last_seen timestamptz,
            ADD COLUMN absent_passes int NOT NULL DEFAULT 0,
            ADD COLUMN flaps int NOT NULL DEFAULT 0,
            ADD COLUMN threads jsonb NOT NULL DEFAULT '{{}}'::jsonb;
        CREATE UNIQUE INDEX alert_state_one_open ON {schema}.alert_state (fingerprint)
            WHERE resolved_at IS NULL;
        CREATE TABLE {schema}.silences (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            target text NOT NULL,
            until timestamptz NOT NULL,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX silences_target ON {schema}.silences (target, until);
        """,
    ),
    (
        3,
        """
        ALTER TABLE {schema}.workflows
            ADD COLUMN followed_up_at timestamptz,
            ADD COLUMN follow_result text;
        """,
    ),
    (
        4,
        """
        CREATE TABLE {schema}.approvals (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            app text NOT NULL,
            namespace text,
            requester text NOT NULL,
            platform text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            requested_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            message_link text,
            threads jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            decided_by text,
            decided_at timestamptz,
            reason text NOT NULL DEFAULT ''
        );
        CREATE UNIQUE INDEX approvals_one_pending ON {schema}.approvals (app)
            WHERE status = 'pending';
        CREATE INDEX approvals_app_latest ON {schema}.approvals (app, id DESC);
        """,
    ),
    (
        5,
        """
        ALTER TABLE {schema}.workflows ADD COLUMN password_fingerprint text;
        """,
    ),
    (
        6,
        # Requests already seen (issue 16): a signed Slack request, a Mattermost button's nonce,
        # kept until it could no longer be presented (its validity window), for every replica.
        """
        CREATE TABLE {schema}.seen_requests (
            key text PRIMARY KEY,
            platform text NOT NULL,
            seen_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX seen_requests_expires ON {schema}.seen_requests (expires_at);
        """,
    ),
    (
        8,
        # Alerts grouped per (environment, kind) (issue 17): every alert row carries its
        # environment; NULL is a row written before, which belongs to PGDB_ENV's environment
        # , so an upgrade never announces it again.
        """
        ALTER TABLE {schema}.alert_state ADD COLUMN env text;
        DROP INDEX {schema}.alert_state_one_open;
        CREATE UNIQUE INDEX alert_state_one_open_env
            ON {schema}.alert_state (coalesce(env, ''), fingerprint) WHERE resolved_at IS NULL;
        """,
    ),
    (
        9,
        # Environments: every workflow, audit entry and approval carries its
        # environment. NULL is a row written before, which belongs to PGDB_ENV's environment.
        """
        ALTER TABLE {schema}.workflows ADD COLUMN env text;
        ALTER TABLE {schema}.audit_log ADD COLUMN env text;
        ALTER TABLE {schema}.approvals ADD COLUMN env text;
        DROP INDEX {schema}.approvals_one_pending;
        CREATE UNIQUE INDEX approvals_one_pending_env
            ON {schema}.approvals (coalesce(env, ''), app) WHERE status = 'pending';
        """,
    ),
    (
        10,
        # The limits the bot last declared for each app of each environment: its
        # create or an operator's `/pgdb limits`; limits_drift compares the role with them.
        # One row per environment and app, replaced by each declaration.
        """
        CREATE TABLE {schema}.declared_limits (
            env text NOT NULL,
            app text NOT NULL,
            connection_limit int NOT NULL,
            statement_timeout_ms int NOT NULL,
            source text NOT NULL,
            declared_by text NOT NULL,
            declared_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (env, app)
        );
        """,
    ),
]


class BotSchema:
    """The bot's schema on one server, shared by the stores that keep their state in it.

    The schema is created and migrated on first use; ``migrate()`` may also run at start-up.
    """

    def __init__(
        self,
        dsn: str,
        *,
        name: str = "pgdb_bot",
        connect_timeout: float = 5,
        statement_timeout: float = 30,
    ) -> None:
        self.name = name
        self._server = Server(
            dsn,
            application_name="pgdb-bot",
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
            session={"TimeZone": "UTC"},
        )
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def describe(self) -> str:
        """The server and schema, without secrets (for the stores' ``repr``)."""
        return f"{self._server.describe()}, schema={self.name!r}"

    def __repr__(self) -> str:
        return f"BotSchema({self.describe()})"

    def table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.name, name)

    # -- migrations -----------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the missing migrations under a transaction-scoped advisory lock.

        Two replicas starting at once serialise on the lock; the second finds nothing to do.
        Returns the versions applied by this call.
        """

        def body(conn: Connection) -> list[int]:
            schema = sql.Identifier(self.name)
            migrations = self.table("schema_migrations")
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (LOCK_CLASS_MIGRATIONS, self.name),
                )
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (version int PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(migrations)
                )
                done = {
                    v for (v,) in conn.execute(sql.SQL("SELECT version FROM {}").format(migrations))
                }
                applied: list[int] = []
                for version, statements in MIGRATIONS:
                    if version in done:
                        continue
                    conn.execute(sql.SQL(statements).format(schema=schema))
                    conn.execute(
                        sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(migrations),
                        (version,),
                    )
                    applied.append(version)
            return applied

        with self._migrate_lock:
            applied = self._server.run("migrating the bot's schema", body)
            self._migrated = True
        if applied:
            log.info("applied migrations %s to schema %s", applied, self.name)
        return applied

    def _ensure_migrated(self) -> None:
        if not self._migrated:
            self.migrate()

    # -- statements -----------------------------------------------------------------------

    def ping(self) -> None:
        """Raise BackendUnavailable unless the server answers (readiness); migrates nothing."""
        self._server.run("ping", lambda conn: conn.execute("SELECT 1").fetchone())

    def run(self, what: str, body: Callable[[Connection], T]) -> T:
        """``body`` on a fresh connection to the migrated schema; errors leave translated."""
        self._ensure_migrated()
        return self._server.run(what, body)

    def fetch(
        self,
        what: str,
        query: sql.Composed,
        params: Sequence[Any] = (),
        *,
        row: RowFactory[R],
        duplicate_ok: bool = False,
    ) -> list[R]:
        """The rows of one statement, each made by ``row`` (a psycopg row factory).

        With ``duplicate_ok``, a unique violation (another replica wrote the row first) reads
        as no rows.
        """

        def body(conn: Connection) -> list[R]:
            try:
                return conn.cursor(row_factory=row).execute(query, params).fetchall()
            except pgerrors.UniqueViolation:
                if duplicate_ok:
                    return []
                raise

        return self.run(what, body)

    def execute(self, what: str, query: sql.Composed, params: Sequence[Any] = ()) -> int:
        """One statement without rows; how many rows it changed."""
        return self.run(what, lambda conn: conn.execute(query, params).rowcount)

    def dedicated(self) -> Connection:
        """A connection of its own, kept open by the caller (a session advisory lock); an
        unreachable server raises ``BackendUnavailable`` (chain-free)."""
        self._ensure_migrated()
        failure: PgdbError
        try:
            return self._server.connect()
        except psycopg.Error as exc:
            failure = self._server.unreachable(exc)
        raise failure

    def failed(self, what: str, exc: psycopg.Error) -> BackendUnavailable:
        """A psycopg error on a ``dedicated`` connection, as a sentence for the user."""
        return self._server.failed(what, exc)
