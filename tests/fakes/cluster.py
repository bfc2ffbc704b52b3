"""``Cluster`` in memory: the CNPG Cluster and Databases, the InfisicalSecrets and the Secrets
they manage, backups, the Argo CD Application, and workloads.

With a secret store attached (``operator=``), a forced resync does what the Infisical operator
does: the managed Secret then carries the store's current credentials. ``operator_syncs=False``
plays an operator that does not sync (``/pgdb rotate`` then times out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.core.errors import BackendUnavailable
from bot.core.manifests.layout import secret_name
from bot.core.model import (
    HEALTHY_PHASE,
    READY_TO_SYNC,
    ArgoApplication,
    BackupRecord,
    ClusterSnapshot,
    DatabaseResource,
    InfisicalSecretResource,
    KubeCondition,
    KubeSecret,
    PgCluster,
    ResyncResult,
    ScheduledBackupRecord,
    Workload,
)
from bot.core.names import parse_app_name
from bot.core.ports import SecretStore
from bot.core.secret import Secret
from tests.fakes.faults import FakeClock, Faults

NAMESPACE = "databases"
CLUSTER = "postgresql-shared"
RESYNC_INTERVAL = 60  # seconds, as PGDB_INFISICAL_RESYNC_INTERVAL's default


def healthy_cluster(name: str = CLUSTER) -> PgCluster:
    return PgCluster(
        name=name,
        phase=HEALTHY_PHASE,
        instances=1,
        ready_instances=1,
        current_primary=f"{name}-1",
        target_primary=f"{name}-1",
        conditions=(KubeCondition(type="Ready", status="True"),),
    )


class MemoryCluster(Faults):
    """Everything ``observe`` returns, as plain attributes a test changes directly; helpers
    ``onboard`` (an app as the controllers leave it) and ``sync`` (the operator's write)."""

    configured = True
    system = "Kubernetes"

    def __init__(
        self,
        *,
        namespace: str = NAMESPACE,
        cluster_name: str = CLUSTER,
        operator: SecretStore | None = None,
        operator_syncs: bool = True,
        argocd_app: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.namespace = namespace
        self.cluster_name = cluster_name
        self.operator = operator
        self.operator_syncs = operator_syncs
        self.clock = clock or FakeClock()
        self.cluster: PgCluster | None = healthy_cluster(cluster_name)
        self.databases: dict[str, DatabaseResource] = {}
        self.infisical_secrets: dict[str, InfisicalSecretResource] = {}
        self.secrets: dict[str, KubeSecret] = {}
        self.backups: list[BackupRecord] = [
            BackupRecord(
                name="daily-1",
                cluster=cluster_name,
                phase="completed",
                stopped_at=self.clock() - timedelta(hours=2),
            )
        ]
        self.scheduled_backups: list[ScheduledBackupRecord] = [
            ScheduledBackupRecord(name="daily", cluster=cluster_name, schedule="0 0 0 * * *")
        ]
        self.argocd_app = argocd_app
        self.argocd: ArgoApplication | None = (
            ArgoApplication(name=argocd_app, sync="Synced", health="Healthy")
            if argocd_app
            else None
        )
        self.errors: dict[str, str] = {}  # kind -> why it cannot be read (forbidden...)
        self.deployed: dict[str, list[Workload]] = {}  # namespace -> workloads
        self.restarts: list[tuple[Workload, str]] = []
        self._intervals: dict[str, int] = {}  # InfisicalSecret -> its resync interval

    # --- seeding (what the controllers and people do) ------------------------------------------

    def onboard(self, app: str, *, password: str | None = None, synced: bool = True) -> None:
        """The app as Argo CD and the controllers leave it once its manifests are merged: the
        Database applied, the InfisicalSecret ready, and (``synced``) its Secret written with
        ``password`` (default: the store's, when an operator store is attached)."""
        name = secret_name(parse_app_name(app))
        with self._lock:
            self.databases[app] = DatabaseResource(
                name=app,
                database=app,
                owner=app,
                cluster=self.cluster_name,
                applied=True,
                generation=1,
                observed_generation=1,
                reclaim_policy="retain",
            )
            self.infisical_secrets[name] = InfisicalSecretResource(
                name=name,
                generation=1,
                conditions=(KubeCondition(type=READY_TO_SYNC, status="True", reason="OK"),),
                secrets_path=f"/postgresql/{app}",
                managed_secrets=(name,),
                delivered_to=((self.namespace, name),),
            )
        if not synced:
            return
        if password is not None:
            with self._lock:
                self.secrets[name] = _secret(name, username=app, password=password)
        else:
            self.sync(name)

    def sync(self, name: str) -> None:
        """What the Infisical operator does for InfisicalSecret ``name``: write the store's
        current credentials into the Secrets it manages."""
        with self._lock:
            resource = self.infisical_secrets.get(name)
        if resource is None or self.operator is None:
            return
        app = name.removesuffix("-postgresql-credentials")
        stored = self.operator.read(parse_app_name(app))
        if stored is None:
            return
        with self._lock:
            for secret in resource.managed_secrets:
                self.secrets[secret] = KubeSecret(
                    name=secret,
                    keys=frozenset(
                        k
                        for k, v in (
                            ("username", stored.username),
                            ("password", stored.password),
                            ("database", stored.database),
                        )
                        if v
                    ),
                    password=stored.password,
                    username=stored.username,
                    created_at=self.clock(),
                )

    def deploy(self, workload: Workload) -> None:
        """A Deployment or StatefulSet in its namespace."""
        with self._lock:
            self.deployed.setdefault(workload.namespace, []).append(workload)

    # --- the port ------------------------------------------------------------------------------

    def describe(self) -> str:
        return f"in-memory cluster, namespace {self.namespace}"

    def observe(self) -> ClusterSnapshot:
        self._enter("observe")
        with self._lock:
            return ClusterSnapshot(
                namespace=self.namespace,
                cluster_name=self.cluster_name,
                cluster=self.cluster,
                databases=dict(self.databases),
                infisical_secrets=dict(self.infisical_secrets),
                secrets=dict(self.secrets),
                backups=tuple(self.backups),
                scheduled_backups=tuple(self.scheduled_backups),
                argocd_app=self.argocd_app,
                argocd=self.argocd,
                errors=dict(self.errors),
                calls=7 if self.argocd_app else 6,
            )

    def resync_infisical_secret(self, name: str) -> ResyncResult:
        self._enter("resync_infisical_secret")
        with self._lock:
            resource = self.infisical_secrets.get(name)
            if resource is None:
                raise BackendUnavailable(
                    self.system,
                    f"patching InfisicalSecret {name}: not found in namespace {self.namespace}",
                )
            before = self._intervals.get(name, RESYNC_INTERVAL)
            after = RESYNC_INTERVAL + 1 if before == RESYNC_INTERVAL else RESYNC_INTERVAL
            self._intervals[name] = after
            self.infisical_secrets[name] = replace(resource, generation=resource.generation + 1)
        if self.operator_syncs:
            self.sync(name)
        return ResyncResult(
            name=name,
            field="spec.resyncInterval",
            before=str(before),
            after=str(after),
            generation_before=resource.generation,
            generation_after=resource.generation + 1,
        )

    def read_secret(self, name: str) -> KubeSecret | None:
        self._enter("read_secret")
        with self._lock:
            return self.secrets.get(name)

    def workloads(self, namespace: str) -> list[Workload]:
        self._enter("workloads")
        with self._lock:
            return list(self.deployed.get(namespace, []))

    def restart_workload(self, workload: Workload, *, restarted_at: str) -> None:
        self._enter("restart_workload")
        with self._lock:
            found = self.deployed.get(workload.namespace, [])
            for i, w in enumerate(found):
                if (w.kind, w.name) == (workload.kind, workload.name):
                    found[i] = replace(w, restarted_at=restarted_at)
                    self.restarts.append((w, restarted_at))
                    return
        raise BackendUnavailable(
            self.system,
            f"restarting {workload.kind} {workload.namespace}/{workload.name}: not found",
        )


def _secret(name: str, *, username: str, password: str) -> KubeSecret:
    return KubeSecret(
        name=name,
        keys=frozenset({"username", "password", "database"}),
        password=Secret(password),
        username=username,
    )


if TYPE_CHECKING:
    from bot.core.ports import Cluster

    _conforms: Cluster = MemoryCluster()
