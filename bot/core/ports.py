"""The small interfaces the core speaks to. Each outside system is one adapter behind one port.

Reading state (``observe``/``read_*``) is kept apart from changing it, so status, diagnostics
and every workflow step share one observation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.core.limits import RoleLimits
from bot.core.model import (
    AlertRecord,
    ApprovalRequest,
    ApprovalStatus,
    AuditEntry,
    CheckResult,
    ClusterSnapshot,
    DatabaseState,
    GitSnapshot,
    KubeSecret,
    NewAlert,
    Once,
    PasswordVerdict,
    Proposal,
    Requester,
    ResyncResult,
    Silence,
    StoredCredentials,
    WorkflowRecord,
    WorkflowStatus,
    Workload,
)
from bot.core.names import AppName
from bot.core.reply import Alert, Reply
from bot.core.secret import Secret

if TYPE_CHECKING:  # the routes' type only: the core never runs the HTTP server
    from starlette.routing import BaseRoute


class SecretStore(Protocol):
    """Where each app's ``username``, ``password`` and ``database`` live."""

    kind: str

    def location(self, app: AppName) -> str:
        """Where an operator finds the app's credentials (path and environment), for humans."""
        ...

    def read_all(self) -> dict[str, StoredCredentials]:
        """Every app folder under the prefix, in one listing. Keys are folder names."""
        ...

    def read(self, app: AppName) -> StoredCredentials | None:
        """The app's credentials, or None when its folder does not exist."""
        ...

    def write(self, app: AppName, *, username: str, password: Secret, database: str) -> None:
        """Create or update the three keys (folder first). Each key is written atomically, not
        the three together. The core decides the password; the store never generates one."""
        ...

    def delete(self, app: AppName) -> bool:
        """Remove the app's folder and its keys (offboarding, when configured): True when
        something was removed, False when nothing was there (safe to repeat)."""
        ...


