"""What the cluster really runs: the Kubernetes checks of ``status`` (SPEC §5) and the Kubernetes
findings of the diagnostics (SPEC §6.1), both from the one observation of the pass.

An app's CRs are *expected* once its manifests are on the base branch (Argo CD applies them);
before that their absence is "pending", not a problem. Fresh resources get ``PGDB_GRACE``:
a CR created, or a condition that changed, less than that ago is not reported yet (a Database
applied before its role exists fixes itself within a minute).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.manifests import secret_name
from bot.core.model import (
    LOADED_TOKEN,
    ClusterSnapshot,
    InfisicalSecretResource,
    KubeCondition,
    KubeSecret,
    StoredCredentials,
    WorkflowRecord,
)
from bot.core.names import AppName
from handlers.context import Services
from handlers.findings import Finding, Severity, rotation_note, rotation_of
from handlers.observe import Observation, manifests_on_base
from handlers.status import ICONS, AppCheck, CheckOutcome

SOURCE = "Kubernetes"
CHECK_INFISICAL = "InfisicalSecret ready"
CHECK_SECRET = "Kubernetes Secret carries the stored password"  # noqa: S105 (a label)
CHECK_DATABASE = "Database CR applied"
CHECK_ARGOCD = "Argo CD Application synced and healthy"
KUBE_CHECKS = (CHECK_INFISICAL, CHECK_SECRET, CHECK_DATABASE)
_MAX_MESSAGE = 400


def _age(seconds: float) -> str:
    """A coarse age for humans: whole days, hours or minutes."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "1m"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


@dataclass(frozen=True, kw_only=True)
class _View:
    """One app's Kubernetes objects and what is known about them, computed once per app."""

    app: AppName
    snap: ClusterSnapshot
    expected: bool | None  # manifests on the base branch; None when git is unknown
    infisical: InfisicalSecretResource | None
    secret: KubeSecret | None
    secret_name: str
    stored: StoredCredentials | None
    store_error: str | None
    at: datetime
    grace: timedelta

    def fresh(self, since: datetime | None) -> bool:
        return since is not None and self.at - since < self.grace


def _view(
    obs: Observation,
    services: Services,
    app: AppName,
    snap: ClusterSnapshot,
    *,
    grace_seconds: float | None = None,
) -> _View:
    infisical = snap.infisical_secrets.get(secret_name(app))
    name = infisical.managed_secrets[0] if infisical and infisical.managed_secrets else None
    name = name or secret_name(app)
    git = obs.git.value
    return _View(
        app=app,
        snap=snap,
        expected=manifests_on_base(git, app) if git is not None else None,
        infisical=infisical,
        secret=snap.secrets.get(name),
        secret_name=name,
        stored=obs.secrets.value.get(app) if obs.secrets.value is not None else None,
        store_error=obs.secrets.error,
        at=obs.at,
        grace=timedelta(
            seconds=services.settings.grace_seconds if grace_seconds is None else grace_seconds
        ),
    )


def _sync_condition(resource: InfisicalSecretResource) -> KubeCondition | None:
    """ReadyToSyncSecrets; a failing LoadedInfisicalToken when that is all there is."""
    ready = resource.ready
    if ready is not None:
        return ready
    token = next((c for c in resource.conditions if c.type == LOADED_TOKEN), None)
    return token if token is not None and not token.true else None


def _base_branch(obs: Observation) -> str:
    return obs.git.value.base_branch if obs.git.value is not None else "the base branch"


def _argocd_sync(services: Services) -> str:
    app = services.settings.argocd_app
    if app:
        return f"argocd app sync {app}"
    return (
        "sync the Argo CD Application of "
        f"{services.settings.gitops_path} (argocd app sync <application>)"
    )


# --- status (SPEC §5) -----------------------------------------------------------------------


def kube_checks(obs: Observation, services: Services, app: AppName) -> list[AppCheck]:
    """The Kubernetes lines of ``/pgdb status <app>``."""
    if not obs.cluster.configured:
        return [
            AppCheck(
                name=name,
                outcome=CheckOutcome.NOT_CONFIGURED,
                detail="Kubernetes is not configured",
                source=SOURCE,
            )
            for name in KUBE_CHECKS
        ]
    snap = obs.cluster.value
    if snap is None:
        names = [*KUBE_CHECKS, *([CHECK_ARGOCD] if services.settings.argocd_app else [])]
        return [
            AppCheck(
                name=name,
                outcome=CheckOutcome.UNKNOWN,
                detail=f"unknown because {obs.cluster.error}",
                source=SOURCE,
            )
            for name in names
        ]
    view = _view(obs, services, app, snap)
    return [
        _infisical_check(view, obs),
        _secret_check(view),
        _database_check(view, obs),
        _argocd_check(snap),
    ]


