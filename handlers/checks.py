"""The vocabulary of the one assessment: a check of one layer, and the finding it carries.

Every check in a problem state carries exactly one finding (kind, severity, remedy), so
``status`` (which shows checks) and ``diagnose`` (which lists findings) cannot disagree: ❌ is a
critical finding, ⚠️ a warning one, and nothing else is shown as a problem.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from typing import Any


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Repair(enum.StrEnum):
    """What ``/pgdb repair`` does for a finding, in the order it does it (dependencies first)."""

    CREDENTIALS = "credentials"  # generate, or complete, the stored credentials
    ROLE = "role"  # create the missing role with the stored password
    MANIFESTS = "manifests"  # propose the manifests (or the missing kustomization entries)
    RESYNC = "resync"  # a harmless InfisicalSecret spec change: the operator syncs again


REPAIR_ORDER = tuple(Repair)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem: what it is, how bad, and the exact command that fixes it. ``repair`` is
    the step ``/pgdb repair`` takes for it; None when a human decides (the remedy says how)."""

    kind: str
    app: str | None
    severity: Severity
    message: str
    remedy: str
    repair: Repair | None = None
    env: str | None = None  # the environment, when a configuration file declares several

    def as_json(self) -> dict[str, Any]:
        found = {
            "kind": self.kind,
            "app": self.app,
            "severity": self.severity.value,
            "message": self.message,
            "remedy": self.remedy,
        }
        return found if self.env is None else {**found, "env": self.env}

    def in_environment(self, env: str) -> Finding:
        """The same finding, said of ``env``: its ``/pgdb`` remedies name the environment."""
        return dataclasses.replace(self, env=env, remedy=name_environment(self.remedy, env))


# `/pgdb <command> <app>` for the commands that act on one environment's app
_APP_COMMAND = re.compile(
    r"/pgdb (?:create|repair|rotate|offboard|status|limits|update) [a-z][a-z0-9-]*[a-z0-9]"
    r"(?![a-z0-9-]| --env)"
)


def name_environment(text: str, env: str) -> str:
    """``/pgdb repair docspell`` in ``text`` becomes ``/pgdb repair docspell --env prod``."""
    return _APP_COMMAND.sub(lambda m: f"{m.group(0)} --env {env}", text)


class CheckOutcome(enum.StrEnum):
    OK = "ok"
    PENDING = "pending"
    PROBLEM = "problem"
    UNKNOWN = "unknown"
    NOT_CONFIGURED = "not configured"
    NOT_EXPECTED = "not expected"  # e.g. no Database CR for an offboarded app
    NOT_CHECKED = "not checked"  # waits for another layer (no role: no password to check)


ICONS = {
    CheckOutcome.OK: "✅",
    CheckOutcome.PENDING: "⏳",
    CheckOutcome.PROBLEM: "❌",
    CheckOutcome.UNKNOWN: "❔",
    CheckOutcome.NOT_CONFIGURED: "⚪",
    CheckOutcome.NOT_EXPECTED: "⚪",
    CheckOutcome.NOT_CHECKED: "\u2796",  # heavy minus sign
}
WARNING_ICON = "⚠️"
# The outcomes that say nothing is wrong with the app.
FINE = frozenset(
    {
        CheckOutcome.OK,
        CheckOutcome.NOT_CONFIGURED,
        CheckOutcome.NOT_EXPECTED,
        CheckOutcome.NOT_CHECKED,
    }
)


@dataclass(frozen=True, kw_only=True)
class Check:
    """One layer of one app: its outcome, a line for humans, where it was read, and — when
    the outcome is a problem — the finding that says what to do."""

    name: str
    outcome: CheckOutcome
    detail: str
    source: str
    finding: Finding | None = None

    def __post_init__(self) -> None:
        problem = self.outcome is CheckOutcome.PROBLEM
        if problem != (self.finding is not None and self.finding.severity is not Severity.INFO):
            raise ValueError(
                f"check {self.name!r}: a problem carries exactly one warning or critical "
                f"finding, and only a problem does ({self.outcome}, {self.finding})"
            )

    @property
    def icon(self) -> str:
        if self.finding is not None and self.finding.severity is Severity.WARNING:
            return WARNING_ICON
        return ICONS[self.outcome]


def ok(name: str, detail: str, source: str) -> Check:
    return Check(name=name, outcome=CheckOutcome.OK, detail=detail, source=source)


def pending(name: str, detail: str, source: str) -> Check:
    return Check(name=name, outcome=CheckOutcome.PENDING, detail=detail, source=source)


def unknown(name: str, why: str, source: str) -> Check:
    return Check(
        name=name, outcome=CheckOutcome.UNKNOWN, detail=f"unknown because {why}", source=source
    )


def problem(name: str, detail: str, source: str, finding: Finding) -> Check:
    return Check(
        name=name, outcome=CheckOutcome.PROBLEM, detail=detail, source=source, finding=finding
    )


def overall(checks: list[Check]) -> CheckOutcome:
    """The worst outcome: problem, then unknown, then pending; else ok."""
    outcomes = {c.outcome for c in checks}
    for level in (CheckOutcome.PROBLEM, CheckOutcome.UNKNOWN, CheckOutcome.PENDING):
        if level in outcomes:
            return level
    return CheckOutcome.OK
