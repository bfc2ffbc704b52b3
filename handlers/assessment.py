"""One judgement per app: every layer's check, and for each problem its one finding.

``assess`` turns one observation into an ``Assessment``; ``status``, ``list``, ``diagnose`` (chat
and CLI), the scheduled alerts, the follow-through and ``repair``'s plan all render it, so they
cannot disagree. The rules of what is wrong live here and in the Kubernetes layer
(:mod:`handlers.cluster_checks`), nowhere else.

Two rules shape everything below:

* A system that cannot be read is not an empty system: its checks are "unknown", one
  ``system_unreachable`` finding says why, and nothing is derived from its silence. A secret
  store that answers with no app at all while the other sources know apps that must have
  credentials there is treated the same way (a wrong environment, path, or a lost store).
* Grace (``PGDB_GRACE``) runs from when the app or the resource first appeared — the bot's
  first record of the app, its branch, its Kubernetes objects — so a later command never
  restarts it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.core.manifests.kustomization import listed_set
from bot.core.manifests.layout import (
    KUSTOMIZATION_FILE,
    database_path,
    secret_name,
    secret_path,
)
from bot.core.manifests.onboarding import listed_on_base
from bot.core.model import (
    PRIVILEGED_ROLES,
    DatabaseState,
    GitSnapshot,
    PasswordResult,
    PasswordVerdict,
    ProposalState,
    RoleInfo,
    StoredCredentials,
)
from bot.core.names import AppName, InvalidAppName, is_system_role, parse_app_name
from handlers.checks import (
    ICONS,
    SEVERITY_ORDER,
    WARNING_ICON,
    Check,
    CheckOutcome,
    Finding,
    Repair,
    Severity,
    ok,
    overall,
    pending,
    problem,
    unknown,
)
from handlers.cluster_checks import (
    KubeView,
    argocd_finding,
    cluster_findings,
    kube_checks,
    kube_system_row,
    repair_command,
    retired_kube_checks,
    rotation_note,
)
from handlers.context import Services
from handlers.lifecycle import NO_HISTORY, AppHistory, Lifecycle, interrupted
from handlers.observe import (
    Observation,
    SingleFlight,
    check_passwords,
    known_apps,
    listed_entries,
)
from handlers.usage_checks import AppUsage, storage_finding, usage_checks

PG = "PostgreSQL"
CHECK_CREDENTIALS = "credentials stored"
CHECK_ROLE = "role"
CHECK_LOGIN = "role can log in"
CHECK_PASSWORD = "stored password opens the role"  # noqa: S105 (a label)
CHECK_DATABASE = "database"
CHECK_MANIFESTS = "manifests"
CHECK_WORKFLOW = "offboarding"
SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})
# Attributes an app's role must never have; CREATEDB is tolerated with a warning.
PRIVILEGED_ATTRIBUTES = ("superuser", "bypassrls", "replication", "createrole")
# Where to look when a system cannot be observed.
SYSTEM_HINTS = {
    "secret store": "check PGDB_SECRETS_DIR (or the Infisical settings: PGDB_INFISICAL_*, "
    "PGDB_ENV) and its permissions",
    "PostgreSQL": "check PGDB_PG_DSN and that the server accepts the bot's connections",
    "git": "check PGDB_GITOPS_REPO (or PGDB_GITHUB_*) and PGDB_GITOPS_BASE_BRANCH",
    "bot state": "check PGDB_PG_DSN: the bot keeps its records in schema PGDB_STATE_SCHEMA",
    "Kubernetes": "check PGDB_KUBECONFIG (or the pod's service account) and that the API server "
    "is reachable; PGDB_KUBERNETES=off runs without it",
}


@dataclass(frozen=True, kw_only=True)
class AppAssessment:
    """One app, judged: its checks (each problem with its finding) and lines to show first."""

    app: AppName
    checks: tuple[Check, ...]
    history: AppHistory = NO_HISTORY
    notes: tuple[str, ...] = ()
    verdict: PasswordVerdict | None = None

    @property
    def outcome(self) -> CheckOutcome:
        return overall(list(self.checks))

    @property
    def findings(self) -> list[Finding]:
        """The app's own findings (a shared cluster-wide one is listed once, by the pass)."""
        return [c.finding for c in self.checks if c.finding is not None and c.finding.app]

    @property
    def state(self) -> str:
        """What the app is, in one word or two, for titles and one-line listings."""
        if self.history.state is Lifecycle.OFFBOARDED:
            return "offboarded"
        if self.history.state is Lifecycle.OFFBOARDING:
            return "offboarding"
        return self.outcome.value

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


@dataclass(frozen=True, kw_only=True)
class Assessment:
    """Every app of one observation, plus what belongs to no app."""

    observation: Observation
    apps: Mapping[str, AppAssessment]
    system_findings: tuple[Finding, ...] = ()
    system_rows: tuple[tuple[str, str], ...] = ()
    verdicts: Mapping[str, PasswordVerdict] = field(default_factory=dict)
    # systems whose answer was not used: unreachable, or (the secret store) not trusted
    unread: frozenset[str] = frozenset()

    @property
    def findings(self) -> list[Finding]:
        """Every finding of the pass, most severe first."""
        found = [*self.system_findings, *(f for a in self.apps.values() for f in a.findings)]
        found.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.app or "", f.kind))
        return found

    @property
    def alerting(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is not Severity.INFO]