def _absent(view: _View, obs: Observation, *, what: str, kind: str) -> AppCheck:
    name = {
        "InfisicalSecret": CHECK_INFISICAL,
        "Secret": CHECK_SECRET,
        "Database": CHECK_DATABASE,
    }[kind]
    if kind in view.snap.errors:
        return AppCheck(
            name=name,
            outcome=CheckOutcome.UNKNOWN,
            detail=f"unknown because {view.snap.errors[kind]}",
            source=SOURCE,
        )
    if view.expected:
        return AppCheck(
            name=name,
            outcome=CheckOutcome.PROBLEM,
            detail=f"{what} is not in namespace {view.snap.namespace} although the manifests "
            f"are on branch {_base_branch(obs)}",
            source=SOURCE,
        )
    return AppCheck(
        name=name,
        outcome=CheckOutcome.PENDING,
        detail=f"{what} not created yet (Argo CD applies it once the manifests are merged)",
        source=SOURCE,
    )


def _infisical_check(view: _View, obs: Observation) -> AppCheck:
    resource = view.infisical
    if resource is None or "InfisicalSecret" in view.snap.errors:
        return _absent(
            view, obs, what=f"InfisicalSecret `{secret_name(view.app)}`", kind="InfisicalSecret"
        )
    condition = _sync_condition(resource)
    if condition is None:
        late = not view.fresh(resource.created_at)
        return AppCheck(
            name=CHECK_INFISICAL,
            outcome=CheckOutcome.PROBLEM if late else CheckOutcome.PENDING,
            detail="no status yet: the Infisical operator has not reconciled it",
            source=SOURCE,
        )
    return AppCheck(
        name=CHECK_INFISICAL,
        outcome=CheckOutcome.OK if condition.true else CheckOutcome.PROBLEM,
        detail=f"{condition.type.rsplit('/', 1)[-1]} {condition.status}: "
        f"{_short(condition.message)}",
        source=SOURCE,
    )


def _secret_check(view: _View) -> AppCheck:
    secret = view.secret
    if secret is None or "Secret" in view.snap.errors:
        if view.infisical is not None and "Secret" not in view.snap.errors:
            late = not view.fresh(view.infisical.created_at)
            return AppCheck(
                name=CHECK_SECRET,
                outcome=CheckOutcome.PROBLEM if late else CheckOutcome.PENDING,
                detail=f"Secret `{view.secret_name}` does not exist in namespace "
                f"{view.snap.namespace} (the InfisicalSecret has not written it)",
                source=SOURCE,
            )
        return _absent_secret(view)
    if view.store_error is not None:
        return AppCheck(
            name=CHECK_SECRET,
            outcome=CheckOutcome.UNKNOWN,
            detail=f"Secret `{secret.name}` exists; unknown whether it carries the stored "
            f"password because {view.store_error}",
            source=SOURCE,
        )
    stored = view.stored.password if view.stored is not None else None
    if stored is None:
        return AppCheck(
            name=CHECK_SECRET,
            outcome=CheckOutcome.UNKNOWN,
            detail=f"Secret `{secret.name}` exists, but the secret store holds no password "
            "to compare it with",
            source=SOURCE,
        )
    if secret.password is None:
        return AppCheck(
            name=CHECK_SECRET,
            outcome=CheckOutcome.PROBLEM,
            detail=f"Secret `{secret.name}` has no `password` key",
            source=SOURCE,
        )
    if secret.password == stored:
        return AppCheck(
            name=CHECK_SECRET,
            outcome=CheckOutcome.OK,
            detail=f"Secret `{secret.name}` exists and carries the stored password",
            source=SOURCE,
        )
    return AppCheck(
        name=CHECK_SECRET,
        outcome=CheckOutcome.PROBLEM,
        detail=f"Secret `{secret.name}` carries another password than the secret store "
        "(not synced since the last change)",
        source=SOURCE,
    )


