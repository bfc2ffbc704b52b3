"""``/pgdb offboard <app>``: reversible removal of an app, after confirmation (issue 10).

What happens: a pull request on ``pgdb-offboard/<app>`` removes the app's two manifests and
their ``kustomization.yaml`` entries (the ``Database`` keeps ``databaseReclaimPolicy: retain``,
so CloudNativePG leaves the database and its data alone; the bot never writes
``ensure: absent``, which drops it); the role is set to NOLOGIN (its password stays, so
``create`` brings the app back as it was); the stored credentials are kept unless
``PGDB_OFFBOARD_DELETE_SECRET`` is true.

Each step observes first and acts only on what is still there, so a re-run after a failure
finishes the job and a re-run after success changes nothing.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass, field

from bot.core.errors import PgdbError
from bot.core.manifests.layout import KUSTOMIZATION_FILE, database_path, secret_name, secret_path
from bot.core.manifests.offboarding import (
    database_patches,
    orphaned_copies,
    reclaim_problem,
    removal,
)
from bot.core.manifests.runbook_page import read_page
from bot.core.model import (
    GitSnapshot,
    Proposal,
    ProposalState,
    WorkflowRecord,
    WorkflowStatus,
)
from bot.core.names import AppName
from bot.core.reply import Button, Reply, Step, StepState, error_reply
from handlers.context import CommandContext, Services
from handlers.lifecycle import OFFBOARD, SECRET_DELETED, Lifecycle, lifecycle_of
from handlers.observe import known_apps, observe, read_git
from handlers.rotate import refuse_during_rotation
from handlers.workflow import StepStopped, fail_step, run_steps, stop_at

log = logging.getLogger(__name__)

STEPS = (
    ("manifests", "GitOps change"),
    ("role", "PostgreSQL role"),
    ("secret", "Credentials in the secret store"),
)


class Refused(StepStopped):
    """A step that must not go ahead; the message names what is wrong and the fix."""


def title(app: AppName) -> str:
    return f"pgdb: offboard {app}"


def open_offboarding(services: Services, app: AppName) -> Proposal | None:
    """The app's offboarding proposal while it is open (merging it removes the manifests)."""
    found = services.git.proposal(branch=services.settings.layout.offboard_branch(app))
    return found if found is not None and found.state is ProposalState.OPEN else None


@dataclass(kw_only=True)
class _Plan:
    """What each step finds, read before acting (and again under the lock)."""

    snapshot: GitSnapshot
    changes: dict[str, str | None]
    removed: list[str] = field(default_factory=list)  # relative to the manifests folder
    proposal: Proposal | None = None  # the open offboarding proposal, if one is current
    notes: list[str] = field(default_factory=list)


def run_offboard(ctx: CommandContext, app: AppName, *, confirmed: bool) -> Reply:
    services = ctx.services
    reply = Reply(
        title=f"Offboard `{app}`{'' if confirmed else ': confirm'}",
        steps=[Step(key=k, label=label) for k, label in STEPS],
        correlation_id=ctx.correlation_id,
    )
    if not confirmed:
        blocked = refuse_during_rotation(
            app, _latest(services, app), command=f"/pgdb offboard {app}"
        )
        if blocked is not None:
            return _rotating(ctx, app, blocked)
        return _confirm(ctx, app, reply)
    if app not in known_apps(observe(services), services):
        return _unknown(ctx, app, reply)  # with or without --yes
    ctx.conversation.show(reply)
    with services.state.app_lock(app) as acquired:
        if not acquired:
            reply.ok = False
            reply.title = f"Offboard `{app}`: another workflow is running"
            reply.lines.append(
                f"A workflow for `{app}` is in progress; run `/pgdb offboard {app} --yes` again "
                "when it ends."
            )
            return reply
        # Before this run's own record, which would hide the stopped rotation: its re-run
        # would then generate yet another password.
        blocked = refuse_during_rotation(
            app, _latest(services, app), command=f"/pgdb offboard {app} --yes"
        )
        if blocked is not None:
            return _rotating(ctx, app, blocked)
        record = _latest(services, app)
        if lifecycle_of(record) is Lifecycle.OFFBOARDED and _nothing_left(ctx, app, reply):
            return _already(ctx, app, reply, record)
        _fresh(reply)  # _nothing_left may have filled the steps
        try:
            planned: _Plan | PgdbError = _plan_manifests(ctx, app)
        except Refused as exc:  # unsafe: refused before anything changes, and not recorded
            return _refused(app, reply, str(exc))
        except PgdbError as exc:  # the run stops at its first step with it, recorded
            planned = exc
        return _run(ctx, app, reply, planned)


