"""``BotState`` in memory: the audit log, workflow records, app locks and replay keys, with the
answers ``PostgresBotState`` gives (latest record per app, compare-and-set follow-ups)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from bot.core.errors import ConflictError
from bot.core.limits import RoleLimits
from bot.core.model import AuditEntry, WorkflowRecord, WorkflowStatus
from bot.core.names import AppName
from tests.fakes.faults import FakeClock, Faults


@dataclass(kw_only=True)
class _Workflow:
    """One row of the workflows table, with the columns the record does not show."""

    record: WorkflowRecord
    fingerprint: str | None = None
    followed_up_at: datetime | None = None
    follow_result: str | None = None


class MemoryBotState(Faults):
    """``audit`` holds every entry, oldest first; ``records()`` every workflow record."""

    system = "bot state"

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.clock = clock or FakeClock()
        self.audit: list[AuditEntry] = []
        self._workflows: dict[int, _Workflow] = {}
        self._locked: set[str] = set()
        self._seen: dict[str, datetime] = {}
        self.declared: dict[str, tuple[RoleLimits, str, str]] = {}  # app -> (limits, source, by)

    def records(self, app: str | None = None) -> list[WorkflowRecord]:
        """Every workflow record (of ``app``), oldest first."""
        with self._lock:
            return [
                w.record for w in self._workflows.values() if app is None or w.record.app == app
            ]

    def locked(self, app: str) -> bool:
        with self._lock:
            return app in self._locked

    # --- the port ------------------------------------------------------------------------------

    def ping(self) -> None:
        self._enter("ping")

    def record_audit(self, entry: AuditEntry) -> None:
        self._enter("record_audit")
        with self._lock:
            self.audit.append(entry if entry.at is not None else replace(entry, at=self.clock()))

    def audit_entries(self, *, limit: int = 100) -> list[AuditEntry]:
        self._enter("audit_entries")
        with self._lock:
            return list(reversed(self.audit))[:limit]

    def start_workflow(self, *, app: AppName, kind: str, requester: str) -> int:
        self._enter("start_workflow")
        with self._lock:
            workflow_id = len(self._workflows) + 1
            now = self.clock()
            self._workflows[workflow_id] = _Workflow(
                record=WorkflowRecord(
                    id=workflow_id,
                    app=app,
                    kind=kind,
                    requester=requester,
                    status=WorkflowStatus.RUNNING,
                    step="",
                    detail="",
                    started_at=now,
                    updated_at=now,
                )
            )
            return workflow_id

    def update_workflow(
        self,
        workflow_id: int,
        *,
        step: str,
        status: WorkflowStatus,
        detail: str = "",
        proposal_url: str | None = None,
    ) -> None:
        self._enter("update_workflow")
        with self._lock:
            row = self._row(workflow_id)
            row.record = replace(
                row.record,
                step=step,
                status=status,
                detail=detail,
                proposal_url=proposal_url or row.record.proposal_url,
                updated_at=self.clock(),
            )

    def set_message_link(self, workflow_id: int, *, link: str) -> None:
        self._enter("set_message_link")
        with self._lock:
            row = self._row(workflow_id)
            row.record = replace(row.record, message_link=link)

    def set_password_fingerprint(self, workflow_id: int, *, fingerprint: str) -> None:
        self._enter("set_password_fingerprint")
        with self._lock:
            self._row(workflow_id).fingerprint = fingerprint

    def password_fingerprint(self, workflow_id: int) -> str | None:
        self._enter("password_fingerprint")
        with self._lock:
            row = self._workflows.get(workflow_id)
            return row.fingerprint if row is not None else None

    def workflows(self) -> list[WorkflowRecord]:
        self._enter("workflows")
        with self._lock:
            first_at: dict[str, datetime] = {}
            creator: dict[str, str] = {}
            for row in self._workflows.values():  # oldest first
                record = row.record
                first_at.setdefault(record.app, record.started_at)
                if record.kind == "create":
                    creator.setdefault(record.app, record.requester)
            return [
                replace(
                    row.record,
                    app_first_at=first_at[app],
                    app_requester=creator.get(app),
                    declared=self.declared[app][0] if app in self.declared else None,
                )
                for app, row in sorted(self._latest_rows().items())
            ]

    def declare_limits(
        self, app: AppName, *, limits: RoleLimits, source: str, declared_by: str
    ) -> None:
        self._enter("declare_limits")
        with self._lock:
            self.declared[app] = (limits, source, declared_by)

    def latest_workflow(self, app: AppName) -> WorkflowRecord | None:
        self._enter("latest_workflow")
        with self._lock:
            row = self._latest_rows().get(app)
            return row.record if row is not None else None

    def pending_follow_ups(self) -> list[WorkflowRecord]:
        self._enter("pending_follow_ups")
        with self._lock:
            return sorted(
                (
                    row.record
                    for row in self._latest_rows().values()
                    if row.record.kind == "create"
                    and row.record.status is WorkflowStatus.DONE
                    and row.record.message_link is not None
                    and row.followed_up_at is None
                ),
                key=lambda r: r.id,
            )

    def mark_followed_up(self, workflow_id: int, *, result: str) -> bool:
        self._enter("mark_followed_up")
        with self._lock:
            row = self._workflows.get(workflow_id)
            if row is None or row.followed_up_at is not None:
                return False
            row.followed_up_at, row.follow_result = self.clock(), result
            return True

    def clear_follow_up(self, workflow_id: int, *, result: str) -> None:
        self._enter("clear_follow_up")
        with self._lock:
            row = self._workflows.get(workflow_id)
            if row is not None and row.follow_result == result:
                row.followed_up_at = row.follow_result = None

    @contextmanager
    def app_lock(self, app: AppName) -> Iterator[bool]:
        self._enter("app_lock")
        with self._lock:
            acquired = app not in self._locked
            self._locked.add(app)
        try:
            yield acquired
        finally:
            if acquired:
                with self._lock:
                    self._locked.discard(app)

    def first_sight(self, key: str, *, platform: str, until: datetime) -> bool:
        self._enter("first_sight")
        with self._lock:
            now = self.clock()
            for old in [k for k, expiry in self._seen.items() if expiry < now]:
                del self._seen[old]
            if key in self._seen:
                return False
            self._seen[key] = until
            return True

    # --- helpers -------------------------------------------------------------------------------

    def _row(self, workflow_id: int) -> _Workflow:
        row = self._workflows.get(workflow_id)
        if row is None:
            raise ConflictError(f"workflow {workflow_id} is not recorded (was the schema reset?)")
        return row

    def _latest_rows(self) -> dict[str, _Workflow]:
        latest: dict[str, _Workflow] = {}
        for row in self._workflows.values():  # ids grow: the last one seen is the newest
            latest[row.record.app] = row
        return latest


if TYPE_CHECKING:
    from bot.core.ports import BotState

    _conforms: BotState = MemoryBotState()