# --- the pass --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Pass:
    """What every app's judgement reads, computed once per observation."""

    obs: Observation
    services: Services
    at: datetime
    grace: timedelta
    histories: Mapping[str, AppHistory]
    verdicts: Mapping[str, PasswordVerdict]
    store: dict[str, StoredCredentials] | None  # None: unreadable, or not trusted
    store_error: str | None
    database: DatabaseState | None
    git: GitSnapshot | None
    listed: frozenset[str] | None  # the base's resources entries (None: none readable)
    broken: Mapping[str, Finding]  # kustomization entry -> kustomization_broken
    argocd: Finding | None
    privileged_roles: frozenset[str]  # roles whose membership makes a role privileged

    def history(self, app: str) -> AppHistory:
        return self.histories.get(app, NO_HISTORY)

    def fresh(self, since: datetime | None) -> bool:
        return since is not None and self.at - since < self.grace

    def psql(self, statement: str) -> str:
        return psql_command(self.services, statement)


def psql_command(services: Services, statement: str) -> str:
    """The exact command an operator runs for ``statement`` on the cluster's primary."""
    layout = services.settings.layout
    primary = f"-n {layout.namespace} {layout.cluster}-1"
    return f"kubectl exec {primary} -- psql -U postgres -c '{statement}'"


def assess(
    obs: Observation,
    services: Services,
    *,
    only: AppName | None = None,
    respect_grace: bool = True,
    verdicts: Mapping[str, PasswordVerdict] | None = None,
) -> Assessment:
    """Judge every known app (or ``only`` that one) from one observation, in time linear in
    the number of apps and records. Callers judging the whole fleet from the same (shared)
    observation at the same time share one judgement."""
    if only is None and verdicts is None:
        return _FLEET_JUDGEMENTS.run(
            (id(obs), id(services), respect_grace),
            lambda: _assess(obs, services, only=None, respect_grace=respect_grace, verdicts=None),
        )
    return _assess(obs, services, only=only, respect_grace=respect_grace, verdicts=verdicts)


_FLEET_JUDGEMENTS: SingleFlight[Assessment] = SingleFlight()


def _assess(
    obs: Observation,
    services: Services,
    *,
    only: AppName | None,
    respect_grace: bool,
    verdicts: Mapping[str, PasswordVerdict] | None,
) -> Assessment:
    apps = known_apps(obs, services)
    if only is not None:
        apps = [only]
    records = obs.histories
    grace = timedelta(seconds=services.settings.timing.grace.seconds if respect_grace else 0)
    store, store_error, untrusted = _store(obs, services, apps, records=records)
    if verdicts is None:
        wanted = [a for a in apps if not records.get(a, NO_HISTORY).retired]
        verdicts = check_passwords(obs, services, wanted) if store is not None else {}
    snap = obs.cluster.value
    listed = listed_entries(obs.git.value)
    p = _Pass(
        obs=obs,
        services=services,
        at=obs.at,
        grace=grace,
        histories=records,
        verdicts=verdicts,
        store=store,
        store_error=store_error,
        database=obs.database.value,
        git=obs.git.value,
        listed=listed,
        broken=_broken_entries(obs.git.value, listed),
        argocd=argocd_finding(snap, services) if snap is not None else None,
        privileged_roles=privileged_roles(obs.database.value),
    )
    judged: dict[str, AppAssessment] = {app: _assess_app(p, app) for app in apps}
    if only is not None:
        return _said_of_environment(
            Assessment(observation=obs, apps=judged, verdicts=verdicts), services
        )
    kube = [
        *(cluster_findings(snap, services, at=p.at, grace=p.grace) if snap is not None else []),
        *([p.argocd] if p.argocd is not None else []),
    ]
    storage = storage_finding(snap, p.database, services.settings)
    system = [
        *_system_findings(p, untrusted),
        *kube,
        *([storage] if storage is not None else []),
        *_orphans(p, apps),
    ]
    unread = set(obs.unreachable())
    if untrusted is not None:
        unread.add("secret store")
    if snap is not None and snap.errors:
        unread.add("Kubernetes")
    assessment = Assessment(
        observation=obs,
        apps=judged,
        system_findings=tuple(system),
        system_rows=tuple(_system_rows(p, kube)),
        verdicts=verdicts,
        unread=frozenset(unread),
    )
    return _said_of_environment(assessment, services)


def _said_of_environment(assessment: Assessment, services: Services) -> Assessment:
    """With several environments, every finding names its own (and its remedies take
    ``--env``); with one, nothing changes."""
    layout = services.settings.layout
    if layout.branch_scope is None:
        return assessment
    env = layout.environment

    def stamped(check: Check) -> Check:
        if check.finding is None:
            return check
        return dataclasses.replace(check, finding=check.finding.in_environment(env))

    apps = {
        app: dataclasses.replace(judged, checks=tuple(stamped(c) for c in judged.checks))
        for app, judged in assessment.apps.items()
    }

    def system(finding: Finding) -> Finding:
        said = finding.in_environment(env)  # the server to check is this environment's
        where = f"environments.{env}.pg_dsn (PGDB_CONFIG)"
        return dataclasses.replace(said, remedy=said.remedy.replace("PGDB_PG_DSN", where))

    return dataclasses.replace(
        assessment,
        apps=apps,
        system_findings=tuple(system(f) for f in assessment.system_findings),
    )


