"""The bot's own records in its schema (``BotState``): the audit log, each app's workflow
records, the requests already seen (replay guard) and the per-app locks that keep two
workflows on one app apart across replicas.

Tables ``audit_log``, ``workflows`` and ``seen_requests`` (``migrations``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row, kwargs_row, scalar_row

from bot.adapters.postgres.connection import LOCK_CLASS_APP, reason
from bot.adapters.postgres.migrations import BotSchema
from bot.core.errors import ConflictError, PgdbError
from bot.core.limits import RoleLimits
from bot.core.model import AuditEntry, WorkflowRecord, WorkflowStatus
from bot.core.names import AppName

log = logging.getLogger(__name__)

# What ``_workflow`` reads: ``WorkflowRecord``'s fields but the app-wide ones.
_WORKFLOW_COLUMNS = (
    "id, app, kind, requester, status, step, detail, proposal_url, message_link, started_at,"
    " updated_at"
)

# Each app's latest record, with when the app's first record started (its grace runs from
# there, whatever came later) and who ran its first ``create`` (the app's requester).
_LATEST_WORKFLOWS = (
    "WITH mine AS (SELECT * FROM {table} WHERE {mine}),"
    " firsts AS (SELECT app, min(started_at) AS first_at FROM mine GROUP BY app),"
    " creators AS (SELECT DISTINCT ON (app) app, requester AS first_requester FROM mine"
    " WHERE kind = 'create' ORDER BY app, id)"
    " SELECT DISTINCT ON (w.app) "
    + ", ".join(f"w.{c.strip()}" for c in _WORKFLOW_COLUMNS.split(","))
    + ", f.first_at AS app_first_at, c.first_requester AS app_requester,"
    " d.connection_limit AS declared_connection_limit,"
    " d.statement_timeout_ms AS declared_statement_timeout_ms"
    " FROM mine w JOIN firsts f ON f.app = w.app"
    " LEFT JOIN creators c ON c.app = w.app"
    " LEFT JOIN {declared} d ON d.app = w.app AND d.env = {env} ORDER BY w.app, w.id DESC"
)


def _workflow(
    *,
    status: str,
    declared_connection_limit: int | None = None,
    declared_statement_timeout_ms: int | None = None,
    **columns: Any,
) -> WorkflowRecord:
    declared = (
        RoleLimits(
            connection_limit=declared_connection_limit,
            statement_timeout_ms=declared_statement_timeout_ms or 0,
        )
        if declared_connection_limit is not None
        else None
    )
    return WorkflowRecord(status=WorkflowStatus(status), declared=declared, **columns)


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL: written as ``\\x00`` (what the audit shows)."""
    return text.replace("\x00", "\\x00")