def _absent_secret(view: _View) -> AppCheck:
    if "Secret" in view.snap.errors:
        return AppCheck(
            name=CHECK_SECRET,
            outcome=CheckOutcome.UNKNOWN,
            detail=f"unknown because {view.snap.errors['Secret']}",
            source=SOURCE,
        )
    return AppCheck(
        name=CHECK_SECRET,
        outcome=CheckOutcome.PROBLEM if view.expected else CheckOutcome.PENDING,
        detail=f"Secret `{view.secret_name}` does not exist yet "
        "(its InfisicalSecret is not in the cluster)",
        source=SOURCE,
    )


def _database_check(view: _View, obs: Observation) -> AppCheck:
    resource = view.snap.database_for(view.app)
    if resource is None or "Database" in view.snap.errors:
        return _absent(view, obs, what=f"Database CR `{view.app}`", kind="Database")
    if resource.applied is True:
        lagging = (
            resource.observed_generation is not None
            and resource.observed_generation < resource.generation
        )
        return AppCheck(
            name=CHECK_DATABASE,
            outcome=CheckOutcome.PENDING if lagging else CheckOutcome.OK,
            detail="applied, a newer spec is being applied" if lagging else "applied",
            source=SOURCE,
        )
    if resource.applied is False:
        return AppCheck(
            name=CHECK_DATABASE,
            outcome=CheckOutcome.PENDING
            if view.fresh(resource.created_at)
            else CheckOutcome.PROBLEM,
            detail=f"not applied: {_short(resource.message) or 'no message'}",
            source=SOURCE,
        )
    late = not view.fresh(resource.created_at)
    return AppCheck(
        name=CHECK_DATABASE,
        outcome=CheckOutcome.PROBLEM if late else CheckOutcome.PENDING,
        detail=_short(resource.message) or _no_status_reason(view.snap, resource.cluster),
        source=SOURCE,
    )


def _no_status_reason(snap: ClusterSnapshot, cluster: str) -> str:
    if cluster != snap.cluster_name:
        return (
            f"no status: spec.cluster.name is `{cluster}`, not `{snap.cluster_name}` "
            f"(no such Cluster in {snap.namespace})"
        )
    return "no status yet: the cluster's primary has not reconciled it (is a primary running?)"


def _argocd_check(snap: ClusterSnapshot) -> AppCheck:
    if snap.argocd_app is None:
        return AppCheck(
            name=CHECK_ARGOCD,
            outcome=CheckOutcome.NOT_CONFIGURED,
            detail="PGDB_ARGOCD_APP is not set",
            source=SOURCE,
        )
    if "Application" in snap.errors:
        return AppCheck(
            name=CHECK_ARGOCD,
            outcome=CheckOutcome.UNKNOWN,
            detail=f"unknown because {snap.errors['Application']}",
            source=SOURCE,
        )
    app = snap.argocd
    if app is None:
        return AppCheck(
            name=CHECK_ARGOCD,
            outcome=CheckOutcome.PROBLEM,
            detail=f"Application `{snap.argocd_app}` not found (PGDB_ARGOCD_APP, "
            "PGDB_ARGOCD_NAMESPACE)",
            source="Argo CD",
        )
    detail = f"`{app.name}`: {app.sync}, {app.health}"
    if app.message and not app.ok:
        detail += f" — {_short(app.message)}"
    return AppCheck(
        name=CHECK_ARGOCD,
        outcome=CheckOutcome.OK if app.ok else CheckOutcome.PROBLEM,
        detail=detail,
        source="Argo CD",
    )


def kube_system_row(obs: Observation, services: Services) -> str:
    """The "Kubernetes" line of ``/pgdb status``: cluster health, last backup, Argo CD."""
    if not obs.cluster.configured:
        return f"{ICONS[CheckOutcome.NOT_CONFIGURED]} not configured"
    snap = obs.cluster.value
    if snap is None:
        return f"{ICONS[CheckOutcome.PROBLEM]} {obs.cluster.error}"
    parts: list[str] = []
    cluster = snap.cluster
    ok = True
    if cluster is None:
        ok = "Cluster" in snap.errors
        parts.append(
            f"Cluster `{snap.cluster_name}` unknown"
            if ok
            else f"Cluster `{snap.cluster_name}` not found in {snap.namespace}"
        )
        ok = False
    else:
        ok = cluster.healthy
        text = (
            f"Cluster `{cluster.name}`: {cluster.phase or 'no phase'}, "
            f"{cluster.ready_instances}/{cluster.instances} ready, "
            f"primary {cluster.current_primary or 'none'}"
        )
        if cluster.target_primary and cluster.target_primary != cluster.current_primary:
            text += f" → {cluster.target_primary}"
        stuck = sum(len(v) for v in cluster.cannot_reconcile.values())
        if stuck:
            text += f", {stuck} managed role error(s)"
        parts.append(text)
    last = snap.last_backup
    parts.append(
        f"last backup {_age((obs.at - last).total_seconds())} ago"
        if last is not None
        else "no completed backup"
    )
    if snap.argocd_app is not None and snap.argocd is not None:
        parts.append(f"Argo CD `{snap.argocd.name}` {snap.argocd.sync}/{snap.argocd.health}")
        ok = ok and snap.argocd.ok
    if snap.errors:
        parts.append("unknown: " + ", ".join(sorted(snap.errors)))
        ok = False
    icon = ICONS[CheckOutcome.OK if ok else CheckOutcome.PROBLEM]
    return f"{icon} " + "; ".join(parts)