def _store(
    obs: Observation,
    services: Services,
    apps: list[AppName],
    *,
    records: Mapping[str, AppHistory],
) -> tuple[dict[str, StoredCredentials] | None, str | None, str | None]:
    """The store's answer, unless it cannot be trusted: (value, why not, untrusted finding
    message). An empty answer while other sources know established apps that must have
    credentials there is no answer (an app still being created has not written yet)."""
    if obs.secrets.value is None:
        return None, obs.secrets.error or "the secret store could not be read", None
    if obs.secrets.value:
        return obs.secrets.value, None, None

    def expects_credentials(app: AppName) -> bool:
        history = records.get(app, NO_HISTORY)
        if history.retired and history.secret_deleted:
            return False
        latest = history.latest
        # a create that has not finished its first step has not written anything yet
        writing = (
            latest is not None
            and latest.kind == "create"
            and latest.status.value == "running"
            and not latest.step
            and not interrupted(latest, at=obs.at)
        )
        return not writing

    expecting = [a for a in apps if expects_credentials(a)]
    if not expecting:
        return obs.secrets.value, None, None  # a new, empty environment
    where = services.secrets.location(expecting[0]).rsplit("/", 1)[0]
    named = ", ".join(expecting[:3]) + (
        f" and {len(expecting) - 3} more" if len(expecting) > 3 else ""
    )
    why = (
        f"the secret store answered with no app at all under {where} while {len(expecting)} "
        f"app(s) are known elsewhere ({named}): a wrong environment or path, or a lost store"
    )
    return None, why, why


def _unreadable_kustomization(snapshot: GitSnapshot) -> Finding:
    base = snapshot.base_branch
    try:
        listed_set(snapshot.kustomization or "")
        why = f"{KUSTOMIZATION_FILE} cannot be read"
    except ValueError as exc:  # the reason, parsed again only for a broken file
        why = str(exc)
    return Finding(
        kind="kustomization_broken",
        app=None,
        severity=Severity.CRITICAL,
        message=f"{why} (branch {base}): Argo CD cannot build the folder, so no app in it "
        "syncs, and the bot cannot add or remove an app there",
        remedy=f"fix {KUSTOMIZATION_FILE} by hand on branch {base} (the bot does not edit a "
        "file it cannot read)",
    )


def _broken_entries(
    snapshot: GitSnapshot | None, listed: frozenset[str] | None
) -> dict[str, Finding]:
    """``resources`` entries naming a file that does not exist, or a kustomization that cannot
    be read at all (keyed by its own name): Argo CD cannot build the folder, so every app of
    it stops syncing."""
    if snapshot is None or snapshot.kustomization is None:
        return {}
    if listed is None:
        return {KUSTOMIZATION_FILE: _unreadable_kustomization(snapshot)}
    folders = {f.rsplit("/", 1)[0] for f in snapshot.files if "/" in f}
    out: dict[str, Finding] = {}
    for entry in sorted(listed):
        if entry in snapshot.files or entry in folders or entry.startswith("..") or "://" in entry:
            continue
        app = _app_of_entry(entry)
        out[entry] = Finding(
            kind="kustomization_broken",
            app=app,
            severity=Severity.CRITICAL,
            message=f"kustomization.yaml on branch {snapshot.base_branch} lists `{entry}`, which "
            "does not exist: Argo CD cannot build the folder, so no app in it syncs",
            remedy=repair_command(app)
            if app is not None
            else f"remove `{entry}` from the resources of kustomization.yaml (or restore it)",
            repair=Repair.MANIFESTS if app is not None else None,
        )
    return out


def _app_of_entry(entry: str) -> str | None:
    for prefix, suffix in (("databases/", ".yaml"), ("credentials/", "-secret.yaml")):
        if entry.startswith(prefix) and entry.endswith(suffix):
            name = entry.removeprefix(prefix).removesuffix(suffix)
            try:
                return parse_app_name(name)
            except InvalidAppName:
                return None
    return None


def privileged_roles(state: DatabaseState | None) -> frozenset[str]:
    """The roles membership in which makes a role privileged: the model's list, and every role
    with a privileged attribute."""
    if state is None:
        return PRIVILEGED_ROLES
    strong = {r.name for r in state.roles.values() if _privileged_attributes(r)}
    return PRIVILEGED_ROLES | strong


def _privileged_attributes(role: RoleInfo) -> list[str]:
    return [a.upper() for a in PRIVILEGED_ATTRIBUTES if getattr(role, a)]


def role_privileges(role: RoleInfo, privileged_roles: Iterable[str]) -> list[str]:
    """What makes a role privileged (never adopted, never an app's): attributes and
    memberships; empty when it is not."""
    groups = set(privileged_roles)
    return [
        *_privileged_attributes(role),
        *(f"member of {r}" for r in role.member_of if r in groups),
    ]


# --- one app ---------------------------------------------------------------------------------


def _first_appearance(p: _Pass, app: str, history: AppHistory) -> datetime | None:
    """The earliest creation time among the app's records, branch and Kubernetes objects."""
    times: list[datetime] = []
    if history.first_seen is not None:
        times.append(history.first_seen)
    proposal = p.git.proposals.get(app) if p.git is not None else None
    if proposal is not None and proposal.created_at is not None:
        times.append(proposal.created_at)
    snap = p.obs.cluster.value
    if snap is not None:
        named = AppName(app)
        for item in (
            snap.database_for(named),
            snap.infisical_secrets.get(secret_name(named)),
            snap.secrets.get(secret_name(named)),
        ):
            if item is not None and item.created_at is not None:
                times.append(item.created_at)
    return min(times) if times else None


