"""What the cluster really runs: the Kubernetes layer of the assessment.

Each check is declared once, with the finding it carries when it is a problem. An app's CRs are
*expected* once its manifests are on the base branch (Argo CD applies them); before that their
absence is "pending", not a problem. Fresh resources get ``PGDB_GRACE``: a CR created less than
that ago (or an app that appeared less than that ago) is pending, not reported yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.manifests.layout import secret_name
from bot.core.model import (
    LOADED_TOKEN,
    ClusterSnapshot,
    DatabaseResource,
    DatabaseState,
    InfisicalSecretResource,
    KubeCondition,
    WorkflowRecord,
)
from bot.core.names import AppName
from bot.core.secret import Secret
from handlers.checks import (
    ICONS,
    WARNING_ICON,
    Check,
    CheckOutcome,
    Finding,
    Repair,
    Severity,
    ok,
    pending,
    problem,
    unknown,
)
from handlers.context import Services

SOURCE = "Kubernetes"
CHECK_INFISICAL = "InfisicalSecret ready"
CHECK_SECRET = "Kubernetes Secret carries the stored password"  # noqa: S105 (a label)
CHECK_DATABASE = "Database CR applied"
CHECK_ARGOCD = "Argo CD Application synced and healthy"
KUBE_CHECKS = (CHECK_INFISICAL, CHECK_SECRET, CHECK_DATABASE)
_MAX_MESSAGE = 400


def age(seconds: float) -> str:
    """A coarse age for humans: whole days, hours or minutes."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "1m"


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def rotation_note(rotation: WorkflowRecord) -> str:
    """Why a drift is expected, and what the re-run does."""
    return (
        f": a rotation started at {rotation.started_at:%Y-%m-%d %H:%M:%S} UTC stopped at step "
        f"“{rotation.step}”; `/pgdb rotate {rotation.app} --yes` finishes it (with the new "
        "password when the store holds it, else with a fresh one)"
    )


def repair_command(app: str) -> str:
    return f"/pgdb repair {app} --yes"


@dataclass(frozen=True, kw_only=True)
class KubeView:
    """What the Kubernetes checks of one app need, computed once per app by the assessment."""

    app: AppName
    snap: ClusterSnapshot
    services: Services
    at: datetime
    grace: timedelta
    expected: bool | None  # manifests on the base branch; None when git is unknown
    base_branch: str
    fresh_app: bool  # the app itself appeared within the grace period
    stored_password: Secret | None
    store_error: str | None  # the secret store could not be read (or is not trusted)
    database: DatabaseState | None
    rotation: WorkflowRecord | None  # an unfinished rotation
    rotating: bool  # ... that is still running within the grace period
    argocd: Finding | None  # the pass's one Argo CD finding, shared by every app

    @property
    def infisical(self) -> InfisicalSecretResource | None:
        return self.snap.infisical_secrets.get(secret_name(self.app))

    @property
    def secret_name(self) -> str:
        resource = self.infisical
        if resource is not None and resource.managed_secrets:
            return resource.managed_secrets[0]
        return secret_name(self.app)

    def fresh(self, since: datetime | None) -> bool:
        """A resource created (or changed state) within the grace period, or a fresh app."""
        return self.fresh_app or (since is not None and self.at - since < self.grace)


def _argocd_sync(services: Services) -> str:
    app = services.settings.layout.argocd_app
    if app:
        return f"argocd app sync {app}"
    return (
        "sync the Argo CD Application of "
        f"{services.settings.layout.gitops_path} (argocd app sync <application>)"
    )


def _finding(
    view: KubeView,
    kind: str,
    severity: Severity,
    message: str,
    remedy: str,
    repair: Repair | None = None,
) -> Finding:
    return Finding(
        kind=kind,
        app=view.app,
        severity=severity,
        message=message,
        remedy=remedy,
        repair=repair,
    )


# --- per app ---------------------------------------------------------------------------------


