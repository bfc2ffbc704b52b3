"""A shared cluster's guardrails, judged: each app's connections against its limit,
its database's size, its role's limits against what the bot declared, the extensions CNPG
could not apply; and the cluster's storage. Part of the one assessment: every figure comes
from the pass's one catalog read and its one Kubernetes read, never from a call per app.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.limits import NO_LIMIT, RoleLimits, limits_command
from bot.core.model import ClusterSnapshot, DatabaseInfo, DatabaseResource, DatabaseState, RoleInfo
from bot.core.names import AppName
from bot.core.sizes import format_size
from handlers.checks import Check, CheckOutcome, Finding, Severity, ok, pending, problem
from handlers.settings import CoreSettings

CHECK_CONNECTIONS = "connections"
CHECK_SIZE = "database size"
CHECK_LIMITS = "limits"
CHECK_EXTENSIONS = "extensions"
PG = "PostgreSQL"
KUBE = "Kubernetes"
NEAR_LIMIT_PERCENT = 80


@dataclass(frozen=True, kw_only=True)
class AppUsage:
    """What one app's guardrail checks read, from the pass's observation."""

    app: AppName
    role: RoleInfo | None
    database: DatabaseInfo | None
    resource: DatabaseResource | None  # its Database CR; None: none, or no Kubernetes
    declared: RoleLimits | None  # what the bot last declared for it (create or limits)
    settings: CoreSettings


def near_limit(connections: int, limit: int) -> bool:
    """At or above 80 % of a real limit (none, or 0 which refuses every login, is not)."""
    return limit > 0 and connections * 100 >= NEAR_LIMIT_PERCENT * limit


def usage_checks(u: AppUsage) -> list[Check]:
    """The app's guardrail checks; those with nothing to read are left out."""
    checks: list[Check] = []
    if u.role is not None:
        connections = _connections(u, u.role)
        if connections is not None:
            checks.append(connections)
        checks.append(_limits(u, u.role))
    if u.database is not None and u.database.size_bytes is not None:
        checks.append(_size(u, u.database.size_bytes))
    if u.resource is not None and u.resource.extensions:
        checks.append(_extensions(u, u.resource))
    return checks


