"""``/pgdb rotate <app>``: a new password applied everywhere, after confirmation (issue 10).

The order keeps the window in which a new connection can fail short, and existing connections
are never touched (PostgreSQL checks a password only when a session starts):

1. ``password``  — a new password into the secret store (``username``, ``password``,
   ``database``); the role still has the old one, so every pod keeps connecting;
2. ``resync``    — a forced Infisical re-sync (a harmless spec change: v0.11 ignores annotations);
3. ``sync-wait`` — poll the Kubernetes Secret until it carries the new password
   (``PGDB_ROTATE_SYNC_TIMEOUT``); steps 2-3 only when Kubernetes is configured;
4. ``role``      — ``ALTER ROLE … PASSWORD <SCRAM verifier>``: from here the new password opens
   the role and the old one no longer does;
5. ``rollout``   — with ``PGDB_ROLLOUT=on``, restart the Deployments and StatefulSets that read
   the Secret (their environment was read at pod start);
6. ``verify``    — the stored password opens the role.

A rotation is one workflow record (kind ``rotate``); a re-run of an unfinished one continues
that record. Before writing, the rotation records which password it writes as a salted
SCRAM-SHA-256 verifier (``password_fingerprint``, never the password, never displayed): a re-run
reuses the stored password exactly when it matches that fingerprint, and otherwise generates one.
"The stored password does not open the role" proves nothing: it is also true of a password that
had drifted before the rotation.

When the wait for the Secret times out, the old password is put back in the secret store (and a
re-sync requested): otherwise the operator's periodic resync would carry the new password into
the Secret while the role still has the old one. The store then no longer matches the
fingerprint, so the re-run generates a fresh password.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from bot.core.errors import PgdbError
from bot.core.manifests.layout import secret_name
from bot.core.model import (
    DatabaseState,
    InfisicalSecretResource,
    PasswordResult,
    RoleInfo,
    StoredCredentials,
    WorkflowRecord,
    WorkflowStatus,
)
from bot.core.names import AppName
from bot.core.reply import Button, Reply, Step, StepState, error_reply
from bot.core.scram import scram_matches, scram_verifier
from bot.core.secret import Secret, generate_password
from handlers.context import CommandContext, Services
from handlers.lifecycle import ROTATE, latest_by_app, unfinished_rotation
from handlers.workflow import StepStopped, run_steps, stop_at

log = logging.getLogger(__name__)

STEPS = (
    ("password", "New password in the secret store"),
    ("resync", "Infisical re-sync"),
    ("sync-wait", "Kubernetes Secret carries the new password"),
    ("role", "PostgreSQL role"),
    ("rollout", "Restart of the app's workloads"),
    ("verify", "Verification"),
)
# Steps after the secret store write: a rotation recorded at one of them has stored its password.
PAST_PASSWORD = frozenset(key for key, _ in STEPS[1:])
POLL_SECONDS = 0.25
WINDOW = (
    "Open connections keep working throughout. New connections with the password read from the "
    "secret store fail from the store write until ALTER ROLE (the re-sync and the wait: "
    "seconds); new connections with the old password (pods that read it at start) fail from "
    "ALTER ROLE until those pods restart."
)


@dataclass(kw_only=True)
class Rotation:
    """State carried from step to step within one run."""

    app: AppName
    workflow_id: int
    previous: WorkflowRecord | None  # the unfinished rotation this run finishes, if any
    fingerprint: str | None  # the verifier of the password the record's rotation wrote
    started_at: datetime  # the record's (PostgreSQL's clock), the same on every run
    password: Secret | None = None
    old_password: Secret | None = None
    generated: bool = False
    infisical: InfisicalSecretResource | None = None
    kube_secret: str | None = None  # the managed Secret to wait for (cluster namespace)
    ready_message: str = ""
    notes: list[str] = field(default_factory=list)


def _records(services: Services, app: AppName) -> list[WorkflowRecord]:
    latest = services.state.latest_workflow(app)
    return [latest] if latest is not None else []


def refuse_during_rotation(
    app: AppName, latest: WorkflowRecord | None, *, command: str
) -> str | None:
    """Why ``command`` must wait, given the app's latest workflow record: its rotation stopped
    midway. Another workflow would become the latest record and hide it, and the rotation's
    re-run would then generate yet another password."""
    rotation = unfinished_rotation(latest)
    if rotation is None:
        return None
    return (
        f"a rotation of `{app}` started at {_when(rotation.started_at)} stopped at step "
        f"“{rotation.step}”: `/pgdb rotate {app} --yes` finishes it (reusing the new password "
        f"when the store holds it); then run `{command}` again"
    )


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _refusal(app: AppName, state: DatabaseState) -> str | None:
    """Why this app's password cannot be rotated at all (checked before anything changes)."""
    role = state.roles.get(app)
    if role is None:
        return (
            f"role `{app}` does not exist, so there is no password to rotate: "
            f"`/pgdb repair {app} --yes` creates it with the stored password "
            f"(or `/pgdb create {app}` onboards the app)"
        )
    if not role.can_login:
        return (
            f"role `{app}` cannot log in (NOLOGIN: offboarded, or disabled by hand), and rotate "
            f"never re-enables login: an offboarded app comes back with `/pgdb create {app}` "
            f"(an operator's decision); a role disabled by hand stays so until an operator "
            f'runs ALTER ROLE "{app}" LOGIN'
        )
    if not role.bot_can_alter:
        return _cannot_alter(role, state)
    return None


