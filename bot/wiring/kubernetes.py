"""Kubernetes from the configuration: which credentials, the ``Cluster`` adapter, and who leads
the diagnostics schedule.

The only place that reads the ``PGDB_KUBE*``, ``PGDB_NAMESPACE``, ``PGDB_CLUSTER`` and
``PGDB_ARGOCD_*`` settings for the adapter, which takes plain parameters. The client library
(about a second to import, and memory for the life of the process) is imported only when a
source is selected.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from bot.adapters.kubernetes.source import KubeSource, select_source
from bot.config import Settings
from bot.core.durations import parse_duration
from bot.core.ports import Cluster

if TYPE_CHECKING:
    from bot.adapters.kubernetes.api import KubeApi
    from bot.adapters.kubernetes.cluster import KubernetesCluster
    from bot.core.ports import Leadership


def kube_source(settings: Settings) -> KubeSource | None:
    """The source ``PGDB_KUBERNETES`` asks for (None: run without Kubernetes)."""
    return select_source(
        mode=settings.kubernetes, kubeconfig=settings.kubeconfig, context=settings.kube_context
    )


def connect_cluster(
    source: KubeSource, settings: Settings, *, clients: dict[KubeSource, KubeApi] | None = None
) -> KubernetesCluster:
    """The Kubernetes adapter on ``source``; the credentials are loaded now, so a bad
    kubeconfig stops the bot at start with its name. ``clients``: one client per source
    (context) shared by the environments that use it."""
    from bot.adapters.kubernetes.api import KubeApi
    from bot.adapters.kubernetes.cluster import KubernetesCluster

    shared = clients if clients is not None else {}
    if source not in shared:
        shared[source] = KubeApi.connect(source)
    return KubernetesCluster(
        shared[source],
        namespace=settings.namespace,
        cluster=settings.cluster,
        argocd_app=settings.argocd_app,
        argocd_namespace=settings.argocd_namespace,
        timeout=parse_duration(settings.kube_timeout),
        resync_interval=settings.infisical_resync_interval,
    )


def build_cluster(
    settings: Settings, *, clients: dict[KubeSource, KubeApi] | None = None
) -> Cluster:
    """The Kubernetes adapter when a source is selected, else the "not configured" one (the
    client library is imported only then)."""
    source = kube_source(settings)
    if source is None:
        from bot.adapters.no_cluster import NoCluster

        return NoCluster()
    return connect_cluster(source, settings, clients=clients)


def replica_identity(settings: Settings) -> str:
    """This replica's name in the Lease: the pod name when the Deployment gives it."""
    return settings.pod_name or f"{socket.gethostname()}-{os.getpid()}"


def build_leadership(settings: Settings) -> Leadership:
    """Who runs the schedule: a Kubernetes Lease (``pgdb-bot-<env>`` in ``PGDB_NAMESPACE``)
    when Kubernetes is configured, else a PostgreSQL advisory lock on ``PGDB_PG_DSN``."""
    from bot.scheduler import LEASE_SECONDS

    source = kube_source(settings)
    if source is not None:
        from bot.adapters.kubernetes.api import KubeApi
        from bot.adapters.kubernetes.lease import KubernetesLease

        return KubernetesLease(
            KubeApi.connect(source),
            namespace=settings.namespace,
            name=f"pgdb-bot-{settings.env}",
            identity=replica_identity(settings),
            duration_seconds=LEASE_SECONDS,
            timeout=parse_duration(settings.kube_timeout),
        )
    from bot.adapters.postgres.leader import PostgresLeaderLock
    from bot.environments import state_dsn_of

    dsn = state_dsn_of(settings)  # the bot's own state, shared by every environment
    assert dsn is not None, "build_services requires PGDB_PG_DSN"
    return PostgresLeaderLock(dsn, key=f"pgdb-bot scheduler {settings.env}/{settings.state_schema}")