def _assess_app(p: _Pass, app: AppName) -> AppAssessment:
    history = p.history(app)
    fresh = p.fresh(_first_appearance(p, app, history))
    stored = p.store.get(app) if p.store is not None else None
    role = p.database.roles.get(app) if p.database is not None else None
    verdict = p.verdicts.get(app)
    notes: list[str] = []
    if history.retired:
        checks = _retired_checks(p, app, history, stored=stored, role=role, notes=notes)
    else:
        rotation = history.rotation
        rotating = (
            rotation is not None
            and not interrupted(rotation, at=p.at)
            and rotation.status.value == "running"
            and p.at - rotation.updated_at < max(p.grace, timedelta(seconds=1))
        )
        if rotation is not None:
            notes.append(_rotation_line(app, rotation, running=rotating))
        checks = [
            _credentials(p, app, stored, role, fresh=fresh),
            _role(p, app, role, fresh=fresh, stored=stored),
            _login(p, app, role),
            _password(p, app, role, stored, verdict, rotating=rotating, history=history),
            _database(p, app),
            _manifests(p, app, fresh=fresh),
            *kube_checks(
                _kube_view(p, app, stored, fresh=fresh, history=history, rotating=rotating),
                configured=p.obs.cluster.configured,
                error=p.obs.cluster.error,
            ),
            *usage_checks(_usage(p, app, role, history)),
        ]
    latest = history.latest
    if latest is not None and interrupted(latest, at=p.at) and not history.retired:
        notes.append(
            f"⏹ the `{latest.kind}` started by {latest.requester} at "
            f"{latest.started_at:%Y-%m-%d %H:%M} UTC was interrupted at step “{latest.step}”: "
            f"`/pgdb {latest.kind} {app}` resumes it"
        )
    request = p.obs.pending_request(app)
    if request is not None:
        notes.append(
            f"⏳ request #{request.id}: `{request.command}` by {request.requester} waits for an "
            f"operator — `/pgdb approve {request.id}` or `/pgdb deny {request.id} [reason]`"
        )
    return AppAssessment(
        app=app, checks=tuple(checks), history=history, notes=tuple(notes), verdict=verdict
    )


def _usage(p: _Pass, app: AppName, role: RoleInfo | None, history: AppHistory) -> AppUsage:
    """What the guardrail checks of one app read, all from this pass."""
    snap = p.obs.cluster.value
    return AppUsage(
        app=app,
        role=role,
        database=p.database.databases.get(app) if p.database is not None else None,
        resource=snap.database_for(app) if snap is not None else None,
        declared=history.latest.declared if history.latest is not None else None,
        settings=p.services.settings,
    )


def _rotation_line(app: str, rotation: Any, *, running: bool) -> str:
    since = f"{rotation.started_at:%Y-%m-%d %H:%M:%S} UTC"
    if running:
        return f"🔄 {app}: rotation in progress since {since} (step “{rotation.step}”)"
    return (
        f"{app}: the rotation started at {since} stopped at step “{rotation.step}”"
        + (f": {rotation.detail}" if rotation.detail else "")
        + f" — finish it with `/pgdb rotate {app} --yes` (it reuses the new password when the "
        "store holds it)"
    )


def _kube_view(
    p: _Pass,
    app: AppName,
    stored: StoredCredentials | None,
    *,
    fresh: bool,
    history: AppHistory,
    rotating: bool,
) -> KubeView | None:
    snap = p.obs.cluster.value
    if snap is None:
        return None
    return KubeView(
        app=app,
        snap=snap,
        services=p.services,
        at=p.at,
        grace=p.grace,
        expected=_on_base(p, app) if p.git is not None else None,
        base_branch=p.git.base_branch if p.git is not None else "the base branch",
        fresh_app=fresh,
        stored_password=stored.password if stored is not None else None,
        store_error=p.store_error,
        database=p.database,
        rotation=history.rotation,
        rotating=rotating,
        argocd=p.argocd,
    )


def _on_base(p: _Pass, app: AppName) -> bool:
    """``create``'s "already on the base branch"; a kustomization that cannot be read is not
    (its problem is reported as `kustomization_broken` or by the GitOps row)."""
    if p.git is None or p.listed is None:
        return False
    return listed_on_base(app, files_on_base=p.git.files, listed=p.listed)


def _store_source(p: _Pass) -> str:
    return f"{p.services.secrets.kind} secret store"


def _credentials(
    p: _Pass,
    app: AppName,
    stored: StoredCredentials | None,
    role: RoleInfo | None,
    *,
    fresh: bool,
) -> Check:
    name, source = CHECK_CREDENTIALS, _store_source(p)
    if p.store is None:
        return unknown(name, p.store_error or "the secret store could not be read", source)
    location = p.services.secrets.location(app)
    repair = repair_command(app)
    if stored is None or stored.password is None:
        detail = f"no password stored at {location}"
        if role is not None:
            return problem(
                name,
                detail,
                source,
                Finding(
                    kind="secret_missing",
                    app=app,
                    severity=Severity.CRITICAL,
                    message=f"no password is stored at {location} but role `{app}` exists",
                    remedy=f"/pgdb rotate {app}",
                ),
            )
        if p.database is None:
            return unknown(name, f"{detail}, and whether role `{app}` exists is unknown", source)
        if fresh:
            return pending(name, f"{detail} yet", source)
        return problem(
            name,
            detail,
            source,
            Finding(
                kind="secret_missing",
                app=app,
                severity=Severity.WARNING,
                message=f"no password is stored at {location}",
                remedy=repair,
                repair=Repair.CREDENTIALS,
            ),
        )
    if not stored.username:
        return problem(
            name,
            f"`username` missing at {location}",
            source,
            Finding(
                kind="secret_missing",
                app=app,
                severity=Severity.WARNING,
                message=f"the secret store lacks `username` at {location}",
                remedy=repair,
                repair=Repair.CREDENTIALS,
            ),
        )
    wrong = [
        f"`{key}` is `{value}`"
        for key, value in (("username", stored.username), ("database", stored.database))
        if value is not None and value != app
    ]
    if wrong:
        return problem(
            name,
            f"{' and '.join(wrong)} at {location}, not `{app}`",
            source,
            Finding(
                kind="credentials_mismatch",
                app=app,
                severity=Severity.CRITICAL,
                message=f"the credentials at {location} do not name the app: "
                f"{' and '.join(wrong)} where the role and database are `{app}`",
                remedy=f"set them to `{app}` at {location} (an operator decides which is right)",
            ),
        )
    detail = location
    if stored.database is None:
        detail += " (`database` not stored: it defaults to the username)"
    return ok(name, detail, source)


