"""``/pgdb repair <app>``: apply, after confirmation, the remedy of each finding of an app.

The plan is the app's assessment: every finding that names a repair step becomes that step,
in dependency order (credentials, then the role, then the manifests, then a resync), all
applied in one confirmation; a step that must wait for another says so. A finding that needs a
decision (a drifted password, a privileged role, a foreign owner, a NOLOGIN role) is listed
with the exact command or SQL an operator would run: repair never changes LOGIN and never
brings back an offboarded app (``create`` does, §11).
"""

from __future__ import annotations

from bot.core.errors import PgdbError
from bot.core.manifests.layout import secret_name
from bot.core.names import AppName
from bot.core.reply import Button, Reply, Step, StepState
from bot.core.secret import generate_password
from handlers.assessment import assess
from handlers.checks import REPAIR_ORDER, Finding, Repair, Severity
from handlers.context import CommandContext
from handlers.create import RunState, ensure_manifests
from handlers.observe import known_apps, observe

LABELS = {
    Repair.CREDENTIALS: "Store the missing credentials",
    Repair.ROLE: "Create the role with the stored password",
    Repair.MANIFESTS: "Propose the manifests again",
    Repair.RESYNC: "Re-sync the InfisicalSecret (a harmless spec change)",
}
# A step that needs another's result first.
WAITS_FOR = {Repair.ROLE: Repair.CREDENTIALS, Repair.RESYNC: Repair.CREDENTIALS}
# The steps that use the stored credentials (the role's password, the Secret the manifests
# deliver): they wait while the credentials need an operator's decision.
NEEDS_CREDENTIALS = frozenset({Repair.ROLE, Repair.MANIFESTS, Repair.RESYNC})


def plan(findings: list[Finding]) -> tuple[list[Repair], list[Finding]]:
    """The repair steps in dependency order, and the findings a human decides."""
    steps = [r for r in REPAIR_ORDER if any(f.repair is r for f in findings)]
    manual = [f for f in findings if f.repair is None and f.severity is not Severity.INFO]
    return steps, manual


def run_repair(ctx: CommandContext, app: AppName, *, confirmed: bool) -> Reply:
    services = ctx.services
    obs = observe(services)
    reply = Reply(title=f"Repair `{app}`", correlation_id=ctx.correlation_id)
    if app not in known_apps(obs, services):
        reply.ok = False
        reply.title = f"Repair `{app}`: unknown app"
        reply.lines.append(f"`{app}` is not a known app: `/pgdb create {app}` onboards it.")
        return reply
    # Repair acts on what is wrong now, even within the grace period that holds the alerts.
    judged = assess(obs, services, only=app, respect_grace=False).apps[app]
    findings = [f for f in judged.findings if f.severity is not Severity.INFO]  # notes: not wrong
    steps, manual = plan(findings)
    by_step = {r: [f for f in findings if f.repair is r] for r in steps}
    # Credentials an operator must decide on (a role with nothing stored, values naming
    # another role): what needs them waits, shown as waiting, never run on a guess.
    undecided = next(
        (f for f in manual if f.kind in ("secret_missing", "credentials_mismatch")), None
    )
    reply.steps = [
        Step(
            key=r.value,
            label=LABELS[r],
            detail="; ".join(f.message for f in by_step[r])
            + (
                f" (waits for: {LABELS[WAITS_FOR[r]].lower()})" if WAITS_FOR.get(r) in steps else ""
            ),
        )
        for r in steps
    ]
    for f in manual:
        reply.lines.append(f"Not repaired here: {f.kind} — {f.message}. Fix: {f.remedy}")
    if not findings:
        reply.title = f"Repair `{app}`: nothing to repair"
        reply.lines.append("The diagnostics find no problem for this app.")
        return reply
    if not steps:
        reply.ok = False
        reply.title = f"Repair `{app}`: nothing repair may change"
        return reply
    if not confirmed:
        for step in reply.steps:
            step.state = StepState.PLANNED
            if undecided is not None and Repair(step.key) in NEEDS_CREDENTIALS:
                step.state = StepState.SKIPPED
                step.detail = f"waits for the stored credentials: {undecided.remedy}"
        reply.title = f"Repair `{app}`: confirm"
        reply.lines.append(f"Nothing changed yet. To apply: `/pgdb repair {app} --yes`")
        reply.buttons = [
            Button(label="Repair", command=f"/pgdb repair {app} --yes", style="primary"),
        ]
        return reply
    ctx.conversation.show(reply)
    with services.state.app_lock(app) as acquired:
        if not acquired:
            reply.ok = False
            reply.lines.append(f"A workflow for `{app}` is in progress; try again when it ends.")
            return reply
        failed: set[str] = set()
        for step in reply.steps:
            if undecided is not None and Repair(step.key) in NEEDS_CREDENTIALS:
                step.state = StepState.SKIPPED
                step.detail = f"waits for the stored credentials: {undecided.remedy}"
                continue
            needs = WAITS_FOR.get(Repair(step.key))
            if needs is not None and needs.value in failed:
                step.state = StepState.SKIPPED
                step.detail = f"waits for “{LABELS[needs]}”, which failed"
                failed.add(step.key)
                continue
            try:
                _apply(ctx, app, step)
            except PgdbError as exc:
                step.state, step.detail = StepState.FAILED, str(exc)
                reply.ok = False
                failed.add(step.key)
            ctx.conversation.show(reply)
    reply.title = f"Repair `{app}`: {'done' if reply.ok else 'incomplete'}"
    return reply


