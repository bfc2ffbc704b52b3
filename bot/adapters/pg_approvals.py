"""Pending ``create`` requests in the bot's own schema (``ApprovalStore``): table ``approvals``
(migration 4 of ``bot.adapters.postgres``).

A unique index allows one pending request per app, and a decision only moves a row that is
still pending, so two operators (or two replicas) deciding at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.types.json import Jsonb

from bot.adapters.postgres import Connection, PostgresBotState
from bot.core.errors import ConflictError
from bot.core.model import ApprovalRequest, ApprovalStatus
from bot.core.names import AppName

_COLUMNS = (
    "id, app, namespace, requester, platform, status, requested_at, expires_at,"
    " message_link, threads, decided_by, decided_at, reason"
)


def _request(row: tuple[Any, ...]) -> ApprovalRequest:
    (
        id_,
        app,
        namespace,
        requester,
        platform,
        status,
        requested_at,
        expires_at,
        message_link,
        threads,
        decided_by,
        decided_at,
        reason,
    ) = row
    return ApprovalRequest(
        id=id_,
        app=app,
        namespace=namespace,
        requester=requester,
        platform=platform,
        status=ApprovalStatus(status),
        requested_at=requested_at,
        expires_at=expires_at,
        message_link=message_link,
        threads={str(k): str(v) for k, v in (threads or {}).items()},
        decided_by=decided_by,
        decided_at=decided_at,
        reason=reason,
    )


class PostgresApprovalStore(PostgresBotState):
    """``ApprovalStore`` on the same connection settings and migrations as the bot's state."""

    def _rows(self, what: str, query: str, params: tuple[Any, ...] = ()) -> list[ApprovalRequest]:
        def body(conn: Connection) -> list[tuple[Any, ...]]:
            cur = conn.execute(
                sql.SQL(query).format(
                    approvals=self._table("approvals"), columns=sql.SQL(_COLUMNS)
                ),
                params,
            )
            return list(cur.fetchall()) if cur.description else []

        return [_request(r) for r in self._run(what, body)]

    def request(
        self,
        *,
        app: AppName,
        namespace: str | None,
        requester: str,
        platform: str,
        expires_at: datetime,
        message_link: str | None,
    ) -> ApprovalRequest:
        def body(conn: Connection) -> list[tuple[Any, ...]]:
            try:
                return list(
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {approvals} (app, namespace, requester, platform,"
                            " expires_at, message_link)"
                            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING {columns}"
                        ).format(approvals=self._table("approvals"), columns=sql.SQL(_COLUMNS)),
                        (
                            str(app),
                            namespace,
                            requester,
                            platform,
                            expires_at,
                            message_link,
                        ),
                    ).fetchall()
                )
            except pgerrors.UniqueViolation:
                return []

        rows = self._run("recording the request", body)
        if not rows:
            raise ConflictError(
                f"a request for `{app}` is already waiting for approval: "
                "see `/pgdb status` for its id"
            )
        return _request(rows[0])

    def get(self, request_id: int) -> ApprovalRequest | None:
        rows = self._rows(
            "reading the request", "SELECT {columns} FROM {approvals} WHERE id = %s", (request_id,)
        )
        return rows[0] if rows else None

    def latest_for(self, app: AppName) -> ApprovalRequest | None:
        rows = self._rows(
            "reading the requests",
            "SELECT {columns} FROM {approvals} WHERE app = %s ORDER BY id DESC LIMIT 1",
            (str(app),),
        )
        return rows[0] if rows else None

    def pending(self) -> list[ApprovalRequest]:
        return self._rows(
            "reading the pending requests",
            "SELECT {columns} FROM {approvals} WHERE status = 'pending' ORDER BY id",
        )

    def set_threads(self, request_id: int, threads: Mapping[str, str]) -> None:
        self._rows(
            "recording the request's announcement",
            "UPDATE {approvals} SET threads = threads || %s WHERE id = %s",
            (Jsonb(dict(threads)), request_id),
        )

    def decide(
        self,
        request_id: int,
        *,
        status: ApprovalStatus,
        by: str,
        reason: str = "",
        at: datetime,
    ) -> ApprovalRequest | None:
        rows = self._rows(
            "recording the decision",
            "UPDATE {approvals} SET status = %s, decided_by = %s, decided_at = %s, reason = %s"
            " WHERE id = %s AND status = 'pending' RETURNING {columns}",
            (status.value, by, at, reason, request_id),
        )
        return rows[0] if rows else None