def _role(
    p: _Pass,
    app: AppName,
    role: RoleInfo | None,
    *,
    fresh: bool,
    stored: StoredCredentials | None,
) -> Check:
    name = CHECK_ROLE
    if p.database is None:
        return unknown(name, p.obs.database.error or "PostgreSQL could not be read", PG)
    if role is None:
        if fresh:
            return pending(name, f"role `{app}` not created yet", PG)
        has_password = stored is not None and stored.password is not None
        readable = p.store is not None  # no role is made from a password nobody could read
        return problem(
            name,
            f"role `{app}` does not exist",
            PG,
            Finding(
                kind="role_missing",
                app=app,
                severity=Severity.CRITICAL,
                message=f"role `{app}` does not exist"
                + (" although its password is stored" if has_password else ""),
                remedy=repair_command(app)
                if readable
                else f"make the secret store readable ({p.store_error}), then "
                + repair_command(app),
                repair=Repair.ROLE if readable else None,
            ),
        )
    return _role_privileges(p, app, role) or ok(name, "no dangerous attributes or memberships", PG)


def _role_privileges(p: _Pass, app: AppName, role: RoleInfo) -> Check | None:
    privileges = role_privileges(role, p.privileged_roles)
    if not privileges and not role.createdb:
        return None
    attributes = list(role.dangerous_attributes)
    statement = ""
    if attributes:
        statement = f'ALTER ROLE "{app}" ' + " ".join(f"NO{a.upper()}" for a in attributes) + ";"
    for granted in (r for r in role.member_of if r in p.privileged_roles):
        statement += f' REVOKE "{granted}" FROM "{app}";'
    what = ", ".join(privileges) if privileges else "CREATEDB"
    severity = Severity.CRITICAL if privileges else Severity.WARNING
    return problem(
        CHECK_ROLE,
        f"unsafe: {what}",
        PG,
        Finding(
            kind="role_unsafe",
            app=app,
            severity=severity,
            message=f"role `{app}` has privileges an app must not have: {what}",
            remedy=p.psql(statement.strip()),
        ),
    )


def _login_sql(role: RoleInfo, at: datetime) -> str:
    if not role.can_login:
        return f'ALTER ROLE "{role.name}" LOGIN;'
    if role.valid_until is not None and role.valid_until <= at:
        return f"ALTER ROLE \"{role.name}\" VALID UNTIL 'infinity';"
    return f'ALTER ROLE "{role.name}" CONNECTION LIMIT -1;'


def _login(p: _Pass, app: AppName, role: RoleInfo | None) -> Check:
    name = CHECK_LOGIN
    if p.database is None:
        return unknown(name, p.obs.database.error or "PostgreSQL could not be read", PG)
    if role is None:
        return Check(name=name, outcome=CheckOutcome.NOT_CHECKED, detail="no role yet", source=PG)
    refusal = role.login_refusal(p.at)
    if refusal is None:
        return ok(name, "LOGIN", PG)
    cause = " (not set by an offboarding)" if not role.can_login else ""
    return problem(
        name,
        f"PostgreSQL refuses every login: {refusal}{cause}",
        PG,
        Finding(
            kind="login_refused",
            app=app,
            severity=Severity.CRITICAL,
            message=f"role `{app}` cannot log in: {refusal}{cause}",
            remedy=f"an operator decides (repair never changes LOGIN): "
            f"{p.psql(_login_sql(role, p.at))}",
        ),
    )


def _password(
    p: _Pass,
    app: AppName,
    role: RoleInfo | None,
    stored: StoredCredentials | None,
    verdict: PasswordVerdict | None,
    *,
    rotating: bool,
    history: AppHistory,
) -> Check:
    name = CHECK_PASSWORD
    if p.database is None:
        return unknown(name, p.obs.database.error or "PostgreSQL could not be read", PG)
    if p.store is None:
        return unknown(name, p.store_error or "the secret store could not be read", PG)
    why_not = (
        "no role"
        if role is None
        else "no stored password"
        if stored is None or stored.password is None
        else "the role cannot log in"
        if role.login_refusal(p.at) is not None
        else None
    )
    if why_not is not None:
        return Check(
            name=name, outcome=CheckOutcome.NOT_CHECKED, detail=f"not checked: {why_not}", source=PG
        )
    if verdict is None:
        return unknown(name, "it was not checked in this pass", PG)
    how = "verifier comparison" if verdict.method == "verifier" else "real login"
    if verdict.result is PasswordResult.MATCH:
        return ok(name, f"yes ({how})", PG)
    if verdict.result is PasswordResult.UNKNOWN:
        return unknown(name, verdict.detail or "the check could not conclude", PG)
    if rotating:
        return pending(name, f"no ({how}) (rotation in progress)", PG)
    rotation = history.rotation
    location = p.services.secrets.location(app)
    return problem(
        name,
        f"no ({how}) — "
        + (f"finish the rotation: /pgdb rotate {app} --yes" if rotation else "drift: /pgdb rotate"),
        PG,
        Finding(
            kind="password_drift",
            app=app,
            severity=Severity.CRITICAL,
            message=f"the password stored at {location} does not open role `{app}`"
            + (f" ({verdict.detail})" if verdict.detail else "")
            + (rotation_note(rotation) if rotation is not None else ""),
            remedy=f"/pgdb rotate {app}" + (" --yes" if rotation is not None else ""),
        ),
    )


