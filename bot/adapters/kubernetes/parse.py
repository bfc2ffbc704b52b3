"""The objects the bot reads, as the core's values: pure functions over the API server's JSON.

Every reader is lenient: a field of an unexpected type reads as absent (an empty string, 0,
None), because one odd object must not fail a whole pass. Secret data is decoded only for the
managed Secrets, and only the password and the username; the password stays wrapped in
``Secret``. No kubernetes client import: these run on plain dicts.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from bot.core.durations import parse_duration
from bot.core.model import (
    ArgoApplication,
    BackupRecord,
    DatabaseResource,
    InfisicalSecretResource,
    KubeCondition,
    KubeSecret,
    ObjectStatus,
    PgCluster,
    ScheduledBackupRecord,
    Workload,
)
from bot.core.secret import Secret
from bot.core.sizes import parse_size

MANAGED_SUFFIX: Final = "-postgresql-credentials"
RESTARTED_AT: Final = "kubectl.kubernetes.io/restartedAt"


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object, or {} for anything else."""
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    """A JSON string, or "" for anything else."""
    return value if isinstance(value, str) else ""


def as_int(value: Any, default: int = 0) -> int:
    """A JSON integer (not a boolean), or ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 as the API server writes it; anything else is no time at all."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _created(obj: Mapping[str, Any]) -> datetime | None:
    return parse_time(as_dict(obj.get("metadata")).get("creationTimestamp"))


def _name(obj: Mapping[str, Any]) -> str:
    return as_str(as_dict(obj.get("metadata")).get("name"))


def _conditions(status: Mapping[str, Any]) -> tuple[KubeCondition, ...]:
    out: list[KubeCondition] = []
    for raw in status.get("conditions") or ():
        item = as_dict(raw)
        if not item.get("type"):
            continue
        out.append(
            KubeCondition(
                type=as_str(item.get("type")),
                status=as_str(item.get("status")) or "Unknown",
                reason=as_str(item.get("reason")),
                message=as_str(item.get("message")),
                since=parse_time(item.get("lastTransitionTime")),
            )
        )
    return tuple(out)


def items_of(listing: Any) -> list[dict[str, Any]]:
    """The objects of a list answer (``items``); None (a kind not read) has none."""
    return [as_dict(i) for i in as_dict(listing).get("items") or () if isinstance(i, dict)]


def _role_lists(raw: Any) -> dict[str, tuple[str, ...]]:
    return {
        str(k): tuple(str(v) for v in values)
        for k, values in as_dict(raw).items()
        if isinstance(values, list)
    }


def parse_cluster(obj: Mapping[str, Any]) -> PgCluster:
    status = as_dict(obj.get("status"))
    roles = as_dict(status.get("managedRolesStatus"))
    size = as_str(as_dict(as_dict(obj.get("spec")).get("storage")).get("size"))
    return PgCluster(
        name=_name(obj),
        phase=as_str(status.get("phase")),
        phase_reason=as_str(status.get("phaseReason")),
        instances=as_int(
            status.get("instances"), as_int(as_dict(obj.get("spec")).get("instances"))
        ),
        ready_instances=as_int(status.get("readyInstances")),
        current_primary=as_str(status.get("currentPrimary")),
        target_primary=as_str(status.get("targetPrimary")),
        conditions=_conditions(status),
        roles_by_status=_role_lists(roles.get("byStatus")),
        cannot_reconcile=_role_lists(roles.get("cannotReconcile")),
        last_successful_backup=parse_time(status.get("lastSuccessfulBackup")),
        created_at=_created(obj),
        storage_size=size,
        storage_bytes=_quantity(size),
    )


def _quantity(text: str) -> int | None:
    """A Kubernetes storage quantity (``20Gi``, ``500M``) in bytes; None when absent or not one
    (the finding that needs it is then not drawn)."""
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError:
        return None


def _declared_extensions(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """``spec.extensions[].name`` that should be present (``ensure`` defaults to present)."""
    names: list[str] = []
    for raw in spec.get("extensions") or ():
        item = as_dict(raw)
        name = as_str(item.get("name"))
        if name and as_str(item.get("ensure")) in ("", "present") and name not in names:
            names.append(name)
    return tuple(names)


def _object_status(raw: Any) -> tuple[ObjectStatus, ...]:
    """``status.extensions[]``: {name, applied, message} as CloudNativePG reports each."""
    found: list[ObjectStatus] = []
    for entry in raw if isinstance(raw, list) else ():
        item = as_dict(entry)
        name = as_str(item.get("name"))
        if name:
            found.append(
                ObjectStatus(
                    name=name,
                    applied=item.get("applied") is True,
                    message=as_str(item.get("message")),
                )
            )
    return tuple(found)


def parse_database(obj: Mapping[str, Any]) -> DatabaseResource:
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    applied = status.get("applied")
    observed = status.get("observedGeneration")
    limit = spec.get("connectionLimit")
    return DatabaseResource(
        name=_name(obj),
        database=as_str(spec.get("name")),
        owner=as_str(spec.get("owner")),
        cluster=as_str(as_dict(spec.get("cluster")).get("name")),
        applied=applied if isinstance(applied, bool) else None,
        message=as_str(status.get("message")),
        generation=as_int(as_dict(obj.get("metadata")).get("generation")),
        observed_generation=as_int(observed) if isinstance(observed, int) else None,
        created_at=_created(obj),
        reclaim_policy=as_str(spec.get("databaseReclaimPolicy")) or None,
        connection_limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
        extensions=_declared_extensions(spec),
        extension_status=_object_status(status.get("extensions")),
    )


def _secrets_path(spec: Mapping[str, Any]) -> str | None:
    for method in as_dict(spec.get("authentication")).values():
        path = as_dict(as_dict(method).get("secretsScope")).get("secretsPath")
        if isinstance(path, str) and path:
            return path
    return None


def _managed_names(spec: Mapping[str, Any], namespace: str) -> tuple[str, ...]:
    refs: list[Any] = [spec.get("managedSecretReference")]
    refs.extend(spec.get("managedKubeSecretReferences") or ())
    names: list[str] = []
    for raw in refs:
        ref = as_dict(raw)
        name = as_str(ref.get("secretName"))
        if name and as_str(ref.get("secretNamespace")) in ("", namespace) and name not in names:
            names.append(name)
    return tuple(names)


def _delivered(spec: Mapping[str, Any], namespace: str) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of every Secret the operator writes (an unset namespace is ours)."""
    refs: list[Any] = [spec.get("managedSecretReference")]
    refs.extend(spec.get("managedKubeSecretReferences") or ())
    found: list[tuple[str, str]] = []
    for raw in refs:
        ref = as_dict(raw)
        name = as_str(ref.get("secretName"))
        where = (as_str(ref.get("secretNamespace")) or namespace, name)
        if name and where not in found:
            found.append(where)
    return tuple(found)


