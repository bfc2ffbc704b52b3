"""``/pgdb limits <app> [--connections N] [--statement-timeout D]`` (operators): the
app's role gets the new limits at once (``ALTER ROLE``), its Database manifest's
``connectionLimit`` follows in a pull request on its update branch, and what the bot declared
is recorded, so ``limits_drift`` compares the role with it from then on.

Without ``--yes`` (or with ``--dry-run``) it shows what it would change and changes nothing.
"""

from __future__ import annotations

from bot.core.errors import PgdbError
from bot.core.limits import NO_LIMIT, RoleLimits, limits_command
from bot.core.model import RoleInfo
from bot.core.names import AppName
from bot.core.reply import Button, Reply, Step, StepState, error_reply
from handlers.context import CommandContext
from handlers.update import UpdatePlan, UpdateRefused, plan_update, propose_update

STEPS = (("role", "PostgreSQL role"), ("manifests", "GitOps change"))


def current_limits(role: RoleInfo) -> RoleLimits:
    return RoleLimits(
        connection_limit=role.connection_limit, statement_timeout_ms=role.statement_timeout_ms
    )


def run_limits(
    ctx: CommandContext,
    app: AppName,
    *,
    connections: int | None,
    statement_timeout_ms: int | None,
    confirmed: bool,
    dry_run: bool,
) -> Reply:
    services = ctx.services
    role = services.database.observe().roles.get(app)
    if role is None:
        return error_reply(
            f"role `{app}` does not exist: `/pgdb status {app}` says why, `/pgdb repair {app}` "
            "creates it (with the configured limits)",
            title=f"Limits of `{app}`: no role",
            correlation_id=ctx.correlation_id,
        )
    before = current_limits(role)
    if connections is None and statement_timeout_ms is None:
        return Reply(
            title=f"Limits of `{app}`",
            lines=[
                f"Role `{app}`: {before.describe()}; {role.connections} connection(s) open.",
                f"Change them with `/pgdb limits {app} --connections <n> "
                "--statement-timeout <30s|0>` (operators).",
            ],
            correlation_id=ctx.correlation_id,
        )
    wanted = RoleLimits(
        connection_limit=before.connection_limit if connections is None else connections,
        statement_timeout_ms=(
            before.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
        ),
    )
    manifest_limit = None if wanted.connection_limit == NO_LIMIT else wanted.connection_limit
    reply = Reply(
        title=f"Limits of `{app}`{'' if confirmed and not dry_run else ': confirm'}",
        steps=[Step(key=k, label=label) for k, label in STEPS],
        correlation_id=ctx.correlation_id,
    )
    try:
        plan = plan_update(ctx, app, connection_limit=manifest_limit)
    except UpdateRefused as exc:
        return error_reply(
            str(exc), title=f"Limits of `{app}`: refused", correlation_id=ctx.correlation_id
        )
    if not confirmed or dry_run:
        return _preview(ctx, app, reply, before=before, wanted=wanted, plan=plan, dry_run=dry_run)
    ctx.conversation.show(reply)
    with services.state.app_lock(app) as acquired:
        if not acquired:
            return error_reply(
                f"a workflow for `{app}` is in progress; run `/pgdb limits {app} … --yes` again "
                "when it ends",
                title=f"`{app}` is busy",
                correlation_id=ctx.correlation_id,
            )
        plan = plan_update(ctx, app, connection_limit=manifest_limit)  # again, under the lock
        role_step, manifest_step = reply.step("role"), reply.step("manifests")
        try:
            if wanted != before:
                services.database.set_limits(app, limits=wanted)
                role_step.state = StepState.DONE
                role_step.detail = f"{before.describe()} → {wanted.describe()}"
            else:
                role_step.state, role_step.detail = StepState.EXISTS, wanted.describe()
            services.state.declare_limits(
                app, limits=wanted, source="limits", declared_by=ctx.requester.user_id
            )
        except PgdbError as exc:
            role_step.state, role_step.detail = StepState.FAILED, str(exc)
            manifest_step.state, manifest_step.detail = StepState.SKIPPED, "not run"
            reply.ok = False
            reply.title = f"Limits of `{app}`: stopped"
            reply.lines.append(f"Nothing else was changed. {exc}")
            return reply
        try:
            proposal = propose_update(ctx, plan, what=f"limits ({wanted.describe()})")
        except PgdbError as exc:
            manifest_step.state, manifest_step.detail = StepState.FAILED, str(exc)
            reply.ok = False
            reply.title = f"Limits of `{app}`: the manifest change failed"
            reply.lines.append(
                "The role has its new limits; run the same command again to propose the "
                "manifest change."
            )
            return reply
    if proposal is None:
        manifest_step.state = StepState.EXISTS
        manifest_step.detail = f"{plan.path} already says connectionLimit {manifest_limit}"
    else:
        manifest_step.state = StepState.DONE if not plan.current else StepState.EXISTS
        manifest_step.detail = f"{'; '.join(plan.changes)}: {proposal.url}"
        reply.fields.append(
            ("Pull request" if proposal.number is not None else "Branch to merge", proposal.url)
        )
    changed = wanted != before or (proposal is not None and not plan.current)
    outcome = "changed" if changed else "declared: nothing else to change"
    reply.title = f"Limits of `{app}` {outcome}"
    reply.lines.append(f"Role `{app}` now has {wanted.describe()} (declared by the bot).")
    return reply


def _preview(
    ctx: CommandContext,
    app: AppName,
    reply: Reply,
    *,
    before: RoleLimits,
    wanted: RoleLimits,
    plan: UpdatePlan,
    dry_run: bool,
) -> Reply:
    role_step, manifest_step = reply.step("role"), reply.step("manifests")
    if wanted != before:
        role_step.state = StepState.PLANNED
        role_step.detail = f"would ALTER ROLE: {before.describe()} → {wanted.describe()}"
    else:
        role_step.state, role_step.detail = StepState.EXISTS, f"already {wanted.describe()}"
    if plan.changes and not plan.current:
        manifest_step.state = StepState.PLANNED
        manifest_step.detail = (
            f"would propose on branch {ctx.services.settings.layout.update_branch(app)}: "
            f"{'; '.join(plan.changes)} "
            f"(only {plan.path} changes)"
        )
    else:
        manifest_step.state = StepState.EXISTS
        manifest_step.detail = "the manifest already says so" + (
            f" ({plan.open_proposal.url})" if plan.open_proposal is not None else ""
        )
    command = limits_command(app, wanted, confirmed=True)
    if dry_run:
        reply.title = f"Limits of `{app}`: dry run"
        reply.lines.append("Dry run: nothing was changed.")
        return reply
    reply.lines.append(f"Nothing changed yet. To go ahead: `{command}`")
    reply.buttons = [Button(label="Apply the limits", command=command, style="primary")]
    return reply