# --- findings (SPEC §6.1) -------------------------------------------------------------------


def kube_findings(
    obs: Observation,
    services: Services,
    apps: list[AppName],
    *,
    fresh_apps: set[str],
    respect_grace: bool = True,
) -> list[Finding]:
    """Every Kubernetes finding of the pass: per app, then the cluster and its backups.

    An unreachable API server is a ``system_unreachable`` finding made by the caller; a kind
    that could not be read (forbidden, not installed) is one here, and its checks are skipped.
    """
    snap = obs.cluster.value
    if not obs.cluster.configured or snap is None:
        return []
    out: list[Finding] = []
    for kind, error in sorted(snap.errors.items()):
        out.append(
            Finding(
                kind="system_unreachable",
                app=None,
                severity=Severity.WARNING,
                message=f"Kubernetes {kind} objects could not be read: {error}",
                remedy="grant the bot's account the access listed in the README section "
                "`### Kubernetes` (kubectl auth can-i list <kind> -n "
                f"{snap.namespace} --as system:serviceaccount:<ns>:<account>)",
            )
        )
    grace = timedelta(seconds=services.settings.grace_seconds if respect_grace else 0)
    for app in apps:
        view = _view(obs, services, app, snap, grace_seconds=grace.total_seconds())
        fresh_app = respect_grace and app in fresh_apps
        out.extend(_infisical_findings(view, obs, services, fresh_app=fresh_app))
        out.extend(
            _secret_findings(view, services, fresh_app=fresh_app, rotation=rotation_of(obs, app))
        )
        out.extend(_database_findings(view, obs, services, fresh_app=fresh_app))
    out.extend(_cluster_findings(snap, obs, services, grace=grace))
    out.extend(_backup_findings(snap, obs, services, grace=grace))
    return out


def _repair(app: str) -> str:
    return f"/pgdb repair {app} --yes"


def _infisical_findings(
    view: _View, obs: Observation, services: Services, *, fresh_app: bool
) -> list[Finding]:
    if "InfisicalSecret" in view.snap.errors or fresh_app:
        return []
    resource = view.infisical
    name = secret_name(view.app)
    if resource is None:
        if not view.expected:
            return []
        return [
            Finding(
                kind="secret_unsynced",
                app=view.app,
                severity=Severity.WARNING,
                message=f"InfisicalSecret `{name}` is not in namespace {view.snap.namespace} "
                f"although its manifest is on branch {_base_branch(obs)}: Argo CD has not "
                "applied it",
                remedy=_argocd_sync(services),
            )
        ]
    if view.fresh(resource.created_at):
        return []
    condition = _sync_condition(resource)
    if condition is None:
        return [
            Finding(
                kind="secret_unsynced",
                app=view.app,
                severity=Severity.WARNING,
                message=f"InfisicalSecret `{name}` has no status: the Infisical operator has "
                "not reconciled it (is the operator running?)",
                remedy=_repair(view.app),
            )
        ]
    if condition.true or view.fresh(condition.since):
        return []
    settings = services.settings
    remedy = _repair(view.app)
    if "authenticat" in condition.message.lower() or "token" in condition.message.lower():
        remedy = (
            f"check the operator's credentials Secret {settings.infisical_auth_namespace}/"
            f"{settings.infisical_auth_secret} (clientId, clientSecret) and hostAPI, then "
            f"{_repair(view.app)}"
        )
    return [
        Finding(
            kind="secret_unsynced",
            app=view.app,
            severity=Severity.CRITICAL,
            message=f"InfisicalSecret `{name}` cannot sync ({condition.type.rsplit('/', 1)[-1]} "
            f"{condition.status}): {_short(condition.message)}",
            remedy=remedy,
        )
    ]


