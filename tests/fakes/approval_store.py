"""``ApprovalStore`` in memory: one pending request per app, decisions by compare-and-set."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from bot.core.errors import ConflictError
from bot.core.model import ApprovalRequest, ApprovalStatus
from bot.core.names import AppName
from tests.fakes.faults import FakeClock, Faults


class MemoryApprovalStore(Faults):
    """``requests`` holds every request by id, whatever its status."""

    system = "bot state"

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.clock = clock or FakeClock()
        self.requests: dict[int, ApprovalRequest] = {}

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
        self._enter("request")
        with self._lock:
            if any(
                r.app == app and r.status is ApprovalStatus.PENDING for r in self.requests.values()
            ):
                raise ConflictError(
                    f"a request for `{app}` is already waiting for approval: "
                    "see `/pgdb status` for its id"
                )
            made = ApprovalRequest(
                id=max(self.requests, default=0) + 1,
                app=app,
                namespace=namespace,
                requester=requester,
                platform=platform,
                status=ApprovalStatus.PENDING,
                requested_at=self.clock(),
                expires_at=expires_at,
                message_link=message_link,
            )
            self.requests[made.id] = made
            return made

    def get(self, request_id: int) -> ApprovalRequest | None:
        self._enter("get")
        with self._lock:
            return self.requests.get(request_id)

    def latest_for(self, app: AppName) -> ApprovalRequest | None:
        self._enter("latest_for")
        with self._lock:
            mine = [r for r in self.requests.values() if r.app == app]
        return max(mine, key=lambda r: r.id) if mine else None

    def pending(self) -> list[ApprovalRequest]:
        self._enter("pending")
        with self._lock:
            return [
                r for _, r in sorted(self.requests.items()) if r.status is ApprovalStatus.PENDING
            ]

    def set_threads(self, request_id: int, threads: Mapping[str, str]) -> None:
        self._enter("set_threads")
        with self._lock:
            found = self.requests.get(request_id)
            if found is not None:
                self.requests[request_id] = replace(found, threads={**found.threads, **threads})

    def decide(
        self,
        request_id: int,
        *,
        status: ApprovalStatus,
        by: str,
        reason: str = "",
        at: datetime,
    ) -> ApprovalRequest | None:
        self._enter("decide")
        with self._lock:
            found = self.requests.get(request_id)
            if found is None or found.status is not ApprovalStatus.PENDING:
                return None
            decided = replace(found, status=status, decided_by=by, decided_at=at, reason=reason)
            self.requests[request_id] = decided
            return decided


if TYPE_CHECKING:
    from bot.core.ports import ApprovalStore

    _conforms: ApprovalStore = MemoryApprovalStore()