def _database(p: _Pass, app: AppName) -> Check:
    name = CHECK_DATABASE
    if p.database is None:
        return unknown(name, p.obs.database.error or "PostgreSQL could not be read", PG)
    db = p.database.databases.get(app)
    if db is None:
        return pending(
            name,
            f"database `{app}` not created yet (CloudNativePG creates it from the Database "
            "manifest)",
            PG,
        )
    if db.owner == app:
        return ok(name, f"exists, owned by `{app}`", PG)
    return problem(
        name,
        f"owned by `{db.owner}`, not `{app}`",
        PG,
        Finding(
            kind="database_owner_wrong",
            app=app,
            severity=Severity.CRITICAL,
            message=f"database `{app}` is owned by `{db.owner}`, not by role `{app}`: the app "
            "cannot manage its own schema, and its data may be another app's",
            remedy=f"an operator decides; if the data belongs to `{app}`: "
            + p.psql(f'ALTER DATABASE "{app}" OWNER TO "{app}";'),
        ),
    )


def _pr_stale(p: _Pass, app: AppName, proposal: Any) -> Finding | None:
    if proposal.created_at is None:
        return None
    age = p.at - proposal.created_at
    settings = p.services.settings
    if age.total_seconds() < settings.timing.pr_stale_after.seconds:
        return None
    what = (
        f"pull request #{proposal.number}"
        if proposal.number is not None
        else f"branch {proposal.branch}"
    )
    days = age.days
    how_long = f"{days} day{'s' if days != 1 else ''}" if days else f"{age.seconds // 3600} h"
    return Finding(
        kind="pr_stale",
        app=app,
        severity=Severity.WARNING,
        message=f"{what} onboarding `{app}` has been open for {how_long} (since "
        f"{proposal.created_at:%Y-%m-%d}), longer than PGDB_PR_STALE_AFTER "
        f"({settings.timing.pr_stale_after})",
        remedy=f"review and merge {what}: {proposal.url} (or close it if `{app}` is dropped)",
    )


def _manifests(p: _Pass, app: AppName, *, fresh: bool) -> Check:
    name = CHECK_MANIFESTS
    snapshot = p.git
    source = f"git ({p.services.git.kind})"
    if snapshot is None:
        return unknown(name, p.obs.git.error or "the git repository could not be read", source)
    broken = next(
        (p.broken[e] for e in (database_path(app), secret_path(app)) if e in p.broken), None
    )
    if broken is not None:
        return problem(name, broken.message, source, broken)
    base = snapshot.base_branch
    if KUSTOMIZATION_FILE in p.broken:
        return unknown(name, f"{KUSTOMIZATION_FILE} on branch {base} cannot be read", source)
    leaving = snapshot.offboardings.get(app)
    if _on_base(p, app):
        if leaving is not None:
            return problem(
                name,
                f"on branch {base}, but the offboarding proposal {leaving.url} is open",
                source,
                Finding(
                    kind="offboard_pending",
                    app=app,
                    severity=Severity.WARNING,
                    message=f"the offboarding proposal {leaving.url} is open although `{app}` "
                    f"is live: merging it removes the manifests of `{app}` from {base}",
                    remedy=f"close {leaving.url} without merging (or `/pgdb offboard {app}` to "
                    "finish the offboarding)",
                ),
            )
        return ok(name, f"on branch {base}", source)
    needed = (database_path(app), secret_path(app))
    if all(path in snapshot.files for path in needed):
        return problem(
            name,
            f"the files are on branch {base} but not listed in kustomization.yaml",
            source,
            Finding(
                kind="manifest_missing",
                app=app,
                severity=Severity.WARNING,
                message=f"the manifests of `{app}` are on branch {base} but kustomization.yaml "
                "does not list them: Argo CD does not apply them",
                remedy=repair_command(app),
                repair=Repair.MANIFESTS,
            ),
        )
    proposal = snapshot.proposals.get(app)
    if proposal is not None and proposal.state is ProposalState.OPEN:
        checks = (
            ", ".join(f"{c.context} {c.state.value}" for c in proposal.checks) or "no checks yet"
        )
        label = f"#{proposal.number} " if proposal.number else ""
        detail = f"{label}open: {proposal.url} ({checks})"
        stale = _pr_stale(p, app, proposal)
        if stale is not None:
            return problem(name, detail, source, stale)
        return pending(name, detail, source)
    if proposal is not None and proposal.state is ProposalState.MERGED:
        what = f"merged ({proposal.url}) but no longer on branch {base}"
    else:
        what = None
    message = (
        f"the manifests of `{app}` were {what}"
        if what is not None
        else f"no manifests for `{app}` on branch {base} and no open proposal"
    )
    detail = what or f"not on branch {base} and no open proposal"
    if fresh:
        return pending(name, detail, source)
    return problem(
        name,
        detail,
        source,
        Finding(
            kind="manifest_missing",
            app=app,
            severity=Severity.WARNING,
            message=message,
            remedy=repair_command(app),
            repair=Repair.MANIFESTS,
        ),
    )


