"""Kubernetes: what the cluster really runs, through the official client (the ``Cluster`` port).

One pass reads each kind once, whatever the number of apps: the CNPG ``Cluster`` (one get),
``Database``, ``InfisicalSecret``, ``Secret``, ``Backup`` and ``ScheduledBackup`` (one list each,
in ``PGDB_NAMESPACE``) and, when configured, the Argo CD ``Application`` (one get). The only
write is the forced Infisical resync, a merge patch guarded by ``resourceVersion``.

Every call has a timeout; GETs are retried at most twice on connection errors, 429 and 5xx,
honouring ``Retry-After`` up to a few seconds. Errors leave as ``BackendUnavailable("Kubernetes",
"… — <what to fix>")``, without the original exception chained (a response body could quote
an object). Secret data is decoded only for the managed Secrets, and only the password, which
stays wrapped in ``Secret``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

import urllib3
from kubernetes.client import (
    ApiClient,
    Configuration,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import load_incluster_config
from kubernetes.config.kube_config import load_kube_config
from urllib3.util.retry import Retry

from bot.adapters.kube_source import KubeSource
from bot.config import ConfigError, Settings
from bot.core.durations import parse_duration
from bot.core.errors import BackendUnavailable, ConflictError, PgdbError
from bot.core.model import (
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
from bot.core.secret import Secret

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM: Final = "Kubernetes"
CNPG: Final = ("postgresql.cnpg.io", "v1")
INFISICAL: Final = ("secrets.infisical.com", "v1alpha1")
ARGOCD: Final = ("argoproj.io", "v1alpha1")
MANAGED_SUFFIX: Final = "-postgresql-credentials"
MERGE_PATCH: Final = "application/merge-patch+json"
MAX_RETRY_AFTER: Final = 5.0
RBAC_HINT: Final = "grant it as in the README section `### Kubernetes`"
APPS: Final = ("apps", "v1")
WORKLOAD_KINDS: Final = (("Deployment", "deployments"), ("StatefulSet", "statefulsets"))
RESTARTED_AT: Final = "kubectl.kubernetes.io/restartedAt"
ROLLOUT_RBAC: Final = "deploy/optional/rollout-rbac.yaml"


class KubeApiError(BackendUnavailable):
    """The API server answered with an error status; ``missing_object`` when the status names
    the object it did not find (as opposed to a kind it does not serve)."""

    def __init__(self, message: str, *, status: int, missing_object: bool) -> None:
        super().__init__(SYSTEM, message)
        self.status = status
        self.missing_object = missing_object


class _BoundedRetry(Retry):
    """urllib3's retry, with ``Retry-After`` honoured but capped: a pass must stay short."""

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER)