def parse_infisical_secret(obj: Mapping[str, Any], *, namespace: str) -> InfisicalSecretResource:
    spec = as_dict(obj.get("spec"))
    return InfisicalSecretResource(
        name=_name(obj),
        generation=as_int(as_dict(obj.get("metadata")).get("generation")),
        conditions=_conditions(as_dict(obj.get("status"))),
        secrets_path=_secrets_path(spec),
        managed_secrets=_managed_names(spec, namespace),
        delivered_to=_delivered(spec, namespace),
        created_at=_created(obj),
    )


def _template_secrets(template: Mapping[str, Any]) -> frozenset[str]:
    """The Secrets a pod template reads: env ``valueFrom.secretKeyRef``, ``envFrom.secretRef``,
    ``secret`` and projected volumes, in every container and init container."""
    pod = as_dict(template.get("spec"))
    names: set[str] = set()
    containers = [*(pod.get("containers") or ()), *(pod.get("initContainers") or ())]
    for raw in containers:
        container = as_dict(raw)
        for env in container.get("env") or ():
            ref = as_dict(as_dict(as_dict(env).get("valueFrom")).get("secretKeyRef"))
            names.add(as_str(ref.get("name")))
        for source in container.get("envFrom") or ():
            names.add(as_str(as_dict(as_dict(source).get("secretRef")).get("name")))
    for raw in pod.get("volumes") or ():
        volume = as_dict(raw)
        names.add(as_str(as_dict(volume.get("secret")).get("secretName")))
        for source in as_dict(volume.get("projected")).get("sources") or ():
            names.add(as_str(as_dict(as_dict(source).get("secret")).get("name")))
    names.discard("")
    return frozenset(names)


