"""The neutral reply structure: each chat adapter renders it its own way."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class StepState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    EXISTS = "already there"
    PLANNED = "would do"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(kw_only=True)
class Step:
    key: str
    label: str
    state: StepState = StepState.PENDING
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class Button:
    """A decision: clicking it runs ``command`` (``/pgdb`` text) as the user who clicked, through
    the same dispatch as typing it, so authorization is checked again."""

    label: str
    command: str
    style: str = "default"  # "primary" | "danger" | "default"


@dataclass(frozen=True, kw_only=True)
class Alert:
    """A message for the ops channel. ``thread`` is the platform's reference of the first
    message about the same finding, so reminders and "resolved" go to its thread."""

    key: str  # stable identity of the finding, e.g. "role_missing:docspell"
    severity: str  # "critical" | "warning" | "info"
    title: str
    text: str
    resolved: bool = False
    thread: str | None = None
    buttons: tuple[Button, ...] = ()  # a decision asked of the ops channel (approvals)
    # the thread reply that lists a group's findings one by one (not a "still open" reminder)
    details: bool = False


@dataclass(kw_only=True)
class Reply:
    """Title, steps with states, key/value fields, free lines and a code block."""

    title: str
    ok: bool = True
    private: bool = False  # for the requester only (ephemeral where the platform can)
    steps: list[Step] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    code: str | None = None
    buttons: list[Button] = field(default_factory=list)
    correlation_id: str = ""
    final: bool = False  # the last update of this reply
    # written now, not held back by the platform's update pacing: an answer the user waits for
    # (the PR link) before slower work goes on
    urgent: bool = False
    outcome: str = ""  # for the audit log: "refused", "usage"…; empty means ok/failed by `ok`
    # How to see what a platform's size limit leaves out, e.g. "/pgdb status --page 2": the
    # renderers end a cut reply with it (never cut silently).
    more_hint: str = ""

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)


def error_reply(
    message: str, *, title: str = "Error", correlation_id: str = "", outcome: str = "failed"
) -> Reply:
    return Reply(
        title=title,
        ok=False,
        private=True,
        lines=[message],
        correlation_id=correlation_id,
        outcome=outcome,
    )
