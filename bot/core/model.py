"""Typed values that cross the boundary between the core and the adapters.

Every observation is a snapshot of *all* apps at once: the status command, the diagnostics and
each workflow step start from the same observation (observe, then act).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from bot.core.limits import RoleLimits
from bot.core.secret import Secret

T = TypeVar("T")

SECRET_KEYS = ("username", "password", "database")
DANGEROUS_ATTRIBUTES = ("superuser", "createdb", "createrole", "replication", "bypassrls")
PRIVILEGED_ROLES = frozenset(
    {
        "pg_read_all_data",
        "pg_write_all_data",
        "pg_read_server_files",
        "pg_write_server_files",
        "pg_execute_server_program",
        "pg_signal_backend",
        "pg_read_all_settings",
        "pg_read_all_stats",
        "pg_monitor",
        "pg_checkpoint",
        "pg_create_subscription",
        "pg_use_reserved_connections",
        "pg_maintain",
        "postgres",
        "streaming_replica",
    }
)


# --- secret store -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StoredCredentials:
    """What the secret store holds for one app; a missing key is None."""

    username: str | None = None
    password: Secret | None = None
    database: str | None = None

    @property
    def missing_keys(self) -> tuple[str, ...]:
        return tuple(k for k in SECRET_KEYS if not getattr(self, k))

    @property
    def complete(self) -> bool:
        return not self.missing_keys


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RoleInfo:
    """One role as the catalogs describe it."""

    name: str
    can_login: bool
    superuser: bool = False
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    member_of: tuple[str, ...] = ()
    # rolpassword when pg_authid is readable (superuser), else None
    verifier: str | None = None
    # whether the bot may ALTER this role (superuser, or ADMIN OPTION on PostgreSQL 16+)
    bot_can_alter: bool = True
    valid_until: datetime | None = None  # rolvaliduntil; None: no expiry
    connection_limit: int = -1  # rolconnlimit; -1: no limit
    # Guardrails, read in the same catalog query: the role's own statement_timeout setting in
    # ms (0: none set), and its sessions open now (pg_stat_activity)
    statement_timeout_ms: int = 0
    connections: int = 0

    def login_refusal(self, at: datetime) -> str | None:
        """Why PostgreSQL refuses every login of this role, from the catalogs alone."""
        if not self.can_login:
            return "NOLOGIN"
        if self.valid_until is not None and self.valid_until <= at:
            return f"its password expired (VALID UNTIL {self.valid_until:%Y-%m-%d %H:%M} UTC)"
        if self.connection_limit == 0:
            return "CONNECTION LIMIT 0"
        return None

    @property
    def dangerous_attributes(self) -> tuple[str, ...]:
        return tuple(a for a in DANGEROUS_ATTRIBUTES if getattr(self, a))

    @property
    def privileged_memberships(self) -> tuple[str, ...]:
        return tuple(r for r in self.member_of if r in PRIVILEGED_ROLES)


@dataclass(frozen=True, kw_only=True)
class DatabaseInfo:
    name: str
    owner: str
    size_bytes: int | None = None  # pg_database_size; None: not readable by the bot


@dataclass(frozen=True, kw_only=True)
class DatabaseState:
    """Roles, memberships and databases of the whole server, read in one catalog query."""

    roles: Mapping[str, RoleInfo]
    databases: Mapping[str, DatabaseInfo]
    bot_role: str
    bot_is_superuser: bool
    server_version: int


class PasswordResult(enum.StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class PasswordVerdict:
    """Does the stored password open the role? ``method`` is ``verifier`` or ``login``."""

    result: PasswordResult
    method: str
    detail: str = ""


# --- git host -----------------------------------------------------------------------------


class ProposalState(enum.StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"


class CheckState(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    PENDING = "pending"


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """A status check on the proposal's head commit (``pgdb/secret``, ``pgdb/role``, ...)."""

    context: str
    state: CheckState
    description: str


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A change waiting to reach the base branch: a pull request, or a local branch."""

    branch: str
    head_sha: str
    url: str
    state: ProposalState = ProposalState.OPEN
    number: int | None = None
    base_sha: str | None = None  # the base commit the head was built on, when known
    mergeable: bool | None = None
    created_at: datetime | None = None
    checks: tuple[CheckResult, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GitSnapshot:
    """The base branch's manifests folder and every ``pgdb/*`` branch or proposal."""

    base_branch: str
    base_sha: str
    # paths relative to the manifests folder that exist on the base branch
    files: frozenset[str]
    kustomization: str | None
    # app -> its branch proposal (open first; the newest closed one when none is open)
    proposals: Mapping[str, Proposal] = field(default_factory=dict)
    # app -> its open offboarding proposal (``pgdb-offboard/<app>``, not merged)
    offboardings: Mapping[str, Proposal] = field(default_factory=dict)
    # app -> its open update proposal (``pgdb-update/<app>``: limits, extensions; not merged)
    updates: Mapping[str, Proposal] = field(default_factory=dict)


