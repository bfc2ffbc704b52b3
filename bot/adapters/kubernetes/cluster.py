"""The ``Cluster`` port: what the cluster really runs, read through the API server.

One pass reads each kind once, whatever the number of apps: the CNPG ``Cluster`` (one get),
``Database``, ``InfisicalSecret``, ``Secret``, ``Backup`` and ``ScheduledBackup`` (one list each,
in the namespace) and, when configured, the Argo CD ``Application`` (one get). The writes are
the forced Infisical resync, a merge patch guarded by ``resourceVersion``, and the rollout
restart of a workload after a rotation.

Errors leave as ``BackendUnavailable("Kubernetes", "… — <what to fix>")``, without the original
exception chained (a response body could quote an object).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Final, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

from bot.adapters.kubernetes.api import MERGE_PATCH, KubeApi, custom_path, timeout_pair
from bot.adapters.kubernetes.parse import (
    RESTARTED_AT,
    as_dict,
    as_int,
    as_str,
    items_of,
    managed_secrets,
    parse_application,
    parse_backup,
    parse_cluster,
    parse_database,
    parse_infisical_secret,
    parse_scheduled_backup,
    parse_secret,
    parse_workload,
    status_body,
    toggled_resync,
)
from bot.core.errors import BackendUnavailable, ConflictError, PgdbError
from bot.core.model import (
    ArgoApplication,
    ClusterSnapshot,
    KubeSecret,
    PgCluster,
    ResyncResult,
    Workload,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM: Final = "Kubernetes"
CORE: Final = ("", "v1")
CNPG: Final = ("postgresql.cnpg.io", "v1")
INFISICAL: Final = ("secrets.infisical.com", "v1alpha1")
ARGOCD: Final = ("argoproj.io", "v1alpha1")
APPS: Final = ("apps", "v1")
RBAC_HINT: Final = (
    "grant it as deploy/base/rbac.yaml does (Argo CD: the component deploy/components/argocd-rbac)"
)
WORKLOAD_KINDS: Final = (("Deployment", "deployments"), ("StatefulSet", "statefulsets"))
ROLLOUT_RBAC: Final = "deploy/components/rollout-rbac/rollout-rbac.yaml"


class KubeApiError(BackendUnavailable):
    """The API server answered with an error status; ``missing_object`` when the status names
    the object it did not find (as opposed to a kind it does not serve)."""

    def __init__(self, message: str, *, status: int, missing_object: bool) -> None:
        super().__init__(SYSTEM, message)
        self.status = status
        self.missing_object = missing_object


class KubernetesCluster:
    """The ``Cluster`` port on the official kubernetes client."""

    configured = True

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        cluster: str,
        argocd_app: str | None = None,
        argocd_namespace: str = "argocd",
        timeout: float = 10.0,
        resync_interval: int = 60,
    ) -> None:
        """``timeout``: seconds for each call's answer; ``resync_interval``: the Infisical
        operator's configured resync interval in seconds (the forced resync toggles it)."""
        self._api = api
        self.namespace = namespace
        self.cluster = cluster
        self.argocd_app = argocd_app
        self.argocd_namespace = argocd_namespace
        self._where = api.where
        self._timeout = timeout_pair(timeout)
        self._resync_interval = resync_interval
        self._lock = threading.Lock()
        self.calls = 0  # every API call this adapter made (tests and the bench read it)

    def __repr__(self) -> str:
        return f"KubernetesCluster({self._where}, namespace={self.namespace})"

    def describe(self) -> str:
        return f"{self._where}, namespace {self.namespace}"

    def close(self) -> None:
        self._api.close()

    # -- calls ------------------------------------------------------------------------------

    def _call(self, what: str, resource: str, verb: str, fn: Callable[[], T]) -> T:
        """One API call with the timeout; errors become one actionable sentence."""
        with self._lock:
            self.calls += 1
        failure: PgdbError
        try:
            return fn()
        except ApiException as exc:
            failure = self._api_error(what, resource, verb, exc)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            failure = self._transport_error(what, exc)
        raise failure

    def _api_error(self, what: str, resource: str, verb: str, exc: ApiException) -> KubeApiError:
        status = exc.status or 0
        parsed = status_body(exc.body)
        message = (
            " ".join(as_str(parsed.get("message")).split())[:300]
            or as_str(exc.reason)
            or f"HTTP {status}"
        )
        missing_object = status == 404 and bool(as_dict(parsed.get("details")).get("name"))
        if status == 401:
            fix = f"the API server refused the bot's credentials ({self._where}): renew them"
        elif status == 403:
            fix = (
                f"the bot's account may not {verb} {resource} in namespace "
                f"{self._ns_of(resource)}: {RBAC_HINT}"
            )
        elif status == 404:
            fix = (
                f"the API server does not serve {resource}: is its operator (CRD) installed, "
                "and is PGDB_NAMESPACE right?"
            )
        elif status == 409:
            fix = "the object changed meanwhile: run the command again"
        elif status == 429 or status >= 500:
            fix = "the API server is overloaded or failing: try again, and check the control plane"
        else:
            fix = "check the bot's Kubernetes configuration"
        if missing_object:
            fix = "it does not exist"
        return KubeApiError(
            f"{what} failed with HTTP {status}: {message} — {fix}",
            status=status,
            missing_object=missing_object,
        )

    def _transport_error(self, what: str, exc: BaseException) -> BackendUnavailable:
        reason = getattr(exc, "reason", None) or exc
        text = " ".join(str(reason).split())
        refused = isinstance(reason, urllib3.exceptions.NewConnectionError)  # a TimeoutError too
        if not refused and (
            isinstance(reason, urllib3.exceptions.TimeoutError) or "timed out" in text.lower()
        ):
            detail = f"the API server did not answer within {self._timeout[1]:g}s"
        else:
            detail = f"cannot reach the API server ({text[:200]})"
        return BackendUnavailable(
            SYSTEM,
            f"{what}: {detail} — check that {self._where} is reachable from the bot "
            "(PGDB_KUBECONFIG, network policy), or set PGDB_KUBERNETES=off",
        )

    def _ns_of(self, resource: str) -> str:
        return self.argocd_namespace if resource.startswith("applications") else self.namespace

    def _get(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
        path = custom_path(group, version, plural) + "/{name}"
        params = {"namespace": namespace, "name": name}
        return self._api.call("GET", path, params=params, timeout=self._timeout)

    def _list(self, group: str, version: str, plural: str, namespace: str | None = None) -> Any:
        params = {"namespace": self.namespace if namespace is None else namespace}
        path = custom_path(group, version, plural)
        return self._api.call("GET", path, params=params, timeout=self._timeout)

    def _merge_patch(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> Any:
        return self._api.call(
            "PATCH",
            custom_path(group, version, plural) + "/{name}",
            params={"namespace": namespace, "name": name},
            body=body,
            content_type=MERGE_PATCH,
            timeout=self._timeout,
        )

    # -- observe ----------------------------------------------------------------------------

    def observe(self) -> ClusterSnapshot:
        """One pass: one call per kind; a kind that is forbidden or not installed is named in
        ``errors`` while the others are read. An unreachable API server fails the pass."""
        before = self.calls
        errors: dict[str, str] = {}

        def soft(kind: str, fn: Callable[[], T], default: T) -> T:
            try:
                return fn()
            except BackendUnavailable as exc:
                if _is_soft(exc):
                    errors[kind] = str(exc)
                    return default
                raise

        group, version = CNPG
        cluster = soft("Cluster", self._read_cluster, None)
        databases = soft(
            "Database",
            lambda: self._call(
                "listing Database CRs",
                "databases.postgresql.cnpg.io",
                "list",
                lambda: self._list(group, version, "databases"),
            ),
            None,
        )
        infisical = soft(
            "InfisicalSecret",
            lambda: self._call(
                "listing InfisicalSecrets",
                "infisicalsecrets.secrets.infisical.com",
                "list",
                lambda: self._list(*INFISICAL, "infisicalsecrets"),
            ),
            None,
        )
        secrets_listing = soft(
            "Secret",
            lambda: self._call(
                "listing Secrets",
                "secrets",
                "list",
                lambda: self._list(*CORE, "secrets"),
            ),
            None,
        )
        backups = soft(
            "Backup",
            lambda: self._call(
                "listing Backups",
                "backups.postgresql.cnpg.io",
                "list",
                lambda: self._list(group, version, "backups"),
            ),
            None,
        )
        scheduled = soft(
            "ScheduledBackup",
            lambda: self._call(
                "listing ScheduledBackups",
                "scheduledbackups.postgresql.cnpg.io",
                "list",
                lambda: self._list(group, version, "scheduledbackups"),
            ),
            None,
        )
        argocd = soft("Application", self._read_application, None) if self.argocd_app else None

        infisical_secrets = {
            r.name: r
            for r in (
                parse_infisical_secret(o, namespace=self.namespace) for o in items_of(infisical)
            )
            if r.name
        }
        wanted = {n for r in infisical_secrets.values() for n in r.managed_secrets}
        return ClusterSnapshot(
            namespace=self.namespace,
            cluster_name=self.cluster,
            cluster=cluster,
            databases={d.name: d for d in map(parse_database, items_of(databases)) if d.name},
            infisical_secrets=infisical_secrets,
            secrets=managed_secrets(secrets_listing, wanted=wanted),
            backups=tuple(map(parse_backup, items_of(backups))),
            scheduled_backups=tuple(map(parse_scheduled_backup, items_of(scheduled))),
            argocd_app=self.argocd_app,
            argocd=argocd,
            errors=errors,
            calls=self.calls - before,
        )

    def _read_cluster(self) -> PgCluster | None:
        group, version = CNPG
        try:
            obj = self._call(
                f"reading Cluster {self.cluster}",
                "clusters.postgresql.cnpg.io",
                "get",
                lambda: self._get(group, version, self.namespace, "clusters", self.cluster),
            )
        except BackendUnavailable as exc:
            if _object_missing(exc):
                return None
            raise
        return parse_cluster(as_dict(obj))

    def _read_application(self) -> ArgoApplication | None:
        assert self.argocd_app is not None
        name = self.argocd_app
        try:
            obj = self._call(
                f"reading Argo CD Application {name}",
                "applications.argoproj.io",
                "get",
                lambda: self._get(*ARGOCD, self.argocd_namespace, "applications", name),
            )
        except BackendUnavailable as exc:
            if _object_missing(exc):
                return None
            raise
        return parse_application(as_dict(obj))

    # -- write ------------------------------------------------------------------------------

    def resync_infisical_secret(self, name: str) -> ResyncResult:
        """Toggle the resync interval (a spec change: the generation moves, the operator
        reconciles and, since the update clears its cache, rewrites the managed Secret)."""
        resource = "infisicalsecrets.secrets.infisical.com"
        for _ in range(3):
            obj = as_dict(
                self._call(
                    f"reading InfisicalSecret {name}",
                    resource,
                    "get",
                    lambda: self._get(*INFISICAL, self.namespace, "infisicalsecrets", name),
                )
            )
            meta = as_dict(obj.get("metadata"))
            field, before, after, spec_patch = toggled_resync(
                as_dict(obj.get("spec")), base=self._resync_interval
            )
            body = {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "spec": spec_patch,
            }
            try:
                updated = self._call(
                    f"patching InfisicalSecret {name}",
                    resource,
                    "patch",
                    partial(
                        self._merge_patch,
                        *INFISICAL,
                        self.namespace,
                        "infisicalsecrets",
                        name,
                        body,
                    ),
                )
            except KubeApiError as exc:
                if exc.status == 409:
                    continue  # changed between our read and our patch: read again
                raise
            log.info(
                "forced a resync of InfisicalSecret %s (%s %s -> %s)", name, field, before, after
            )
            return ResyncResult(
                name=name,
                field=field,
                before="unset" if before is None else str(before),
                after=str(after),
                generation_before=as_int(meta.get("generation")),
                generation_after=as_int(
                    as_dict(as_dict(updated).get("metadata")).get("generation")
                ),
            )
        raise ConflictError(
            f"InfisicalSecret {name} kept changing while the bot patched it: run repair again"
        )

    # -- rotation ---------------------------------------------------------------------------

    def read_secret(self, name: str) -> KubeSecret | None:
        """One GET; only the keys and the (wrapped) password and username are kept."""
        try:
            item = self._call(
                f"reading Secret {name}",
                "secrets",
                "get",
                lambda: self._get(*CORE, self.namespace, "secrets", name),
            )
        except BackendUnavailable as exc:
            if _object_missing(exc):
                return None
            raise
        return parse_secret(as_dict(item))

    def workloads(self, namespace: str) -> list[Workload]:
        found: list[Workload] = []
        for kind, plural in WORKLOAD_KINDS:
            failure: PgdbError | None = None
            try:
                listing = self._call(
                    f"listing {kind}s in namespace {namespace}",
                    f"{plural}.apps",
                    "list",
                    partial(self._list, *APPS, plural, namespace),
                )
            except KubeApiError as exc:
                if exc.status != 403:
                    raise
                failure = self._rollout_forbidden(f"list {plural}", namespace)
            if failure is not None:
                raise failure
            found.extend(
                parse_workload(o, kind=kind, namespace=namespace) for o in items_of(listing)
            )
        return found

    def restart_workload(self, workload: Workload, *, restarted_at: str) -> None:
        plural = dict(WORKLOAD_KINDS)[workload.kind]
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}}
        failure: PgdbError | None = None
        try:
            self._call(
                f"restarting {workload.kind} {workload.namespace}/{workload.name}",
                f"{plural}.apps",
                "patch",
                lambda: self._merge_patch(*APPS, workload.namespace, plural, workload.name, body),
            )
        except KubeApiError as exc:
            if exc.status != 403:
                raise
            failure = self._rollout_forbidden(f"patch {plural}", workload.namespace)
        if failure is not None:
            raise failure
        log.info("restarted %s %s/%s", workload.kind, workload.namespace, workload.name)

    def _rollout_forbidden(self, what: str, namespace: str) -> KubeApiError:
        return KubeApiError(
            f"the bot's account may not {what}.apps in namespace {namespace} — bind the "
            f"ClusterRole of {ROLLOUT_RBAC} there with a RoleBinding, or set PGDB_ROLLOUT=off",
            status=403,
            missing_object=False,
        )


def _is_soft(exc: BackendUnavailable) -> bool:
    """Forbidden or not served: that kind is unknown, the rest of the pass still counts."""
    return isinstance(exc, KubeApiError) and exc.status in (403, 404)


def _object_missing(exc: BackendUnavailable) -> bool:
    """A 404 for a named object that does not exist (not for a kind the server lacks)."""
    return isinstance(exc, KubeApiError) and exc.missing_object