def kube_checks(view: KubeView | None, *, configured: bool, error: str | None) -> list[Check]:
    """The Kubernetes lines of one app. ``view`` is None when the cluster could not be read."""
    if not configured:
        return [
            Check(
                name=name,
                outcome=CheckOutcome.NOT_CONFIGURED,
                detail="Kubernetes is not configured",
                source=SOURCE,
            )
            for name in KUBE_CHECKS
        ]
    if view is None:
        return [
            unknown(name, error or "the cluster could not be read", SOURCE) for name in KUBE_CHECKS
        ]
    return [_infisical_check(view), _secret_check(view), _database_check(view), _argocd_check(view)]


def retired_kube_checks(view: KubeView | None, *, configured: bool) -> list[Check]:
    """An offboarded app's resources go away with its manifests, on purpose: their absence is
    expected, their presence is Argo CD not having pruned them yet."""
    if not configured or view is None:
        return kube_checks(view, configured=configured, error="the cluster could not be read")
    present = {
        CHECK_INFISICAL: view.infisical is not None,
        CHECK_SECRET: view.secret_name in view.snap.secrets,
        CHECK_DATABASE: view.snap.database_for(view.app) is not None,
    }
    out: list[Check] = []
    for name, there in present.items():
        if there:
            out.append(
                pending(
                    name,
                    "still in the cluster (offboarded: Argo CD removes it once the manifests "
                    "are gone; the database is kept)",
                    SOURCE,
                )
            )
        else:
            out.append(
                Check(
                    name=name,
                    outcome=CheckOutcome.NOT_EXPECTED,
                    detail="not in the cluster (offboarded: not expected)",
                    source=SOURCE,
                )
            )
    return out


def _absent(view: KubeView, *, name: str, kind: str, what: str, finding_kind: str) -> Check:
    """A CR that is not in the cluster: a problem once its manifest is on the base branch."""
    if kind in view.snap.errors:
        return unknown(name, view.snap.errors[kind], SOURCE)
    if not view.expected:
        return pending(
            name,
            f"{what} not created yet (Argo CD applies it once the manifests are merged)",
            SOURCE,
        )
    detail = (
        f"{what} is not in namespace {view.snap.namespace} although its manifest is on "
        f"branch {view.base_branch}"
    )
    if view.fresh_app:
        return pending(name, f"{detail} (Argo CD applies it soon)", SOURCE)
    return problem(
        name,
        detail,
        SOURCE,
        _finding(
            view,
            finding_kind,
            Severity.WARNING,
            f"{detail}: Argo CD has not applied it",
            _argocd_sync(view.services),
        ),
    )


def _sync_condition(resource: InfisicalSecretResource) -> KubeCondition | None:
    """ReadyToSyncSecrets; a failing LoadedInfisicalToken when that is all there is."""
    ready = resource.ready
    if ready is not None:
        return ready
    token = next((c for c in resource.conditions if c.type == LOADED_TOKEN), None)
    return token if token is not None and not token.true else None


def _infisical_check(view: KubeView) -> Check:
    name, resource = CHECK_INFISICAL, view.infisical
    label = f"InfisicalSecret `{secret_name(view.app)}`"
    if resource is None or "InfisicalSecret" in view.snap.errors:
        return _absent(
            view, name=name, kind="InfisicalSecret", what=label, finding_kind="secret_unsynced"
        )
    condition = _sync_condition(resource)
    if condition is None:
        detail = "no status yet: the Infisical operator has not reconciled it"
        if view.fresh(resource.created_at):
            return pending(name, detail, SOURCE)
        return problem(
            name,
            detail,
            SOURCE,
            _finding(
                view,
                "secret_unsynced",
                Severity.WARNING,
                f"{label} has no status: the Infisical operator has not reconciled it "
                "(is the operator running?)",
                repair_command(view.app),
                Repair.RESYNC,
            ),
        )
    detail = f"{condition.type.rsplit('/', 1)[-1]} {condition.status}: {short(condition.message)}"
    if condition.true:
        return ok(name, detail, SOURCE)
    if view.fresh(resource.created_at) or view.fresh(condition.since):
        return pending(name, detail, SOURCE)
    settings = view.services.settings
    remedy, repair = repair_command(view.app), Repair.RESYNC
    lowered = condition.message.lower()
    if "authenticat" in lowered or "token" in lowered:
        remedy = (
            f"check the operator's credentials Secret {settings.layout.manifests.auth_namespace}/"
            f"{settings.layout.manifests.auth_secret} (clientId, clientSecret) and hostAPI, then "
            f"{repair_command(view.app)}"
        )
    return problem(
        name,
        detail,
        SOURCE,
        _finding(
            view,
            "secret_unsynced",
            Severity.CRITICAL,
            f"{label} cannot sync ({condition.type.rsplit('/', 1)[-1]} {condition.status}): "
            f"{short(condition.message)}",
            remedy,
            repair,
        ),
    )


