"""Pending ``create`` requests in the bot's schema (``ApprovalStore``): table ``approvals``
(migration 4).

A unique index allows one pending request per app, and a decision only moves a row that is
still pending, so two operators (or two replicas) deciding at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import kwargs_row
from psycopg.types.json import Jsonb

from bot.adapters.postgres.migrations import BotSchema
from bot.core.errors import ConflictError
from bot.core.model import ApprovalRequest, ApprovalStatus
from bot.core.names import AppName

# ``ApprovalRequest``'s fields, in the table's words.
_COLUMNS = (
    "id, app, namespace, requester, platform, status, requested_at, expires_at,"
    " message_link, threads, decided_by, decided_at, reason, env"
)


def _request(*, status: str, threads: Mapping[Any, Any] | None, **columns: Any) -> ApprovalRequest:
    return ApprovalRequest(
        status=ApprovalStatus(status),
        threads={str(k): str(v) for k, v in (threads or {}).items()},
        **columns,
    )


_REQUEST = kwargs_row(_request)


class PostgresApprovalStore:
    """``ApprovalStore`` in the bot's schema, for one environment: its rows carry ``env``;
    rows written before environments existed (``env`` NULL) are ``legacy_env``'s."""

    def __init__(self, schema: BotSchema, *, env: str = "dev", legacy_env: str = "dev") -> None:
        self._schema = schema
        self._env = env
        self._legacy = legacy_env

    def __repr__(self) -> str:
        return f"PostgresApprovalStore({self._schema.describe()})"

    def _sql(self, query: str) -> sql.Composed:
        return sql.SQL(query).format(
            approvals=self._schema.table("approvals"),
            columns=sql.SQL(_COLUMNS),
            mine=sql.SQL("coalesce(env, {}) = {}").format(
                sql.Literal(self._legacy), sql.Literal(self._env)
            ),
        )

    def _requests(
        self, what: str, query: str, params: Sequence[Any] = (), *, duplicate_ok: bool = False
    ) -> list[ApprovalRequest]:
        return self._schema.fetch(
            what, self._sql(query), params, row=_REQUEST, duplicate_ok=duplicate_ok
        )

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
        created = self._requests(
            "recording the request",
            "INSERT INTO {approvals} (app, namespace, requester, platform, expires_at,"
            " message_link, env) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {columns}",
            (str(app), namespace, requester, platform, expires_at, message_link, self._env),
            duplicate_ok=True,  # one pending request per app: the other one is waiting
        )
        if not created:
            raise ConflictError(
                f"a request for `{app}` is already waiting for approval: "
                "see `/pgdb status` for its id"
            )
        return created[0]

    def get(self, request_id: int) -> ApprovalRequest | None:
        found = self._requests(
            "reading the request",
            "SELECT {columns} FROM {approvals} WHERE id = %s AND {mine}",
            (request_id,),
        )
        return found[0] if found else None

    def latest_for(self, app: AppName) -> ApprovalRequest | None:
        found = self._requests(
            "reading the requests",
            "SELECT {columns} FROM {approvals} WHERE app = %s AND {mine} ORDER BY id DESC LIMIT 1",
            (str(app),),
        )
        return found[0] if found else None

    def pending(self) -> list[ApprovalRequest]:
        return self._requests(
            "reading the pending requests",
            "SELECT {columns} FROM {approvals} WHERE status = 'pending' AND {mine} ORDER BY id",
        )

    def set_threads(self, request_id: int, threads: Mapping[str, str]) -> None:
        self._schema.execute(
            "recording the request's announcement",
            self._sql("UPDATE {approvals} SET threads = threads || %s WHERE id = %s"),
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
        decided = self._requests(
            "recording the decision",
            "UPDATE {approvals} SET status = %s, decided_by = %s, decided_at = %s, reason = %s"
            " WHERE id = %s AND status = 'pending' RETURNING {columns}",
            (status.value, by, at, reason, request_id),
        )
        return decided[0] if decided else None
