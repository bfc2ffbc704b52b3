"""``/pgdb repair <app>``: apply the remedy of each finding of an app, after confirmation."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.errors import PgdbError
from bot.core.manifests import secret_name
from bot.core.model import RoleInfo, StoredCredentials
from bot.core.names import AppName
from bot.core.reply import Button, Reply, Step, StepState
from bot.core.secret import generate_password
from handlers.context import CommandContext
from handlers.create import RunState, ensure_manifests
from handlers.findings import Finding, diagnose
from handlers.observe import observe

# Findings a forced resync of the app's InfisicalSecret fixes (SPEC §6.3).
_RESYNCED = frozenset({"secret_unsynced", "kube_secret_missing", "kube_secret_stale"})


@dataclass(frozen=True, kw_only=True)
class Action:
    key: str
    label: str
    finding: Finding


def _plan(
    findings: list[Finding],
    *,
    stored: StoredCredentials | None,
    role: RoleInfo | None,
    infisical_present: bool = False,
) -> tuple[list[Action], list[Finding]]:
    """What repair can fix here (chosen from the observed state), and what needs another
    command (the finding's remedy)."""
    actions: list[Action] = []
    manual: list[Finding] = []
    has_password = stored is not None and stored.password is not None
    for f in findings:
        if f.kind == "secret_missing" and has_password:
            actions.append(Action(key="secret", label="Complete the stored credentials", finding=f))
        elif f.kind == "secret_missing" and role is None:
            actions.append(Action(key="secret", label="Generate and store credentials", finding=f))
        elif f.kind == "role_missing":
            label = "Create the role" if role is None else "Re-enable LOGIN"
            actions.append(Action(key="role", label=f"{label} with the stored password", finding=f))
        elif f.kind == "manifest_missing":
            actions.append(Action(key="manifests", label="Propose the manifests again", finding=f))
        elif f.kind in _RESYNCED and infisical_present:
            if not any(a.key == "resync" for a in actions):
                label = "Re-sync the InfisicalSecret (a harmless spec change)"
                actions.append(Action(key="resync", label=label, finding=f))
        elif f.kind == "database_not_applied" and f.remedy.startswith("/pgdb repair"):
            continue  # the role step fixes it: CloudNativePG retries every 30 s
        elif f.severity.value != "info":
            manual.append(f)
    if any(f.kind == "database_not_applied" for f in findings) and not any(
        a.key == "role" for a in actions
    ):
        manual.extend(
            f
            for f in findings
            if f.kind == "database_not_applied" and f.remedy.startswith("/pgdb repair")
        )
    order = {"secret": 0, "role": 1, "manifests": 2, "resync": 3}
    actions.sort(key=lambda a: order[a.key])
    return actions, manual


def run_repair(ctx: CommandContext, app: AppName, *, confirmed: bool) -> Reply:
    services = ctx.services
    obs = observe(services)
    findings = [f for f in diagnose(obs, services, respect_grace=False).findings if f.app == app]
    stored = obs.secrets.value.get(app) if obs.secrets.value is not None else None
    role = obs.database.value.roles.get(app) if obs.database.value is not None else None
    cluster = obs.cluster.value
    actions, manual = _plan(
        findings,
        stored=stored,
        role=role,
        infisical_present=cluster is not None and secret_name(app) in cluster.infisical_secrets,
    )
    reply = Reply(title=f"Repair `{app}`", correlation_id=ctx.correlation_id)
    reply.steps = [Step(key=a.key, label=a.label, detail=a.finding.message) for a in actions]
    for f in manual:
        reply.lines.append(f"Not repaired here: {f.kind} — {f.message}. Fix: {f.remedy}")
    if not findings:
        reply.title = f"Repair `{app}`: nothing to repair"
        reply.lines.append("The diagnostics find no problem for this app.")
        return reply
    if not actions:
        reply.ok = False
        return reply
    if not confirmed:
        for step in reply.steps:
            step.state = StepState.PLANNED
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
        for step in reply.steps:
            try:
                _apply(ctx, app, step)
            except PgdbError as exc:
                step.state, step.detail = StepState.FAILED, str(exc)
                reply.ok = False
                break
            ctx.conversation.show(reply)
    for step in reply.steps:
        if step.state is StepState.PENDING:
            step.state = StepState.SKIPPED
    reply.title = f"Repair `{app}`: {'done' if reply.ok else 'incomplete'}"
    return reply


def _apply(ctx: CommandContext, app: AppName, step: Step) -> None:
    services = ctx.services
    if step.key == "resync":
        resync = services.cluster.resync_infisical_secret(secret_name(app))
        step.state = StepState.DONE
        step.detail = (
            f"changed {resync.field} of InfisicalSecret `{resync.name}` from {resync.before} "
            f"to {resync.after} (generation {resync.generation_before} → "
            f"{resync.generation_after}): the Infisical operator resyncs now and rewrites the "
            "Secret; Argo CD may put the value back, which is harmless"
        )
        return
    # Observe again under the lock: act only on what is still missing.
    stored = services.secrets.read(app)
    state = services.database.observe()
    role = state.roles.get(app)
    if step.key == "secret":
        if stored is not None and stored.password is not None:
            services.secrets.write(
                app,
                username=stored.username or app,
                password=stored.password,
                database=stored.database or app,
            )
            step.state, step.detail = StepState.DONE, "added the missing keys"
        elif role is None:
            services.secrets.write(app, username=app, password=generate_password(), database=app)
            step.state = StepState.DONE
            step.detail = f"stored new credentials at {services.secrets.location(app)}"
        else:
            step.state = StepState.FAILED
            step.detail = f"role `{app}` now exists: use /pgdb rotate {app}"
            raise PgdbError(step.detail)
    elif step.key == "role":
        if stored is None or stored.password is None:
            raise PgdbError(f"no password is stored at {services.secrets.location(app)}")
        if role is None:
            services.database.create_role(app, password=stored.password)
            step.state, step.detail = StepState.DONE, f"created role `{app}`"
        elif not role.can_login:
            services.database.enable_login(app, password=stored.password)
            step.state, step.detail = StepState.DONE, f"re-enabled LOGIN on `{app}`"
        else:
            step.state, step.detail = StepState.EXISTS, "the role is already usable"
    elif step.key == "manifests":
        run = RunState(app=app)
        inner = Reply(title="", steps=[Step(key="manifests", label=step.label)])
        ensure_manifests(ctx, run, inner, extra_namespace=None)
        result = inner.step("manifests")
        step.state, step.detail = result.state, result.detail