def _cannot_alter(role: RoleInfo, state: DatabaseState) -> str:
    bot = state.bot_role
    if role.superuser:
        return (
            f"role `{role.name}` is a superuser and only a superuser may change its password; "
            f"the bot's account `{bot}` is not one. An app role should not be a superuser: a "
            f'superuser can run `ALTER ROLE "{role.name}" NOSUPERUSER;`'
        )
    return (
        f"the bot's account `{bot}` may not alter role `{role.name}` (on PostgreSQL 16+ a "
        f"CREATEROLE account needs ADMIN OPTION on roles it did not create): run "
        f'`GRANT "{role.name}" TO "{bot}" WITH ADMIN OPTION;` as a superuser, then rotate again'
    )


def _choose(
    app: AppName,
    previous: WorkflowRecord | None,
    fingerprint: str | None,
    stored: StoredCredentials | None,
) -> tuple[Secret | None, str]:
    """The password this rotation applies: the stored one when the unfinished rotation wrote
    it (it matches the fingerprint recorded before the write), else None (generate one). The
    second value says why, for humans.

    Whether the stored password opens the role proves nothing: a password that had drifted
    before the rotation does not open it either, and applying it would rotate nothing."""
    has = stored.password if stored is not None else None
    if previous is None:
        if has is None:
            return None, f"nothing is stored for role `{app}`: take it over with a new password"
        return None, "a new password"
    since = _when(previous.started_at)
    if has is None:
        return None, (
            f"a new password (the secret store holds none of the rotation started at {since})"
        )
    if fingerprint is not None:
        if scram_matches(fingerprint, has) is True:
            return has, f"the password stored by the rotation started at {since}"
        return None, (
            f"a new password (the secret store does not hold the one the rotation started at "
            f"{since} wrote)"
        )
    if previous.step in PAST_PASSWORD:
        # recorded before fingerprints existed: past the write, the stored one is the new one
        return has, f"the password stored by the rotation started at {since}"
    return None, f"a new password (nothing shows the rotation started at {since} stored one)"