def parse_workload(obj: Mapping[str, Any], *, kind: str, namespace: str) -> Workload:
    template = as_dict(as_dict(obj.get("spec")).get("template"))
    annotations = as_dict(as_dict(template.get("metadata")).get("annotations"))
    restarted = annotations.get(RESTARTED_AT)
    return Workload(
        kind=kind,
        namespace=as_str(as_dict(obj.get("metadata")).get("namespace")) or namespace,
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
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    return BackupRecord(
        name=_name(obj),
        cluster=as_str(as_dict(spec.get("cluster")).get("name")),
        phase=as_str(status.get("phase")),
        error=as_str(status.get("error")),
        started_at=parse_time(status.get("startedAt")),
        stopped_at=parse_time(status.get("stoppedAt")),
        created_at=_created(obj),
    )


def parse_scheduled_backup(obj: Mapping[str, Any]) -> ScheduledBackupRecord:
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    return ScheduledBackupRecord(
        name=_name(obj),
        cluster=as_str(as_dict(spec.get("cluster")).get("name")),
        schedule=as_str(spec.get("schedule")),
        suspended=spec.get("suspend") is True,
        last_schedule_time=parse_time(status.get("lastScheduleTime")),
        created_at=_created(obj),
    )


def parse_application(obj: Mapping[str, Any]) -> ArgoApplication:
    status = as_dict(obj.get("status"))
    health = as_dict(status.get("health"))
    message = as_str(health.get("message"))
    if not message:
        conditions = [as_dict(c) for c in status.get("conditions") or ()]
        message = next((as_str(c.get("message")) for c in conditions if c.get("message")), "")
    if not message:
        message = as_str(as_dict(status.get("operationState")).get("message"))
    return ArgoApplication(
        name=_name(obj),
        sync=as_str(as_dict(status.get("sync")).get("status")) or "Unknown",
        health=as_str(health.get("status")) or "Unknown",
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


def parse_secret(obj: Mapping[str, Any]) -> KubeSecret:
    """A Secret as the core sees it: keys, and the password wrapped at once."""
    data = as_dict(obj.get("data"))
    password = _decoded(data, "password")
    return KubeSecret(
        name=_name(obj),
        keys=frozenset(data),
        password=Secret(password) if password is not None else None,
        username=_decoded(data, "username"),
        created_at=_created(obj),
    )


def managed_secrets(listing: Any, *, wanted: Iterable[str]) -> dict[str, KubeSecret]:
    """The managed Secrets only; every other Secret of the namespace is dropped unread."""
    names = set(wanted)
    out: dict[str, KubeSecret] = {}
    for item in items_of(listing):
        name = _name(item)
        if not name or not (name in names or name.endswith(MANAGED_SUFFIX)):
            continue
        out[name] = parse_secret(item)
    return out


def status_body(body: Any) -> dict[str, Any]:
    """The API server's Status JSON (``message``, ``details``…), or {} when it is not one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        return as_dict(json.loads(body))
    except ValueError:
        return {"message": body[:200]}
