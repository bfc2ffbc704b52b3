"""``/pgdb status [<app>]`` and ``/pgdb list``: every layer of an app from one observation."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace
from datetime import datetime

from bot.core.errors import PgdbError
from bot.core.manifests import database_path, secret_path
from bot.core.model import (
    ApprovalRequest,
    Observed,
    PasswordResult,
    PasswordVerdict,
    ProposalState,
    WorkflowStatus,
)
from bot.core.names import AppName
from bot.core.reply import Reply
from handlers.context import CommandContext, Services
from handlers.lifecycle import Lifecycle
from handlers.observe import (
    Observation,
    check_passwords,
    known_apps,
    lifecycles,
    manifests_on_base,
    observe,
)
from handlers.offboard import open_offboarding

PAGE_SIZE = 50


class CheckOutcome(enum.StrEnum):
    OK = "ok"
    PENDING = "pending"
    PROBLEM = "problem"
    UNKNOWN = "unknown"
    NOT_CONFIGURED = "not configured"


ICONS = {
    CheckOutcome.OK: "✅",
    CheckOutcome.PENDING: "⏳",
    CheckOutcome.PROBLEM: "❌",
    CheckOutcome.UNKNOWN: "❔",
    CheckOutcome.NOT_CONFIGURED: "⚪",
}


@dataclass(frozen=True, kw_only=True)
class AppCheck:
    name: str
    outcome: CheckOutcome
    detail: str
    source: str


def app_checks(
    obs: Observation, services: Services, app: AppName, verdict: PasswordVerdict | None
) -> list[AppCheck]:
    """The checks of SPEC §5 for one app, each with its outcome and source."""
    checks: list[AppCheck] = []
    store = services.secrets.kind + " secret store"
    if obs.secrets.value is None:
        checks.append(
            AppCheck(
                name="credentials stored",
                outcome=CheckOutcome.UNKNOWN,
                detail=f"unknown because {obs.secrets.error}",
                source=store,
            )
        )
        stored = None
    else:
        stored = obs.secrets.value.get(app)
        if stored is not None and stored.complete:
            checks.append(
                AppCheck(
                    name="credentials stored",
                    outcome=CheckOutcome.OK,
                    detail=services.secrets.location(app),
                    source=store,
                )
            )
        else:
            missing = ", ".join(stored.missing_keys) if stored else "username, password, database"
            checks.append(
                AppCheck(
                    name="credentials stored",
                    outcome=CheckOutcome.PROBLEM,
                    detail=f"missing {missing} at {services.secrets.location(app)}",
                    source=store,
                )
            )
    state = obs.database.value
    if state is None:
        for name in ("role", "stored password opens the role", "database"):
            checks.append(
                AppCheck(
                    name=name,
                    outcome=CheckOutcome.UNKNOWN,
                    detail=f"unknown because {obs.database.error}",
                    source="PostgreSQL",
                )
            )
    else:
        role = state.roles.get(app)
        if role is None:
            checks.append(
                AppCheck(
                    name="role",
                    outcome=CheckOutcome.PROBLEM,
                    detail=f"role `{app}` does not exist",
                    source="PostgreSQL",
                )
            )
        elif not role.can_login:
            checks.append(
                AppCheck(
                    name="role",
                    outcome=CheckOutcome.PROBLEM,
                    detail="NOLOGIN: the role cannot log in",
                    source="PostgreSQL",
                )
            )
        elif role.dangerous_attributes or role.privileged_memberships:
            what = ", ".join([*role.dangerous_attributes, *role.privileged_memberships])
            checks.append(
                AppCheck(
                    name="role",
                    outcome=CheckOutcome.PROBLEM,
                    detail=f"LOGIN, but unsafe: {what}",
                    source="PostgreSQL",
                )
            )
        else:
            checks.append(
                AppCheck(
                    name="role",
                    outcome=CheckOutcome.OK,
                    detail="LOGIN, no dangerous attributes or memberships",
                    source="PostgreSQL",
                )
            )
        checks.append(
            _password_check(
                verdict,
                has_role=role is not None,
                stored=stored is not None and stored.password is not None,
            )
        )
        db = state.databases.get(app)
        if db is None:
            checks.append(
                AppCheck(
                    name="database",
                    outcome=CheckOutcome.PENDING,
                    detail=f"database `{app}` not created yet "
                    "(CloudNativePG creates it from the Database manifest)",
                    source="PostgreSQL",
                )
            )
        elif db.owner != app:
            checks.append(
                AppCheck(
                    name="database",
                    outcome=CheckOutcome.PROBLEM,
                    detail=f"owned by `{db.owner}`, not `{app}`",
                    source="PostgreSQL",
                )
            )
        else:
            checks.append(
                AppCheck(
                    name="database",
                    outcome=CheckOutcome.OK,
                    detail=f"exists, owned by `{app}`",
                    source="PostgreSQL",
                )
            )
    checks.append(_manifest_check(obs, services, app))
    from handlers.cluster_checks import kube_checks  # imports this module: a cycle at the top

    checks.extend(kube_checks(obs, services, app))
    return checks


def _password_check(verdict: PasswordVerdict | None, *, has_role: bool, stored: bool) -> AppCheck:
    name, source = "stored password opens the role", "PostgreSQL"
    if not has_role or not stored:
        why = "no role" if not has_role else "no stored password"
        return AppCheck(
            name=name, outcome=CheckOutcome.UNKNOWN, detail=f"unknown because {why}", source=source
        )
    if verdict is None:
        return AppCheck(
            name=name, outcome=CheckOutcome.UNKNOWN, detail="not checked", source=source
        )
    how = "verifier comparison" if verdict.method == "verifier" else "real login"
    if verdict.result is PasswordResult.MATCH:
        return AppCheck(name=name, outcome=CheckOutcome.OK, detail=f"yes ({how})", source=source)
    if verdict.result is PasswordResult.MISMATCH:
        return AppCheck(
            name=name,
            outcome=CheckOutcome.PROBLEM,
            detail=f"no ({how}) — drift: /pgdb rotate",
            source=source,
        )
    return AppCheck(
        name=name,
        outcome=CheckOutcome.UNKNOWN,
        detail=f"unknown because {verdict.detail}",
        source=source,
    )


def _manifest_check(obs: Observation, services: Services, app: AppName) -> AppCheck:
    source = f"git ({services.git.kind})"
    snapshot = obs.git.value
    name = "manifests"
    if snapshot is None:
        return AppCheck(
            name=name,
            outcome=CheckOutcome.UNKNOWN,
            detail=f"unknown because {obs.git.error}",
            source=source,
        )
    if manifests_on_base(snapshot, app):
        return AppCheck(
            name=name,
            outcome=CheckOutcome.OK,
            detail=f"on branch {snapshot.base_branch}",
            source=source,
        )
    proposal = snapshot.proposals.get(app)
    if proposal is not None and proposal.state is not ProposalState.CLOSED:
        checks = (
            ", ".join(f"{c.context} {c.state.value}" for c in proposal.checks) or "no checks yet"
        )
        label = f"#{proposal.number} " if proposal.number else ""
        outcome = CheckOutcome.PENDING if proposal.state is ProposalState.OPEN else CheckOutcome.OK
        return AppCheck(
            name=name,
            outcome=outcome,
            detail=f"{label}{proposal.state.value}: {proposal.url} ({checks})",
            source=source,
        )
    return AppCheck(
        name=name,
        outcome=CheckOutcome.PROBLEM,
        detail=f"not on branch {snapshot.base_branch} and no open proposal",
        source=source,
    )


def overall(checks: list[AppCheck]) -> CheckOutcome:
    outcomes = {c.outcome for c in checks}
    for level in (CheckOutcome.PROBLEM, CheckOutcome.UNKNOWN, CheckOutcome.PENDING):
        if level in outcomes:
            return level
    return CheckOutcome.OK


def _systems(obs: Observation, services: Services) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    db = obs.database.value
    rows.append(
        (
            "PostgreSQL",
            f"{ICONS[CheckOutcome.OK]} server {db.server_version // 10000}, "
            f"bot role `{db.bot_role}`"
            if db
            else f"{ICONS[CheckOutcome.PROBLEM]} {obs.database.error}",
        )
    )
    rows.append(
        (
            "Secret store",
            f"{ICONS[CheckOutcome.OK]} {services.secrets.kind}"
            if obs.secrets.value is not None
            else f"{ICONS[CheckOutcome.PROBLEM]} {obs.secrets.error}",
        )
    )
    git = obs.git.value
    rows.append(
        (
            "GitOps",
            f"{ICONS[CheckOutcome.OK]} {services.git.kind}, {git.base_branch} at {git.base_sha[:8]}"
            if git
            else f"{ICONS[CheckOutcome.PROBLEM]} {obs.git.error}",
        )
    )
    from handlers.cluster_checks import kube_system_row

    rows.append(("Kubernetes", kube_system_row(obs, services)))
    return rows


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


# The checks a rotation makes disagree on purpose between the store write and ALTER ROLE.
_ROTATION_CHECKS = frozenset(
    {"stored password opens the role", "Kubernetes Secret carries the stored password"}
)


def with_rotation(
    obs: Observation, services: Services, app: str, checks: list[AppCheck]
) -> tuple[list[AppCheck], str | None]:
    """The checks as a rotation in progress explains them, and one line saying where it is."""
    from handlers.findings import rotation_of  # findings imports this module's neighbours

    rotation = rotation_of(obs, app)
    if rotation is None:
        return checks, None
    since = f"{rotation.started_at:%Y-%m-%d %H:%M:%S} UTC"
    age = (obs.at - rotation.updated_at).total_seconds()
    if rotation.status is WorkflowStatus.RUNNING and age < services.settings.grace_seconds:
        line = f"🔄 {app}: rotation in progress since {since} (step “{rotation.step}”)"
        outcome, suffix = CheckOutcome.PENDING, " (rotation in progress)"
    else:
        line = (
            f"⚠️ {app}: rotation started at {since} stopped at step “{rotation.step}”"
            + (f": {rotation.detail}" if rotation.detail else "")
            + f" — finish it with `/pgdb rotate {app} --yes` (it reuses the new password when the "
            "store holds it)"
        )
        outcome, suffix = CheckOutcome.PROBLEM, f" — finish the rotation: /pgdb rotate {app} --yes"
    adjusted = [
        replace(c, outcome=outcome, detail=c.detail + suffix)
        if c.name in _ROTATION_CHECKS and c.outcome is CheckOutcome.PROBLEM
        else c
        for c in checks
    ]
    return adjusted, line


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


_RETIRED = (Lifecycle.OFFBOARDED, Lifecycle.OFFBOARDING)


def offboarded_line(obs: Observation, app: str) -> str | None:
    """The one line for an offboarded app (or one whose offboarding stopped): when and by
    whom, and the offboarding proposal while the manifests are still on the base branch."""
    state = lifecycles(obs).get(app)
    if state not in _RETIRED:
        return None
    record = next(w for w in obs.workflows.value or [] if w.app == app)
    when = f"{record.updated_at:%Y-%m-%d %H:%M} UTC by {record.requester}"
    if state is Lifecycle.OFFBOARDING:
        if record.status is WorkflowStatus.RUNNING:
            return f"{ICONS[CheckOutcome.PENDING]} {app}: offboarding in progress (started {when})"
        return (
            f"{ICONS[CheckOutcome.PROBLEM]} {app}: offboarding stopped at step {record.step} "
            f"({when}): {record.detail} — finish it with `/pgdb offboard {app} --yes`"
        )
    line = f"{ICONS[CheckOutcome.NOT_CONFIGURED]} {app}: offboarded on {when}"
    snapshot = obs.git.value
    if snapshot is not None and record.proposal_url:
        named = AppName(app)  # a known app: validated when it was found
        if {database_path(named), secret_path(named)} & snapshot.files:
            line += (
                f" (its manifests leave {snapshot.base_branch} once {record.proposal_url} "
                "is merged)"
            )
    role = obs.database.value.roles.get(app) if obs.database.value is not None else None
    if role is not None and role.can_login:
        line += f" — {ICONS[CheckOutcome.PROBLEM]} role `{app}` can log in again"
    return line


def _offboarded_checks(
    obs: Observation, services: Services, app: AppName, checks: list[AppCheck]
) -> list[AppCheck]:
    """The checks of an offboarded app, read against what offboarding leaves on purpose: a
    NOLOGIN role, no manifests, no Kubernetes resources, the database kept."""
    from handlers.cluster_checks import KUBE_CHECKS

    finished = lifecycles(obs).get(app) is Lifecycle.OFFBOARDED
    snapshot = obs.git.value
    ok, pending, problem = CheckOutcome.OK, CheckOutcome.PENDING, CheckOutcome.PROBLEM
    out: list[AppCheck] = []
    for c in checks:
        outcome, detail = c.outcome, c.detail
        if c.name == "role":
            if outcome is problem and ("NOLOGIN" in detail or "does not exist" in detail):
                outcome, detail = ok, f"{detail} (offboarded)"
            elif outcome is ok and finished:
                outcome = problem
                detail = (
                    f"LOGIN although `{app}` is offboarded: `/pgdb offboard {app} --yes` sets "
                    "NOLOGIN again"
                )
        elif c.name in ("stored password opens the role", "credentials stored"):
            if outcome is not ok:
                outcome = ok
                detail = f"{detail} (offboarded: `/pgdb create {app}` sets the password)"
        elif c.name == "database":
            if outcome is pending:
                outcome, detail = ok, f"database `{app}` does not exist (never created)"
            elif outcome is ok:
                detail = f"{detail}: kept with its data (offboarded)"
        elif c.name == "manifests" and snapshot is not None:
            listed = snapshot.proposals.get(app)
            if listed is not None and listed.state is ProposalState.OPEN:
                outcome = problem
                detail = f"the onboarding proposal {listed.url} is still open: close it"
            elif manifests_on_base(snapshot, app):
                outcome = pending
                detail = f"still on branch {snapshot.base_branch}: the offboarding proposal " + (
                    "removes them once merged"
                )
            else:
                outcome, detail = ok, f"removed from branch {snapshot.base_branch} (offboarded)"
        elif c.name in KUBE_CHECKS and outcome in (pending, problem):
            outcome, detail = ok, f"{detail} (offboarded: not expected)"
        out.append(replace(c, outcome=outcome, detail=detail))
    return out


def _offboarding_proposal(services: Services, app: AppName) -> str | None:
    try:
        found = open_offboarding(services, app)
    except PgdbError as exc:
        return f"the offboarding proposal could not be read: {exc}"
    if found is None:
        return None
    return (
        f"The offboarding proposal {found.url} is open: once it is merged, Argo CD removes the "
        f"Database and InfisicalSecret of `{app}`; the database and its data stay."
    )


def run_status(ctx: CommandContext, app: AppName | None) -> Reply:
    services = ctx.services
    obs = observe(services)
    if app is not None:
        obs = with_proposal_detail(obs, services, app)
        verdict = check_passwords(obs, services, [app]).get(app)
        checks, rotating = with_rotation(
            obs, services, app, app_checks(obs, services, app, verdict)
        )
        known = app in known_apps(obs, services)
        reply = Reply(
            title=f"Status of `{app}`: {overall(checks).value}", correlation_id=ctx.correlation_id
        )
        if not known:
            reply.lines.append(f"`{app}` is not a known app. Onboard it with `/pgdb create {app}`.")
        if rotating is not None:
            reply.lines.append(rotating)
        request = obs.pending_request(app)
        if request is not None:
            if not known:  # nothing exists yet, on purpose
                reply.title = f"Status of `{app}`: pending approval"
                reply.lines.clear()
            reply.lines.append(request_line(obs, request))
        retired = offboarded_line(obs, app)
        if retired is not None:
            checks = _offboarded_checks(obs, services, app, checks)
            worst = overall(checks)
            reply.title = f"Status of `{app}`: " + (
                "offboarded" if lifecycles(obs).get(app) is Lifecycle.OFFBOARDED else "offboarding"
            )
            if worst is not CheckOutcome.OK:
                reply.title += f" ({worst.value})"
            reply.lines.append(retired)
            proposal = _offboarding_proposal(services, app)
            if proposal is not None:
                reply.lines.append(proposal)
        for c in checks:
            reply.fields.append((f"{ICONS[c.outcome]} {c.name}", f"{c.detail} [{c.source}]"))
        return reply
    apps = known_apps(obs, services)
    verdicts = check_passwords(obs, services, apps)
    reply = Reply(title=f"pgdb status: {len(apps)} app(s)", correlation_id=ctx.correlation_id)
    reply.fields.extend(_systems(obs, services))
    for name in apps:
        retired = offboarded_line(obs, name)
        if retired is not None:
            reply.lines.append(retired)
            continue
        checks, rotating = with_rotation(
            obs, services, name, app_checks(obs, services, name, verdicts.get(name))
        )
        worst = overall(checks)
        if rotating is not None:
            reply.lines.append(rotating)
        notes = [
            c.name for c in checks if c.outcome in (CheckOutcome.PROBLEM, CheckOutcome.UNKNOWN)
        ]
        reply.lines.append(
            f"{ICONS[worst]} {name}: {worst.value}" + (f" ({', '.join(notes)})" if notes else "")
        )
    if not apps:
        reply.lines.append("No apps yet. Onboard one with `/pgdb create <app>`.")
    reply.lines.extend(pending_lines(obs))
    return reply


def run_list(ctx: CommandContext, page: int) -> Reply:
    services = ctx.services
    obs = observe(services)
    apps = known_apps(obs, services)
    pages = max(1, -(-len(apps) // PAGE_SIZE))
    if page < 1 or page > pages:
        return Reply(
            title="No such page",
            ok=False,
            private=True,
            lines=[
                f"page {page} does not exist: there are {pages} page(s). "
                "Usage: `/pgdb list [--page <n>]`"
            ],
            correlation_id=ctx.correlation_id,
        )
    shown = apps[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    verdicts = check_passwords(obs, services, shown)
    reply = Reply(
        title=f"Known apps ({len(apps)}), page {page}/{pages}", correlation_id=ctx.correlation_id
    )
    for name in shown:
        retired = offboarded_line(obs, name)
        if retired is not None:
            reply.lines.append(retired)
            continue
        worst = overall(app_checks(obs, services, name, verdicts.get(name)))
        reply.lines.append(f"{ICONS[worst]} {name}: {worst.value}")
    if page < pages:
        reply.lines.append(f"More: `/pgdb list --page {page + 1}`")
    if not apps:
        reply.lines.append("No apps yet. Onboard one with `/pgdb create <app>`.")
    if page == 1:
        reply.lines.extend(pending_lines(obs))
    return reply