# --- Kubernetes ---------------------------------------------------------------------------

READY_TO_SYNC = "secrets.infisical.com/ReadyToSyncSecrets"
LOADED_TOKEN = "secrets.infisical.com/LoadedInfisicalToken"  # noqa: S105 (a condition type)
HEALTHY_PHASE = "Cluster in healthy state"  # the only healthy CNPG phase


@dataclass(frozen=True, kw_only=True)
class KubeCondition:
    """One ``status.conditions[]`` entry; ``since`` is its lastTransitionTime."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""
    since: datetime | None = None

    @property
    def true(self) -> bool:
        return self.status == "True"


def find_condition(conditions: tuple[KubeCondition, ...], kind: str) -> KubeCondition | None:
    return next((c for c in conditions if c.type == kind), None)


@dataclass(frozen=True, kw_only=True)
class PgCluster:
    """The CloudNativePG ``Cluster``'s health as its status reports it."""

    name: str
    phase: str
    phase_reason: str = ""
    instances: int = 0
    ready_instances: int = 0
    current_primary: str = ""
    target_primary: str = ""
    conditions: tuple[KubeCondition, ...] = ()
    # managedRolesStatus.byStatus: "reconciled" | "pending-reconciliation" | ... -> roles
    roles_by_status: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cannot_reconcile: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    last_successful_backup: datetime | None = None  # deprecated field, unset with plugins
    created_at: datetime | None = None
    storage_size: str = ""  # spec.storage.size as written (e.g. 20Gi); "" when absent
    storage_bytes: int | None = None  # the same in bytes; None when absent or unreadable

    def condition(self, kind: str) -> KubeCondition | None:
        return find_condition(self.conditions, kind)

    @property
    def healthy(self) -> bool:
        ready = self.condition("Ready")
        return (
            self.phase == HEALTHY_PHASE
            and self.instances > 0
            and self.ready_instances >= self.instances
            and (ready is None or ready.true)
        )


@dataclass(frozen=True, kw_only=True)
class ObjectStatus:
    """One ``status.extensions[]`` (or ``schemas[]``) entry of a CNPG Database."""

    name: str
    applied: bool
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class DatabaseResource:
    """A CNPG ``Database`` CR. ``applied`` None means no status yet (or a replica cluster)."""

    name: str  # metadata.name
    database: str  # spec.name
    owner: str
    cluster: str  # spec.cluster.name
    applied: bool | None = None
    message: str = ""
    generation: int = 0
    observed_generation: int | None = None
    created_at: datetime | None = None
    # spec.databaseReclaimPolicy; None when absent, which is the CRD's default: retain
    reclaim_policy: str | None = None
    connection_limit: int | None = None  # spec.connectionLimit; None when absent
    extensions: tuple[str, ...] = ()  # spec.extensions[].name with ensure present
    # status.extensions[]: whether CloudNativePG applied each, with its message
    extension_status: tuple[ObjectStatus, ...] = ()

    @property
    def drops_on_delete(self) -> bool:
        """Whether deleting this CR may make CloudNativePG drop the database: anything but
        ``retain`` (the default) is treated as ``delete``."""
        return self.reclaim_policy not in (None, "retain")