class PostgresBotState:
    """Audit log, workflow records and cross-replica locks in the bot's schema (``BotState``),
    for one environment: every row it writes carries ``env``, and it reads only its own; rows
    written before environments existed (``env`` NULL) are ``legacy_env``'s."""

    def __init__(self, schema: BotSchema, *, env: str = "dev", legacy_env: str = "dev") -> None:
        self._schema = schema
        self._env = env
        self._legacy = legacy_env

    def __repr__(self) -> str:
        return f"PostgresBotState({self._schema.describe()}, env={self._env})"

    @property
    def _mine(self) -> sql.Composable:
        """The condition that selects this environment's rows."""
        return sql.SQL("coalesce(env, {}) = {}").format(
            sql.Literal(self._legacy), sql.Literal(self._env)
        )

    def _sql(self, query: str) -> sql.Composed:
        return sql.SQL(query).format(self._schema.table("workflows"), mine=self._mine)

    def ping(self) -> None:
        """Raise BackendUnavailable unless the server answers (readiness)."""
        self._schema.ping()

    # -- audit ----------------------------------------------------------------------------

    def record_audit(self, entry: AuditEntry) -> None:
        self._schema.execute(
            "recording the audit entry",
            sql.SQL(
                "INSERT INTO {} (at, username, platform, command, app, result, detail,"
                " correlation_id, env)"
                " VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(self._schema.table("audit_log")),
            (
                entry.at,
                _storable(entry.user),
                _storable(entry.platform),
                _storable(entry.command),
                _storable(entry.app) if entry.app is not None else None,
                _storable(entry.result),
                _storable(entry.detail),
                _storable(entry.correlation_id),
                self._env,
            ),
        )

    def audit_entries(self, *, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first."""
        return self._schema.fetch(
            "reading the audit log",
            sql.SQL(
                'SELECT at, username AS "user", platform, command, app, result, detail,'
                " correlation_id FROM {} WHERE {} ORDER BY id DESC LIMIT %s"
            ).format(self._schema.table("audit_log"), self._mine),
            (limit,),
            row=class_row(AuditEntry),
        )

    # -- workflows ------------------------------------------------------------------------

    def start_workflow(self, *, app: AppName, kind: str, requester: str) -> int:
        [workflow_id] = self._schema.fetch(
            "recording the workflow",
            self._sql(
                "INSERT INTO {} (app, kind, requester, status, env) VALUES (%s, %s, %s, %s, %s)"
                " RETURNING id"
            ),
            (app, kind, requester, WorkflowStatus.RUNNING.value, self._env),
            row=scalar_row,
        )
        return int(workflow_id)

    def update_workflow(
        self,
        workflow_id: int,
        *,
        step: str,
        status: WorkflowStatus,
        detail: str = "",
        proposal_url: str | None = None,
    ) -> None:
        """Move a workflow on; ``proposal_url=None`` keeps the one already recorded."""
        changed = self._schema.execute(
            "updating the workflow",
            self._sql(
                "UPDATE {} SET step = %s, status = %s, detail = %s,"
                " proposal_url = coalesce(%s, proposal_url), updated_at = now()"
                " WHERE id = %s"
            ),
            (step, status.value, detail, proposal_url, workflow_id),
        )
        self._require_workflow(workflow_id, changed)

    def set_message_link(self, workflow_id: int, *, link: str) -> None:
        """Where the workflow's chat message is, so "already in progress" can point at it."""
        changed = self._schema.execute(
            "updating the workflow",
            self._sql("UPDATE {} SET message_link = %s WHERE id = %s"),
            (link, workflow_id),
        )
        self._require_workflow(workflow_id, changed)

    def set_password_fingerprint(self, workflow_id: int, *, fingerprint: str) -> None:
        """Which password a workflow wrote, as a salted verifier (never the password itself), in
        a column of its own: no status, diagnostics or record listing reads it."""
        changed = self._schema.execute(
            "recording the password fingerprint",
            self._sql("UPDATE {} SET password_fingerprint = %s WHERE id = %s"),
            (fingerprint, workflow_id),
        )
        self._require_workflow(workflow_id, changed)

    def password_fingerprint(self, workflow_id: int) -> str | None:
        found: list[str | None] = self._schema.fetch(
            "reading the password fingerprint",
            self._sql("SELECT password_fingerprint FROM {} WHERE id = %s"),
            (workflow_id,),
            row=scalar_row,
        )
        return found[0] if found else None

    @staticmethod
    def _require_workflow(workflow_id: int, rowcount: int) -> None:
        if rowcount == 0:
            raise ConflictError(f"workflow {workflow_id} is not recorded (was the schema reset?)")

    def workflows(self) -> list[WorkflowRecord]:
        """The latest workflow record of each app, by app name."""
        return self._schema.fetch(
            "reading the workflows",
            sql.SQL(_LATEST_WORKFLOWS).format(
                table=self._schema.table("workflows"),
                mine=self._mine,
                declared=self._schema.table("declared_limits"),
                env=sql.Literal(self._env),
            ),
            row=kwargs_row(_workflow),
        )

    def declare_limits(
        self, app: AppName, *, limits: RoleLimits, source: str, declared_by: str
    ) -> None:
        self._schema.execute(
            "recording the declared limits",
            sql.SQL(
                "INSERT INTO {} (env, app, connection_limit, statement_timeout_ms, source,"
                " declared_by) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (env, app) DO UPDATE SET"
                " connection_limit = excluded.connection_limit,"
                " statement_timeout_ms = excluded.statement_timeout_ms,"
                " source = excluded.source, declared_by = excluded.declared_by,"
                " declared_at = now()"
            ).format(self._schema.table("declared_limits")),
            (
                self._env,
                str(app),
                limits.connection_limit,
                limits.statement_timeout_ms,
                source,
                _storable(declared_by),
            ),
        )

    def latest_workflow(self, app: AppName) -> WorkflowRecord | None:
        found = self._schema.fetch(
            "reading the workflow",
            self._sql(
                f"SELECT {_WORKFLOW_COLUMNS} FROM {{}} WHERE app = %s AND {{mine}}"
                " ORDER BY id DESC LIMIT 1"
            ),
            (str(app),),
            row=kwargs_row(_workflow),
        )
        return found[0] if found else None

    def pending_follow_ups(self) -> list[WorkflowRecord]:
        """Each app's latest workflow when it is a done ``create`` with a chat message and no
        follow-through yet."""
        return self._schema.fetch(
            "reading the pending follow-ups",
            self._sql(
                f"SELECT {_WORKFLOW_COLUMNS} FROM ("
                "SELECT DISTINCT ON (app) * FROM {} WHERE {mine} ORDER BY app, id DESC) latest"
                " WHERE kind = 'create' AND status = %s AND message_link IS NOT NULL"
                " AND followed_up_at IS NULL ORDER BY id"
            ),
            (WorkflowStatus.DONE.value,),
            row=kwargs_row(_workflow),
        )

    def mark_followed_up(self, workflow_id: int, *, result: str) -> bool:
        """Compare-and-set: only the replica whose update finds no follow-up recorded wins."""
        changed = self._schema.execute(
            "recording the follow-up",
            self._sql(
                "UPDATE {} SET followed_up_at = now(), follow_result = %s"
                " WHERE id = %s AND followed_up_at IS NULL"
            ),
            (result, workflow_id),
        )
        return changed == 1

    def clear_follow_up(self, workflow_id: int, *, result: str) -> None:
        self._schema.execute(
            "clearing the follow-up",
            self._sql(
                "UPDATE {} SET followed_up_at = NULL, follow_result = NULL"
                " WHERE id = %s AND follow_result = %s"
            ),
            (workflow_id, result),
        )

    # -- replays --------------------------------------------------------------------------

    def first_sight(self, key: str, *, platform: str, until: datetime) -> bool:
        """One statement: the key is inserted unless present (two replicas racing on it
        serialise on the primary key), and up to 100 expired keys are removed on the way."""
        inserted = self._schema.fetch(
            "checking for a replayed request",
            sql.SQL(
                "WITH gone AS (DELETE FROM {table} WHERE key IN (SELECT key FROM {table}"
                " WHERE expires_at < now() LIMIT 100))"
                " INSERT INTO {table} (key, platform, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING RETURNING 1"
            ).format(table=self._schema.table("seen_requests")),
            (key, platform, until),
            row=scalar_row,
        )
        return bool(inserted)

    # -- locks ----------------------------------------------------------------------------

    @contextmanager
    def app_lock(self, app: AppName) -> Iterator[bool]:
        """A session advisory lock on a dedicated connection, held for the ``with`` block.

        If the bot dies, its connection closes and PostgreSQL releases the lock by itself.
        """
        key = self._lock_key(app)
        conn = self._schema.dedicated()
        failure: PgdbError | None = None
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS_APP, key)
            ).fetchone()
        except psycopg.Error as exc:
            conn.close()
            failure = self._schema.failed(f"locking `{app}`", exc)
        if failure is not None:
            raise failure
        acquired = bool(row and row[0])
        try:
            yield acquired
        finally:
            try:
                if acquired and not conn.closed:
                    conn.execute(
                        "SELECT pg_advisory_unlock(%s, hashtext(%s))",
                        (LOCK_CLASS_APP, key),
                    )
            except psycopg.Error as exc:
                # Closing the session below releases the lock anyway.
                log.warning("could not unlock %s: %s", app, reason(exc))
            finally:
                conn.close()

    def _lock_key(self, app: AppName) -> str:
        """The app's name in the environment that existed before environments (so a replica
        of the previous version locks the same key), ``<env>--<app>`` in the others."""
        return str(app) if self._env == self._legacy else f"{self._env}--{app}"
