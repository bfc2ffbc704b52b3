"""Where an app is in its life, read from the bot's own records: every lifecycle fact lives here.

Diagnostics, status, repair and the workflows use this so that an app being rotated or
offboarded is shown as such instead of as a problem. (A ``create`` waiting for approval is not
a workflow: it lives in the approvals table and changes nothing until it is approved.)

``histories`` builds every app's facts once per observation, so a fleet-wide command costs
time linear in the number of records, never apps times records.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.model import WorkflowRecord, WorkflowStatus

# Workflow kinds, as stored in the bot's records.
CREATE = "create"
ROTATE = "rotate"
OFFBOARD = "offboard"
# In an offboarding record's detail when the run deleted the stored credentials.
SECRET_DELETED = "credentials deleted"  # noqa: S105 (a marker, not a password)
# A workflow updates its record at every step; one that has not for this long was killed
# (a crash, a deploy) and is reported as interrupted, not as running forever.
STALE_RUNNING = timedelta(minutes=15)


class Lifecycle(enum.StrEnum):
    ACTIVE = "active"
    ROTATING = "rotation in progress"
    ROTATION_INCOMPLETE = "rotation started, not finished"
    OFFBOARDING = "offboarding started, not finished"
    OFFBOARDED = "offboarded"


def latest_by_app(workflows: Iterable[WorkflowRecord]) -> dict[str, WorkflowRecord]:
    """The newest record of each app (``BotState.workflows`` already returns one per app)."""
    latest: dict[str, WorkflowRecord] = {}
    for w in workflows:
        seen = latest.get(w.app)
        if seen is None or (w.started_at, w.id) > (seen.started_at, seen.id):
            latest[w.app] = w
    return latest


def lifecycle_of(record: WorkflowRecord | None) -> Lifecycle:
    """The app's state from its latest workflow record (None: no record)."""
    if record is None:
        return Lifecycle.ACTIVE
    if record.kind == ROTATE:
        if record.status is WorkflowStatus.RUNNING:
            return Lifecycle.ROTATING
        if record.status is WorkflowStatus.FAILED:
            return Lifecycle.ROTATION_INCOMPLETE
        return Lifecycle.ACTIVE
    if record.kind == OFFBOARD:
        if record.status is WorkflowStatus.DONE:
            return Lifecycle.OFFBOARDED
        return Lifecycle.OFFBOARDING
    return Lifecycle.ACTIVE


def interrupted(record: WorkflowRecord, *, at: datetime) -> bool:
    """A record still ``running`` that has not moved for ``STALE_RUNNING``: its run is gone."""
    return record.status is WorkflowStatus.RUNNING and at - record.updated_at >= STALE_RUNNING


def unfinished_rotation(latest: WorkflowRecord | None) -> WorkflowRecord | None:
    """The app's latest record when it is a rotation that did not finish (failed, or crashed
    while running)."""
    if latest is not None and latest.kind == ROTATE and latest.status is not WorkflowStatus.DONE:
        return latest
    return None


def secret_deleted(record: WorkflowRecord | None) -> bool:
    """Whether the app's offboarding removed its credentials (PGDB_OFFBOARD_DELETE_SECRET)."""
    return record is not None and record.kind == OFFBOARD and SECRET_DELETED in record.detail


def was_offboarded(latest: WorkflowRecord | None) -> bool:
    """Whether the app's latest workflow is an offboarding (finished or not): its NOLOGIN role
    was set by the bot, so only an operator's ``create`` may bring it back."""
    return lifecycle_of(latest) in (Lifecycle.OFFBOARDED, Lifecycle.OFFBOARDING)


@dataclass(frozen=True, kw_only=True)
class AppHistory:
    """What the bot's records say about one app."""

    latest: WorkflowRecord | None = None

    @property
    def state(self) -> Lifecycle:
        return lifecycle_of(self.latest)

    @property
    def retired(self) -> bool:
        """Offboarded, or its offboarding started: what offboarding leaves is no problem."""
        return self.state in (Lifecycle.OFFBOARDED, Lifecycle.OFFBOARDING)

    @property
    def offboarded(self) -> bool:
        return self.state is Lifecycle.OFFBOARDED

    @property
    def rotation(self) -> WorkflowRecord | None:
        return unfinished_rotation(self.latest)

    @property
    def secret_deleted(self) -> bool:
        return secret_deleted(self.latest)

    @property
    def first_seen(self) -> datetime | None:
        """When the app's first record started (a later command never moves it)."""
        if self.latest is None:
            return None
        return self.latest.app_first_at or self.latest.started_at

    @property
    def requester(self) -> str | None:
        """Who ran the app's first ``create``."""
        return self.latest.app_requester if self.latest is not None else None


NO_HISTORY = AppHistory()


def histories(records: Iterable[WorkflowRecord]) -> Mapping[str, AppHistory]:
    """Every app's history, built once per observation."""
    return {app: AppHistory(latest=record) for app, record in latest_by_app(records).items()}
