"""``/pgdb status [<app>]`` and ``/pgdb list``: every layer of an app from one observation."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace

from bot.core.errors import PgdbError
from bot.core.model import Observed, PasswordResult, PasswordVerdict, ProposalState
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


def waiting_line(obs: Observation, app: str) -> str | None:
    """The one line for an app that waits for approval (it has nothing yet, on purpose)."""
    if lifecycles(obs).get(app) is not Lifecycle.PENDING_APPROVAL:
        return None
    record = next(w for w in obs.workflows.value or [] if w.app == app)
    return f"{ICONS[CheckOutcome.PENDING]} {app}: pending approval ({record.detail})"


def run_status(ctx: CommandContext, app: AppName | None) -> Reply:
    services = ctx.services
    obs = observe(services)
    if app is not None:
        obs = with_proposal_detail(obs, services, app)
        verdict = check_passwords(obs, services, [app]).get(app)
        checks = app_checks(obs, services, app, verdict)
        known = app in known_apps(obs, services)
        reply = Reply(
            title=f"Status of `{app}`: {overall(checks).value}", correlation_id=ctx.correlation_id
        )
        if not known:
            reply.lines.append(f"`{app}` is not a known app. Onboard it with `/pgdb create {app}`.")
        waiting = waiting_line(obs, app)
        if waiting is not None:
            reply.title = f"Status of `{app}`: pending approval"
            reply.lines.append(waiting)
        for c in checks:
            reply.fields.append((f"{ICONS[c.outcome]} {c.name}", f"{c.detail} [{c.source}]"))
        return reply
    apps = known_apps(obs, services)
    verdicts = check_passwords(obs, services, apps)
    reply = Reply(title=f"pgdb status: {len(apps)} app(s)", correlation_id=ctx.correlation_id)
    reply.fields.extend(_systems(obs, services))
    for name in apps:
        waiting = waiting_line(obs, name)
        if waiting is not None:
            reply.lines.append(waiting)
            continue
        checks = app_checks(obs, services, name, verdicts.get(name))
        worst = overall(checks)
        notes = [
            c.name for c in checks if c.outcome in (CheckOutcome.PROBLEM, CheckOutcome.UNKNOWN)
        ]
        reply.lines.append(
            f"{ICONS[worst]} {name}: {worst.value}" + (f" ({', '.join(notes)})" if notes else "")
        )
    if not apps:
        reply.lines.append("No apps yet. Onboard one with `/pgdb create <app>`.")
    from handlers.approvals import pending_lines  # runs create: a cycle at the top

    pending = pending_lines(services)
    if pending:
        reply.lines.append(f"Waiting for approval ({len(pending)}):")
        reply.lines.extend(pending)
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
        waiting = waiting_line(obs, name)
        if waiting is not None:
            reply.lines.append(waiting)
            continue
        worst = overall(app_checks(obs, services, name, verdicts.get(name)))
        reply.lines.append(f"{ICONS[worst]} {name}: {worst.value}")
    if page < pages:
        reply.lines.append(f"More: `/pgdb list --page {page + 1}`")
    if not apps:
        reply.lines.append("No apps yet. Onboard one with `/pgdb create <app>`.")
    return reply