def _fresh(reply: Reply) -> None:
    for step in reply.steps:
        step.state, step.detail = StepState.PENDING, ""
    reply.lines.clear()
    reply.ok = True


def _rotating(ctx: CommandContext, app: AppName, blocked: str) -> Reply:
    return error_reply(
        f"{blocked}. Nothing was changed.",
        title=f"`{app}` is being rotated",
        correlation_id=ctx.correlation_id,
    )


def _refused(app: AppName, reply: Reply, cause: str) -> Reply:
    reply.title = f"Offboard `{app}`: refused"
    fail_step(reply, "manifests", cause)
    reply.lines.append("Nothing was changed.")
    return reply


def _run(ctx: CommandContext, app: AppName, reply: Reply, planned: _Plan | PgdbError) -> Reply:
    services = ctx.services
    workflow_id = services.state.start_workflow(
        app=app, kind=OFFBOARD, requester=ctx.requester.user_id
    )
    opened: list[Proposal] = []  # the removal's pull request, once there is one

    def manifests(_: Step) -> None:
        if isinstance(planned, PgdbError):
            raise planned
        proposal = _manifests(ctx, app, reply, planned)
        opened.extend([proposal] if proposal is not None else [])

    stopped = run_steps(
        ctx,
        reply,
        workflow_id,
        kind=OFFBOARD,
        steps=[
            ("manifests", manifests),
            ("role", lambda _: _role(ctx, app, reply)),
            ("secret", lambda _: _secret(ctx, app, reply)),
        ],
        proposal=lambda: opened[0] if opened else None,
    )
    if stopped is not None:
        return _fail(ctx, app, reply, workflow_id, stopped.step, stopped.cause)
    proposal = opened[0] if opened else None
    deleted = reply.step("secret").state is StepState.DONE
    services.state.update_workflow(
        workflow_id,
        step="done",
        status=WorkflowStatus.DONE,
        detail=SECRET_DELETED if deleted else "credentials kept",
        proposal_url=proposal.url if proposal else None,
    )
    reply.title = f"Offboarded `{app}`"
    _report(ctx, app, reply, proposal)
    return reply


def _fail(
    ctx: CommandContext, app: AppName, reply: Reply, workflow_id: int, step: str, cause: str
) -> Reply:
    reply.title = f"Offboard `{app}`: stopped"
    return stop_at(
        ctx,
        reply,
        workflow_id,
        step,
        cause=cause,
        resume=f"Fix the cause and run `/pgdb offboard {app} --yes` again: it finishes what "
        "is left.",
    )


# --- steps ----------------------------------------------------------------------------------


def _plan_manifests(ctx: CommandContext, app: AppName) -> _Plan:
    """The removal commit against the current base, after the safety checks."""
    services = ctx.services
    settings = services.settings
    git = services.git
    snapshot = read_git(services)
    folder = settings.layout.gitops_path.strip("/")
    try:
        changes = removal(
            app,
            folder=folder,
            files_on_base=snapshot.files,
            kustomization=snapshot.kustomization,
            runbook_page=read_page(
                snapshot.files,
                folder=folder,
                read=lambda path: git.read_file(ref=snapshot.base_sha, path=path),
            ),
        )
    except ValueError as exc:
        raise Refused(
            f"kustomization.yaml on {snapshot.base_branch} cannot be edited ({exc}); remove "
            f"`{database_path(app)}` and `{secret_path(app)}` from its resources by hand"
        ) from None
    plan = _Plan(
        snapshot=snapshot,
        changes=changes,
        removed=[posixpath.relpath(p, folder) for p, t in changes.items() if t is None],
    )
    _guard_the_data(ctx, app, snapshot, folder=folder)
    if secret_path(app) in snapshot.files:
        manifest = git.read_file(
            ref=snapshot.base_sha, path=posixpath.join(folder, secret_path(app))
        )
        for namespace, name in orphaned_copies(manifest or "", namespace=settings.layout.namespace):
            plan.notes.append(
                f"The copy of Secret `{name}` in namespace `{namespace}` is not owned by the "
                "InfisicalSecret and stays after the merge: once the app is gone, "
                f"`kubectl -n {namespace} delete secret {name}`"
            )
    onboarding = snapshot.proposals.get(app)
    if onboarding is not None and onboarding.state is ProposalState.OPEN:
        plan.notes.append(
            f"The onboarding proposal {onboarding.url} is still open: close it (merging it "
            "would add the manifests back)"
        )
    if changes:
        found = git.proposal(branch=settings.layout.offboard_branch(app))
        if (
            found is not None
            and found.state is ProposalState.OPEN
            and found.base_sha == snapshot.base_sha
            and found.mergeable is not False
            and all(
                git.read_file(ref=found.head_sha, path=path) == text
                for path, text in changes.items()
            )
        ):
            plan.proposal = found
    return plan