def _secret_findings(
    view: _View, services: Services, *, fresh_app: bool, rotation: WorkflowRecord | None = None
) -> list[Finding]:
    if "Secret" in view.snap.errors or fresh_app or view.infisical is None:
        return []
    secret = view.secret
    if secret is None:
        if view.fresh(view.infisical.created_at):
            return []
        return [
            Finding(
                kind="kube_secret_missing",
                app=view.app,
                severity=Severity.CRITICAL,
                message=f"Secret `{view.secret_name}` does not exist in namespace "
                f"{view.snap.namespace}: the InfisicalSecret has not written it (a deleted "
                "Secret is not rewritten until the InfisicalSecret's spec changes)",
                remedy=_repair(view.app),
            )
        ]
    stored = view.stored.password if view.stored is not None else None
    if view.store_error is not None or stored is None or view.fresh(secret.created_at):
        return []
    if secret.password is None:
        problem = "has no `password` key"
    elif secret.password != stored:
        problem = "carries another password than the one in the secret store"
    else:
        return []
    return [
        Finding(
            kind="kube_secret_stale",
            app=view.app,
            severity=Severity.CRITICAL,
            message=f"Secret `{secret.name}` {problem}: pods reading it cannot log in once "
            "the role uses the stored password"
            + (rotation_note(rotation) if rotation is not None else ""),
            remedy=f"/pgdb rotate {view.app} --yes" if rotation is not None else _repair(view.app),
        )
    ]


def _database_findings(
    view: _View, obs: Observation, services: Services, *, fresh_app: bool
) -> list[Finding]:
    if "Database" in view.snap.errors or fresh_app:
        return []
    snap = view.snap
    resource = snap.database_for(view.app)
    if resource is None:
        if not view.expected:
            return []
        return [
            Finding(
                kind="database_missing",
                app=view.app,
                severity=Severity.WARNING,
                message=f"no Database CR `{view.app}` in namespace {snap.namespace} although "
                f"its manifest is on branch {_base_branch(obs)}: Argo CD has not applied it",
                remedy=_argocd_sync(services),
            )
        ]
    if view.fresh(resource.created_at):
        return []
    describe = f"kubectl -n {snap.namespace} describe database {resource.name}"
    if resource.applied is False:
        message = resource.message or "no message"
        owner = resource.owner or view.app
        state = obs.database.value
        role_missing = f'role "{owner}" does not exist' in message
        if role_missing and state is not None and owner in state.roles:
            # the role came later: CloudNativePG retries every 30 s and will apply it
            return [
                Finding(
                    kind="database_not_applied",
                    app=view.app,
                    severity=Severity.WARNING,
                    message=f"Database CR `{resource.name}` is not applied yet: "
                    f"{_short(message)} (role `{owner}` exists now: CloudNativePG retries "
                    "every 30 s)",
                    remedy=describe,
                )
            ]
        return [
            Finding(
                kind="database_not_applied",
                app=view.app,
                severity=Severity.CRITICAL,
                message=f"Database CR `{resource.name}` is not applied: {_short(message)}",
                remedy=_repair(view.app) if role_missing else describe,
            )
        ]
    if resource.applied is None:
        return [
            Finding(
                kind="database_not_applied",
                app=view.app,
                severity=Severity.WARNING,
                message=f"Database CR `{resource.name}`: "
                f"{_short(resource.message) or _no_status_reason(snap, resource.cluster)}",
                remedy=describe,
            )
        ]
    state = obs.database.value
    if state is not None and resource.database and resource.database not in state.databases:
        return [
            Finding(
                kind="database_missing",
                app=view.app,
                severity=Severity.CRITICAL,
                message=f"Database CR `{resource.name}` says applied, but database "
                f"`{resource.database}` does not exist in PostgreSQL (dropped by hand?): "
                "CloudNativePG creates it again only when the CR's spec changes",
                remedy=(
                    f"kubectl -n {snap.namespace} patch database {resource.name} --type merge "
                    """-p '{"spec":{"connectionLimit":-1}}' (any spec change will do)"""
                ),
            )
        ]
    return []


