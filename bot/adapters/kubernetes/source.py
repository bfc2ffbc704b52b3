"""Whether, and how, the bot talks to Kubernetes: which credentials to load.

Kept apart from the client so that choosing costs nothing: the kubernetes client (about a
second to import) is loaded only when a cluster is really configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import ConfigError

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True, kw_only=True)
class KubeSource:
    """Where the credentials come from: the pod's service account, or a kubeconfig file."""

    in_cluster: bool
    kubeconfig: Path | None = None
    context: str | None = None
    origin: str = ""  # which setting chose it, for messages

    def describe(self) -> str:
        if self.in_cluster:
            return "in-cluster service account"
        context = f", context {self.context}" if self.context else ""
        return f"kubeconfig {self.kubeconfig}{context} ({self.origin})"


def select_source(
    *,
    mode: str,
    kubeconfig: Path | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    token_file: Path = IN_CLUSTER_TOKEN,
    home: Path | None = None,
) -> KubeSource | None:
    """The source ``mode`` (``PGDB_KUBERNETES``: auto, on or off) asks for; None when
    Kubernetes is off or, in ``auto``, when nothing is there. ``on`` without any source is a
    configuration error.

    Order: ``kubeconfig`` (``PGDB_KUBECONFIG``: explicit, must exist), the in-cluster service
    account, ``$KUBECONFIG``, ``~/.kube/config``; ``context`` (``PGDB_KUBE_CONTEXT``) applies
    to every kubeconfig.
    """
    env = os.environ if environ is None else environ
    if mode == "off":
        return None
    if kubeconfig is not None:
        path = kubeconfig.expanduser()
        if not path.is_file():
            raise ConfigError(
                f"PGDB_KUBECONFIG: {path} is not a file (point it at a kubeconfig, or unset it)"
            )
        return KubeSource(
            in_cluster=False, kubeconfig=path, context=context, origin="PGDB_KUBECONFIG"
        )
    if env.get("KUBERNETES_SERVICE_HOST") and token_file.is_file():
        return KubeSource(in_cluster=True, origin="in-cluster")
    for raw in (env.get("KUBECONFIG") or "").split(os.pathsep):
        if raw and Path(raw).expanduser().is_file():
            return KubeSource(
                in_cluster=False,
                kubeconfig=Path(raw).expanduser(),
                context=context,
                origin="KUBECONFIG",
            )
    default = (home or Path.home()) / ".kube" / "config"
    if default.is_file():
        return KubeSource(in_cluster=False, kubeconfig=default, context=context, origin="~/.kube")
    if mode == "on":
        raise ConfigError(
            "PGDB_KUBERNETES=on but no Kubernetes configuration was found: set PGDB_KUBECONFIG, "
            "run in a pod with a service account, or set PGDB_KUBERNETES=auto"
        )
    return None
