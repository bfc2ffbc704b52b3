"""``/pgdb diagnose`` and ``pgdb-bot diagnose [--json]``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.core.reply import Reply
from handlers.context import CommandContext, Services
from handlers.findings import Diagnosis, Severity, diagnose
from handlers.observe import observe

SEVERITY_ICONS = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}


def run_diagnosis(services: Services) -> Diagnosis:
    return diagnose(observe(services), services)


def run_diagnoses(services: Services) -> dict[str, Diagnosis]:
    """Every environment's diagnosis, observed in parallel (one environment's unreachable
    systems are its findings and never hold up the others)."""
    fleet = services.environments()
    with ThreadPoolExecutor(max_workers=len(fleet.names), thread_name_prefix="env") as pool:
        found = pool.map(run_diagnosis, fleet.environments.values())
        return dict(zip(fleet.names, found, strict=True))


def exit_code(diagnosis: Diagnosis) -> int:
    """0 with no warning or critical finding, 1 with one or more."""
    return 1 if diagnosis.alerting else 0


def report(services: Services, *, json_output: bool) -> tuple[str, int]:
    """What ``pgdb-bot diagnose`` prints, and its exit code: one environment as it always
    was; with several, every finding and app carries its environment."""
    import json

    diagnoses = run_diagnoses(services)
    code = max(exit_code(d) for d in diagnoses.values())
    if services.fleet is None:
        [diagnosis] = diagnoses.values()
        if json_output:
            return json.dumps(as_json(diagnosis, services), indent=2) + "\n", code
        return _text(render(diagnosis)), code
    if json_output:
        return json.dumps(_environments_json(diagnoses), indent=2) + "\n", code
    text = ""
    for env, diagnosis in diagnoses.items():
        text += _text(render(diagnosis), tag=f"[{env}] ")
    return text, code


def _text(reply: Reply, *, tag: str = "") -> str:
    return tag + reply.title + "\n" + "".join(f"  {line}\n" for line in reply.lines)


def _environments_json(diagnoses: dict[str, Diagnosis]) -> dict[str, Any]:
    counts = {s.value: 0 for s in Severity}
    findings: list[dict[str, Any]] = []
    apps: list[dict[str, str]] = []
    for env, diagnosis in diagnoses.items():
        apps.extend({"app": app, "env": env} for app in diagnosis.apps)
        for f in diagnosis.findings:
            counts[f.severity.value] += 1
            findings.append(f.as_json() if f.env else {**f.as_json(), "env": env})
    return {
        "observed_at": max(d.observed_at for d in diagnoses.values()).isoformat(),
        "environments": list(diagnoses),
        "apps": apps,
        "counts": counts,
        "findings": findings,
    }


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
