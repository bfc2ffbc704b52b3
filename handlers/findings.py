"""Diagnostics: the findings of one assessment, as a list.

The rules live in :mod:`handlers.assessment`; this module is the list view that
``pgdb-bot diagnose``, ``/pgdb diagnose``, the scheduled alerts and the status checks of open
proposals read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.model import PasswordVerdict
from bot.core.names import AppName
from handlers.assessment import Assessment, assess
from handlers.checks import Finding, Severity
from handlers.context import Services
from handlers.observe import Observation

__all__ = ["Diagnosis", "Finding", "Severity", "diagnose", "diagnosis_of"]


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    apps: list[AppName]
    findings: list[Finding]
    verdicts: dict[str, PasswordVerdict]
    observed_at: datetime
    assessment: Assessment | None = None

    @property
    def alerting(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is not Severity.INFO]


def diagnosis_of(assessment: Assessment) -> Diagnosis:
    return Diagnosis(
        apps=[a.app for a in assessment.apps.values()],
        findings=assessment.findings,
        verdicts=dict(assessment.verdicts),
        observed_at=assessment.observation.at,
        assessment=assessment,
    )


def diagnose(obs: Observation, services: Services, *, respect_grace: bool = True) -> Diagnosis:
    """Every finding of the pass, most severe first."""
    return diagnosis_of(assess(obs, services, respect_grace=respect_grace))