def _guard_the_data(
    ctx: CommandContext, app: AppName, snapshot: GitSnapshot, *, folder: str
) -> None:
    """Refuse (raise :class:`Refused`) when removing the app's ``Database`` could let
    CloudNativePG drop the database: its manifest on the base branch, a kustomization patch
    that may change it, or the live object (when Kubernetes is configured) says anything but
    ``databaseReclaimPolicy: retain``."""
    git = ctx.services.git
    base = snapshot.base_branch
    removing = database_path(app) in snapshot.files
    if removing:
        path = posixpath.join(folder, database_path(app))
        text = git.read_file(ref=snapshot.base_sha, path=path) or ""
        problem = reclaim_problem(text)
        if problem is not None:
            raise Refused(
                f"`{path}` on {base}: {problem}. Removing it would let "
                f"CloudNativePG DROP database `{app}` and its data. Set `databaseReclaimPolicy: "
                f"retain` in its spec on {base} (and let Argo CD apply it), then "
                f"run `/pgdb offboard {app}` again"
            )

        def read(relative: str) -> str | None:
            return git.read_file(
                ref=snapshot.base_sha, path=posixpath.normpath(posixpath.join(folder, relative))
            )

        patches = database_patches(snapshot.kustomization or "", app, read=read)
        if patches:
            kustomization = posixpath.join(folder, KUSTOMIZATION_FILE)
            raise Refused(
                f"`{kustomization}` on {base} patches a Database: {'; '.join(patches)}. A patch "
                "can set `databaseReclaimPolicy: delete` on the live Database, and then removing "
                f"`{database_path(app)}` would let CloudNativePG DROP database `{app}` and its "
                "data. Move what the patch sets into the Database manifests themselves (keeping "
                f"`databaseReclaimPolicy: retain`), remove the patch from kustomization.yaml on "
                f"{base} and let Argo CD apply it, then run `/pgdb offboard {app}` again"
            )
    problem = _live_problem(ctx, app, base=base, removing=removing)
    if problem is not None:
        raise Refused(problem)


def _live_problem(ctx: CommandContext, app: AppName, *, base: str, removing: bool) -> str | None:
    """What the live ``Database`` CR says that makes offboarding unsafe (Kubernetes configured).

    When the removal deletes the manifest, a policy that cannot be read refuses too; else only
    a live object that says something other than retain does (it is deleted sooner or later).
    """
    cluster = ctx.services.cluster
    if not cluster.configured:
        return None
    unknown: str | None = None
    try:
        observed = cluster.observe()
    except PgdbError as exc:
        unknown = str(exc)
    else:
        unknown = observed.errors.get("Database")
    if unknown is not None:
        if not removing:
            return None
        return (
            f"the live Database of `{app}` could not be read ({unknown}), so its "
            "`databaseReclaimPolicy` cannot be checked, and removing its manifest could let "
            f"CloudNativePG DROP database `{app}` and its data. Fix the access to Kubernetes "
            f"(or check by hand: `kubectl get database -n {ctx.services.settings.layout.namespace} "
            f"{app} -o jsonpath='{{.spec.databaseReclaimPolicy}}'` must print retain or "
            f"nothing), then run `/pgdb offboard {app}` again"
        )
    namespace = observed.namespace
    for found in observed.databases.values():
        mine = found.name == app or (
            found.database == app and found.cluster == observed.cluster_name
        )
        if not mine or not found.drops_on_delete:
            continue
        return (
            f"the live Database `{found.name}` in namespace `{namespace}` says "
            f"`databaseReclaimPolicy: {found.reclaim_policy}`: once it is deleted (Argo CD "
            f"prunes it when the offboarding is merged), CloudNativePG would DROP database "
            f"`{app}` and its data. Set it to retain where it comes from (its manifest or a "
            f"kustomization patch on {base}) and let Argo CD apply it, or at once: `kubectl -n "
            f"{namespace} patch database {found.name} --type merge -p "
            """'{"spec":{"databaseReclaimPolicy":"retain"}}'`; then run """
            f"`/pgdb offboard {app}` again"
        )
    return None


def _describe(plan: _Plan) -> str:
    return " and ".join(f"`{path}`" for path in plan.removed) or "no file"


