"""``/pgdb diagnose`` and ``pgdb-bot diagnose [--json]``."""

from __future__ import annotations

from typing import Any

from bot.core.reply import Reply
from handlers.context import CommandContext, Services
from handlers.findings import Diagnosis, Severity, diagnose
from handlers.observe import observe

SEVERITY_ICONS = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}


def run_diagnosis(services: Services) -> Diagnosis:
    return diagnose(observe(services), services)


def exit_code(diagnosis: Diagnosis) -> int:
    """0 with no warning or critical finding, 1 with one or more (SPEC §6.1)."""
    return 1 if diagnosis.alerting else 0


def as_json(diagnosis: Diagnosis, services: Services) -> dict[str, Any]:
    counts = {s.value: 0 for s in Severity}
    for f in diagnosis.findings:
        counts[f.severity.value] += 1
    return {
        "observed_at": diagnosis.observed_at.isoformat(),
        "apps": len(diagnosis.apps),
        "counts": counts,
        "findings": [f.as_json() for f in diagnosis.findings],
    }


def render(diagnosis: Diagnosis, *, correlation_id: str = "") -> Reply:
    alerting = diagnosis.alerting
    reply = Reply(
        title=(
            f"Diagnostics: {len(alerting)} problem(s) over {len(diagnosis.apps)} app(s)"
            if alerting
            else f"Diagnostics: all clear over {len(diagnosis.apps)} app(s)"
        ),
        ok=not alerting,
        correlation_id=correlation_id,
        outcome="ok",  # the command ran: finding problems is its job, not its failure
    )
    for f in diagnosis.findings:
        where = f"`{f.app}` " if f.app else ""
        reply.lines.append(
            f"{SEVERITY_ICONS[f.severity]} {f.kind} {where}— {f.message}. Fix: {f.remedy}"
        )
    return reply


def run_diagnose(ctx: CommandContext) -> Reply:
    return render(run_diagnosis(ctx.services), correlation_id=ctx.correlation_id)