def run_rotate(ctx: CommandContext, app: AppName, *, confirmed: bool) -> Reply:
    services = ctx.services
    reply = Reply(
        title=f"Rotate `{app}`",
        steps=[Step(key=k, label=label) for k, label in STEPS],
        correlation_id=ctx.correlation_id,
    )
    state = services.database.observe()
    refusal = _refusal(app, state)
    if refusal is not None:
        return error_reply(
            refusal, title=f"Rotate `{app}`: not possible", correlation_id=ctx.correlation_id
        )
    if not confirmed:
        return _plan(ctx, app, reply, state)
    ctx.conversation.show(reply)
    with services.state.app_lock(app) as acquired:
        if not acquired:
            return error_reply(
                f"a workflow for `{app}` is in progress; run `/pgdb rotate {app} --yes` again "
                "when it ends (a rotation already started is finished, not restarted)",
                title=f"Rotate `{app}`: busy",
                correlation_id=ctx.correlation_id,
            )
        return _rotate(ctx, app, reply)


def _rotate(ctx: CommandContext, app: AppName, reply: Reply) -> Reply:
    services = ctx.services
    # Observe again under the lock: another replica may have moved on meanwhile.
    previous = unfinished_rotation(latest_by_app(_records(services, app)).get(app))
    if previous is not None:
        workflow_id, started = previous.id, previous.started_at
        fingerprint = services.state.password_fingerprint(workflow_id)
        reply.title = f"Rotate `{app}`: finishing the rotation started at {_when(started)}"
    else:
        workflow_id = services.state.start_workflow(
            app=app, kind=ROTATE, requester=ctx.requester.user_id
        )
        fingerprint = None
        # The record's start (PostgreSQL's clock), as a re-run will read it: the rollout stamp
        # must be the same on every run, whatever the skew of the bot's own clock.
        record = services.state.latest_workflow(app)
        if record is None or record.id != workflow_id:  # under the app's lock: never expected
            cause = f"the rotation's record {workflow_id} is not the app's latest (read back)"
            return _fail(ctx, reply, app, workflow_id, "password", cause)
        started = record.started_at
    run = Rotation(
        app=app,
        workflow_id=workflow_id,
        previous=previous,
        fingerprint=fingerprint,
        started_at=started,
    )
    actions: dict[str, Callable[[CommandContext, Rotation, Step], None]] = {
        "password": _password,
        "resync": _resync,
        "sync-wait": _sync_wait,
        "role": _role,
        "rollout": _rollout,
        "verify": _verify,
    }
    stopped = run_steps(
        ctx,
        reply,
        workflow_id,
        kind=ROTATE,
        steps=[(key, partial(actions[key], ctx, run)) for key, _ in STEPS],
    )
    if stopped is not None:
        return _fail(
            ctx, reply, app, workflow_id, stopped.step, stopped.cause, resume=stopped.resume
        )
    services.state.update_workflow(workflow_id, step="done", status=WorkflowStatus.DONE)
    reply.title = f"Rotated `{app}`"
    if previous is not None:
        reply.title += f" (finished the rotation started at {_when(started)})"
    reply.fields.append(("Password", f"in the secret store at {services.secrets.location(app)}"))
    reply.lines.extend(run.notes)
    return reply


def _fail(
    ctx: CommandContext,
    reply: Reply,
    app: AppName,
    workflow_id: int,
    step: str,
    cause: str,
    *,
    resume: str | None = None,
) -> Reply:
    reply.title = f"Rotate `{app}`: stopped"
    return stop_at(
        ctx,
        reply,
        workflow_id,
        step,
        cause=cause,
        resume=resume
        or f"Fix the cause and run `/pgdb rotate {app} --yes` again: it finishes this "
        "rotation with the password already stored (no new one is generated once stored).",
    )


# --- steps --------------------------------------------------------------------------------