def _apply(ctx: CommandContext, app: AppName, step: Step) -> None:
    services = ctx.services
    if step.key == Repair.RESYNC:
        resync = services.cluster.resync_infisical_secret(secret_name(app))
        step.state = StepState.DONE
        step.detail = (
            f"changed {resync.field} of InfisicalSecret `{resync.name}` from {resync.before} "
            f"to {resync.after} (generation {resync.generation_before} → "
            f"{resync.generation_after}): the Infisical operator resyncs now and rewrites the "
            "Secret; Argo CD may put the value back, which is harmless"
        )
        return
    if step.key == Repair.MANIFESTS:
        run = RunState(app=app)
        inner = Reply(title="", steps=[Step(key="manifests", label=step.label)])
        ensure_manifests(ctx, run, inner, extra_namespace=None)
        result = inner.step("manifests")
        step.state, step.detail = result.state, result.detail
        return
    # Observe again under the lock: act only on what is still missing.
    stored = services.secrets.read(app)
    role = services.database.observe().roles.get(app)
    if step.key == Repair.CREDENTIALS:
        if stored is not None and stored.password is not None:
            services.secrets.write(
                app, username=app, password=stored.password, database=stored.database or app
            )
            step.state, step.detail = StepState.DONE, "added the missing keys"
        elif role is None:
            services.secrets.write(app, username=app, password=generate_password(), database=app)
            step.state = StepState.DONE
            step.detail = f"stored new credentials at {services.secrets.location(app)}"
        else:
            raise PgdbError(
                f"role `{app}` now exists: a new password is an operator's decision "
                f"(`/pgdb rotate {app}`)"
            )
    elif step.key == Repair.ROLE:
        if stored is None or stored.password is None:
            raise PgdbError(f"no password is stored at {services.secrets.location(app)}")
        if role is None:
            limits = services.settings.guardrails.role_limits
            services.database.create_role(app, password=stored.password, limits=limits)
            services.state.declare_limits(
                app, limits=limits, source="repair", declared_by=ctx.requester.user_id
            )
            step.state, step.detail = StepState.DONE, f"created role `{app}` ({limits.describe()})"
        else:
            step.state, step.detail = StepState.EXISTS, "the role exists already"
