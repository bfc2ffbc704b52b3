"""``/pgdb create <app>``: the onboarding workflow (SPEC §3.2).

Each step observes first and acts only on what is missing, so a re-run resumes where a failed
run stopped, and never changes a password already in use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.core.errors import PgdbError
from bot.core.manifests import (
    ManifestSet,
    build_manifest_set,
    database_path,
    secret_name,
    secret_path,
)
from bot.core.model import (
    CheckResult,
    CheckState,
    DatabaseState,
    PasswordResult,
    Proposal,
    ProposalState,
    StoredCredentials,
    WorkflowStatus,
)
from bot.core.names import AppName
from bot.core.reply import Reply, Step, StepState, error_reply
from bot.core.secret import Secret, generate_password
from bot.metrics import timed_step
from handlers.context import CommandContext, Services
from handlers.observe import manifests_on_base
from handlers.offboard import open_offboarding, was_offboarded
from handlers.pr_checks import role_check, secret_check
from handlers.rotate import refuse_during_rotation
from handlers.workflow import progress, stop_at

log = logging.getLogger(__name__)

STEPS = (
    ("credentials", "Credentials in the secret store"),
    ("role", "PostgreSQL role"),
    ("manifests", "GitOps change"),
    ("checks", "Status checks"),
)


class StepFailed(Exception):
    """Stops the workflow; the message names the cause and what to do."""


@dataclass(kw_only=True)
class RunState:
    """State carried from step to step within one run."""

    app: AppName
    password: Secret | None = None
    role_ok: bool = False
    manifests: ManifestSet | None = None
    proposal: Proposal | None = None
    on_base: bool = False
    offboarded: bool = False  # the latest workflow before this run was an offboarding


def connection_snippet(services: Services, app: AppName) -> tuple[str, str]:
    """The connection string (password elided) and the seed's Deployment ``env`` block."""
    s = services.settings
    host = f"{s.cluster}-rw.{s.namespace}.svc"
    uri = f"postgresql://{app}:<password>@{host}:5432/{app}"
    secret = secret_name(app)
    env = "\n".join(
        [
            "env:",
            "  - name: DB_HOST",
            f'    value: "{host}"',
            "  - name: DB_PORT",
            '    value: "5432"',
            "  - name: DB_NAME",
            f'    value: "{app}"',
            "  - name: DB_USER",
            "    valueFrom:",
            "      secretKeyRef:",
            f"        name: {secret}",
            "        key: username",
            "  - name: DB_PASSWORD",
            "    valueFrom:",
            "      secretKeyRef:",
            f"        name: {secret}",
            "        key: password",
        ]
    )
    return uri, env


def run_create(
    ctx: CommandContext,
    app: AppName,
    *,
    extra_namespace: str | None,
    dry_run: bool,
    thread_link: str | None = None,
) -> Reply:
    """``thread_link``: where the follow-through goes when it is not this conversation's
    message (an approved request: the requester's thread)."""
    services = ctx.services
    reply = Reply(
        title=f"{'Plan for' if dry_run else 'Onboarding'} `{app}`",
        steps=[Step(key=k, label=label) for k, label in STEPS],
        correlation_id=ctx.correlation_id,
    )
    if dry_run:
        return _plan(ctx, app, reply, extra_namespace=extra_namespace)
    # Shown at once (before the lock, which waits on PostgreSQL); when another run holds the
    # lock, the final reply replaces this message with "already in progress".
    ctx.conversation.show(reply)
    with services.state.app_lock(app) as acquired:
        if not acquired:
            return in_progress(ctx, app)
        latest = services.state.latest_workflow(app)  # read once, before this run's own
        blocked = refuse_during_rotation(app, latest, command=f"/pgdb create {app}")
        if blocked is not None:
            return error_reply(
                blocked, title=f"`{app}` is being rotated", correlation_id=ctx.correlation_id
            )
        offboarded = was_offboarded(latest)
        workflow_id = services.state.start_workflow(
            app=app, kind="create", requester=ctx.requester.user_id
        )
        _record_link(ctx, workflow_id, link=thread_link)
        run = RunState(app=app, offboarded=offboarded)
        current = "credentials"
        try:
            state = services.database.observe()
            with timed_step(current):
                ensure_credentials(ctx, run, reply, state)
            progress(ctx, reply, workflow_id, "credentials")
            current = "role"
            with timed_step(current):
                ensure_role(ctx, run, reply, state)
            progress(ctx, reply, workflow_id, "role")
            current = "manifests"
            with timed_step(current):
                ensure_manifests(ctx, run, reply, extra_namespace=extra_namespace)
            progress(ctx, reply, workflow_id, "manifests", proposal=run.proposal)
            current = "checks"
            with timed_step(current):
                _checks(ctx, run, reply)
        except (StepFailed, PgdbError) as exc:
            return _fail(ctx, reply, workflow_id, current, str(exc))
        except Exception as exc:
            log.exception("create %s failed at %s [%s]", app, current, ctx.correlation_id)
            return _fail(
                ctx,
                reply,
                workflow_id,
                current,
                f"internal error {type(exc).__name__} (correlation id {ctx.correlation_id}); "
                "a re-run resumes from this step",
            )
        services.state.update_workflow(
            workflow_id,
            step="done",
            status=WorkflowStatus.DONE,
            proposal_url=run.proposal.url if run.proposal else None,
        )
    if run.offboarded:
        _warn_offboarding(ctx, run, reply)
    _report(ctx, run, reply)
    return reply