def _password(ctx: CommandContext, run: Rotation, step: Step) -> None:
    services, app = ctx.services, run.app
    stored = services.secrets.read(app)
    run.old_password = stored.password if stored is not None else None
    chosen, why = _choose(app, run.previous, run.fingerprint, stored)
    location = services.secrets.location(app)
    if chosen is not None:
        run.password = chosen
        run.old_password = None  # the old one was replaced by the first run: unknown here
        if run.fingerprint is None:  # a record from before fingerprints: record one now
            _record_fingerprint(ctx, run, chosen)
        assert stored is not None
        if stored.complete:
            step.state, step.detail = StepState.EXISTS, f"kept {why} at {location}"
            return
        services.secrets.write(
            app, username=stored.username or app, password=chosen, database=stored.database or app
        )
        step.state, step.detail = StepState.DONE, f"kept {why}, completed the keys at {location}"
        return
    run.password = generate_password()
    run.generated = True
    # Recorded before the write: a re-run reuses the stored password only if it is this one.
    _record_fingerprint(ctx, run, run.password)
    database = stored.database if stored is not None and stored.database else app
    services.secrets.write(app, username=app, password=run.password, database=database)
    step.state, step.detail = StepState.DONE, f"stored {why} at {location}"


def _record_fingerprint(ctx: CommandContext, run: Rotation, password: Secret) -> None:
    run.fingerprint = scram_verifier(password)
    ctx.services.state.set_password_fingerprint(run.workflow_id, fingerprint=run.fingerprint)


def _resync(ctx: CommandContext, run: Rotation, step: Step) -> None:
    services, app = ctx.services, run.app
    cluster = services.cluster
    if not cluster.configured:
        step.state, step.detail = StepState.SKIPPED, "Kubernetes is not configured"
        return
    snapshot = cluster.observe()
    name = secret_name(app)
    run.infisical = snapshot.infisical_secrets.get(name)
    if run.infisical is None:
        step.state = StepState.SKIPPED
        step.detail = (
            f"no InfisicalSecret `{name}` in namespace {snapshot.namespace} (manifests not "
            "merged yet?): its Secret will carry the new password when it is created"
        )
        return
    run.kube_secret = (
        run.infisical.managed_secrets[0] if run.infisical.managed_secrets else secret_name(app)
    )
    ready = run.infisical.ready
    run.ready_message = ready.message if ready is not None and not ready.true else ""
    current = snapshot.secrets.get(run.kube_secret)
    if current is not None and current.password == run.password:
        step.state = StepState.EXISTS
        step.detail = f"Secret `{run.kube_secret}` already carries the new password"
        return
    result = cluster.resync_infisical_secret(name)
    step.state = StepState.DONE
    step.detail = (
        f"changed {result.field} of InfisicalSecret `{result.name}` from {result.before} to "
        f"{result.after} (generation {result.generation_before} → {result.generation_after})"
    )


def _sync_wait(ctx: CommandContext, run: Rotation, step: Step) -> None:
    services = ctx.services
    if run.kube_secret is None:
        step.state = StepState.SKIPPED
        step.detail = (
            "Kubernetes is not configured"
            if not services.cluster.configured
            else "no InfisicalSecret to wait for"
        )
        return
    timeout = services.settings.timing.rotate_sync_timeout.seconds
    start = time.monotonic()
    while True:
        secret = services.cluster.read_secret(run.kube_secret)
        if secret is not None and secret.password == run.password:
            step.state = StepState.DONE
            step.detail = (
                f"Secret `{run.kube_secret}` carries it (after {time.monotonic() - start:.1f}s)"
            )
            return
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            break
        time.sleep(min(POLL_SECONDS, left))
    app, namespace = run.app, services.settings.layout.namespace
    why = f"; the InfisicalSecret says: {run.ready_message}" if run.ready_message else ""
    timed_out = (
        f"Secret `{run.kube_secret}` did not carry the new password within "
        f"{services.settings.timing.rotate_sync_timeout} (PGDB_ROTATE_SYNC_TIMEOUT)"
    )
    check = (
        f"the Infisical operator has not synced it{why}: check `kubectl -n {namespace} describe "
        f"infisicalsecret {secret_name(app)}` and the operator's logs"
    )
    restored = _put_old_password_back(ctx, run)
    if restored is None:
        # The consequence first: the record keeps the first 500 characters of the message.
        raise StepStopped(
            f"{timed_out}. The role still has the old password, the secret store the new one: "
            "at the operator's next periodic resync the Secret gets it too, and restarted pods "
            "and clients reading the store fail to connect. Re-run now: it continues with the "
            f"same new password. {check[0].upper()}{check[1:]}",
            resume=f"Run `/pgdb rotate {app} --yes` again as soon as the operator syncs: it "
            "finishes this rotation with the password already stored.",
        )
    raise StepStopped(
        f"{timed_out}. {restored}: nothing uses the new password, and a re-run generates a "
        f"fresh one. {check[0].upper()}{check[1:]}",
        resume=f"Once the operator syncs, run `/pgdb rotate {app} --yes` again: it rotates with "
        "a fresh password (the one of this run was withdrawn).",
    )