def _cluster_findings(
    snap: ClusterSnapshot, obs: Observation, services: Services, *, grace: timedelta
) -> list[Finding]:
    if "Cluster" in snap.errors:
        return []
    describe = f"kubectl -n {snap.namespace} describe cluster {snap.cluster_name}"
    cluster = snap.cluster
    if cluster is None:
        return [
            Finding(
                kind="cluster_degraded",
                app=None,
                severity=Severity.CRITICAL,
                message=f"CloudNativePG Cluster `{snap.cluster_name}` not found in namespace "
                f"{snap.namespace}",
                remedy=f"kubectl -n {snap.namespace} get clusters.postgresql.cnpg.io "
                "(and check PGDB_CLUSTER, PGDB_NAMESPACE)",
            )
        ]
    if cluster.healthy:
        return []
    ready = cluster.condition("Ready")
    since = ready.since if ready is not None and not ready.true else cluster.created_at
    outage = cluster.ready_instances == 0 or not cluster.current_primary
    if not outage and since is not None and obs.at - since < grace:
        return []  # a switchover or a rolling update: give it the grace period
    what = f"{cluster.phase or 'no phase'}"
    if cluster.phase_reason:
        what += f" ({cluster.phase_reason})"
    primary = cluster.current_primary or "none"
    if cluster.target_primary and cluster.target_primary != cluster.current_primary:
        primary += f", target {cluster.target_primary}"
    critical = outage or (ready is not None and not ready.true)
    return [
        Finding(
            kind="cluster_degraded",
            app=None,
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            message=f"Cluster `{cluster.name}`: {what}; {cluster.ready_instances}/"
            f"{cluster.instances} instances ready; primary {primary}"
            + (f"; Ready {ready.status}: {ready.message}" if ready and not ready.true else ""),
            remedy=describe,
        )
    ]


def _backup_findings(
    snap: ClusterSnapshot, obs: Observation, services: Services, *, grace: timedelta
) -> list[Finding]:
    max_age = services.settings.backup_max_age_seconds
    if max_age is None:
        return []
    ns = snap.namespace
    remedy = (
        f"kubectl -n {ns} get backups,scheduledbackups "
        "(the newest failed Backup's status.error says why)"
    )
    out: list[Finding] = []
    archiving = snap.cluster.condition("ContinuousArchiving") if snap.cluster else None
    if (
        archiving is not None
        and not archiving.true
        and (archiving.since is None or obs.at - archiving.since >= grace)
    ):
        out.append(
            Finding(
                kind="backup_stale",
                app=None,
                severity=Severity.WARNING,
                message=f"continuous WAL archiving of `{snap.cluster_name}` is failing: "
                f"{_short(archiving.message)}",
                remedy=f"kubectl -n {ns} describe cluster {snap.cluster_name}",
            )
        )
    if "Backup" in snap.errors or "ScheduledBackup" in snap.errors:
        return out
    last = snap.last_backup
    limit = timedelta(seconds=max_age)
    scheduled = [s for s in snap.scheduled_backups if s.cluster == snap.cluster_name]
    failed = sorted(
        (b for b in snap.backups if b.cluster == snap.cluster_name and b.phase == "failed"),
        key=lambda b: b.created_at or obs.at,
    )
    why = f" (newest failure: {_short(failed[-1].error)})" if failed and failed[-1].error else ""
    if last is not None:
        if obs.at - last > limit:
            out.append(
                Finding(
                    kind="backup_stale",
                    app=None,
                    severity=Severity.WARNING,
                    message=f"the last successful backup of `{snap.cluster_name}` finished "
                    f"{_age((obs.at - last).total_seconds())} ago, older "
                    f"than PGDB_BACKUP_MAX_AGE={services.settings.backup_max_age}{why}",
                    remedy=remedy,
                )
            )
        return out
    if scheduled:
        oldest = min((s.created_at for s in scheduled if s.created_at), default=None)
        if oldest is None or obs.at - oldest > limit:
            out.append(
                Finding(
                    kind="backup_stale",
                    app=None,
                    severity=Severity.WARNING,
                    message=f"no backup of `{snap.cluster_name}` has ever completed although "
                    f"ScheduledBackup `{scheduled[0].name}` exists{why}",
                    remedy=remedy,
                )
            )
        return out
    out.append(
        Finding(
            kind="backup_stale",
            app=None,
            severity=Severity.INFO,
            message=f"`{snap.cluster_name}` has no completed backup and no ScheduledBackup",
            remedy=f"add a ScheduledBackup for cluster {snap.cluster_name}, or set "
            "PGDB_BACKUP_MAX_AGE=off where backups are not wanted",
        )
    )
    return out