def _record_link(ctx: CommandContext, workflow_id: int, *, link: str | None = None) -> None:
    """Where the progress message is, so the follow-through replies in its thread."""
    link = link or getattr(ctx.conversation, "message_link", None)
    if not isinstance(link, str) or not link:
        return
    try:
        ctx.services.state.set_message_link(workflow_id, link=link)
    except PgdbError as exc:
        log.warning("create: could not record the message link: %s", exc)


def _fail(ctx: CommandContext, reply: Reply, workflow_id: int, step: str, cause: str) -> Reply:
    return stop_at(
        ctx,
        reply,
        workflow_id,
        step,
        cause=cause,
        resume="Fix the cause and run the same command again: it resumes from this step.",
    )


def in_progress(ctx: CommandContext, app: AppName) -> Reply:
    """The app's lock is held: name the workflow that holds it (its latest record)."""
    w = ctx.services.state.latest_workflow(app)
    what, where = "create", ""
    if w is not None:
        what = w.kind
        where = f" (started by {w.requester} at {w.started_at:%Y-%m-%d %H:%M:%S} UTC"
        where += f", {w.message_link})" if w.message_link else ")"
    return Reply(
        title=f"`{app}` is busy: a `{what}` is in progress",
        ok=False,
        private=True,
        lines=[f"Another `{what} {app}` is already in progress{where}. Wait for it to finish."],
        correlation_id=ctx.correlation_id,
    )


# --- steps --------------------------------------------------------------------------------


def ensure_credentials(
    ctx: CommandContext, run: RunState, reply: Reply, state: DatabaseState
) -> None:
    services, app = ctx.services, run.app
    step = reply.step("credentials")
    stored = services.secrets.read(app) or StoredCredentials()
    location = services.secrets.location(app)
    if stored.password is not None:
        run.password = stored.password
        if stored.complete:
            step.state, step.detail = StepState.EXISTS, f"reused the password at {location}"
            return
        services.secrets.write(
            app,
            username=stored.username or app,
            password=stored.password,
            database=stored.database or app,
        )
        step.state = StepState.DONE
        step.detail = f"kept the stored password, added {', '.join(stored.missing_keys)}"
        return
    role = state.roles.get(app)
    if role is not None and run.offboarded and not role.can_login:
        # Offboarded with its credentials deleted: nobody can log in, so a new password
        # changes nothing in use.
        run.password = generate_password()
        services.secrets.write(app, username=app, password=run.password, database=app)
        step.state = StepState.DONE
        step.detail = (
            f"generated a new password for the offboarded role (its credentials had been "
            f"deleted), stored at {location}"
        )
        return
    if role is not None:
        raise StepFailed(
            f"role `{app}` already exists but no password is stored at {location}; "
            f"create never resets a password: an operator decides (`/pgdb rotate {app}` "
            "sets a new one)"
        )
    run.password = generate_password()
    services.secrets.write(app, username=app, password=run.password, database=app)
    step.state, step.detail = StepState.DONE, f"generated a password, stored at {location}"


