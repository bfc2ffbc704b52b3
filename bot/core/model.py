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