def _manifests(ctx: CommandContext, app: AppName, reply: Reply, plan: _Plan) -> Proposal | None:
    services = ctx.services
    git = services.git
    step = reply.step("manifests")
    reply.lines.extend(plan.notes)
    base = plan.snapshot.base_branch
    branch = services.settings.layout.offboard_branch(app)
    if not plan.changes:
        step.state = StepState.EXISTS
        step.detail = f"no manifests of `{app}` on {base}: nothing to remove"
        return None
    if plan.proposal is not None:
        proposal = git.open_proposal(branch=branch, title=title(app), body=_body(ctx, app))
        step.state, step.detail = StepState.EXISTS, f"reused the open proposal: {proposal.url}"
        return proposal
    previous = git.proposal(branch=branch)
    sha = git.commit(
        parent=plan.snapshot.base_sha,
        files=plan.changes,
        message=f"{title(app)}\n\nRequested by {ctx.requester.user_id} through pgdb-bot. "
        "The database is kept (databaseReclaimPolicy: retain).\n",
    )
    git.set_branch(branch=branch, sha=sha)
    proposal = git.open_proposal(branch=branch, title=title(app), body=_body(ctx, app))
    rebuilt = previous is not None and previous.state is ProposalState.OPEN
    step.state = StepState.DONE
    step.detail = (
        f"{'rebuilt on the current base' if rebuilt else 'opened'}: {proposal.url} "
        f"(removes {_describe(plan)} and their kustomization.yaml entries)"
    )
    return proposal


def _role(ctx: CommandContext, app: AppName, reply: Reply) -> None:
    services = ctx.services
    step = reply.step("role")
    role = services.database.observe().roles.get(app)
    if role is None:
        step.state, step.detail = StepState.EXISTS, f"role `{app}` does not exist"
        return
    if not role.can_login:
        step.state, step.detail = StepState.EXISTS, f"role `{app}` is already NOLOGIN"
        return
    sessions = services.database.disable_login(app)
    step.state = StepState.DONE
    step.detail = f"role `{app}` set to NOLOGIN (its password is kept)"
    if sessions:
        step.detail += (
            f"; {sessions} session(s) already open keep running until they disconnect "
            f"(stop the app, or as a superuser: SELECT pg_terminate_backend(pid) FROM "
            f"pg_stat_activity WHERE usename = '{app}')"
        )


def _secret(ctx: CommandContext, app: AppName, reply: Reply) -> None:
    services = ctx.services
    step = reply.step("secret")
    location = services.secrets.location(app)
    if not services.settings.options.offboard_delete_secret:
        stored = services.secrets.read(app)
        step.state = StepState.EXISTS
        step.detail = (
            f"kept at {location}: `/pgdb create {app}` brings the app back with this password"
            if stored is not None
            else f"nothing stored at {location}"
        )
        return
    if services.secrets.delete(app):
        step.state = StepState.DONE
        step.detail = f"deleted {location} (PGDB_OFFBOARD_DELETE_SECRET=true)"
    else:
        step.state, step.detail = StepState.EXISTS, f"nothing stored at {location}"


# --- confirmation, no-op and report ---------------------------------------------------------


def _latest(services: Services, app: AppName) -> WorkflowRecord | None:
    return services.state.latest_workflow(app)


def _preview(ctx: CommandContext, app: AppName, reply: Reply) -> bool:
    """Fill the steps with what a run would do; True when it would change something."""
    services = ctx.services
    changes = False
    man = reply.step("manifests")
    try:
        plan = _plan_manifests(ctx, app)
    except Refused as exc:
        man.state, man.detail = StepState.FAILED, str(exc)
        reply.ok = False
        plan = None
    if plan is not None:
        reply.lines.extend(plan.notes)
        base = plan.snapshot.base_branch
        if not plan.changes:
            man.state, man.detail = StepState.EXISTS, f"no manifests of `{app}` on {base}"
        elif plan.proposal is not None:
            man.state = StepState.EXISTS
            man.detail = f"the open proposal {plan.proposal.url} removes them"
        else:
            changes = True
            man.state = StepState.PLANNED
            man.detail = (
                f"would propose on branch {ctx.services.settings.layout.offboard_branch(app)} "
                f"to remove {_describe(plan)} and "
                f"their kustomization.yaml entries from {base}; database `{app}` and its data "
                "stay (databaseReclaimPolicy: retain)"
            )
    role = services.database.observe().roles.get(app)
    role_step = reply.step("role")
    if role is None:
        role_step.state, role_step.detail = StepState.EXISTS, f"role `{app}` does not exist"
    elif not role.can_login:
        role_step.state, role_step.detail = StepState.EXISTS, f"role `{app}` is already NOLOGIN"
    else:
        changes = True
        role_step.state = StepState.PLANNED
        role_step.detail = (
            f"would set role `{app}` to NOLOGIN (password kept; open sessions are left to end)"
        )
    stored = services.secrets.read(app)
    secret = reply.step("secret")
    location = services.secrets.location(app)
    if stored is None:
        secret.state, secret.detail = StepState.EXISTS, f"nothing stored at {location}"
    elif services.settings.options.offboard_delete_secret:
        changes = True
        secret.state = StepState.PLANNED
        secret.detail = f"would delete {location} (PGDB_OFFBOARD_DELETE_SECRET=true)"
    else:
        secret.state, secret.detail = StepState.EXISTS, f"would keep {location}"
    return changes