def ensure_role(ctx: CommandContext, run: RunState, reply: Reply, state: DatabaseState) -> None:
    services, app = ctx.services, run.app
    assert run.password is not None
    step = reply.step("role")
    role = state.roles.get(app)
    if role is None:
        services.database.create_role(app, password=run.password)
        step.state, step.detail = StepState.DONE, f"created role `{app}` (LOGIN, no privileges)"
        run.role_ok = True
        return
    if not role.can_login:
        run.offboarded = True  # a stale offboarding proposal is checked for at the end
        services.database.enable_login(app, password=run.password)
        step.state, step.detail = StepState.DONE, f"re-enabled LOGIN on role `{app}`"
        run.role_ok = True
        return
    verdict = services.database.check_passwords({app: run.password}, state=state)[app]
    if verdict.result is PasswordResult.MATCH:
        step.state, step.detail = (
            StepState.EXISTS,
            f"role `{app}` exists and the stored password opens it",
        )
        unsafe = [*role.dangerous_attributes, *role.privileged_memberships]
        if unsafe:
            step.detail += f" (warning: it has {', '.join(unsafe)}; see /pgdb diagnose)"
        run.role_ok = True
        return
    if verdict.result is PasswordResult.MISMATCH:
        raise StepFailed(
            f"role `{app}` exists but the stored password does not open it; create never "
            f"resets a password: an operator decides (`/pgdb rotate {app}`)"
        )
    raise StepFailed(
        f"could not check the stored password against role `{app}` ({verdict.detail}); "
        "run again once PostgreSQL accepts the check"
    )


def ensure_manifests(
    ctx: CommandContext, run: RunState, reply: Reply, *, extra_namespace: str | None
) -> None:
    services, app = ctx.services, run.app
    settings = services.settings
    step = reply.step("manifests")
    git = services.git
    snapshot = git.snapshot(manifests_path=settings.gitops_path)
    if extra_namespace is None and manifests_on_base(snapshot, app):
        run.on_base = True
        step.state = StepState.EXISTS
        step.detail = f"the manifests are already on branch {snapshot.base_branch}"
        return
    manifests = build_manifest_set(
        app,
        settings=settings.manifest_settings,
        base_kustomization=snapshot.kustomization,
        extra_namespace=extra_namespace,
    )
    run.manifests = manifests
    branch = f"pgdb/{app}"
    # The snapshot lists every open proposal; only an open one matters here (a closed one is
    # left alone), so the host is asked for details only when the snapshot has one.
    listed = snapshot.proposals.get(app)
    proposal = (
        git.proposal(branch=branch)
        if listed is not None and listed.state is ProposalState.OPEN
        else None
    )
    if proposal is not None and proposal.state is ProposalState.OPEN:
        current = proposal.base_sha == snapshot.base_sha and proposal.mergeable is not False
        if current and _branch_has(services, proposal.head_sha, manifests):
            run.proposal = proposal  # read in full just above, checks included
            step.state = StepState.EXISTS
            step.detail = f"reused the open proposal: {run.proposal.url}"
            return
    sha = git.commit(
        parent=snapshot.base_sha,
        files=manifests.files,
        message=f"{_title(app)}\n\nRequested by {ctx.requester.user_id} through pgdb-bot.\n",
    )
    git.set_branch(branch=branch, sha=sha)
    run.proposal = git.open_proposal(branch=branch, title=_title(app), body=_body(ctx, run))
    rebuilt = proposal is not None and proposal.state is ProposalState.OPEN
    step.state = StepState.DONE
    step.detail = f"{'rebuilt on the current base' if rebuilt else 'opened'}: {run.proposal.url}"


def _branch_has(services: Services, sha: str, manifests: ManifestSet) -> bool:
    return all(
        services.git.read_file(ref=sha, path=path) == text for path, text in manifests.files.items()
    )


def _title(app: AppName) -> str:
    return f"pgdb: onboard {app}"


def _body(ctx: CommandContext, run: RunState) -> str:
    services, app = ctx.services, run.app
    uri, _ = connection_snippet(services, app)
    return "\n".join(
        [
            f"Onboards `{app}` onto the shared PostgreSQL cluster.",
            "",
            f"- credentials: {services.secrets.location(app)}",
            f"- role `{app}`: created or verified by pgdb-bot",
            f"- `{database_path(app)}` and `{secret_path(app)}`, listed in kustomization.yaml",
            "",
            f"Connection: `{uri}` (the password is in the secret store)",
            "",
            f"Requested by {ctx.requester.user_id} ({ctx.requester.platform}), "
            f"correlation id {ctx.correlation_id}.",
        ]
    )