def _connections(u: AppUsage, role: RoleInfo) -> Check | None:
    limit, open_now = role.connection_limit, role.connections
    if limit == 0:
        return None  # CONNECTION LIMIT 0 refuses every login: the login check's finding
    if limit == NO_LIMIT:
        return ok(CHECK_CONNECTIONS, f"{open_now} open, no limit", PG)
    detail = f"{open_now} of {limit} open"
    if not near_limit(open_now, limit):
        return ok(CHECK_CONNECTIONS, detail, PG)
    raised = limit + max(5, limit // 2)
    return problem(
        CHECK_CONNECTIONS,
        f"{detail} ({open_now * 100 // limit} %)",
        PG,
        Finding(
            kind="connections_near_limit",
            app=u.app,
            severity=Severity.WARNING,
            message=f"`{u.app}` has {open_now} of its {limit} connections open "
            f"({open_now * 100 // limit} %): at {limit}, PostgreSQL refuses its next "
            'connection ("too many connections for role")',
            remedy=f"check the app's connection pool (idle connections), or raise its limit: "
            f"/pgdb limits {u.app} --connections {raised}",
        ),
    )


def _size(u: AppUsage, size: int) -> Check:
    warn = u.settings.guardrails.database_size_warn
    detail = f"{format_size(size)} (warning above {warn})"
    if size <= warn.bytes:
        return ok(CHECK_SIZE, detail, PG)
    layout = u.settings.layout
    biggest = (
        "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class "
        "WHERE relkind IN ('r', 'm') ORDER BY bytes DESC LIMIT 10"
    ).replace("'", "''")
    return problem(
        CHECK_SIZE,
        detail,
        PG,
        Finding(
            kind="database_large",
            app=u.app,
            severity=Severity.WARNING,
            message=f"database `{u.app}` is {format_size(size)}, above PGDB_DATABASE_SIZE_WARN "
            f"({warn}): on a shared cluster one database that keeps growing fills the disk "
            "of every app",
            remedy=f"find its biggest tables: kubectl exec -n {layout.namespace} "
            f'{layout.cluster}-1 -- psql -U postgres -d {u.app} -c "{biggest}" — then '
            "clean up with the app's team, or raise PGDB_DATABASE_SIZE_WARN for it",
        ),
    )


def _limits(u: AppUsage, role: RoleInfo) -> Check:
    actual = RoleLimits(
        connection_limit=role.connection_limit, statement_timeout_ms=role.statement_timeout_ms
    )
    detail = actual.describe()
    if u.declared is not None:
        drift = u.declared.differences(actual)
        if not drift:
            return ok(CHECK_LIMITS, f"{detail}, as declared", PG)
        return problem(
            CHECK_LIMITS,
            f"{'; '.join(drift)}",
            PG,
            Finding(
                kind="limits_drift",
                app=u.app,
                severity=Severity.WARNING,
                message=f"role `{u.app}` has {'; '.join(drift)}: changed outside the bot, "
                "without an operator's `/pgdb limits`",
                remedy=f"{limits_command(u.app, u.declared)} (declares the limits again), or "
                "the same command with the values it should keep",
            ),
        )
    guardrails = u.settings.guardrails
    manifest = u.resource.connection_limit if u.resource is not None else None
    expected = RoleLimits(
        connection_limit=manifest if manifest is not None else guardrails.connection_limit,
        statement_timeout_ms=guardrails.statement_timeout_ms,
    )
    drift = expected.differences(actual)
    if not drift:
        return ok(CHECK_LIMITS, f"{detail} (the defaults; none declared by the bot)", PG)
    source = "its manifest" if manifest is not None else "the configured default"
    # An app the bot never gave limits (onboarded before, or adopted) is a note, not an alert.
    return Check(
        name=CHECK_LIMITS,
        outcome=CheckOutcome.OK,
        detail=f"{detail}; none declared by the bot",
        source=PG,
        finding=Finding(
            kind="limits_drift",
            app=u.app,
            severity=Severity.INFO,
            message=f"role `{u.app}` has no limits declared by the bot (onboarded before "
            f"limits, or adopted): {'; '.join(drift).replace('declared', source)}",
            remedy=limits_command(u.app, expected),
        ),
    )


def _extensions(u: AppUsage, resource: DatabaseResource) -> Check:
    reported = {s.name: s for s in resource.extension_status}
    failed = [reported[e] for e in resource.extensions if e in reported and not reported[e].applied]
    waiting = [e for e in resource.extensions if e not in reported]
    names = ", ".join(resource.extensions)
    if failed:
        why = "; ".join(f"`{s.name}`: {s.message or 'not applied'}" for s in failed)
        layout = u.settings.layout
        return problem(
            CHECK_EXTENSIONS,
            f"not applied: {why}",
            KUBE,
            Finding(
                kind="extension_not_applied",
                app=u.app,
                severity=Severity.WARNING,
                message=f"CloudNativePG did not apply extension(s) "
                f"{', '.join(f'`{s.name}`' for s in failed)} of database `{u.app}`: {why}",
                remedy="the cluster's image must ship the extension (ask the platform team), "
                f"or remove it from databases/{u.app}.yaml; CloudNativePG's own report: "
                f"kubectl get database -n {layout.namespace} {resource.name} "
                "-o jsonpath='{.status.extensions}'",
            ),
        )
    if waiting:
        return pending(
            CHECK_EXTENSIONS,
            f"{names} declared; CloudNativePG has not reported {', '.join(waiting)} yet",
            KUBE,
        )
    return ok(CHECK_EXTENSIONS, f"{names} applied", KUBE)


def storage_finding(
    snap: ClusterSnapshot | None, database: DatabaseState | None, settings: CoreSettings
) -> Finding | None:
    """The databases together above ``PGDB_STORAGE_WARN_RATIO`` of the Cluster CR's storage."""
    if snap is None or snap.cluster is None or database is None:
        return None
    storage = snap.cluster.storage_bytes
    sizes = [d.size_bytes for d in database.databases.values() if d.size_bytes is not None]
    if not storage or not sizes:
        return None
    total, ratio = sum(sizes), settings.guardrails.storage_warn_ratio
    if total <= ratio * storage:
        return None
    layout = settings.layout
    return Finding(
        kind="cluster_storage_low",
        app=None,
        severity=Severity.CRITICAL,
        message=f"the databases of cluster `{layout.cluster}` use {format_size(total)} of its "
        f"{snap.cluster.storage_size} storage ({total * 100 // storage} %, warning above "
        f"{round(ratio * 100)} %): a full disk stops every app",
        remedy=f"raise spec.storage.size: kubectl edit cluster -n {layout.namespace} "
        f"{layout.cluster} (the storage class must allow expansion); `/pgdb usage` shows the "
        "biggest databases",
    )
