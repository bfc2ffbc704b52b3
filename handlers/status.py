"""``/pgdb status [<app>]`` and ``/pgdb list``: renderings of the one assessment.

Nothing here decides what is wrong: every ❌ and ⚠️ shown is a finding of
:mod:`handlers.assessment`, so ``status`` and ``diagnose`` cannot disagree.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from bot.core.errors import PgdbError
from bot.core.model import ApprovalRequest, Observed, PasswordVerdict, ProposalState
from bot.core.names import AppName
from bot.core.reply import Reply
from handlers.assessment import AppAssessment, Assessment, assess
from handlers.checks import FINE, ICONS, WARNING_ICON, Check, CheckOutcome, Severity
from handlers.context import CommandContext, Services
from handlers.observe import Observation, check_passwords, known_apps, observe

PAGE_SIZE = 50
# Fleet status lists the apps that need attention first.
_ATTENTION_ORDER = {
    CheckOutcome.PROBLEM: 0,
    CheckOutcome.UNKNOWN: 1,
    CheckOutcome.PENDING: 2,
    CheckOutcome.OK: 3,
}

__all__ = ["ICONS", "Check", "CheckOutcome", "app_checks", "run_list", "run_status"]


def app_checks(
    obs: Observation, services: Services, app: AppName, verdict: PasswordVerdict | None
) -> list[Check]:
    """The checks of one app, from its assessment."""
    verdicts: dict[str, PasswordVerdict] = {app: verdict} if verdict is not None else {}
    return list(assess(obs, services, only=app, verdicts=verdicts).apps[app].checks)


def with_proposal_detail(obs: Observation, services: Services, app: AppName) -> Observation:
    """``obs`` with the app's open proposal read in full (its checks, whether it can merge).

    The snapshot lists every proposal in a few calls, so a git host may leave each one's
    checks out of it (GitHub: one more call per pull request); one app's status can afford it.
    """
    snapshot = obs.git.value
    listed = snapshot.proposals.get(app) if snapshot is not None else None
    if snapshot is None or listed is None or listed.state is not ProposalState.OPEN:
        return obs
    try:
        detail = services.git.proposal(branch=listed.branch)
    except PgdbError as exc:
        logging.getLogger(__name__).warning("status %s: proposal detail unavailable: %s", app, exc)
        return obs
    if detail is None:
        return obs
    proposals = {**snapshot.proposals, app: detail}
    return replace(obs, git=Observed.ok(replace(snapshot, proposals=proposals)))


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def request_line(obs: Observation, request: ApprovalRequest) -> str:
    """One pending ``create`` request, with the commands that decide it."""
    expiry = (
        f"expired at {_when(request.expires_at)}, not decided"
        if request.expires_at <= obs.at
        else f"expires {_when(request.expires_at)}"
    )
    return (
        f"{ICONS[CheckOutcome.PENDING]} request #{request.id}: `{request.command}` by "
        f"{request.requester}, {expiry} — `/pgdb approve {request.id}` or "
        f"`/pgdb deny {request.id} [reason]`"
    )


def pending_lines(obs: Observation) -> list[str]:
    """The requests waiting for an operator, for ``/pgdb status`` and ``/pgdb list``."""
    if obs.approvals.error is not None:
        return [f"Requests waiting for approval: unknown because {obs.approvals.error}"]
    pending = obs.approvals.value or []
    if not pending:
        return []
    return [
        f"Waiting for approval ({len(pending)}):",
        *(request_line(obs, r) for r in pending),
    ]


def app_icon(judged: AppAssessment) -> str:
    """❌ for a critical problem, ⚠️ when every problem is a warning, else the outcome's."""
    if judged.history.retired and judged.outcome in FINE:
        return ICONS[CheckOutcome.NOT_EXPECTED]
    problems = [
        c.finding
        for c in judged.checks
        if c.finding is not None and c.finding.severity is not Severity.INFO  # a note: not wrong
    ]
    if problems and all(f.severity is Severity.WARNING for f in problems):
        return WARNING_ICON
    return ICONS[judged.outcome]


def app_line(judged: AppAssessment) -> str:
    """One line per app: its state and the checks that are not fine, with their finding."""
    notes = [
        f"{c.name}: {c.finding.kind}" if c.finding is not None else c.name
        for c in judged.checks
        if c.outcome in (CheckOutcome.PROBLEM, CheckOutcome.UNKNOWN)
    ]
    state = judged.state
    if judged.history.retired and judged.outcome not in FINE:
        state += f", {judged.outcome.value}"
    return f"{app_icon(judged)} {judged.app}: {state}" + (f" ({', '.join(notes)})" if notes else "")


def _check_field(check: Check) -> tuple[str, str]:
    return f"{check.icon} {check.name}", f"{check.detail} [{check.source}]"