def _checks(ctx: CommandContext, run: RunState, reply: Reply) -> None:
    services, app = ctx.services, run.app
    step = reply.step("checks")
    # ensure_credentials sets the password only once all three keys are stored
    secret_ok = run.password is not None
    checks = [secret_check(ok=secret_ok), role_check(app, ok=run.role_ok)]
    if run.manifests is not None:
        problems = run.manifests.validate(settings=services.settings.manifest_settings)
        checks.append(
            CheckResult(
                context="pgdb/manifests",
                state=CheckState.FAILURE if problems else CheckState.SUCCESS,
                description=problems[0][:140]
                if problems
                else "manifests validate against the CRD schemas; kustomization well-formed",
            )
        )
    failed = [c for c in checks if c.state is not CheckState.SUCCESS]
    if failed:
        reply.ok = False
    step.state = StepState.FAILED if failed else StepState.DONE
    step.detail = ", ".join(f"{c.context} {c.state.value}" for c in checks)
    step.detail += "".join(f"; {c.context}: {c.description}" for c in failed)
    if run.proposal is None:
        step.detail += " (reported here: the manifests are already on the base branch)"
    elif {c.context: c for c in run.proposal.checks} == {c.context: c for c in checks}:
        step.state = StepState.EXISTS if not failed else StepState.FAILED
    else:
        services.git.publish_checks(proposal=run.proposal, checks=checks)


def _warn_offboarding(ctx: CommandContext, run: RunState, reply: Reply) -> None:
    """An offboarding proposal still open would take the manifests away again once merged."""
    try:
        found = open_offboarding(ctx.services, run.app)
    except PgdbError as exc:
        log.warning("create %s: could not look for an offboarding proposal: %s", run.app, exc)
        return
    if found is not None:
        reply.ok = False
        reply.lines.append(
            f"The offboarding proposal {found.url} is still open: close it without merging "
            f"(merging it would remove the manifests of `{run.app}` again)."
        )


def _report(ctx: CommandContext, run: RunState, reply: Reply) -> None:
    services, app = ctx.services, run.app
    uri, env = connection_snippet(services, app)
    if run.proposal is not None:
        label = "Pull request" if run.proposal.number is not None else "Branch to merge"
        reply.fields.append((label, run.proposal.url))
    elif run.on_base:
        reply.fields.append(("Manifests", f"already on {services.settings.gitops_base_branch}"))
    reply.fields.append(("Password", f"in the secret store at {services.secrets.location(app)}"))
    reply.fields.append(("Connection", uri))
    reply.lines.append(
        f"Add this to your Deployment (the Secret `{secret_name(app)}` must be in your "
        "app's namespace: use `--namespace <ns>` to deliver it there):"
    )
    reply.code = env
    if not reply.ok:
        reply.title = f"Onboarding `{app}`: needs attention"
    else:
        reply.title = f"Onboarded `{app}`"


# --- dry run ------------------------------------------------------------------------------


def _plan(ctx: CommandContext, app: AppName, reply: Reply, *, extra_namespace: str | None) -> Reply:
    services = ctx.services
    stored = services.secrets.read(app)
    state = services.database.observe()
    role = state.roles.get(app)
    cred = reply.step("credentials")
    if stored is not None and stored.password is not None:
        cred.state, cred.detail = StepState.EXISTS, "would reuse the stored password"
    elif (
        role is not None
        and not role.can_login
        and was_offboarded(services.state.latest_workflow(app))
    ):
        cred.state = StepState.PLANNED
        cred.detail = "would generate a new password for the offboarded (NOLOGIN) role"
    elif role is not None:
        cred.state, cred.detail = StepState.FAILED, "role exists but no password is stored"
    else:
        cred.state = StepState.PLANNED
        cred.detail = f"would generate a password and store it at {services.secrets.location(app)}"
    role_step = reply.step("role")
    if role is None:
        role_step.state, role_step.detail = StepState.PLANNED, f"would create role `{app}`"
    elif not role.can_login:
        role_step.state, role_step.detail = StepState.PLANNED, "would re-enable LOGIN"
    else:
        role_step.state, role_step.detail = StepState.EXISTS, "would check the stored password"
    snapshot = services.git.snapshot(manifests_path=services.settings.gitops_path)
    man = reply.step("manifests")
    if extra_namespace is None and manifests_on_base(snapshot, app):
        man.state, man.detail = StepState.EXISTS, "already on the base branch"
    else:
        build_manifest_set(
            app,
            settings=services.settings.manifest_settings,
            base_kustomization=snapshot.kustomization,
            extra_namespace=extra_namespace,
        )
        man.state = StepState.PLANNED
        man.detail = (
            f"would commit {database_path(app)}, {secret_path(app)} and kustomization.yaml "
            f"on branch pgdb/{app}"
        )
    checks = reply.step("checks")
    checks.state, checks.detail = (
        StepState.PLANNED,
        "would post pgdb/secret, pgdb/role, pgdb/manifests",
    )
    reply.lines.append("Dry run: nothing was changed.")
    return reply