def _secret_check(view: KubeView) -> Check:
    name = CHECK_SECRET
    if "Secret" in view.snap.errors:
        return unknown(name, view.snap.errors["Secret"], SOURCE)
    secret = view.snap.secrets.get(view.secret_name)
    resource = view.infisical
    if secret is None:
        if resource is None:
            return pending(
                name,
                f"Secret `{view.secret_name}` does not exist yet (its InfisicalSecret is not in "
                "the cluster)",
                SOURCE,
            )
        detail = (
            f"Secret `{view.secret_name}` does not exist in namespace {view.snap.namespace} "
            "(the InfisicalSecret has not written it)"
        )
        if view.fresh(resource.created_at):
            return pending(name, detail, SOURCE)
        return problem(
            name,
            detail,
            SOURCE,
            _finding(
                view,
                "kube_secret_missing",
                Severity.CRITICAL,
                f"Secret `{view.secret_name}` does not exist in namespace {view.snap.namespace}: "
                "the InfisicalSecret has not written it (a deleted Secret is not rewritten until "
                "the InfisicalSecret's spec changes)",
                repair_command(view.app),
                Repair.RESYNC,
            ),
        )
    if view.store_error is not None:
        return unknown(
            name,
            f"the secret store could not be read ({view.store_error}); Secret "
            f"`{secret.name}` exists",
            SOURCE,
        )
    if view.stored_password is None:
        return Check(
            name=name,
            outcome=CheckOutcome.NOT_CHECKED,
            detail=f"Secret `{secret.name}` exists; not compared: the secret store holds no "
            "password",
            source=SOURCE,
        )
    if secret.password is not None and secret.password == view.stored_password:
        return ok(name, f"Secret `{secret.name}` exists and carries the stored password", SOURCE)
    what = (
        "has no `password` key"
        if secret.password is None
        else "carries another password than the secret store"
    )
    detail = f"Secret `{secret.name}` {what}"
    if view.rotating:
        return pending(name, f"{detail} (rotation in progress)", SOURCE)
    if view.fresh(secret.created_at) and view.rotation is None:
        return pending(name, f"{detail} (just written: the operator syncs it)", SOURCE)
    rotation = view.rotation
    return problem(
        name,
        detail + (f" — finish the rotation: /pgdb rotate {view.app} --yes" if rotation else ""),
        SOURCE,
        _finding(
            view,
            "kube_secret_stale",
            Severity.CRITICAL,
            f"Secret `{secret.name}` {what}: pods reading it cannot log in once the role uses "
            "the stored password" + (rotation_note(rotation) if rotation is not None else ""),
            f"/pgdb rotate {view.app} --yes" if rotation is not None else repair_command(view.app),
            None if rotation is not None else Repair.RESYNC,
        ),
    )


def _no_status_reason(snap: ClusterSnapshot, cluster: str) -> str:
    if cluster != snap.cluster_name:
        return (
            f"no status: spec.cluster.name is `{cluster}`, not `{snap.cluster_name}` "
            f"(no such Cluster in {snap.namespace})"
        )
    return "no status yet: the cluster's primary has not reconciled it (is a primary running?)"


