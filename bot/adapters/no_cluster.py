"""The cluster port when Kubernetes is not configured: every Kubernetes check says so."""

from __future__ import annotations

from bot.core.errors import PgdbError
from bot.core.model import ClusterSnapshot, KubeSecret, ResyncResult, Workload

NOT_CONFIGURED = (
    "Kubernetes is not configured (set PGDB_KUBECONFIG, or run in a cluster; "
    "PGDB_KUBERNETES=off turns it off)"
)


class NoCluster:
    configured = False

    def describe(self) -> str:
        return "not configured"

    def observe(self) -> ClusterSnapshot:
        raise PgdbError(NOT_CONFIGURED)

    def resync_infisical_secret(self, name: str) -> ResyncResult:
        raise PgdbError(NOT_CONFIGURED)

    def read_secret(self, name: str) -> KubeSecret | None:
        raise PgdbError(NOT_CONFIGURED)

    def workloads(self, namespace: str) -> list[Workload]:
        raise PgdbError(NOT_CONFIGURED)

    def restart_workload(self, workload: Workload, *, restarted_at: str) -> None:
        raise PgdbError(NOT_CONFIGURED)