def run_status(ctx: CommandContext, app: AppName | None, *, page: int = 1) -> Reply:
    services = ctx.services
    obs = observe(services)
    if app is None:
        return _fleet(ctx, obs, page=page)
    obs = with_proposal_detail(obs, services, app)
    request = obs.pending_request(app)
    if app not in known_apps(obs, services):
        reply = Reply(title=f"`{app}` is not a known app", correlation_id=ctx.correlation_id)
        if request is not None:
            reply.title = f"Status of `{app}`: pending approval"
            reply.lines.append(request_line(obs, request))
        else:
            reply.lines.append(
                f"No source knows `{app}` (secret store, GitOps repository, cluster, the bot's "
                f"records). Onboard it with `/pgdb create {app}`."
            )
        return reply
    judged = assess(obs, services, only=app).apps[app]
    title_state = judged.state
    if judged.history.retired and judged.outcome not in FINE:
        title_state += f" ({judged.outcome.value})"
    reply = Reply(title=f"Status of `{app}`: {title_state}", correlation_id=ctx.correlation_id)
    reply.lines.extend(judged.notes)
    if judged.history.retired:
        leaving = obs.git.value.offboardings.get(app) if obs.git.value is not None else None
        if leaving is not None:
            reply.lines.append(
                f"The offboarding proposal {leaving.url} is open: once it is merged, Argo CD "
                f"removes the Database and InfisicalSecret of `{app}`; the database and its "
                "data stay."
            )
    updating = obs.git.value.updates.get(app) if obs.git.value is not None else None
    if updating is not None and not judged.history.retired:
        reply.lines.append(
            f"A change to its manifests is proposed: {updating.url} (`/pgdb update` and "
            "`/pgdb limits` add to it while it is open)."
        )
    reply.fields.extend(_check_field(c) for c in judged.checks)
    return reply


def _fleet(ctx: CommandContext, obs: Observation, *, page: int) -> Reply:
    """Counts per state, what is wrong outside the apps, then the apps that need attention
    first, a page at a time (a fleet of thousands does not fit in one chat message)."""
    assessment = assess(obs, ctx.services)
    judged = sorted(
        assessment.apps.values(),
        key=lambda a: (1 if a.history.retired else 0, _ATTENTION_ORDER[a.outcome], a.app),
    )
    pages = max(1, -(-len(judged) // PAGE_SIZE))
    if page < 1 or page > pages:
        return _no_such_page(ctx, page, pages, usage="/pgdb status [--page <n>]")
    reply = Reply(title=_fleet_title(assessment), correlation_id=ctx.correlation_id)
    reply.fields.extend(assessment.system_rows)
    if page == 1:
        for f in assessment.system_findings:
            if f.severity is not Severity.INFO:
                icon = (
                    ICONS[CheckOutcome.PROBLEM]
                    if f.severity is Severity.CRITICAL
                    else (WARNING_ICON)
                )
                reply.lines.append(f"{icon} {f.kind}: {f.message}")
    shown = judged[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    for a in shown:
        reply.lines.extend(n for n in a.notes if n.startswith(("🔄", "⏹")) or "rotation" in n)
        reply.lines.append(app_line(a))
    if not judged:
        reply.lines.append("No apps yet. Onboard one with `/pgdb create <app>`.")
    if page < pages:
        reply.more_hint = f"/pgdb status --page {page + 1}"
        reply.lines.append(
            f"Page {page}/{pages}: {len(judged) - page * PAGE_SIZE} more app(s), the healthiest "
            f"last — `{reply.more_hint}`"
        )
    if page == 1:
        reply.lines.extend(pending_lines(obs))
    return reply


def _fleet_title(assessment: Assessment) -> str:
    counts: dict[str, int] = {}
    for a in assessment.apps.values():
        state = "offboarded" if a.history.retired else a.outcome.value
        counts[state] = counts.get(state, 0) + 1
    order = ("problem", "unknown", "pending", "ok", "offboarded")
    summary = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
    return f"pgdb status: {len(assessment.apps)} app(s)" + (f" — {summary}" if summary else "")


def _no_such_page(ctx: CommandContext, page: int, pages: int, *, usage: str) -> Reply:
    return Reply(
        title="No such page",
        ok=False,
        private=True,
        lines=[f"page {page} does not exist: there are {pages} page(s). Usage: `{usage}`"],
        correlation_id=ctx.correlation_id,
    )


def run_list(ctx: CommandContext, page: int) -> Reply:
    services = ctx.services
    obs = observe(services)
    apps = known_apps(obs, services)
    pages = max(1, -(-len(apps) // PAGE_SIZE))
    if page < 1 or page > pages:
        return _no_such_page(ctx, page, pages, usage="/pgdb list [--page <n>]")
    shown = apps[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    reply = Reply(
        title=f"Known apps ({len(apps)}), page {page}/{pages}", correlation_id=ctx.correlation_id
    )
    # the password of the apps on this page only: the rest is not shown
    judged = assess(obs, services, verdicts=check_passwords(obs, services, shown))
    for name in shown:
        reply.lines.append(app_line(judged.apps[name]))
    if page < pages:
        reply.more_hint = f"/pgdb list --page {page + 1}"
        reply.lines.append(f"More: `{reply.more_hint}`")
    if not apps:
        reply.lines.append("No apps yet. Onboard one with `/pgdb create <app>`.")
    if page == 1:
        reply.lines.extend(pending_lines(obs))
    return reply