def _database_check(view: KubeView) -> Check:
    name, snap = CHECK_DATABASE, view.snap
    resource = snap.database_for(view.app)
    if resource is None or "Database" in snap.errors:
        return _absent(
            view,
            name=name,
            kind="Database",
            what=f"Database CR `{view.app}`",
            finding_kind="database_missing",
        )
    if resource.applied is True:
        return _applied(view, resource)
    describe = f"kubectl -n {snap.namespace} describe database {resource.name}"
    if resource.applied is None:
        detail = short(resource.message) or _no_status_reason(snap, resource.cluster)
        if view.fresh(resource.created_at):
            return pending(name, detail, SOURCE)
        return problem(
            name,
            detail,
            SOURCE,
            _finding(
                view,
                "database_not_applied",
                Severity.WARNING,
                f"Database CR `{resource.name}`: {detail}",
                describe,
            ),
        )
    message = resource.message or "no message"
    detail = f"not applied: {short(message)}"
    if view.fresh(resource.created_at):
        return pending(name, detail, SOURCE)
    owner = resource.owner or view.app
    role_missing = f'role "{owner}" does not exist' in message
    if role_missing and view.database is not None and owner in view.database.roles:
        # the role came later: CloudNativePG retries every 30 s and will apply it
        return problem(
            name,
            detail,
            SOURCE,
            _finding(
                view,
                "database_not_applied",
                Severity.WARNING,
                f"Database CR `{resource.name}` is not applied yet: {short(message)} (role "
                f"`{owner}` exists now: CloudNativePG retries every 30 s)",
                describe,
            ),
        )
    return problem(
        name,
        detail,
        SOURCE,
        _finding(
            view,
            "database_not_applied",
            Severity.CRITICAL,
            f"Database CR `{resource.name}` is not applied: {short(message)}",
            repair_command(view.app) if role_missing else describe,
            Repair.ROLE if role_missing else None,
        ),
    )


def _applied(view: KubeView, resource: DatabaseResource) -> Check:
    name, snap, state = CHECK_DATABASE, view.snap, view.database
    if (
        resource.observed_generation is not None
        and resource.observed_generation < resource.generation
    ):
        return pending(name, "applied, a newer spec is being applied", SOURCE)
    if state is not None and resource.database and resource.database not in state.databases:
        return problem(
            name,
            f"applied, but database `{resource.database}` does not exist in PostgreSQL",
            SOURCE,
            _finding(
                view,
                "database_missing",
                Severity.CRITICAL,
                f"Database CR `{resource.name}` says applied, but database "
                f"`{resource.database}` does not exist in PostgreSQL (dropped by hand?): "
                "CloudNativePG creates it again only when the CR's spec changes",
                f"kubectl -n {snap.namespace} patch database {resource.name} --type merge "
                """-p '{"spec":{"connectionLimit":-1}}' (any spec change will do)""",
            ),
        )
    return ok(name, "applied", SOURCE)


def _argocd_check(view: KubeView) -> Check:
    snap = view.snap
    if snap.argocd_app is None:
        return Check(
            name=CHECK_ARGOCD,
            outcome=CheckOutcome.NOT_CONFIGURED,
            detail="PGDB_ARGOCD_APP is not set",
            source=SOURCE,
        )
    if "Application" in snap.errors:
        return unknown(CHECK_ARGOCD, snap.errors["Application"], SOURCE)
    app = snap.argocd
    if app is not None and app.ok:
        return ok(CHECK_ARGOCD, f"`{app.name}`: {app.sync}, {app.health}", "Argo CD")
    assert view.argocd is not None  # argocd_finding made it for this very snapshot
    return problem(CHECK_ARGOCD, view.argocd.message, "Argo CD", view.argocd)


# --- the cluster as a whole ------------------------------------------------------------------