# --- an offboarded app -----------------------------------------------------------------------


def _retired_checks(
    p: _Pass,
    app: AppName,
    history: AppHistory,
    *,
    stored: StoredCredentials | None,
    role: RoleInfo | None,
    notes: list[str],
) -> list[Check]:
    """An offboarded app's checks, read against what offboarding leaves on purpose: a NOLOGIN
    role, no manifests, no Kubernetes resources, the database and (usually) its credentials
    kept."""
    record = history.latest
    assert record is not None
    finished = history.offboarded
    when = f"{record.updated_at:%Y-%m-%d %H:%M} UTC by {record.requester}"
    notes.append(
        f"{app}: offboarded on {when}" if finished else f"{app}: offboarding started {when}"
    )
    not_expected = CheckOutcome.NOT_EXPECTED
    checks: list[Check] = []
    source = _store_source(p)
    if p.store is None:
        checks.append(unknown(CHECK_CREDENTIALS, p.store_error or "unreadable", source))
    elif stored is not None and stored.password is not None:
        checks.append(ok(CHECK_CREDENTIALS, f"kept at {p.services.secrets.location(app)}", source))
    else:
        checks.append(
            Check(
                name=CHECK_CREDENTIALS,
                outcome=not_expected,
                detail=f"none stored (offboarded: `/pgdb create {app}` sets a new password)",
                source=source,
            )
        )
    checks.append(_retired_role(p, app, role, finished=finished))
    checks.append(
        Check(
            name=CHECK_PASSWORD,
            outcome=CheckOutcome.NOT_CHECKED,
            detail="not checked: offboarded",
            source=PG,
        )
    )
    if p.database is None:
        checks.append(unknown(CHECK_DATABASE, p.obs.database.error or "unreadable", PG))
    elif app in p.database.databases:
        checks.append(ok(CHECK_DATABASE, "kept with its data (offboarded)", PG))
    else:
        checks.append(
            Check(
                name=CHECK_DATABASE,
                outcome=not_expected,
                detail=f"database `{app}` does not exist (never created)",
                source=PG,
            )
        )
    checks.append(_retired_manifests(p, app))
    checks.extend(
        retired_kube_checks(
            _kube_view(p, app, stored, fresh=False, history=history, rotating=False),
            configured=p.obs.cluster.configured,
        )
    )
    running = record.status.value == "running" and not interrupted(record, at=p.at)
    if not finished and not running:
        checks.append(
            problem(
                CHECK_WORKFLOW,
                f"stopped at step {record.step}" + (f": {record.detail}" if record.detail else ""),
                "bot records",
                Finding(
                    kind="offboard_incomplete",
                    app=app,
                    severity=Severity.WARNING,
                    message=f"the offboarding of `{app}` started by {record.requester} on "
                    f"{record.started_at:%Y-%m-%d %H:%M} UTC stopped at step {record.step}"
                    + (f": {record.detail}" if record.detail else ""),
                    remedy=f"/pgdb offboard {app} --yes (it finishes what is left)",
                ),
            )
        )
    elif not finished:
        checks.append(pending(CHECK_WORKFLOW, f"in progress (step {record.step})", "bot records"))
    return checks


def _retired_role(p: _Pass, app: AppName, role: RoleInfo | None, *, finished: bool) -> Check:
    if p.database is None:
        return unknown(CHECK_ROLE, p.obs.database.error or "unreadable", PG)
    if role is None:
        return Check(
            name=CHECK_ROLE,
            outcome=CheckOutcome.NOT_EXPECTED,
            detail=f"role `{app}` does not exist",
            source=PG,
        )
    unsafe = _role_privileges(p, app, role)
    if unsafe is not None and unsafe.finding and unsafe.finding.severity is Severity.CRITICAL:
        return unsafe
    if not role.can_login:
        return ok(CHECK_ROLE, "NOLOGIN (offboarded)", PG)
    if not finished:
        return pending(CHECK_ROLE, "LOGIN (the offboarding sets NOLOGIN)", PG)
    return problem(
        CHECK_ROLE,
        f"LOGIN although `{app}` is offboarded",
        PG,
        Finding(
            kind="role_unsafe",
            app=app,
            severity=Severity.WARNING,
            message=f"role `{app}` can log in although `{app}` is offboarded",
            remedy=f"/pgdb offboard {app} --yes (sets NOLOGIN again), or /pgdb create {app} "
            "to bring the app back",
        ),
    )


def _retired_manifests(p: _Pass, app: AppName) -> Check:
    name, snapshot = CHECK_MANIFESTS, p.git
    source = f"git ({p.services.git.kind})"
    if snapshot is None:
        return unknown(name, p.obs.git.error or "unreadable", source)
    base = snapshot.base_branch
    onboarding = snapshot.proposals.get(app)
    leaving = snapshot.offboardings.get(app)
    if onboarding is not None and onboarding.state is ProposalState.OPEN:
        return problem(
            name,
            f"the onboarding proposal {onboarding.url} is still open",
            source,
            Finding(
                kind="offboard_incomplete",
                app=app,
                severity=Severity.WARNING,
                message=f"`{app}` is offboarded but its onboarding proposal {onboarding.url} is "
                "still open: merging it would bring the manifests back",
                remedy=f"close {onboarding.url} without merging",
            ),
        )
    present = {database_path(app), secret_path(app)} & snapshot.files
    if not present:
        return Check(
            name=name,
            outcome=CheckOutcome.NOT_EXPECTED,
            detail=f"removed from branch {base} (offboarded)",
            source=source,
        )
    if leaving is not None:
        return pending(
            name, f"still on branch {base}: {leaving.url} removes them once merged", source
        )
    return problem(
        name,
        f"still on branch {base} and no open offboarding proposal",
        source,
        Finding(
            kind="offboard_incomplete",
            app=app,
            severity=Severity.WARNING,
            message=f"`{app}` is offboarded but its manifests are still on branch {base} and "
            "no offboarding proposal is open",
            remedy=f"/pgdb offboard {app} --yes (opens the proposal again)",
        ),
    )


