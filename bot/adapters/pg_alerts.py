"""The alert lifecycle's state in the bot's own schema (``AlertStore``): tables ``alert_state``
and ``silences`` (migrations 1 and 2 of ``bot.adapters.postgres``).

Every change is conditional (compare-and-set on ``last_sent`` / ``resolved_at``, a unique index
on the open alert of a fingerprint), so two replicas that both believe they lead, for the few
seconds of a failover, still announce each alert once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.types.json import Jsonb

from bot.adapters.postgres import Connection, PostgresBotState
from bot.core.model import AlertRecord, Silence

_COLUMNS = (
    "id, fingerprint, kind, app, severity, message, first_seen, last_seen, last_sent,"
    " resolved_at, absent_passes, flaps, threads"
)


def _record(row: tuple[Any, ...]) -> AlertRecord:
    (
        id_,
        fingerprint,
        kind,
        app,
        severity,
        message,
        first_seen,
        last_seen,
        last_sent,
        resolved_at,
        absent_passes,
        flaps,
        threads,
    ) = row
    return AlertRecord(
        id=id_,
        fingerprint=fingerprint,
        kind=kind,
        app=app,
        severity=severity,
        message=message,
        first_seen=first_seen,
        last_seen=last_seen,
        last_sent=last_sent,
        resolved_at=resolved_at,
        absent_passes=absent_passes,
        flaps=flaps,
        threads={str(k): str(v) for k, v in (threads or {}).items()},
    )


class PostgresAlertStore(PostgresBotState):
    """``AlertStore`` on the same connection settings and migrations as the bot's state."""

    def _query(self, what: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        def body(conn: Connection) -> list[tuple[Any, ...]]:
            cur = conn.execute(
                sql.SQL(query).format(
                    alerts=self._table("alert_state"), silences=self._table("silences")
                ),
                params,
            )
            return list(cur.fetchall()) if cur.description else []

        return self._run(what, body)

    def _count(self, what: str, query: str, params: tuple[Any, ...]) -> int:
        def body(conn: Connection) -> int:
            return conn.execute(
                sql.SQL(query).format(
                    alerts=self._table("alert_state"), silences=self._table("silences")
                ),
                params,
            ).rowcount

        return self._run(what, body)

    def open_alerts(self) -> list[AlertRecord]:
        rows = self._query(
            "reading the open alerts",
            f"SELECT {_COLUMNS} FROM {{alerts}} WHERE resolved_at IS NULL ORDER BY id",
        )
        return [_record(r) for r in rows]

    def last_resolved(self, fingerprint: str, *, since: datetime) -> AlertRecord | None:
        rows = self._query(
            "reading the alerts",
            f"SELECT {_COLUMNS} FROM {{alerts}} WHERE fingerprint = %s AND resolved_at >= %s"
            " ORDER BY resolved_at DESC LIMIT 1",
            (fingerprint, since),
        )
        return _record(rows[0]) if rows else None

    def open_alert(
        self,
        *,
        fingerprint: str,
        kind: str,
        app: str | None,
        severity: str,
        message: str,
        at: datetime,
    ) -> AlertRecord | None:
        def body(conn: Connection) -> list[tuple[Any, ...]]:
            try:
                return list(
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (kind, app, fingerprint, severity, message,"
                            f" first_seen, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                            f" RETURNING {_COLUMNS}"
                        ).format(self._table("alert_state")),
                        (kind, app, fingerprint, severity, message, at, at),
                    ).fetchall()
                )
            except pgerrors.UniqueViolation:
                return []  # another replica opened it: it announces it

        rows = self._run("recording the alert", body)
        return _record(rows[0]) if rows else None

    def reopen(self, alert_id: int, *, at: datetime) -> AlertRecord | None:
        def body(conn: Connection) -> list[tuple[Any, ...]]:
            try:
                return list(
                    conn.execute(
                        sql.SQL(
                            "UPDATE {} SET resolved_at = NULL, last_seen = %s,"
                            " absent_passes = 0, flaps = flaps + 1"
                            f" WHERE id = %s AND resolved_at IS NOT NULL RETURNING {_COLUMNS}"
                        ).format(self._table("alert_state")),
                        (at, alert_id),
                    ).fetchall()
                )
            except pgerrors.UniqueViolation:
                return []

        rows = self._run("reopening the alert", body)
        return _record(rows[0]) if rows else None

    def seen(self, alert_id: int, *, at: datetime, severity: str, message: str) -> None:
        self._count(
            "updating the alert",
            "UPDATE {alerts} SET last_seen = %s, absent_passes = 0, severity = %s, message = %s"
            " WHERE id = %s",
            (at, severity, message, alert_id),
        )

    def absent(self, alert_id: int, *, passes: int) -> None:
        self._count(
            "updating the alert",
            "UPDATE {alerts} SET absent_passes = %s WHERE id = %s",
            (passes, alert_id),
        )

    def claim_send(self, alert_id: int, *, previous: datetime | None, at: datetime) -> bool:
        return (
            self._count(
                "claiming the alert",
                "UPDATE {alerts} SET last_sent = %s WHERE id = %s"
                " AND last_sent IS NOT DISTINCT FROM %s",
                (at, alert_id, previous),
            )
            == 1
        )

    def unclaim(self, alert_id: int, *, previous: datetime | None, at: datetime) -> None:
        self._count(
            "releasing the alert",
            "UPDATE {alerts} SET last_sent = %s WHERE id = %s AND last_sent = %s",
            (previous, alert_id, at),
        )

    def set_threads(self, alert_id: int, threads: Mapping[str, str]) -> None:
        self._count(
            "recording the alert's threads",
            "UPDATE {alerts} SET threads = threads || %s WHERE id = %s",
            (Jsonb(dict(threads)), alert_id),
        )

    def resolve(self, alert_id: int, *, at: datetime) -> bool:
        return (
            self._count(
                "resolving the alert",
                "UPDATE {alerts} SET resolved_at = %s WHERE id = %s AND resolved_at IS NULL",
                (at, alert_id),
            )
            == 1
        )

    def add_silence(self, *, target: str, until: datetime, created_by: str) -> None:
        self._count(
            "recording the silence",
            "INSERT INTO {silences} (target, until, created_by) VALUES (%s, %s, %s)",
            (target, until, created_by),
        )

    def lift_silences(self, target: str) -> int:
        return self._count(
            "lifting the silence", "DELETE FROM {silences} WHERE target = %s", (target,)
        )

    def silences(self, *, at: datetime) -> list[Silence]:
        rows = self._query(
            "reading the silences",
            "SELECT target, max(until), (array_agg(created_by ORDER BY until DESC))[1]"
            " FROM {silences} WHERE until > %s GROUP BY target ORDER BY target",
            (at,),
        )
        return [Silence(target=t, until=u, created_by=b) for t, u, b in rows]