def argocd_finding(snap: ClusterSnapshot, services: Services) -> Finding | None:
    """The Argo CD Application that is not synced and healthy: one finding for every app."""
    if snap.argocd_app is None or "Application" in snap.errors:
        return None
    app = snap.argocd
    if app is not None and app.ok:
        return None
    if app is None:
        message = (
            f"Argo CD Application `{snap.argocd_app}` not found (PGDB_ARGOCD_APP, "
            "PGDB_ARGOCD_NAMESPACE)"
        )
    else:
        message = f"Argo CD Application `{app.name}`: {app.sync}, {app.health}"
        if app.message:
            message += f" — {short(app.message)}"
    return Finding(
        kind="cluster_degraded",
        app=None,
        severity=Severity.WARNING,
        message=message,
        remedy=_argocd_sync(services),
    )


def cluster_findings(
    snap: ClusterSnapshot, services: Services, *, at: datetime, grace: timedelta
) -> list[Finding]:
    """The findings that belong to no app: kinds that could not be read, the Cluster, its
    backups."""
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
    out.extend(_cluster_health(snap, at=at, grace=grace))
    out.extend(_backup_findings(snap, services, at=at, grace=grace))
    return out


def _cluster_health(snap: ClusterSnapshot, *, at: datetime, grace: timedelta) -> list[Finding]:
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
    if not outage and since is not None and at - since < grace:
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
    snap: ClusterSnapshot, services: Services, *, at: datetime, grace: timedelta
) -> list[Finding]:
    configured = services.settings.timing.backup_max_age
    if configured is None:
        return []
    max_age = configured.seconds
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
        and (archiving.since is None or at - archiving.since >= grace)
    ):
        out.append(
            Finding(
                kind="backup_stale",
                app=None,
                severity=Severity.WARNING,
                message=f"continuous WAL archiving of `{snap.cluster_name}` is failing: "
                f"{short(archiving.message)}",
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
        key=lambda b: b.created_at or at,
    )
    why = f" (newest failure: {short(failed[-1].error)})" if failed and failed[-1].error else ""
    if last is not None:
        if at - last > limit:
            out.append(
                Finding(
                    kind="backup_stale",
                    app=None,
                    severity=Severity.WARNING,
                    message=f"the last successful backup of `{snap.cluster_name}` finished "
                    f"{age((at - last).total_seconds())} ago, older "
                    f"than PGDB_BACKUP_MAX_AGE={services.settings.timing.backup_max_age}{why}",
                    remedy=remedy,
                )
            )
        return out
    if scheduled:
        oldest = min((s.created_at for s in scheduled if s.created_at), default=None)
        if oldest is None or at - oldest > limit:
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


def kube_system_row(
    snap: ClusterSnapshot | None,
    *,
    at: datetime,
    configured: bool,
    error: str | None,
    healthy: bool,
) -> str:
    """The "Kubernetes" line of ``/pgdb status``: cluster health, last backup, Argo CD.
    ``healthy``: no warning or critical finding of the cluster itself."""
    if not configured:
        return f"{ICONS[CheckOutcome.NOT_CONFIGURED]} not configured"
    if snap is None:
        return f"{ICONS[CheckOutcome.PROBLEM]} {error}"
    parts: list[str] = []
    cluster = snap.cluster
    if cluster is None:
        parts.append(
            f"Cluster `{snap.cluster_name}` unknown"
            if "Cluster" in snap.errors
            else f"Cluster `{snap.cluster_name}` not found in {snap.namespace}"
        )
    else:
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
        f"last backup {age((at - last).total_seconds())} ago"
        if last is not None
        else "no completed backup"
    )
    if snap.argocd_app is not None and snap.argocd is not None:
        parts.append(f"Argo CD `{snap.argocd.name}` {snap.argocd.sync}/{snap.argocd.health}")
    if snap.errors:
        parts.append("unknown: " + ", ".join(sorted(snap.errors)))
    icon = ICONS[CheckOutcome.OK] if healthy else WARNING_ICON
    return f"{icon} " + "; ".join(parts)