def _put_old_password_back(ctx: CommandContext, run: Rotation) -> str | None:
    """After the wait timed out, the store holds the new password and the role the old one;
    the operator's periodic resync would carry the new one into the Secret anyway. Put the old
    one back, so the store, the Secret and the role agree again: what was done (for the
    message), or None when the old password is unknown or could not be written back.

    The old password is what the store held before this run wrote, else (this run reused a
    password an earlier run stored) the Secret's, if it still opens the role."""
    services, app = ctx.services, run.app
    assert run.kube_secret is not None and run.password is not None
    try:
        old = run.old_password
        if old is None:
            secret = services.cluster.read_secret(run.kube_secret)
            candidate = secret.password if secret is not None else None
            if candidate is not None and candidate != run.password:
                state = services.database.observe()
                verdict = services.database.check_passwords({app: candidate}, state=state)[app]
                if verdict.result is PasswordResult.MATCH:
                    old = candidate
        if old is None or old == run.password:
            return None
        stored = services.secrets.read(app)
        services.secrets.write(
            app,
            username=(stored.username if stored is not None else None) or app,
            password=old,
            database=(stored.database if stored is not None else None) or app,
        )
    except PgdbError as exc:
        log.warning("rotate %s: could not put the old password back: %s", app, exc)
        return None
    done = "The old password was put back in the secret store"
    try:
        services.cluster.resync_infisical_secret(secret_name(app))
    except PgdbError as exc:
        log.warning("rotate %s: re-sync after putting the old password back: %s", app, exc)
        return done + " (the re-sync failed: the operator's periodic resync carries it over)"
    return done + " and a re-sync requested"


def _role(ctx: CommandContext, run: Rotation, step: Step) -> None:
    services, app = ctx.services, run.app
    assert run.password is not None
    state = services.database.observe()
    role = state.roles.get(app)
    if role is None:
        raise StepStopped(
            f"role `{app}` was dropped during the rotation: `/pgdb repair {app} --yes` creates "
            "it with the stored (new) password"
        )
    if not role.bot_can_alter:
        raise StepStopped(_cannot_alter(role, state))
    if not run.generated:
        verdict = services.database.check_passwords({app: run.password}, state=state)[app]
        if verdict.result is PasswordResult.MATCH:
            step.state, step.detail = StepState.EXISTS, f"role `{app}` already uses it"
            return
    services.database.set_password(app, password=run.password)
    step.state = StepState.DONE
    step.detail = (
        f"ALTER ROLE `{app}` with a SCRAM-SHA-256 verifier (LOGIN kept): new connections use "
        "the new password, open sessions keep working"
    )