@dataclass(frozen=True, kw_only=True)
class InfisicalSecretResource:
    """An Infisical ``InfisicalSecret`` CR (v1alpha1): its conditions are its only status."""

    name: str
    generation: int = 0
    conditions: tuple[KubeCondition, ...] = ()
    secrets_path: str | None = None
    # names of the managed Secrets it writes into the cluster's namespace
    managed_secrets: tuple[str, ...] = ()
    # (namespace, Secret name) of every Secret it writes, app namespaces included
    delivered_to: tuple[tuple[str, str], ...] = ()
    created_at: datetime | None = None

    @property
    def ready(self) -> KubeCondition | None:
        return find_condition(self.conditions, READY_TO_SYNC)


@dataclass(frozen=True, kw_only=True)
class KubeSecret:
    """A managed Secret: which keys it has and its password, kept wrapped (never logged)."""

    name: str
    keys: frozenset[str]
    password: Secret | None = None
    username: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class BackupRecord:
    """A CNPG ``Backup``; ``phase`` is ``completed`` on success."""

    name: str
    cluster: str
    phase: str = ""
    error: str = ""
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ScheduledBackupRecord:
    name: str
    cluster: str
    schedule: str = ""
    suspended: bool = False
    last_schedule_time: datetime | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ArgoApplication:
    """The Argo CD ``Application`` that syncs the cluster's manifests."""

    name: str
    sync: str = "Unknown"  # Synced | OutOfSync | Unknown
    health: str = "Unknown"  # Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.sync == "Synced" and self.health == "Healthy"


@dataclass(frozen=True, kw_only=True)
class ClusterSnapshot:
    """Every Kubernetes object the bot reads, from one pass (one call per kind).

    ``errors`` names the kinds that could not be read (forbidden, not installed) while the
    others were: their checks are "unknown", not "missing".
    """

    namespace: str
    cluster_name: str
    cluster: PgCluster | None  # None: no such Cluster
    databases: Mapping[str, DatabaseResource] = field(default_factory=dict)  # by metadata.name
    infisical_secrets: Mapping[str, InfisicalSecretResource] = field(default_factory=dict)
    secrets: Mapping[str, KubeSecret] = field(default_factory=dict)
    backups: tuple[BackupRecord, ...] = ()
    scheduled_backups: tuple[ScheduledBackupRecord, ...] = ()
    argocd_app: str | None = None  # the configured name; None when not configured
    argocd: ArgoApplication | None = None  # None: not configured, or not found
    errors: Mapping[str, str] = field(default_factory=dict)  # kind -> why it is unknown
    calls: int = 0  # API calls this pass made (constant in the number of apps)

    def database_for(self, app: str) -> DatabaseResource | None:
        """The app's Database CR: named after it, else the one creating a database of its name."""
        found = self.databases.get(app)
        if found is not None:
            return found
        return next(
            (
                d
                for d in self.databases.values()
                if d.database == app and d.cluster == self.cluster_name
            ),
            None,
        )

    @property
    def last_backup(self) -> datetime | None:
        """When the newest completed backup of the cluster finished (Backup CRs first)."""
        done = [
            b.stopped_at
            for b in self.backups
            if b.cluster == self.cluster_name and b.phase == "completed" and b.stopped_at
        ]
        if self.cluster is not None and self.cluster.last_successful_backup is not None:
            done.append(self.cluster.last_successful_backup)
        return max(done) if done else None