def _nothing_left(ctx: CommandContext, app: AppName, reply: Reply) -> bool:
    try:
        return not _preview(ctx, app, reply) and reply.ok
    except PgdbError:
        return False  # the run itself reports it, at its step


def _known(ctx: CommandContext, app: AppName, reply: Reply) -> bool:
    services = ctx.services
    if _latest(services, app) is not None or services.secrets.read(app) is not None:
        return True
    if app in services.database.observe().roles:
        return True
    return any(s.state is not StepState.EXISTS for s in reply.steps)


def _unknown(ctx: CommandContext, app: AppName, reply: Reply) -> Reply:
    reply.ok = False
    reply.title = f"Offboard `{app}`: unknown app"
    reply.lines = [
        f"`{app}` is not a known app: there is nothing to offboard. `/pgdb list` shows the "
        "known apps."
    ]
    reply.steps = []
    return reply


def _confirm(ctx: CommandContext, app: AppName, reply: Reply) -> Reply:
    record = _latest(ctx.services, app)
    changes = _preview(ctx, app, reply)
    if not reply.ok:
        reply.title = f"Offboard `{app}`: refused"
        reply.lines.append("Nothing was changed.")
        return reply
    if not changes and lifecycle_of(record) is Lifecycle.OFFBOARDED:
        return _already(ctx, app, reply, record)
    if not changes and not _known(ctx, app, reply):
        return _unknown(ctx, app, reply)
    reply.lines.append(
        "The database and its data are kept; `/pgdb create "
        f"{app}` brings the app back. Nothing changed yet. To go ahead: "
        f"`/pgdb offboard {app} --yes`"
    )
    reply.buttons = [
        Button(label="Offboard", command=f"/pgdb offboard {app} --yes", style="danger"),
    ]
    return reply


def _already(
    ctx: CommandContext, app: AppName, reply: Reply, record: WorkflowRecord | None
) -> Reply:
    reply.title = f"`{app}` is already offboarded: nothing to do"
    if record is not None:
        reply.lines.insert(
            0,
            f"Offboarded on {record.updated_at:%Y-%m-%d %H:%M} UTC by {record.requester}; "
            f"everything it did is still in place. `/pgdb create {app}` brings it back.",
        )
    return reply


def _body(ctx: CommandContext, app: AppName) -> str:
    services = ctx.services
    kept = not services.settings.options.offboard_delete_secret
    return "\n".join(
        [
            f"Offboards `{app}` from the shared PostgreSQL cluster.",
            "",
            f"- removes `{database_path(app)}` and `{secret_path(app)}` and their entries in "
            "kustomization.yaml",
            f"- database `{app}` and its data stay: the Database has "
            "`databaseReclaimPolicy: retain`, so CloudNativePG does not drop it",
            f"- the InfisicalSecret goes, and with it the Secret `{secret_name(app)}`",
            f"- role `{app}` is set to NOLOGIN by pgdb-bot (its password is kept)",
            f"- credentials at {services.secrets.location(app)}: "
            + ("kept" if kept else "deleted (PGDB_OFFBOARD_DELETE_SECRET)"),
            "",
            f"To bring the app back: `/pgdb create {app}`.",
            "",
            f"Requested by {ctx.requester.user_id} ({ctx.requester.platform}), "
            f"correlation id {ctx.correlation_id}.",
        ]
    )


def _report(ctx: CommandContext, app: AppName, reply: Reply, proposal: Proposal | None) -> None:
    services = ctx.services
    if proposal is not None:
        label = "Pull request" if proposal.number is not None else "Branch to merge"
        reply.fields.append((label, proposal.url))
        reply.lines.append(
            "Once it is merged, Argo CD removes the Database and InfisicalSecret resources; "
            f"database `{app}` and its data stay."
        )
    reply.fields.append(("Database", f"`{app}` kept, with its data"))
    reply.fields.append(("Bring it back", f"/pgdb create {app}"))
    if services.settings.options.offboard_delete_secret:
        reply.lines.append(
            f"The credentials were deleted: `/pgdb create {app}` sets a new password."
        )