def _rollout(ctx: CommandContext, run: Rotation, step: Step) -> None:
    services, app = ctx.services, run.app
    if not services.settings.options.rollout:
        step.state = StepState.SKIPPED
        step.detail = "PGDB_ROLLOUT is off"
        run.notes.append(
            "Pods that read the password at start (env from the Secret) keep the old one until "
            "they restart: `kubectl rollout restart` them now (or set PGDB_ROLLOUT=on)."
        )
        return
    if not services.cluster.configured:
        step.state, step.detail = StepState.SKIPPED, "Kubernetes is not configured"
        return
    infisical = run.infisical
    namespace = services.settings.layout.namespace
    delivered = (
        infisical.delivered_to
        if infisical is not None and infisical.delivered_to
        else ((namespace, secret_name(app)),)
    )
    # The same value on every run of one rotation: a re-run never restarts a workload twice.
    stamp = run.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    restarted: list[str] = []
    already: list[str] = []
    for ns in sorted({n for n, _ in delivered}):
        names = {name for n, name in delivered if n == ns}
        for workload in services.cluster.workloads(ns):
            if not workload.secrets & names:
                continue
            label = f"{workload.kind} {workload.namespace}/{workload.name}"
            if workload.restarted_at == stamp:
                already.append(label)
                continue
            services.cluster.restart_workload(workload, restarted_at=stamp)
            restarted.append(label)
    if not restarted and not already:
        step.state = StepState.EXISTS
        step.detail = "no Deployment or StatefulSet reads the Secret in " + ", ".join(
            sorted({n for n, _ in delivered})
        )
        return
    step.state = StepState.DONE if restarted else StepState.EXISTS
    parts = []
    if restarted:
        parts.append("restarted " + ", ".join(restarted))
    if already:
        parts.append("already restarted " + ", ".join(already))
    step.detail = "; ".join(parts) + f" (restartedAt {stamp})"


def _verify(ctx: CommandContext, run: Rotation, step: Step) -> None:
    services, app = ctx.services, run.app
    assert run.password is not None
    state = services.database.observe()
    verdict = services.database.check_passwords({app: run.password}, state=state)[app]
    if verdict.result is not PasswordResult.MATCH:
        raise StepStopped(
            f"the stored password does not open role `{app}` after ALTER ROLE "
            f"({verdict.detail or verdict.result.value}); run again to set it"
        )
    step.state, step.detail = StepState.DONE, f"the stored password opens role `{app}`"
    if run.old_password is not None and run.old_password != run.password:
        old = services.database.check_passwords({app: run.old_password}, state=state)[app]
        if old.result is PasswordResult.MISMATCH:
            step.detail += "; the old password no longer does"


# --- confirmation -------------------------------------------------------------------------


def _plan(ctx: CommandContext, app: AppName, reply: Reply, state: DatabaseState) -> Reply:
    services = ctx.services
    settings = services.settings
    previous = unfinished_rotation(latest_by_app(_records(services, app)).get(app))
    stored = services.secrets.read(app)
    fingerprint = services.state.password_fingerprint(previous.id) if previous is not None else None
    chosen, why = _choose(app, previous, fingerprint, stored)
    location = services.secrets.location(app)
    details = {
        "password": (f"would keep {why}" if chosen is not None else f"would store {why}")
        + f" at {location}",
        "role": f"would set it on role `{app}` (ALTER ROLE with a SCRAM verifier, LOGIN kept)",
        "verify": "would check that the stored password opens the role",
    }
    if services.cluster.configured:
        name = secret_name(app)
        details["resync"] = f"would force a re-sync of InfisicalSecret `{name}`"
        details["sync-wait"] = (
            f"would wait up to {settings.timing.rotate_sync_timeout} "
            "(PGDB_ROTATE_SYNC_TIMEOUT) for "
            f"Secret `{name}` to carry it"
        )
    if settings.options.rollout and services.cluster.configured:
        details["rollout"] = "would restart the Deployments and StatefulSets that read the Secret"
    for s in reply.steps:
        if s.key in details:
            s.state, s.detail = StepState.PLANNED, details[s.key]
        else:
            s.state = StepState.SKIPPED
            s.detail = (
                "PGDB_ROLLOUT is off"
                if s.key == "rollout" and services.cluster.configured
                else "Kubernetes is not configured"
            )
    if previous is not None:
        reply.title = (
            f"Rotate `{app}`: confirm finishing the rotation started at "
            f"{_when(previous.started_at)}"
        )
    else:
        reply.title = f"Rotate `{app}`: confirm"
    reply.lines.append(WINDOW)
    reply.lines.append(f"Nothing changed yet. To apply: `/pgdb rotate {app} --yes`")
    reply.buttons = [Button(label="Rotate", command=f"/pgdb rotate {app} --yes", style="danger")]
    return reply