def _retries() -> Retry:
    return _BoundedRetry(
        total=3,
        connect=2,
        read=0,  # a read that timed out is not retried: the timeout bounds the pass
        status=2,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=0.2,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


# --- parsing ---------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _time(value: Any) -> datetime | None:
    """RFC 3339 as the API server writes it; anything else is no time at all."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _created(obj: Mapping[str, Any]) -> datetime | None:
    return _time(_dict(obj.get("metadata")).get("creationTimestamp"))


def _name(obj: Mapping[str, Any]) -> str:
    return _str(_dict(obj.get("metadata")).get("name"))


def _conditions(status: Mapping[str, Any]) -> tuple[KubeCondition, ...]:
    out: list[KubeCondition] = []
    for raw in status.get("conditions") or ():
        item = _dict(raw)
        if not item.get("type"):
            continue
        out.append(
            KubeCondition(
                type=_str(item.get("type")),
                status=_str(item.get("status")) or "Unknown",
                reason=_str(item.get("reason")),
                message=_str(item.get("message")),
                since=_time(item.get("lastTransitionTime")),
            )
        )
    return tuple(out)


def _items(listing: Any) -> list[dict[str, Any]]:
    return [_dict(i) for i in _dict(listing).get("items") or () if isinstance(i, dict)]


def _role_lists(raw: Any) -> dict[str, tuple[str, ...]]:
    return {
        str(k): tuple(str(v) for v in values)
        for k, values in _dict(raw).items()
        if isinstance(values, list)
    }


def parse_cluster(obj: Mapping[str, Any]) -> PgCluster:
    status = _dict(obj.get("status"))
    roles = _dict(status.get("managedRolesStatus"))
    return PgCluster(
        name=_name(obj),
        phase=_str(status.get("phase")),
        phase_reason=_str(status.get("phaseReason")),
        instances=_int(status.get("instances"), _int(_dict(obj.get("spec")).get("instances"))),
        ready_instances=_int(status.get("readyInstances")),
        current_primary=_str(status.get("currentPrimary")),
        target_primary=_str(status.get("targetPrimary")),
        conditions=_conditions(status),
        roles_by_status=_role_lists(roles.get("byStatus")),
        cannot_reconcile=_role_lists(roles.get("cannotReconcile")),
        last_successful_backup=_time(status.get("lastSuccessfulBackup")),
        created_at=_created(obj),
    )


def parse_database(obj: Mapping[str, Any]) -> DatabaseResource:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    applied = status.get("applied")
    observed = status.get("observedGeneration")
    return DatabaseResource(
        name=_name(obj),
        database=_str(spec.get("name")),
        owner=_str(spec.get("owner")),
        cluster=_str(_dict(spec.get("cluster")).get("name")),
        applied=applied if isinstance(applied, bool) else None,
        message=_str(status.get("message")),
        generation=_int(_dict(obj.get("metadata")).get("generation")),
        observed_generation=_int(observed) if isinstance(observed, int) else None,
        created_at=_created(obj),
        reclaim_policy=_str(spec.get("databaseReclaimPolicy")) or None,
    )


def _secrets_path(spec: Mapping[str, Any]) -> str | None:
    for method in _dict(spec.get("authentication")).values():
        path = _dict(_dict(method).get("secretsScope")).get("secretsPath")
        if isinstance(path, str) and path:
            return path
    return None


def _managed_names(spec: Mapping[str, Any], namespace: str) -> tuple[str, ...]:
    refs: list[Any] = [spec.get("managedSecretReference")]
    refs.extend(spec.get("managedKubeSecretReferences") or ())
    names: list[str] = []
    for raw in refs:
        ref = _dict(raw)
        name = _str(ref.get("secretName"))
        if name and _str(ref.get("secretNamespace")) in ("", namespace) and name not in names:
            names.append(name)
    return tuple(names)


def _delivered(spec: Mapping[str, Any], namespace: str) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of every Secret the operator writes (an unset namespace is ours)."""
    refs: list[Any] = [spec.get("managedSecretReference")]
    refs.extend(spec.get("managedKubeSecretReferences") or ())
    found: list[tuple[str, str]] = []
    for raw in refs:
        ref = _dict(raw)
        name = _str(ref.get("secretName"))
        where = (_str(ref.get("secretNamespace")) or namespace, name)
        if name and where not in found:
            found.append(where)
    return tuple(found)


def parse_infisical_secret(obj: Mapping[str, Any], *, namespace: str) -> InfisicalSecretResource:
    spec = _dict(obj.get("spec"))
    return InfisicalSecretResource(
        name=_name(obj),
        generation=_int(_dict(obj.get("metadata")).get("generation")),
        conditions=_conditions(_dict(obj.get("status"))),
        secrets_path=_secrets_path(spec),
        managed_secrets=_managed_names(spec, namespace),
        delivered_to=_delivered(spec, namespace),
        created_at=_created(obj),
    )


def _template_secrets(template: Mapping[str, Any]) -> frozenset[str]:
    """The Secrets a pod template reads: env ``valueFrom.secretKeyRef``, ``envFrom.secretRef``,
    ``secret`` and projected volumes, in every container and init container."""
    pod = _dict(template.get("spec"))
    names: set[str] = set()
    containers = [*(pod.get("containers") or ()), *(pod.get("initContainers") or ())]
    for raw in containers:
        container = _dict(raw)
        for env in container.get("env") or ():
            ref = _dict(_dict(_dict(env).get("valueFrom")).get("secretKeyRef"))
            names.add(_str(ref.get("name")))
        for source in container.get("envFrom") or ():
            names.add(_str(_dict(_dict(source).get("secretRef")).get("name")))
    for raw in pod.get("volumes") or ():
        volume = _dict(raw)
        names.add(_str(_dict(volume.get("secret")).get("secretName")))
        for source in _dict(volume.get("projected")).get("sources") or ():
            names.add(_str(_dict(_dict(source).get("secret")).get("name")))
    names.discard("")
    return frozenset(names)


def parse_workload(obj: Mapping[str, Any], *, kind: str, namespace: str) -> Workload:
    template = _dict(_dict(obj.get("spec")).get("template"))
    annotations = _dict(_dict(template.get("metadata")).get("annotations"))
    restarted = annotations.get(RESTARTED_AT)
    return Workload(
        kind=kind,
        namespace=_str(_dict(obj.get("metadata")).get("namespace")) or namespace,
        name=_name(obj),
        secrets=_template_secrets(template),
        restarted_at=restarted if isinstance(restarted, str) else None,
    )


def _decoded(data: Mapping[str, Any], key: str) -> str | None:
    raw = data.get(key)
    if raw is None:
        return None
    try:
        value = raw if isinstance(raw, bytes) else base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        return None
    return value.decode("utf-8", "replace")


def parse_backup(obj: Mapping[str, Any]) -> BackupRecord:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    return BackupRecord(
        name=_name(obj),
        cluster=_str(_dict(spec.get("cluster")).get("name")),
        phase=_str(status.get("phase")),
        error=_str(status.get("error")),
        started_at=_time(status.get("startedAt")),
        stopped_at=_time(status.get("stoppedAt")),
        created_at=_created(obj),
    )


def parse_scheduled_backup(obj: Mapping[str, Any]) -> ScheduledBackupRecord:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    return ScheduledBackupRecord(
        name=_name(obj),
        cluster=_str(_dict(spec.get("cluster")).get("name")),
        schedule=_str(spec.get("schedule")),
        suspended=spec.get("suspend") is True,
        last_schedule_time=_time(status.get("lastScheduleTime")),
        created_at=_created(obj),
    )


def parse_application(obj: Mapping[str, Any]) -> ArgoApplication:
    status = _dict(obj.get("status"))
    health = _dict(status.get("health"))
    message = _str(health.get("message"))
    if not message:
        conditions = [_dict(c) for c in status.get("conditions") or ()]
        message = next((_str(c.get("message")) for c in conditions if c.get("message")), "")
    if not message:
        message = _str(_dict(status.get("operationState")).get("message"))
    return ArgoApplication(
        name=_name(obj),
        sync=_str(_dict(status.get("sync")).get("status")) or "Unknown",
        health=_str(health.get("status")) or "Unknown",
        message=message,
    )


def toggled_resync(spec: Mapping[str, Any], *, base: int) -> tuple[str, Any, Any, dict[str, Any]]:
    """The harmless spec change that makes the v0.11 operator resync now.

    ``(field, before, after, merge patch of spec)``: the resync interval moves between the
    configured value and one second more, so every call really changes the spec (and bumps
    ``metadata.generation``) even after Argo CD reverted the previous change.
    """
    sync = spec.get("syncConfig")
    if isinstance(sync, dict) and sync.get("resyncInterval"):
        before = str(sync["resyncInterval"])
        try:
            current = parse_duration(before)
        except ValueError:
            current = -1
        after = f"{base + 1}s" if current == base else f"{base}s"
        return (
            "spec.syncConfig.resyncInterval",
            before,
            after,
            {"syncConfig": {"resyncInterval": after}},
        )
    before_legacy = spec.get("resyncInterval")
    after_legacy = base + 1 if before_legacy == base else base
    return (
        "spec.resyncInterval",
        before_legacy,
        after_legacy,
        {"resyncInterval": after_legacy},
    )


# --- the adapter ---------------------------------------------------------------------------


class KubernetesCluster:
    """The ``Cluster`` port on the official kubernetes client."""

    configured = True

    def __init__(
        self,
        api: ApiClient,
        *,
        namespace: str,
        cluster: str,
        where: str,
        argocd_app: str | None = None,
        argocd_namespace: str = "argocd",
        timeout: float = 10.0,
        resync_interval: int = 60,
    ) -> None:
        self._api = api
        self._custom = CustomObjectsApi(api)
        self._core = CoreV1Api(api)
        self.namespace = namespace
        self.cluster = cluster
        self.argocd_app = argocd_app
        self.argocd_namespace = argocd_namespace
        self._where = where
        self._timeout = (min(5.0, timeout), timeout)
        self._resync_interval = resync_interval
        self._lock = threading.Lock()
        self.calls = 0  # every API call this adapter made (tests and the bench read it)

    @classmethod
    def connect(cls, source: KubeSource, *, settings: Settings) -> KubernetesCluster:
        """Load the credentials now, so a bad kubeconfig stops the bot at start with its name."""
        config = Configuration()
        problem: str | None = None
        try:
            if source.in_cluster:
                load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            else:
                load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(source.kubeconfig),
                    context=source.context,
                    client_configuration=config,
                    persist_config=False,
                )
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
            problem = " ".join(str(exc).split()) or type(exc).__name__
        if problem is not None:
            variable = (
                "PGDB_KUBE_CONTEXT / PGDB_KUBECONFIG" if source.context else "PGDB_KUBECONFIG"
            )
            raise ConfigError(
                f"{variable}: cannot load the Kubernetes configuration from {source.describe()}: "
                f"{problem} (PGDB_KUBERNETES=off runs without Kubernetes)"
            )
        config.retries = _retries()
        return cls(
            ApiClient(config),
            namespace=settings.namespace,
            cluster=settings.cluster,
            where=f"{config.host} via {source.describe()}",
            argocd_app=settings.argocd_app,
            argocd_namespace=settings.argocd_namespace,
            timeout=parse_duration(settings.kube_timeout),
            resync_interval=settings.infisical_resync_interval,
        )

    def __repr__(self) -> str:
        return f"KubernetesCluster({self._where}, namespace={self.namespace})"

    def describe(self) -> str:
        return f"{self._where}, namespace {self.namespace}"

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

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
        parsed = _status(exc.body)
        message = (
            " ".join(_str(parsed.get("message")).split())[:300]
            or _str(exc.reason)
            or f"HTTP {status}"
        )
        missing_object = status == 404 and bool(_dict(parsed.get("details")).get("name"))
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
        return self._custom.get_namespaced_custom_object(
            group, version, namespace, plural, name, _request_timeout=self._timeout
        )

    def _list(self, group: str, version: str, plural: str) -> Any:
        return self._custom.list_namespaced_custom_object(
            group, version, self.namespace, plural, _request_timeout=self._timeout
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
                lambda: self._core.list_namespaced_secret(
                    self.namespace, _request_timeout=self._timeout
                ),
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
                parse_infisical_secret(o, namespace=self.namespace) for o in _items(infisical)
            )
            if r.name
        }
        wanted = {n for r in infisical_secrets.values() for n in r.managed_secrets}
        return ClusterSnapshot(
            namespace=self.namespace,
            cluster_name=self.cluster,
            cluster=cluster,
            databases={d.name: d for d in map(parse_database, _items(databases)) if d.name},
            infisical_secrets=infisical_secrets,
            secrets=_managed_secrets(secrets_listing, wanted=wanted),
            backups=tuple(map(parse_backup, _items(backups))),
            scheduled_backups=tuple(map(parse_scheduled_backup, _items(scheduled))),
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
        return parse_cluster(_dict(obj))

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
        return parse_application(_dict(obj))

    # -- write ------------------------------------------------------------------------------

    def resync_infisical_secret(self, name: str) -> ResyncResult:
        """Toggle the resync interval (a spec change: the generation moves, the operator
        reconciles and, since the update clears its cache, rewrites the managed Secret)."""
        resource = "infisicalsecrets.secrets.infisical.com"
        for _ in range(3):
            obj = _dict(
                self._call(
                    f"reading InfisicalSecret {name}",
                    resource,
                    "get",
                    lambda: self._get(*INFISICAL, self.namespace, "infisicalsecrets", name),
                )
            )
            meta = _dict(obj.get("metadata"))
            field, before, after, spec_patch = toggled_resync(
                _dict(obj.get("spec")), base=self._resync_interval
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
                    lambda body=body: self._custom.patch_namespaced_custom_object(  # type: ignore[misc]
                        *INFISICAL,
                        self.namespace,
                        "infisicalsecrets",
                        name,
                        body,
                        _content_type=MERGE_PATCH,
                        _request_timeout=self._timeout,
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
                generation_before=_int(meta.get("generation")),
                generation_after=_int(_dict(_dict(updated).get("metadata")).get("generation")),
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
                lambda: self._core.read_namespaced_secret(
                    name, self.namespace, _request_timeout=self._timeout
                ),
            )
        except BackendUnavailable as exc:
            if _object_missing(exc):
                return None
            raise
        return _kube_secret(item)

    def workloads(self, namespace: str) -> list[Workload]:
        found: list[Workload] = []
        for kind, plural in WORKLOAD_KINDS:
            failure: PgdbError | None = None
            try:
                listing = self._call(
                    f"listing {kind}s in namespace {namespace}",
                    f"{plural}.apps",
                    "list",
                    lambda plural=plural: self._custom.list_namespaced_custom_object(  # type: ignore[misc]
                        *APPS, namespace, plural, _request_timeout=self._timeout
                    ),
                )
            except KubeApiError as exc:
                if exc.status != 403:
                    raise
                failure = self._rollout_forbidden(f"list {plural}", namespace)
            if failure is not None:
                raise failure
            found.extend(parse_workload(o, kind=kind, namespace=namespace) for o in _items(listing))
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
                lambda: self._custom.patch_namespaced_custom_object(
                    *APPS,
                    workload.namespace,
                    plural,
                    workload.name,
                    body,
                    _content_type=MERGE_PATCH,
                    _request_timeout=self._timeout,
                ),
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


def _managed_secrets(listing: Any, *, wanted: Iterable[str]) -> dict[str, KubeSecret]:
    """The managed Secrets only; every other Secret of the namespace is dropped unread."""
    names = set(wanted)
    out: dict[str, KubeSecret] = {}
    for item in getattr(listing, "items", None) or ():
        meta = item.metadata
        name = meta.name if meta is not None else None
        if not name or not (name in names or name.endswith(MANAGED_SUFFIX)):
            continue
        out[name] = _kube_secret(item)
    return out


def _kube_secret(item: Any) -> KubeSecret:
    """A V1Secret as the core sees it: keys, and the password wrapped at once."""
    meta = item.metadata
    data = cast(Mapping[str, Any], item.data or {})
    password = _decoded(data, "password")
    return KubeSecret(
        name=(meta.name if meta is not None else None) or "",
        keys=frozenset(data),
        password=Secret(password) if password is not None else None,
        username=_decoded(data, "username"),
        created_at=meta.creation_timestamp if meta is not None else None,
    )


def _status(body: Any) -> dict[str, Any]:
    """The API server's Status JSON (``message``, ``details``…), or {} when it is not one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        return _dict(json.loads(body))
    except ValueError:
        return {"message": body[:200]}


def _is_soft(exc: BackendUnavailable) -> bool:
    """Forbidden or not served: that kind is unknown, the rest of the pass still counts."""
    return isinstance(exc, KubeApiError) and exc.status in (403, 404)


def _object_missing(exc: BackendUnavailable) -> bool:
    """A 404 for a named object that does not exist (not for a kind the server lacks)."""
    return isinstance(exc, KubeApiError) and exc.missing_object


# --- leader election ---------------------------------------------------------------------------


class KubernetesLease:
    """Leadership of the diagnostics schedule through a ``coordination.k8s.io/v1`` Lease.

    The holder renews ``spec.renewTime``; another replica takes the Lease over once
    ``renewTime + leaseDurationSeconds`` has passed. Every write is an update guarded by
    ``resourceVersion`` (or a create): of two candidates racing, one gets a 409 and stays a
    follower. A holder that cannot renew stops leading when its own lease would expire.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: int = 30,
        timeout: float = 5.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._api = CoordinationV1Api(api)
        self.namespace = namespace
        self.lease_name = name
        self.identity = identity
        self.duration = duration_seconds
        self._timeout = (min(5.0, timeout), timeout)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._leading_until: datetime | None = None
        self.name = f"Kubernetes Lease {namespace}/{name}"
        self._problem: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the last attempt could not ask the API server (None: it asked)."""
        return self._problem

    @classmethod
    def connect(
        cls, source: KubeSource, *, settings: Settings, identity: str, duration_seconds: int = 30
    ) -> KubernetesLease:
        cluster = KubernetesCluster.connect(source, settings=settings)
        return cls(
            cluster._api,
            namespace=settings.namespace,
            name=f"pgdb-bot-{settings.env}",
            identity=identity,
            duration_seconds=duration_seconds,
            timeout=parse_duration(settings.kube_timeout),
        )

    @property
    def leading(self) -> bool:
        return self._leading_until is not None and self._clock() < self._leading_until

    def try_lead(self) -> bool:
        """Acquire or renew; False when another replica holds a live Lease (or on errors)."""
        now = self._clock()
        self._problem = None
        try:
            won = self._acquire_or_renew(now)
        except ApiException as exc:
            if exc.status == 409:
                won = False  # another candidate wrote first
            else:
                message = _status(exc.body).get("message")
                self._problem = f"HTTP {exc.status} {message}"
                log.warning("leader election: %s", self._problem)
                return self.leading  # unknown: lead on until our own Lease would expire
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._problem = f"the API server is unreachable: {type(exc).__name__}"
            log.warning("leader election: %s", self._problem)
            return self.leading
        if won:
            self._leading_until = now + timedelta(seconds=self.duration)
            return True
        self._leading_until = None
        return False

    def _acquire_or_renew(self, now: datetime) -> bool:
        try:
            lease = self._api.read_namespaced_lease(
                self.lease_name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = V1Lease(
                metadata=V1ObjectMeta(name=self.lease_name, namespace=self.namespace),
                spec=V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.duration,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            self._api.create_namespaced_lease(self.namespace, body, _request_timeout=self._timeout)
            log.info("leader election: %s created %s", self.identity, self.name)
            return True
        spec = lease.spec or V1LeaseSpec()
        holder = spec.holder_identity or ""
        duration = spec.lease_duration_seconds or self.duration
        renewed = spec.renew_time
        expired = renewed is None or renewed + timedelta(seconds=duration) <= now
        if holder not in ("", self.identity) and not expired:
            return False
        taking_over = holder != self.identity
        new_spec = V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.duration,
            acquire_time=now if taking_over else (spec.acquire_time or now),
            renew_time=now,
            lease_transitions=(spec.lease_transitions or 0) + (1 if taking_over and holder else 0),
        )
        meta = lease.metadata or V1ObjectMeta()
        body = V1Lease(
            metadata=V1ObjectMeta(
                name=self.lease_name,
                namespace=self.namespace,
                resource_version=meta.resource_version,
            ),
            spec=new_spec,
        )
        self._api.replace_namespaced_lease(
            self.lease_name, self.namespace, body, _request_timeout=self._timeout
        )
        if taking_over:
            log.info("leader election: %s leads now (was %r)", self.identity, holder or None)
        return True

    def release(self) -> None:
        """Give the Lease up at shutdown, so the next leader need not wait for it to expire."""
        if self._leading_until is None:
            return
        self._leading_until = None
        try:
            lease = self._api.read_namespaced_lease(
                self.lease_name, self.namespace, _request_timeout=self._timeout
            )
            spec = lease.spec or V1LeaseSpec()
            if spec.holder_identity != self.identity:
                return
            meta = lease.metadata or V1ObjectMeta()
            body = V1Lease(
                metadata=V1ObjectMeta(
                    name=self.lease_name,
                    namespace=self.namespace,
                    resource_version=meta.resource_version,
                ),
                spec=V1LeaseSpec(
                    holder_identity=None,
                    lease_duration_seconds=1,
                    acquire_time=spec.acquire_time,
                    renew_time=self._clock(),
                    lease_transitions=spec.lease_transitions,
                ),
            )
            self._api.replace_namespaced_lease(
                self.lease_name, self.namespace, body, _request_timeout=self._timeout
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("leader election: could not release the Lease: %s", type(exc).__name__)
