"""The alert lifecycle's state in the bot's schema (``AlertStore``): tables ``alert_state`` and
``silences`` (migrations 1, 2 and 8).

Every change is conditional (compare-and-set on ``last_sent`` / ``resolved_at``, a unique index
on the open alert of a fingerprint), so two replicas that both believe they lead, for the few
seconds of a failover, still announce each alert once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row, kwargs_row, scalar_row
from psycopg.types.json import Jsonb

from bot.adapters.postgres.migrations import BotSchema
from bot.core.model import AlertRecord, NewAlert, Silence

# ``AlertRecord``'s fields, in the table's words.
_COLUMNS = (
    "id, fingerprint, kind, app, severity, message, first_seen, last_seen, last_sent,"
    " resolved_at, absent_passes, flaps, threads, env"
)


def _alert(*, threads: Mapping[Any, Any] | None, **columns: Any) -> AlertRecord:
    return AlertRecord(threads={str(k): str(v) for k, v in (threads or {}).items()}, **columns)


_ALERT = kwargs_row(_alert)


class PostgresAlertStore:
    """``AlertStore`` in the bot's schema."""

    def __init__(self, schema: BotSchema) -> None:
        self._schema = schema

    def __repr__(self) -> str:
        return f"PostgresAlertStore({self._schema.describe()})"

    def _sql(self, query: str) -> sql.Composed:
        return sql.SQL(query).format(
            alerts=self._schema.table("alert_state"), silences=self._schema.table("silences")
        )

    def _alerts(
        self, what: str, query: str, params: Sequence[Any] = (), *, duplicate_ok: bool = False
    ) -> list[AlertRecord]:
        return self._schema.fetch(
            what, self._sql(query), params, row=_ALERT, duplicate_ok=duplicate_ok
        )

    def _count(self, what: str, query: str, params: Sequence[Any]) -> int:
        return self._schema.execute(what, self._sql(query), params)

    def _ids(self, what: str, query: str, params: Sequence[Any]) -> set[int]:
        return {int(i) for i in self._schema.fetch(what, self._sql(query), params, row=scalar_row)}

    def open_alerts(self) -> list[AlertRecord]:
        return self._alerts(
            "reading the open alerts",
            f"SELECT {_COLUMNS} FROM {{alerts}} WHERE resolved_at IS NULL ORDER BY id",
        )

    def recently_resolved(self, *, since: datetime) -> list[AlertRecord]:
        return self._alerts(
            "reading the alerts",
            f"SELECT DISTINCT ON (coalesce(env, ''), fingerprint) {_COLUMNS} FROM {{alerts}}"
            " WHERE resolved_at >= %s ORDER BY coalesce(env, ''), fingerprint, resolved_at DESC",
            (since,),
        )

    def open_many(self, alerts: Sequence[NewAlert], *, at: datetime) -> list[AlertRecord]:
        if not alerts:
            return []
        return self._alerts(
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
        return self._ids(
            "claiming the alerts",
            "UPDATE {alerts} AS a SET last_sent = %s"
            " FROM unnest(%s::bigint[], %s::timestamptz[]) AS n(i, p)"
            " WHERE a.id = n.i AND a.last_sent IS NOT DISTINCT FROM n.p RETURNING a.id",
            (at, [i for i, _ in claims], [p for _, p in claims]),
        )

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
        return self._ids(
            "resolving the alerts",
            "UPDATE {alerts} SET resolved_at = %s"
            " WHERE id = ANY(%s::bigint[]) AND resolved_at IS NULL RETURNING id",
            (at, list(alert_ids)),
        )

    def last_resolved(self, fingerprint: str, *, since: datetime) -> AlertRecord | None:
        found = self._alerts(
            "reading the alerts",
            f"SELECT {_COLUMNS} FROM {{alerts}} WHERE fingerprint = %s AND resolved_at >= %s"
            " ORDER BY resolved_at DESC LIMIT 1",
            (fingerprint, since),
        )
        return found[0] if found else None

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
        found = self._alerts(
            "recording the alert",
            "INSERT INTO {alerts} (kind, app, fingerprint, severity, message, env,"
            " first_seen, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {_COLUMNS}",
            (kind, app, fingerprint, severity, message, env, at, at),
            duplicate_ok=True,  # another replica opened it: it announces it
        )
        return found[0] if found else None

    def reopen(self, alert_id: int, *, at: datetime) -> AlertRecord | None:
        found = self._alerts(
            "reopening the alert",
            "UPDATE {alerts} SET resolved_at = NULL, last_seen = %s,"
            " absent_passes = 0, flaps = flaps + 1"
            f" WHERE id = %s AND resolved_at IS NOT NULL RETURNING {_COLUMNS}",
            (at, alert_id),
            duplicate_ok=True,  # the fingerprint is open again already
        )
        return found[0] if found else None

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
        claimed = self._count(
            "claiming the alert",
            "UPDATE {alerts} SET last_sent = %s WHERE id = %s"
            " AND last_sent IS NOT DISTINCT FROM %s",
            (at, alert_id, previous),
        )
        return claimed == 1

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
        resolved = self._count(
            "resolving the alert",
            "UPDATE {alerts} SET resolved_at = %s WHERE id = %s AND resolved_at IS NULL",
            (at, alert_id),
        )
        return resolved == 1

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
        return self._schema.fetch(
            "reading the silences",
            self._sql(
                "SELECT target, max(until) AS until,"
                " (array_agg(created_by ORDER BY until DESC))[1] AS created_by"
                " FROM {silences} WHERE until > %s GROUP BY target ORDER BY target"
            ),
            (at,),
            row=class_row(Silence),
        )
