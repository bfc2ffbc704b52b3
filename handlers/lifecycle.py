"""Where an app is in its life, read from the bot's own records (its latest workflow).

Diagnostics and status use this so that an app being rotated or offboarded is shown as such
instead of as a problem. (A ``create`` waiting for approval is not a workflow: it lives in the
approvals table and changes nothing until it is approved.)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from bot.core.model import WorkflowRecord, WorkflowStatus

# Workflow kinds, as stored in the bot's records.
CREATE = "create"
ROTATE = "rotate"
OFFBOARD = "offboard"


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
