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
    correlation_id: str = ""
    final: bool = False  # the last update of this reply
    outcome: str = ""  # for the audit log: "refused", "usage"…; empty means ok/failed by `ok`

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
