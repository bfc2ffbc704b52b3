"""``/pgdb create <app>``: the onboarding workflow.

Each step observes first and acts only on what is missing, so a re-run resumes where a failed
run stopped, and never changes a password already in use.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass, replace

from bot.core.errors import PgdbError
from bot.core.limits import NO_LIMIT, DatabaseOptions, RoleLimits
from bot.core.manifests.layout import KUSTOMIZATION_FILE, database_path, secret_name, secret_path
from bot.core.manifests.onboarding import ManifestSet, build_manifest_set
from bot.core.manifests.render import add_secret_namespace, read_database
from bot.core.manifests.runbook_page import RUNBOOK_PAGE, read_page
from bot.core.model import (
    CheckResult,
    CheckState,
    DatabaseState,
    GitSnapshot,
    PasswordVerdict,
    Proposal,
    ProposalState,
    RoleInfo,
    StoredCredentials,
    WorkflowRecord,
    WorkflowStatus,
)
from bot.core.names import AppName
from bot.core.reply import Reply, Step, StepState, error_reply
from bot.core.secret import Secret, generate_password
from handlers.context import CommandContext, Services
from handlers.create_plan import Act, CreatePlan, is_operator, namespace_refusal, plan_create
from handlers.lifecycle import AppHistory
from handlers.observe import manifests_on_base, read_git
from handlers.pr_checks import role_check, secret_check
from handlers.rotate import refuse_during_rotation
from handlers.workflow import StepStopped, fail_step, run_steps, stop_at

log = logging.getLogger(__name__)

STEPS = (
    ("credentials", "Credentials in the secret store"),
    ("role", "PostgreSQL role"),
    ("manifests", "GitOps change"),
    ("checks", "Status checks"),
)


class ObserveFailed(Exception):
    """A system ``create`` must read could not be read: the step it belongs to, and why."""

    def __init__(self, step: str, cause: str) -> None:
        super().__init__(cause)
        self.step, self.cause = step, cause


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
    host = f"{s.layout.cluster}-rw.{s.layout.namespace}.svc"
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
    approved: bool = False,
    options: DatabaseOptions | None = None,
) -> Reply:
    """``thread_link``: where the follow-through goes when it is not this conversation's
    message (an approved request: the requester's thread); ``approved``: an operator approved
    this request, so it runs with an operator's say; ``options``: the extensions and schemas
    asked for (already checked against the allowlist)."""
    services = ctx.services
    reply = Reply(
        title=f"{'Plan for' if dry_run else 'Onboarding'} `{app}`",
        steps=[Step(key=k, label=label) for k, label in STEPS],
        correlation_id=ctx.correlation_id,
    )
    if dry_run:
        return _dry_run(
            ctx, app, reply, extra_namespace=extra_namespace, approved=approved, options=options
        )
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
        try:
            seen = see(ctx, app, latest=latest)
        except ObserveFailed as exc:
            workflow_id = services.state.start_workflow(
                app=app, kind="create", requester=ctx.requester.user_id
            )
            return _fail(ctx, reply, workflow_id, exc.step, exc.cause)
        plan = seen.plan(ctx, app, extra_namespace=extra_namespace, approved=approved)
        refused = refusal_reply(ctx, app, plan)
        if refused is not None:
            return refused
        stop = plan.create.stop
        if stop is not None:
            # Known before writing anything: nothing is written (a password stored for a role
            # that will not be created is one more thing to clean up), and no workflow record,
            # so a refused create neither makes an app known nor hides its last workflow.
            return _stopped_before_writing(reply, *stop)
        workflow_id = services.state.start_workflow(
            app=app, kind="create", requester=ctx.requester.user_id
        )
        _record_link(ctx, workflow_id, link=thread_link)
        run = RunState(app=app, offboarded=seen.history.retired)
        database_options = manifest_options(ctx, app, seen, plan.create, options)

        def checks(_: Step) -> None:
            wanted = _checks(ctx, run, reply)
            # The answer (PR link, connection snippet) is shown before the statuses go out:
            # posting them is the slowest part against a real GitHub.
            _report(ctx, run, reply, extra_namespace=extra_namespace)
            reply.urgent = True  # delivered before the statuses, whatever the update pacing
            ctx.conversation.show(reply)
            reply.urgent = False
            if wanted and run.proposal is not None:
                services.git.publish_checks(proposal=run.proposal, checks=wanted)

        snapshot = seen.snapshot
        stopped = run_steps(
            ctx,
            reply,
            workflow_id,
            kind="create",
            steps=[
                ("credentials", lambda _: _credentials(ctx, run, reply, seen, plan.create)),
                ("role", lambda _: _role(ctx, run, reply, plan.create, seen=seen)),
                (
                    "manifests",
                    lambda _: ensure_manifests(
                        ctx,
                        run,
                        reply,
                        extra_namespace=extra_namespace,
                        snapshot=snapshot,
                        database_options=database_options,
                    ),
                ),
                ("checks", checks),
            ],
            proposal=lambda: run.proposal,
        )
        if stopped is not None:
            return _fail(ctx, reply, workflow_id, stopped.step, stopped.cause)
        services.state.update_workflow(
            workflow_id,
            step="done",
            status=WorkflowStatus.DONE,
            proposal_url=run.proposal.url if run.proposal else None,
        )
    return reply


@dataclass(frozen=True, kw_only=True)
class Seen:
    """Everything ``create`` reads before it decides: one observation of the app."""

    stored: StoredCredentials | None
    state: DatabaseState
    history: AppHistory
    verdict: PasswordVerdict | None
    snapshot: GitSnapshot

    def plan(
        self, ctx: CommandContext, app: AppName, *, extra_namespace: str | None, approved: bool
    ) -> Planned:
        operator = approved or is_operator(ctx)
        leaving = self.snapshot.offboardings.get(app)
        create = plan_create(
            ctx,
            app,
            stored=self.stored,
            state=self.state,
            history=self.history,
            verdict=self.verdict,
            offboarding_open=leaving.url if leaving is not None else None,
            operator_decided=operator,
        )
        namespace = None
        if extra_namespace is not None:
            exists = (
                self.history.latest is not None
                or (self.stored is not None and self.stored.password is not None)
                or app in self.state.roles
                or manifests_on_base(self.snapshot, app)
                or app in self.snapshot.proposals
            )
            namespace = namespace_refusal(
                ctx, app, extra_namespace, existing=exists, operator=operator
            )
        return Planned(create=create, namespace_refusal=namespace)


def manifest_options(
    ctx: CommandContext,
    app: AppName,
    seen: Seen,
    plan: CreatePlan,
    options: DatabaseOptions | None,
) -> DatabaseOptions:
    """What the Database manifest declares: the connection limit the role gets (the
    configured one for a role ``create`` makes; an adopted role's own, which ``create`` never
    changes), and the extensions and schemas asked for."""
    role = seen.state.roles.get(app)
    if plan.create_role or role is None:
        limit = ctx.services.settings.guardrails.connection_limit
    else:
        limit = role.connection_limit
    return DatabaseOptions(
        connection_limit=None if limit == NO_LIMIT else limit,
        extensions=options.extensions if options is not None else (),
        schemas=options.schemas if options is not None else (),
    )


@dataclass(frozen=True, kw_only=True)
class Planned:
    create: CreatePlan
    namespace_refusal: str | None = None


def see(ctx: CommandContext, app: AppName, *, latest: WorkflowRecord | None) -> Seen:
    """Observe the app in every system ``create`` touches (no write)."""
    services = ctx.services
    step = "credentials"
    try:
        stored = services.secrets.read(app)
        step = "role"
        state = services.database.observe()
        role = state.roles.get(app)
        password = stored.password if stored is not None else None
        verdict = None
        if (
            role is not None
            and password is not None
            and role.login_refusal(services.clock()) is None
        ):
            verdict = services.database.check_passwords({app: password}, state=state)[app]
        step = "manifests"
        snapshot = read_git(services)
    except PgdbError as exc:
        raise ObserveFailed(step, str(exc)) from exc
    return Seen(
        stored=stored,
        state=state,
        history=AppHistory(latest=latest),
        verdict=verdict,
        snapshot=snapshot,
    )


def refusal_reply(ctx: CommandContext, app: AppName, planned: Planned) -> Reply | None:
    """The requester may not make this change: a refusal that names who may (audited as
    refused by the dispatcher)."""
    reason = planned.namespace_refusal
    if reason is None and planned.create.refusal is not None:
        reason = planned.create.refusal.reason
        if ctx.services.settings.access.require_approval != "off":
            reason += (
                f" — ask for it with `/pgdb create {app}`: it waits for an operator's approval"
            )
    if reason is None:
        return None
    return error_reply(
        reason, title="Not allowed", correlation_id=ctx.correlation_id, outcome="refused"
    )


def _record_link(ctx: CommandContext, workflow_id: int, *, link: str | None = None) -> None:
    """Where the progress message is, so the follow-through replies in its thread."""
    link = link or ctx.conversation.message_link
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


def _credentials(
    ctx: CommandContext, run: RunState, reply: Reply, seen: Seen, plan: CreatePlan
) -> None:
    services, app = ctx.services, run.app
    step = reply.step("credentials")
    location = services.secrets.location(app)
    if plan.credentials.act is Act.STOP:
        raise StepStopped(plan.credentials.detail)
    stored = seen.stored or StoredCredentials()
    if plan.generate_password:
        run.password = generate_password()
        services.secrets.write(app, username=app, password=run.password, database=app)
        step.state = StepState.DONE
        step.detail = (
            f"generated a new password for the offboarded role (its credentials had been "
            f"deleted), stored at {location}"
            if plan.enable_login
            else f"generated a password, stored at {location}"
        )
        return
    run.password = stored.password
    if plan.complete_keys:
        assert stored.password is not None
        services.secrets.write(
            app, username=app, password=stored.password, database=stored.database or app
        )
        step.state = StepState.DONE
        step.detail = f"kept the stored password, added {', '.join(stored.missing_keys)}"
        return
    step.state, step.detail = StepState.EXISTS, f"reused the password at {location}"


def _role(
    ctx: CommandContext, run: RunState, reply: Reply, plan: CreatePlan, *, seen: Seen
) -> None:
    services, app = ctx.services, run.app
    step = reply.step("role")
    if plan.role.act is Act.STOP:
        raise StepStopped(plan.role.detail)
    assert run.password is not None
    if plan.create_role:
        limits = services.settings.guardrails.role_limits
        services.database.create_role(app, password=run.password, limits=limits)
        services.state.declare_limits(
            app, limits=limits, source="create", declared_by=ctx.requester.user_id
        )
        step.state = StepState.DONE
        step.detail = f"created role `{app}` (LOGIN, no privileges; {limits.describe()})"
    elif plan.enable_login:
        services.database.enable_login(app, password=run.password)
        step.state, step.detail = StepState.DONE, f"re-enabled LOGIN on role `{app}`"
    else:
        step.state, step.detail = StepState.EXISTS, plan.role.detail
    if not plan.create_role:
        kept = kept_limits(ctx, seen.state.roles.get(app))
        if kept:
            step.detail += f"; {kept}"
    run.role_ok = True


def kept_limits(ctx: CommandContext, role: RoleInfo | None) -> str:
    """An existing role keeps its limits (``create`` never changes them): say how they differ
    from the configured ones, and how an operator changes them."""
    if role is None:
        return ""
    actual = RoleLimits(
        connection_limit=role.connection_limit, statement_timeout_ms=role.statement_timeout_ms
    )
    wanted = ctx.services.settings.guardrails.role_limits
    if actual == wanted:
        return ""
    return (
        f"it keeps its own limits ({actual.describe()}; the configured ones are "
        f"{wanted.describe()}): an operator changes them with `/pgdb limits {role.name}`"
    )


def needs_operator(ctx: CommandContext, app: AppName) -> bool:
    """A requester's create that would bring an offboarded app back: an operator decides."""
    if is_operator(ctx):
        return False
    latest = ctx.services.state.latest_workflow(app)
    if not AppHistory(latest=latest).retired:
        return False
    role = ctx.services.database.observe().roles.get(app)
    return role is not None and not role.can_login


@dataclass(frozen=True, kw_only=True)
class ManifestsPlan:
    """The GitOps step, decided: already on the base branch, the open proposal reused, or a
    commit (new, or rebuilt on the current base)."""

    act: Act
    detail: str
    manifests: ManifestSet | None = None
    proposal: Proposal | None = None  # the open proposal, read in full
    on_base: bool = False


def plan_manifests(
    ctx: CommandContext,
    app: AppName,
    snapshot: GitSnapshot,
    *,
    extra_namespace: str | None,
    database_options: DatabaseOptions | None = None,
) -> ManifestsPlan:
    services = ctx.services
    settings = services.settings
    git = services.git
    if database_options is None:
        limit = settings.guardrails.connection_limit
        database_options = DatabaseOptions(connection_limit=None if limit == NO_LIMIT else limit)
    if extra_namespace is None and manifests_on_base(snapshot, app):
        asked = database_options.extensions or database_options.schemas
        return ManifestsPlan(
            act=Act.KEEP,
            detail=f"the manifests are already on branch {snapshot.base_branch}"
            + (
                f" (the extensions of an app on {snapshot.base_branch} are added with "
                f"`/pgdb update {app} --extension …`; its schemas are not changed by create)"
                if asked
                else ""
            ),
            on_base=True,
        )
    # The snapshot lists every open proposal; only an open one matters here (a closed one is
    # left alone), so the host is asked for details only when the snapshot has one. An open one
    # keeps its branch (``pgdb/<app>`` opened before environments were declared, too).
    listed = snapshot.proposals.get(app)
    open_listed = listed is not None and listed.state is ProposalState.OPEN
    branch = (
        listed.branch if listed and open_listed else services.settings.layout.onboard_branch(app)
    )
    proposal = git.proposal(branch=branch) if open_listed else None
    on_branch: dict[str, str | None] = {}  # files of the open proposal read so far
    if proposal is not None and proposal.state is ProposalState.OPEN:
        # a re-run keeps what the open proposal already asks for (extensions, schemas)
        database_options = _with_proposed(ctx, app, proposal, database_options, on_branch)
    try:
        manifests = build_manifest_set(
            app,
            settings=settings.layout.manifests,
            base_kustomization=snapshot.kustomization,
            extra_namespace=extra_namespace,
            runbook_page=_runbook_page(ctx, app, snapshot),
            database_options=database_options,
        )
        manifests = _keep_hand_written(ctx, manifests, snapshot, extra_namespace=extra_namespace)
    except ValueError as exc:  # a file on the base branch the bot cannot edit: says what to fix
        raise StepStopped(str(exc)) from exc
    if proposal is not None and proposal.state is ProposalState.OPEN:
        current = proposal.base_sha == snapshot.base_sha and proposal.mergeable is not False
        if current and _branch_has(services, proposal.head_sha, manifests, on_branch):
            return ManifestsPlan(
                act=Act.KEEP,
                detail=f"reuse the open proposal: {proposal.url}",
                manifests=manifests,
                proposal=proposal,
            )
        return ManifestsPlan(
            act=Act.DO,
            detail=f"rebuild branch {branch} on the current {snapshot.base_branch} "
            f"({proposal.url})",
            manifests=manifests,
            proposal=proposal,
        )
    relative = (posixpath.relpath(p, manifests.manifests_path) for p in manifests.files)
    changed = [
        r for r in relative if r not in snapshot.files or r in (KUSTOMIZATION_FILE, RUNBOOK_PAGE)
    ]
    return ManifestsPlan(
        act=Act.DO,
        detail=f"commit {', '.join(changed)} on branch {branch}"
        + (
            f" (the Secret also delivered to namespace {extra_namespace})"
            if extra_namespace
            else ""
        ),
        manifests=manifests,
    )


def _runbook_page(ctx: CommandContext, app: AppName, snapshot: GitSnapshot) -> str | None:
    """The runbook page on the base branch, to add the app's line to; None when the folder has
    none, or when the app's manifests are on the base already (the line alone is no change)."""
    if manifests_on_base(snapshot, app):
        return None
    git = ctx.services.git
    return read_page(
        snapshot.files,
        folder=ctx.services.settings.layout.gitops_path,
        read=lambda path: git.read_file(ref=snapshot.base_sha, path=path),
    )


def _with_proposed(
    ctx: CommandContext,
    app: AppName,
    proposal: Proposal,
    options: DatabaseOptions,
    read: dict[str, str | None],
) -> DatabaseOptions:
    """``options`` with the extensions and schemas the open onboarding proposal's Database
    manifest already declares first: a re-run of ``create`` (to finish, or with one more
    ``--extension``) never drops what an earlier run proposed. The text read is kept in
    ``read`` (the proposal's files are compared next, with no second call)."""
    path = posixpath.join(ctx.services.settings.layout.gitops_path.strip("/"), database_path(app))
    text = ctx.services.git.read_file(ref=proposal.head_sha, path=path)
    read[path] = text
    if text is None:
        return options
    try:
        proposed = read_database(text)
    except ValueError:
        return options
    return replace(
        options,
        extensions=tuple(dict.fromkeys((*proposed.extensions, *options.extensions))),
        schemas=tuple(dict.fromkeys((*proposed.schemas, *options.schemas))),
    )


def _keep_hand_written(
    ctx: CommandContext,
    manifests: ManifestSet,
    snapshot: GitSnapshot,
    *,
    extra_namespace: str | None,
) -> ManifestSet:
    """A manifest already on the base branch (written by hand) is kept byte for byte: only the
    missing kustomization entries are added. (With ``--namespace`` the InfisicalSecret is the
    change, so it is written.)"""
    kept = dict(manifests.files)
    for path in (manifests.database_path, manifests.secret_path):
        relative = posixpath.relpath(path, manifests.manifests_path)
        if relative not in snapshot.files:
            continue
        text = ctx.services.git.read_file(ref=snapshot.base_sha, path=path)
        if text is None:
            continue
        if extra_namespace is not None and path == manifests.secret_path:
            # a namespace added to an app on the base branch: its manifest edited in place,
            # the namespaces it already delivers to kept
            text = add_secret_namespace(
                text,
                namespace=extra_namespace,
                cluster_namespace=ctx.services.settings.layout.namespace,
            )
        kept[path] = text
    return replace(manifests, files=kept)


def ensure_manifests(
    ctx: CommandContext,
    run: RunState,
    reply: Reply,
    *,
    extra_namespace: str | None,
    snapshot: GitSnapshot | None = None,
    database_options: DatabaseOptions | None = None,
) -> None:
    services, app = ctx.services, run.app
    git = services.git
    step = reply.step("manifests")
    if snapshot is None:
        snapshot = read_git(services)
    plan = plan_manifests(
        ctx, app, snapshot, extra_namespace=extra_namespace, database_options=database_options
    )
    run.manifests = plan.manifests
    if plan.act is Act.KEEP:
        run.on_base = plan.on_base
        run.proposal = plan.proposal
        step.state = StepState.EXISTS
        step.detail = plan.detail.replace("reuse ", "reused ", 1)
        return
    assert plan.manifests is not None
    # an open proposal is rebuilt on its own branch; a new one gets this environment's
    branch = plan.proposal.branch if plan.proposal else services.settings.layout.onboard_branch(app)
    title = _title(app, extra_namespace)
    sha = git.commit(
        parent=snapshot.base_sha,
        files=plan.manifests.files,
        message=f"{title}\n\nRequested by {ctx.requester.user_id} through pgdb-bot.\n",
    )
    git.set_branch(branch=branch, sha=sha)
    run.proposal = git.open_proposal(
        branch=branch, title=title, body=_body(ctx, run, extra_namespace=extra_namespace)
    )
    rebuilt = plan.proposal is not None
    step.state = StepState.DONE
    step.detail = f"{'rebuilt on the current base' if rebuilt else 'opened'}: {run.proposal.url}"


def _branch_has(
    services: Services, sha: str, manifests: ManifestSet, known: dict[str, str | None]
) -> bool:
    """Whether the branch at ``sha`` carries exactly ``manifests`` (``known``: files of that
    commit read already)."""
    return all(
        (known[path] if path in known else services.git.read_file(ref=sha, path=path)) == text
        for path, text in manifests.files.items()
    )


def _title(app: AppName, extra_namespace: str | None = None) -> str:
    if extra_namespace is None:
        return f"pgdb: onboard {app}"
    return f"pgdb: onboard {app} (Secret delivered to {extra_namespace})"


def _body(ctx: CommandContext, run: RunState, *, extra_namespace: str | None = None) -> str:
    services, app = ctx.services, run.app
    uri, _ = connection_snippet(services, app)
    namespaces = [
        services.settings.layout.namespace,
        *([extra_namespace] if extra_namespace else []),
    ]
    return "\n".join(
        [
            f"Onboards `{app}` onto the shared PostgreSQL cluster.",
            "",
            f"- credentials: {services.secrets.location(app)}",
            f"- role `{app}`: created or verified by pgdb-bot",
            f"- `{database_path(app)}` and `{secret_path(app)}`, listed in kustomization.yaml",
            f"- the Secret `{secret_name(app)}` is delivered to namespace(s): "
            + ", ".join(f"`{n}`" for n in namespaces),
            "",
            f"Connection: `{uri}` (the password is in the secret store)",
            "",
            f"Requested by {ctx.requester.user_id} ({ctx.requester.platform}), "
            f"correlation id {ctx.correlation_id}.",
        ]
    )


def _checks(ctx: CommandContext, run: RunState, reply: Reply) -> list[CheckResult]:
    """The statuses the proposal should carry, decided locally; empty when there is nothing
    to post (no proposal, or it already carries exactly these)."""
    services, app = ctx.services, run.app
    step = reply.step("checks")
    # ensure_credentials sets the password only once all three keys are stored
    secret_ok = run.password is not None
    checks = [secret_check(ok=secret_ok), role_check(app, ok=run.role_ok)]
    if run.manifests is not None:
        problems = run.manifests.validate(settings=services.settings.layout.manifests)
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
        return []
    if {c.context: c for c in run.proposal.checks} == {c.context: c for c in checks}:
        step.state = StepState.EXISTS if not failed else StepState.FAILED
        return []
    return checks


def _report(
    ctx: CommandContext, run: RunState, reply: Reply, *, extra_namespace: str | None
) -> None:
    services, app = ctx.services, run.app
    uri, env = connection_snippet(services, app)
    if run.proposal is not None:
        label = "Pull request" if run.proposal.number is not None else "Branch to merge"
        reply.fields.append((label, run.proposal.url))
    elif run.on_base:
        reply.fields.append(("Manifests", f"already on {services.settings.layout.base_branch}"))
    reply.fields.append(("Password", f"in the secret store at {services.secrets.location(app)}"))
    reply.fields.append(("Connection", f"`{uri}`"))  # code: copied as is on every platform
    if extra_namespace is not None:
        where = (
            f"the Secret `{secret_name(app)}` is delivered to namespace {extra_namespace} "
            "once the change is merged"
        )
    else:
        where = (
            f"the Secret `{secret_name(app)}` must be in your app's namespace: use "
            "`--namespace <ns>` to deliver it there"
        )
    reply.lines.append(f"Add this to your Deployment ({where}):")
    reply.code = env
    if not reply.ok:
        reply.title = f"Onboarding `{app}`: needs attention"
    else:
        reply.title = f"Onboarded `{app}`"


# --- dry run ------------------------------------------------------------------------------


_WOULD = {Act.KEEP: StepState.EXISTS, Act.DO: StepState.PLANNED, Act.STOP: StepState.FAILED}


def _dry_run(
    ctx: CommandContext,
    app: AppName,
    reply: Reply,
    *,
    extra_namespace: str | None,
    approved: bool,
    options: DatabaseOptions | None = None,
) -> Reply:
    """The real run's plan with the writes left out: where it would stop, and why."""
    services = ctx.services
    latest = services.state.latest_workflow(app)
    blocked = refuse_during_rotation(app, latest, command=f"/pgdb create {app}")
    try:
        seen = see(ctx, app, latest=latest)
    except ObserveFailed as exc:
        return _dry_stop(reply, exc.step, exc.cause)
    planned = seen.plan(ctx, app, extra_namespace=extra_namespace, approved=approved)
    refused = refusal_reply(ctx, app, planned)
    stop: tuple[str, str] | None = None
    if blocked is not None:
        stop = ("credentials", blocked)
    elif refused is not None:
        stop = ("credentials", refused.lines[0] if refused.lines else refused.title)
    else:
        stop = planned.create.stop
    steps: dict[str, tuple[StepState, str]] = {
        "credentials": (_WOULD[planned.create.credentials.act], planned.create.credentials.detail),
        "role": (
            _WOULD[planned.create.role.act],
            planned.create.role.detail
            + (
                f" ({services.settings.guardrails.role_limits.describe()})"
                if planned.create.create_role
                else ""
            ),
        ),
    }
    if stop is None:
        try:
            plan = plan_manifests(
                ctx,
                app,
                seen.snapshot,
                extra_namespace=extra_namespace,
                database_options=manifest_options(ctx, app, seen, planned.create, options),
            )
        except StepStopped as exc:
            stop = ("manifests", str(exc))
        else:
            steps["manifests"] = (_WOULD[plan.act], plan.detail)
            steps["checks"] = (
                StepState.PLANNED,
                "post pgdb/secret, pgdb/role, pgdb/manifests"
                if not plan.on_base
                else "report pgdb/secret, pgdb/role, pgdb/manifests here (no proposal)",
            )
    reached = True
    for step in reply.steps:
        if not reached:
            step.state, step.detail = StepState.SKIPPED, "would not run"
            continue
        if stop is not None and step.key == stop[0]:
            step.state, step.detail = StepState.FAILED, stop[1]
            reached = False
            continue
        state, detail = steps.get(step.key, (StepState.SKIPPED, "would not run"))
        step.state, step.detail = (
            state,
            f"would {detail}" if state is not StepState.EXISTS else (detail),
        )
    if stop is not None:
        reply.ok = False
        label = reply.step(stop[0]).label
        reply.lines.append(f"The real run would stop at step “{label}”: {stop[1]}")
    else:
        reply.lines.append("The real run would complete every step.")
    reply.lines.append("Dry run: nothing was changed.")
    return reply


def _stopped_before_writing(reply: Reply, key: str, cause: str) -> Reply:
    failed = fail_step(reply, key, cause)
    reply.title = f"{reply.title}: stopped"
    reply.lines.append(
        f"Stopped at step “{failed.label}”: {cause}. Nothing was changed; run the same "
        "command again once it is settled."
    )
    return reply


def _dry_stop(reply: Reply, key: str, cause: str) -> Reply:
    reached = True
    for step in reply.steps:
        if step.key == key:
            step.state, step.detail, reached = StepState.FAILED, cause, False
        elif reached:
            step.state, step.detail = StepState.SKIPPED, "not planned: a later step cannot be read"
        else:
            step.state, step.detail = StepState.SKIPPED, "would not run"
    reply.ok = False
    reply.lines.append(f"The real run would stop at step “{reply.step(key).label}”: {cause}")
    reply.lines.append("Dry run: nothing was changed.")
    return reply