class ManagedDatabase(Protocol):
    """The shared PostgreSQL server, as the bot's admin account sees it."""

    def observe(self) -> DatabaseState:
        """All roles, memberships and databases in one catalog query."""
        ...

    def check_passwords(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        """Whether each stored password opens its role (verifier comparison, else a login)."""
        ...

    def create_role(
        self, role: AppName, *, password: Secret, limits: RoleLimits | None = None
    ) -> None:
        """``CREATE ROLE … LOGIN`` with a client-side SCRAM-SHA-256 verifier, and ``limits``
        (connection limit, statement timeout; none when None) in the same round trip."""
        ...

    def set_limits(self, role: AppName, *, limits: RoleLimits) -> None:
        """``ALTER ROLE … CONNECTION LIMIT`` and its ``statement_timeout`` (reset for 0)."""
        ...

    def enable_login(self, role: AppName, *, password: Secret) -> None:
        """``ALTER ROLE … LOGIN PASSWORD <verifier>`` for a role that exists."""
        ...

    def set_password(self, role: AppName, *, password: Secret) -> None:
        """A new password for a role that exists (``/pgdb rotate``), as a client-side SCRAM
        verifier; LOGIN is kept. Sessions already open are not affected."""
        ...

    def disable_login(self, role: AppName) -> int:
        """``ALTER ROLE … NOLOGIN`` (offboarding; the password is kept, so ``enable_login``
        brings the role back). Sessions already open are left alone: returns how many there
        are, so the operator is told."""
        ...


class BotState(Protocol):
    """The bot's own tables (audit log, workflow records) and its cross-replica locks."""

    def ping(self) -> None:
        """Raise BackendUnavailable unless the store answers (readiness)."""
        ...

    def record_audit(self, entry: AuditEntry) -> None: ...

    def audit_entries(self, *, limit: int = 100) -> list[AuditEntry]: ...

    def start_workflow(self, *, app: AppName, kind: str, requester: str) -> int: ...

    def declare_limits(
        self, app: AppName, *, limits: RoleLimits, source: str, declared_by: str
    ) -> None:
        """Record the limits the bot gave the app (``create`` or ``limits``): what
        ``limits_drift`` compares the role with. ``workflows()`` carries them."""
        ...

    def update_workflow(
        self,
        workflow_id: int,
        *,
        step: str,
        status: WorkflowStatus,
        detail: str = "",
        proposal_url: str | None = None,
    ) -> None: ...

    def set_message_link(self, workflow_id: int, *, link: str) -> None:
        """Where the workflow's chat message is (its thread receives the follow-through)."""
        ...

    def set_password_fingerprint(self, workflow_id: int, *, fingerprint: str) -> None:
        """Record which password the workflow wrote to the secret store (``/pgdb rotate``), as a
        salted SCRAM-SHA-256 verifier: never the password, and never shown with the record."""
        ...

    def password_fingerprint(self, workflow_id: int) -> str | None:
        """The fingerprint recorded for the workflow, None when none was."""
        ...

    def workflows(self) -> list[WorkflowRecord]:
        """The latest workflow record of each app."""
        ...

    def latest_workflow(self, app: AppName) -> WorkflowRecord | None:
        """One app's latest workflow record (one row, whatever the size of the fleet)."""
        ...

    def pending_follow_ups(self) -> list[WorkflowRecord]:
        """Each app's latest workflow when it is a finished ``create`` with a chat message and
        no follow-through sent yet."""
        ...

    def mark_followed_up(self, workflow_id: int, *, result: str) -> bool:
        """Record the follow-through if none is recorded yet: True for the one replica that
        wins (it posts), False when another did."""
        ...

    def clear_follow_up(self, workflow_id: int, *, result: str) -> None:
        """Undo a mark whose message could not be posted (tried again next pass)."""
        ...

    def app_lock(self, app: AppName) -> AbstractContextManager[bool]:
        """A non-blocking lock held across replicas; yields False when another holds it."""
        ...

    def first_sight(self, key: str, *, platform: str, until: datetime) -> bool:
        """Remember ``key`` (a signed request, a button's nonce) until ``until``: True the first
        time any replica presents it, False when it was already seen (a replay). Raises
        BackendUnavailable when the store cannot say: the caller then refuses."""
        ...


class GitHost(Protocol):
    """The GitOps repository: its base branch, and the ``pgdb/<app>`` branches or PRs."""

    kind: str

    def snapshot(self, *, manifests_path: str) -> GitSnapshot:
        """The base branch's manifests folder and every ``pgdb/*`` proposal, in one pass."""
        ...

    def read_file(self, *, ref: str, path: str) -> str | None:
        """A file's text at a commit or branch, or None when absent (an unknown ref raises)."""
        ...

    def commit(self, *, parent: str, files: Mapping[str, str | None], message: str) -> str:
        """A new commit on ``parent`` with ``files`` (repo-relative path -> text; None deletes
        the path, which must be a file in ``parent``); its sha."""
        ...

    def set_branch(self, *, branch: str, sha: str) -> None:
        """Point ``branch`` at ``sha`` (create it, or move it: the bot owns ``pgdb/*``)."""
        ...

    def proposal(self, *, branch: str) -> Proposal | None:
        """One branch's proposal in full detail (the base its head is built on, whether it
        can merge): the open one, else the newest closed or merged one; None when none."""
        ...

    def open_proposal(self, *, branch: str, title: str, body: str) -> Proposal:
        """The open proposal for ``branch``: reused when there is one, else opened."""
        ...

    def publish_checks(self, *, proposal: Proposal, checks: list[CheckResult]) -> None:
        """Attach status checks to the proposal's head commit (a no-op where unsupported)."""
        ...


class Cluster(Protocol):
    """The Kubernetes side. ``configured`` is False when Kubernetes is not set up.

    One read (``observe``: one API call per kind, whatever the number of apps) and one narrow
    write (``resync_infisical_secret``), so the RBAC stays minimal and reviewable. ``/pgdb
    rotate`` adds a narrow read (``read_secret``) and, with ``PGDB_ROLLOUT=on``, the workload
    list and restart (optional RBAC).
    """

    configured: bool

    def describe(self) -> str:
        """Which API server and namespace, for humans (never a token)."""
        ...

    def observe(self) -> ClusterSnapshot:
        """The CNPG Cluster, Database and InfisicalSecret CRs, the managed Secrets, backups and
        (when configured) the Argo CD Application, in one pass."""
        ...

    def resync_infisical_secret(self, name: str) -> ResyncResult:
        """Force the Infisical operator to resync ``name`` by a harmless spec change (on v0.11
        an annotation does not trigger it); guarded by resourceVersion, safe to repeat."""
        ...

    def read_secret(self, name: str) -> KubeSecret | None:
        """One managed Secret of the namespace (one GET), None when absent: ``/pgdb rotate``
        polls it until the operator has written the new password."""
        ...

    def workloads(self, namespace: str) -> list[Workload]:
        """The Deployments and StatefulSets of ``namespace`` (one list call per kind)."""
        ...

    def restart_workload(self, workload: Workload, *, restarted_at: str) -> None:
        """What ``kubectl rollout restart`` does: set the pod template's
        ``kubectl.kubernetes.io/restartedAt`` annotation (a merge patch)."""
        ...


class Metrics(Protocol):
    """What the use cases count for /metrics: the commands handled and each workflow step's
    time and failures. The console and the tests run with none (``UNMEASURED``)."""

    def command_handled(self, command: str, *, result: str) -> None: ...

    def step(self, name: str) -> AbstractContextManager[None]:
        """Time the ``with`` block as step ``name``; count it as failed when it raises."""
        ...


class _Unmeasured:
    def command_handled(self, command: str, *, result: str) -> None:
        return None

    def step(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()


UNMEASURED: Metrics = _Unmeasured()


class Conversation(Protocol):
    """Where one command's replies go: shown once, then updated in place as steps progress."""

    def show(self, reply: Reply) -> None: ...

    @property
    def message_link(self) -> str | None:
        """The platform's reference of the progress message once posted (e.g.
        ``slack:<channel>:<ts>``), so a later message can reply in its thread; None before it
        is posted, and always on the console."""
        ...


class ThreadReplier(Protocol):
    """Replies in the thread of a message a command posted (``ChatPlatform`` is one)."""

    name: str

    def reply_in_thread(self, link: str, text: str) -> bool:
        """Post ``text`` in the thread of ``link``: False when the link is another platform's;
        raises PgdbError when this platform's message could not be posted."""
        ...


class AlertSink(Protocol):
    """Where alerts go: each chat platform's ops channel (``ChatPlatform`` is one), or the log."""

    name: str

    def send_alert(self, alert: Alert) -> str | None:
        """Post the alert (in ``alert.thread`` when set); the posted message's reference."""
        ...


class AlertStore(Protocol):
    """The alert lifecycle's state, shared by every replica (PostgreSQL), so that a restart or
    a new leader never announces twice. Every change is a compare-and-set: two replicas acting
    at once (a failover) cannot both send."""

    def open_alerts(self) -> list[AlertRecord]: ...

    # Batches: one statement per pass and step, whatever the number of findings.
    def recently_resolved(self, *, since: datetime) -> list[AlertRecord]:
        """Per (environment, fingerprint), the newest alert resolved after ``since``."""
        ...

    def open_many(self, alerts: Sequence[NewAlert], *, at: datetime) -> list[AlertRecord]:
        """The alerts opened; one another replica opened meanwhile is left out."""
        ...

    def seen_many(self, seen: Sequence[tuple[int, str, str]], *, at: datetime) -> None:
        """(id, severity, message) of each alert whose finding is present in this pass."""
        ...

    def absent_many(self, absent: Sequence[tuple[int, int]]) -> None:
        """(id, passes in a row without the finding)."""
        ...

    def claim_many(
        self, claims: Sequence[tuple[int, datetime | None]], *, at: datetime
    ) -> set[int]:
        """``claim_send`` for many (id, previous ``last_sent``): the ids this caller won."""
        ...

    def unclaim_many(
        self, claims: Sequence[tuple[int, datetime | None]], *, at: datetime
    ) -> None: ...

    def set_threads_many(self, alert_ids: Collection[int], threads: Mapping[str, str]) -> None: ...

    def resolve_many(self, alert_ids: Collection[int], *, at: datetime) -> set[int]:
        """The ids this caller closed (still open until now)."""
        ...

    def last_resolved(self, fingerprint: str, *, since: datetime) -> AlertRecord | None:
        """The newest alert with this fingerprint resolved after ``since`` (to reopen it)."""
        ...

    def open_alert(
        self,
        *,
        fingerprint: str,
        kind: str,
        app: str | None,
        severity: str,
        message: str,
        at: datetime,
    ) -> AlertRecord | None:
        """A new open alert; None when another replica opened the same one meanwhile."""
        ...

    def reopen(self, alert_id: int, *, at: datetime) -> AlertRecord | None: ...

    def seen(self, alert_id: int, *, at: datetime, severity: str, message: str) -> None:
        """The finding is present in this pass: its absence count starts again."""
        ...

    def absent(self, alert_id: int, *, passes: int) -> None: ...

    def claim_send(self, alert_id: int, *, previous: datetime | None, at: datetime) -> bool:
        """Set ``last_sent`` to ``at`` if it still is ``previous``: whoever wins sends."""
        ...

    def unclaim(self, alert_id: int, *, previous: datetime | None, at: datetime) -> None:
        """Undo a claim whose message could not be sent to any platform (retried next pass)."""
        ...

    def set_threads(self, alert_id: int, threads: Mapping[str, str]) -> None: ...

    def resolve(self, alert_id: int, *, at: datetime) -> bool:
        """Close it if it still is open; False when another replica did."""
        ...

    def add_silence(self, *, target: str, until: datetime, created_by: str) -> None: ...

    def lift_silences(self, target: str) -> int: ...

    def silences(self, *, at: datetime) -> list[Silence]:
        """The silences still in force at ``at``."""
        ...


class ApprovalStore(Protocol):
    """Pending ``create`` requests (``PGDB_REQUIRE_APPROVAL``), shared by every replica. A
    decision is a compare-and-set from pending: two operators clicking at once, one wins."""

    def request(
        self,
        *,
        app: AppName,
        namespace: str | None,
        requester: str,
        platform: str,
        expires_at: datetime,
        message_link: str | None,
    ) -> ApprovalRequest:
        """Store a new pending request."""
        ...

    def get(self, request_id: int) -> ApprovalRequest | None: ...

    def latest_for(self, app: AppName) -> ApprovalRequest | None:
        """The app's newest request, whatever its status."""
        ...

    def pending(self) -> list[ApprovalRequest]:
        """Every pending request, oldest first (expired ones included until expired)."""
        ...

    def set_threads(self, request_id: int, threads: Mapping[str, str]) -> None:
        """Where the ops-channel announcement went, per platform."""
        ...

    def decide(
        self,
        request_id: int,
        *,
        status: ApprovalStatus,
        by: str,
        reason: str = "",
        at: datetime,
    ) -> ApprovalRequest | None:
        """Move a pending request to ``status``; None when it was no longer pending."""
        ...


class GroupResolver(Protocol):
    """Resolves ``group:<handle>`` to the platform user ids in it."""

    def members(self, handle: str) -> Iterator[str]: ...


class ChatPlatform(AlertSink, ThreadReplier, Protocol):
    """One chat platform as the long-running process (`pgdb-bot run`) sees it: its HTTP
    routes, any connection it keeps open (Socket Mode), its ops channel and threads."""

    def routes(self) -> list[BaseRoute]:
        """HTTP endpoints this platform needs on the shared server (may be empty)."""
        ...

    def start(self) -> None:
        """Open long-lived connections, if any. Must not block."""
        ...

    def stop(self) -> None:
        """Close them."""
        ...


class Leadership(Protocol):
    """Who runs the scheduled diagnostics among the replicas."""

    name: str

    @property
    def leading(self) -> bool: ...

    def try_lead(self) -> bool:
        """Acquire or renew; True while this replica leads."""
        ...

    @property
    def problem(self) -> str | None:
        """Why the last ``try_lead`` could not ask (the backend unreachable), None when it
        asked: then False means another replica leads."""
        ...

    def release(self) -> None: ...


class CommandIntake(Protocol):
    """Where a chat adapter hands a command over, on a worker of the runner: the core runs it
    (the composition root binds ``handlers.intake.run_once`` to the services of that platform).
    The adapter only translates the platform's request into these arguments; every rule
    (authorization, replays, audit) is the core's."""

    def __call__(
        self,
        *,
        text: str,
        requester: Requester,
        conversation: Conversation,
        once: Once | None,
    ) -> None: ...