# --- what belongs to no app ------------------------------------------------------------------


def _system_findings(p: _Pass, untrusted: str | None) -> list[Finding]:
    """Systems that could not be read (or answered what cannot be trusted), and a broken
    kustomization entry that names no app."""
    out: list[Finding] = []
    for system, error in p.obs.unreachable().items():
        out.append(
            Finding(
                kind="system_unreachable",
                app=None,
                severity=Severity.CRITICAL,
                message=f"{system} could not be observed: {error}",
                remedy=SYSTEM_HINTS.get(system, f"check the PGDB_* settings of {system}"),
            )
        )
    if untrusted is not None:
        out.append(
            Finding(
                kind="system_unreachable",
                app=None,
                severity=Severity.CRITICAL,
                message=f"secret store: {untrusted}; nothing is derived from its answer",
                remedy=SYSTEM_HINTS["secret store"],
            )
        )
    out.extend(f for f in p.broken.values() if f.app is None)
    return out


def _adopt_hint(p: _Pass, name: str) -> str:
    role = p.database.roles.get(name) if p.database is not None else None
    if role is not None and role_privileges(role, p.privileged_roles):
        return (
            f"add {name} to PGDB_IGNORE_ROLES: it is privileged "
            f"({', '.join(role_privileges(role, p.privileged_roles))}), and the bot never "
            "adopts a privileged role"
        )
    try:
        parse_app_name(
            name, bot_role=p.services.bot_role, deny=p.services.settings.access.deny_names
        )
    except InvalidAppName:
        return f"add {name} to PGDB_IGNORE_ROLES (it cannot be an app name)"
    return (
        f"add {name} to PGDB_IGNORE_ROLES, or adopt it: store its password at "
        f"{p.services.settings.layout.secrets_prefix}/{name}/ and run /pgdb create {name}"
    )


def _orphans(p: _Pass, apps: list[AppName]) -> list[Finding]:
    obs = p.obs
    if p.store is None or obs.git.value is None or obs.workflows.value is None:
        return []  # a source of known apps is missing: every app would look like an orphan
    state = p.database
    if state is None:
        return []
    known = set(apps)
    ignored = set(p.services.settings.layout.ignore_roles)
    out = [
        Finding(
            kind="orphan_role",
            app=None,
            severity=Severity.INFO,
            message=f"login role `{r.name}` belongs to no known app",
            remedy=_adopt_hint(p, r.name),
        )
        for r in sorted(state.roles.values(), key=lambda r: r.name)
        if r.can_login
        and r.name not in known
        and r.name not in ignored
        and not is_system_role(r.name, bot_role=state.bot_role)
    ]
    for db in sorted(state.databases.values(), key=lambda d: d.name):
        if db.name in SYSTEM_DATABASES or db.name in known or db.name in ignored:
            continue
        if db.owner == state.bot_role:
            continue
        out.append(
            Finding(
                kind="orphan_database",
                app=None,
                severity=Severity.INFO,
                message=f"database `{db.name}` (owner `{db.owner}`) belongs to no known app",
                remedy=_adopt_hint(p, db.name),
            )
        )
    return out


def _system_rows(p: _Pass, kube: list[Finding]) -> list[tuple[str, str]]:
    """One line per outside system for the fleet ``status``; ``kube``: the cluster's own
    findings (❌ for a critical one, ⚠️ for a warning)."""
    good, bad = ICONS[CheckOutcome.OK], ICONS[CheckOutcome.PROBLEM]
    obs = p.obs
    rows: list[tuple[str, str]] = []
    db = obs.database.value
    rows.append(
        (
            "PostgreSQL",
            f"{good} server {db.server_version // 10000}, bot role `{db.bot_role}`"
            if db
            else f"{bad} {obs.database.error}",
        )
    )
    rows.append(
        (
            "Secret store",
            f"{good} {p.services.secrets.kind}"
            if p.store is not None
            else f"{bad} {p.store_error}",
        )
    )
    git = obs.git.value
    if git is None:
        rows.append(("GitOps", f"{bad} {obs.git.error}"))
    else:
        text = f"{p.services.git.kind}, {git.base_branch} at {git.base_sha[:8]}"
        if KUSTOMIZATION_FILE in p.broken:
            text += f"; {KUSTOMIZATION_FILE} cannot be read"
        elif p.broken:
            text += f"; {KUSTOMIZATION_FILE} lists {len(p.broken)} missing file(s)"
        rows.append(("GitOps", f"{bad if p.broken else good} {text}"))
    alerting = [f for f in kube if f.severity is not Severity.INFO]
    row = kube_system_row(
        obs.cluster.value,
        at=p.at,
        configured=obs.cluster.configured,
        error=obs.cluster.error,
        healthy=not alerting,
    )
    if any(f.severity is Severity.CRITICAL for f in alerting):
        row = row.replace(WARNING_ICON, bad, 1)
    rows.append(("Kubernetes", row))
    return rows
