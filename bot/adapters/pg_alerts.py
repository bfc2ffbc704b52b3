"""The alert lifecycle's state in the bot's own schema (``AlertStore``): tables ``alert_state``
and ``silences`` (migrations 1 and 2 of ``bot.adapters.postgres``).

Every change is conditional (compare-and-set on ``last_sent`` / ``resolved_at``, a unique index
on the open alert of a fingerprint), so two replicas that both believe they lead, for the few
seconds of a failover, still announce each alert once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.types.json import Jsonb

from bot.adapters.postgres import Connection, PostgresBotState
from bot.core.model import AlertRecord, NewAlert, Silence

_COLUMNS = (
    "id, fingerprint, kind, app, severity, message, first_seen, last_seen, last_sent,"
    " resolved_at, absent_passes, flaps, threads, env"
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
        env,
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
        env=env,
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

    def recently_resolved(self, *, since: datetime) -> list[AlertRecord]:
        rows = self._query(
            "reading the alerts",
            f"SELECT DISTINCT ON (coalesce(env, ''), fingerprint) {_COLUMNS} FROM {{alerts}}"
            " WHERE resolved_at >= %s ORDER BY coalesce(env, ''), fingerprint, resolved_at DESC",
            (since,),
        )
        return [_record(r) for r in rows]

    def open_many(self, alerts: Sequence[NewAlert], *, at: datetime) -> list[AlertRecord]:
        if not alerts:
            return []
        rows = self._query(
            "recording the alerts",
            "INSERT INTO {alerts} (kind, app, fingerprint, severity, message, env, first_seen,"
            " last_seen) SELECT k, a, f, s, m, e, %s, %s FROM unnest(%s::text[], %s::text[],"
            " %s::text[], %s::text[], %s::text[], %s::text[]) AS n(k, a, f, s, m, e)"
            f" ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
            (
                at,
                at,
                [a.kind for a in alerts],
                [a.app for a in alerts],
                [a.fingerprint for a in alerts],
                [a.severity for a in alerts],
                [a.message for a in alerts],
                [a.env for a in alerts],
            ),
        )
        return [_record(r) for r in rows]

    def seen_many(self, seen: Sequence[tuple[int, str, str]], *, at: datetime) -> None:
        if not seen:
            return
        self._count(
            "updating the alerts",
            "UPDATE {alerts} AS a SET last_seen = %s, absent_passes = 0, severity = n.s,"
            " message = n.m FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS n(i, s, m)"
            " WHERE a.id = n.i",
            (at, [i for i, _, _ in seen], [s for _, s, _ in seen], [m for _, _, m in seen]),
        )

    def absent_many(self, absent: Sequence[tuple[int, int]]) -> None:
        if not absent:
            return
        self._count(
            "updating the alerts",
            "UPDATE {alerts} AS a SET absent_passes = n.p"
            " FROM unnest(%s::bigint[], %s::int[]) AS n(i, p) WHERE a.id = n.i",
            ([i for i, _ in absent], [p for _, p in absent]),
        )

    def claim_many(
        self, claims: Sequence[tuple[int, datetime | None]], *, at: datetime
    ) -> set[int]:
        if not claims:
            return set()
        rows = self._query(
            "claiming the alerts",
            "UPDATE {alerts} AS a SET last_sent = %s"
            " FROM unnest(%s::bigint[], %s::timestamptz[]) AS n(i, p)"
            " WHERE a.id = n.i AND a.last_sent IS NOT DISTINCT FROM n.p RETURNING a.id",
            (at, [i for i, _ in claims], [p for _, p in claims]),
        )
        return {int(r[0]) for r in rows}

    def unclaim_many(self, claims: Sequence[tuple[int, datetime | None]], *, at: datetime) -> None:
        if not claims:
            return
        self._count(
            "releasing the alerts",
            "UPDATE {alerts} AS a SET last_sent = n.p"
            " FROM unnest(%s::bigint[], %s::timestamptz[]) AS n(i, p)"
            " WHERE a.id = n.i AND a.last_sent = %s",
            ([i for i, _ in claims], [p for _, p in claims], at),
        )

    def set_threads_many(self, alert_ids: Collection[int], threads: Mapping[str, str]) -> None:
        if not alert_ids or not threads:
            return
        self._count(
            "recording the alerts' threads",
            "UPDATE {alerts} SET threads = threads || %s WHERE id = ANY(%s::bigint[])",
            (Jsonb(dict(threads)), list(alert_ids)),
        )

    def resolve_many(self, alert_ids: Collection[int], *, at: datetime) -> set[int]:
        if not alert_ids:
            return set()
        rows = self._query(
            "resolving the alerts",
            "UPDATE {alerts} SET resolved_at = %s"
            " WHERE id = ANY(%s::bigint[]) AND resolved_at IS NULL RETURNING id",
            (at, list(alert_ids)),
        )
        return {int(r[0]) for r in rows}

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
        env: str | None = None,
    ) -> AlertRecord | None:
        def body(conn: Connection) -> list[tuple[Any, ...]]:
            try:
                return list(
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (kind, app, fingerprint, severity, message, env,"
                            f" first_seen, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                            f" RETURNING {_COLUMNS}"
                        ).format(self._table("alert_state")),
                        (kind, app, fingerprint, severity, message, env, at, at),
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