@dataclass(frozen=True, kw_only=True)
class ResyncResult:
    """What a forced Infisical resync changed: the spec field, and the generation bump."""

    name: str
    field: str
    before: str
    after: str
    generation_before: int
    generation_after: int


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A Deployment or StatefulSet, and the Secrets its pod template reads (env ``valueFrom``,
    ``envFrom``, volumes): what ``/pgdb rotate`` restarts when one of them changed."""

    kind: str  # "Deployment" | "StatefulSet"
    namespace: str
    name: str
    secrets: frozenset[str] = frozenset()
    restarted_at: str | None = None  # the template's kubectl.kubernetes.io/restartedAt


# --- alerts ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AlertRecord:
    """One alert's lifecycle, as stored: when it was announced, where (each platform's thread),
    and how long its finding has been gone (``absent_passes``) or come back (``flaps``)."""

    id: int
    fingerprint: str  # "<kind>:<app or empty>"
    kind: str
    app: str | None
    severity: str
    message: str
    first_seen: datetime
    last_seen: datetime | None = None
    last_sent: datetime | None = None  # None: never announced (silenced, or not yet)
    resolved_at: datetime | None = None
    absent_passes: int = 0
    flaps: int = 0
    threads: Mapping[str, str] = field(default_factory=dict)  # platform -> message reference
    env: str | None = None  # None: recorded before environments, i.e. PGDB_ENV's


@dataclass(frozen=True, kw_only=True)
class NewAlert:
    """An alert to open (many per pass, in one statement)."""

    fingerprint: str
    kind: str
    app: str | None
    severity: str
    message: str
    env: str | None = None


@dataclass(frozen=True, kw_only=True)
class Silence:
    """``/pgdb silence <target> <duration>``: alerts whose app or kind is ``target`` are muted."""

    target: str
    until: datetime
    created_by: str


# --- the bot's own records ----------------------------------------------------------------


class WorkflowStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class WorkflowRecord:
    id: int
    app: str
    kind: str
    requester: str
    status: WorkflowStatus
    step: str
    detail: str
    started_at: datetime
    updated_at: datetime
    proposal_url: str | None = None
    message_link: str | None = None
    # across all of the app's records (filled by ``BotState.workflows``): when its first
    # record started, and who ran its first ``create``
    app_first_at: datetime | None = None
    app_requester: str | None = None
    # the limits the bot last declared for the app (its create or `/pgdb limits`),
    # filled by ``BotState.workflows``; None when it declared none
    declared: RoleLimits | None = None


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, kw_only=True)
class ApprovalRequest:
    """A ``create`` waiting for an operator (``PGDB_REQUIRE_APPROVAL``). ``message_link`` is the
    requester's message (its thread hears the decision); ``threads`` the ops announcement per
    platform."""

    id: int
    app: str
    namespace: str | None
    requester: str
    platform: str
    status: ApprovalStatus
    requested_at: datetime
    expires_at: datetime
    message_link: str | None = None
    threads: Mapping[str, str] = field(default_factory=dict)
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""
    env: str | None = None  # the environment it was requested in (None: before environments)

    @property
    def command(self) -> str:
        """The request as the requester typed it (without ``--dry-run``)."""
        extra = f" --namespace {self.namespace}" if self.namespace else ""
        return f"/pgdb create {self.app}{extra}"


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """Who did what, when, with which result. Never carries a password."""

    user: str
    platform: str
    command: str
    app: str | None
    result: str
    detail: str = ""
    correlation_id: str = ""
    at: datetime | None = None


# --- observation wrapper ------------------------------------------------------------------


@dataclass(frozen=True)
class Observed(Generic[T]):
    """One system's answer: a value, or why there is none (not configured / unreachable)."""

    value: T | None
    error: str | None = None
    configured: bool = True

    @classmethod
    def ok(cls, value: T) -> Observed[T]:
        return cls(value)

    @classmethod
    def failed(cls, error: str) -> Observed[T]:
        return cls(None, error)

    @classmethod
    def not_configured(cls) -> Observed[T]:
        return cls(None, None, configured=False)


@dataclass(frozen=True, kw_only=True)
class Requester:
    """Who typed a command: the platform's stable user id (never a display name) and the
    platform's name."""

    user_id: str
    platform: str
    is_console_owner: bool = False


@dataclass(frozen=True, kw_only=True)
class Once:
    """A request that runs at most once: its key (a digest, never the request itself) and the
    end of its validity window, after which nobody can present it again."""

    key: str
    until: datetime
    what: str  # for the requester and the log: "signed Slack request", "Mattermost button"


def thread_link(platform: str, channel: str, message: str) -> str:
    """``<platform>:<channel>:<message>``: a command's message, as its conversation's
    ``message_link`` names it so that a later reply can go to its thread."""
    return f"{platform}:{channel}:{message}"


def thread_of(link: str, *, platform: str) -> tuple[str, str] | None:
    """The (channel, message) a :func:`thread_link` of ``platform`` names; None for another
    platform's link or a malformed one."""
    if not link.startswith(f"{platform}:"):
        return None
    channel, _, message = link.removeprefix(f"{platform}:").partition(":")
    return (channel, message) if channel and message else None
