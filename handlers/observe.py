"""One observation of every system, shared by status, list, diagnose and the workflow.

Each system is read once, for all apps (batched); a system that fails is recorded as such
instead of failing the whole pass.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from bot.core.errors import PgdbError
from bot.core.manifests.kustomization import listed_set
from bot.core.manifests.onboarding import on_base
from bot.core.model import (
    ApprovalRequest,
    ClusterSnapshot,
    DatabaseState,
    GitSnapshot,
    Observed,
    PasswordResult,
    PasswordVerdict,
    Proposal,
    ProposalState,
    StoredCredentials,
    WorkflowRecord,
)
from bot.core.names import ENV_SEPARATOR, AppName, InvalidAppName, parse_app_name
from bot.core.secret import Secret
from handlers.context import Services
from handlers.lifecycle import NO_HISTORY, AppHistory, histories

log = logging.getLogger(__name__)
T = TypeVar("T")
# an InfisicalSecret named `<app>` + this belongs to an app
SECRET_SUFFIX = "-postgresql-credentials"  # noqa: S105 (a name, not a password)


@dataclass(frozen=True, kw_only=True)
class Observation:
    secrets: Observed[dict[str, StoredCredentials]]
    database: Observed[DatabaseState]
    git: Observed[GitSnapshot]
    workflows: Observed[list[WorkflowRecord]]
    cluster: Observed[ClusterSnapshot]
    at: datetime
    # creates waiting for approval: not apps yet (nothing is created until approved)
    approvals: Observed[list[ApprovalRequest]] = field(default_factory=Observed.not_configured)

    @functools.cached_property
    def histories(self) -> Mapping[str, AppHistory]:
        """Every app's history from the bot's records, built once per observation."""
        return histories(self.workflows.value or [])

    def pending_request(self, app: str) -> ApprovalRequest | None:
        """The app's request waiting for an operator, if any."""
        return next((r for r in self.approvals.value or [] if r.app == app), None)

    def unreachable(self) -> dict[str, str]:
        """System name -> error, for every configured system that could not be read."""
        systems: dict[str, Observed[Any]] = {
            "secret store": self.secrets,
            "PostgreSQL": self.database,
            "git": self.git,
            "bot state": self.workflows,
            "Kubernetes": self.cluster,
        }
        return {name: o.error for name, o in systems.items() if o.error is not None}


def _read(system: str, fn: Callable[[], T]) -> Observed[T]:
    try:
        return Observed.ok(fn())
    except PgdbError as exc:
        return Observed.failed(str(exc))
    except Exception as exc:  # an adapter bug must not hide the other systems
        log.exception("observing %s failed", system)
        return Observed.failed(f"{system}: unexpected error {type(exc).__name__}")


class SingleFlight(Generic[T]):
    """Concurrent callers with the same key share the one computation in flight instead of
    each making their own: ten `/pgdb status` at once over a large fleet read every system
    once and judge it once, and the process holds one copy of it instead of ten. Nothing is
    kept once it is done: a call that starts after it finished computes afresh."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[Hashable, Future[T]] = {}

    def run(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            shared = self._in_flight.get(key)
            if shared is None:
                mine: Future[T] = Future()
                self._in_flight[key] = mine
        if shared is not None:
            return shared.result()
        try:
            value = compute()
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._in_flight[key]
        mine.set_result(value)
        return value


_OBSERVATIONS: SingleFlight[Observation] = SingleFlight()


def observe(services: Services) -> Observation:
    """Read every system once (shared with the callers that ask while it is being read)."""
    return _OBSERVATIONS.run(id(services), lambda: _observe(services))


def _observe(services: Services) -> Observation:
    """Every system at once: a pass waits for the slowest system, not for their sum."""
    reads: dict[str, Callable[[], Observed[Any]]] = {
        "secrets": lambda: _read("secret store", services.secrets.read_all),
        "database": lambda: _read("PostgreSQL", services.database.observe),
        "git": lambda: _read("git", lambda: read_git(services)),
        "workflows": lambda: _read("bot state", services.state.workflows),
    }
    if services.cluster.configured:
        reads["cluster"] = lambda: _read("Kubernetes", services.cluster.observe)
    if services.approvals is not None:
        approvals = services.approvals
        reads["approvals"] = lambda: _read("bot state", approvals.pending)
    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="observe") as pool:
        futures = {name: pool.submit(read) for name, read in reads.items()}
        seen = {name: future.result() for name, future in futures.items()}
    obs = Observation(
        secrets=seen["secrets"],
        database=seen["database"],
        git=seen["git"],
        workflows=seen["workflows"],
        cluster=seen.get("cluster", Observed.not_configured()),
        at=services.clock(),
        approvals=seen.get("approvals", Observed.not_configured()),
    )
    if _store_may_be_behind(obs):
        # The reads ran side by side: the store may have answered just before a create wrote
        # credentials that its records or its proposal, read later, already show. A create
        # writes the store first, so a read started now sees whatever they saw.
        obs = dataclasses.replace(obs, secrets=_read("secret store", services.secrets.read_all))
    return obs


def _store_may_be_behind(obs: Observation) -> bool:
    """Whether an app the bot's records (not offboarded) or an open proposal show is missing
    from the store's answer: a create in progress, or credentials really lost (then one more
    read confirms it)."""
    stored = obs.secrets.value
    if stored is None:
        return False
    shown: set[str] = set()
    if obs.git.value is not None:
        proposals = obs.git.value.proposals
        shown |= {a for a, p in proposals.items() if p.state is not ProposalState.CLOSED}
    if obs.workflows.value is not None:
        shown |= {w.app for w in obs.workflows.value}
    missing = shown.difference(stored)
    if not missing:
        return False
    records = obs.histories
    return any(
        _valid(app) is not None and not records.get(app, NO_HISTORY).retired for app in missing
    )


def read_git(services: Services) -> GitSnapshot:
    """The environment's GitOps folder and the branches that are this environment's, keyed by
    app (with several environments, ``pgdb/prod--docspell`` is prod's ``docspell``)."""
    layout = services.settings.layout
    snapshot = services.git.snapshot(manifests_path=layout.gitops_path)
    if layout.branch_scope is None:
        return snapshot

    def mine(by_suffix: Mapping[str, Proposal]) -> dict[str, Proposal]:
        found: dict[str, Proposal] = {}
        for suffix, proposal in by_suffix.items():
            app = layout.app_of_branch(suffix)
            if app is None or (app in found and ENV_SEPARATOR not in suffix):
                continue  # another environment's, or an old unscoped one a scoped one replaced
            found[app] = proposal
        return found

    return dataclasses.replace(
        snapshot,
        proposals=mine(snapshot.proposals),
        offboardings=mine(snapshot.offboardings),
        updates=mine(snapshot.updates),
    )


def _valid(name: str) -> AppName | None:
    try:
        return parse_app_name(name, bot_role="")
    except InvalidAppName:
        return None


def listed_entries(snapshot: GitSnapshot | None) -> frozenset[str] | None:
    """The base's ``resources`` entries, normalized; None when there is no kustomization or
    it cannot be read (its problem is the GitOps check's to report, not a reason to fail)."""
    if snapshot is None or snapshot.kustomization is None:
        return None
    try:
        return listed_set(snapshot.kustomization)
    except ValueError:
        return None


def apps_on_base(snapshot: GitSnapshot) -> set[str]:
    """Apps whose ``databases/<app>.yaml`` is on the base branch or listed in resources."""
    found: set[str] = set()
    for path in snapshot.files | (listed_entries(snapshot) or frozenset()):
        if path.startswith("databases/") and path.endswith(".yaml"):
            found.add(path.removeprefix("databases/").removesuffix(".yaml"))
    return found


def manifests_on_base(snapshot: GitSnapshot, app: AppName) -> bool:
    """Both files exist on the base branch and both are listed in ``resources``."""
    return on_base(app, files_on_base=snapshot.files, kustomization=snapshot.kustomization)


def known_apps(obs: Observation, services: Services) -> list[AppName]:
    """Apps known to any source; there is no separate registry to drift."""
    names: set[str] = set()
    if obs.secrets.value is not None:
        names |= set(obs.secrets.value)
    if obs.git.value is not None:
        names |= apps_on_base(obs.git.value)
        names |= {
            app for app, p in obs.git.value.proposals.items() if p.state is not ProposalState.CLOSED
        }
        names |= set(obs.git.value.offboardings)
    if obs.workflows.value is not None:
        names |= {w.app for w in obs.workflows.value}
    if obs.cluster.value is not None:
        cluster = obs.cluster.value
        names |= {d.name for d in cluster.databases.values() if d.cluster == cluster.cluster_name}
        names |= {
            name.removesuffix(SECRET_SUFFIX)
            for name in cluster.infisical_secrets
            if name.endswith(SECRET_SUFFIX)
        }
    apps = [a for n in names if (a := _valid(n)) is not None]
    return sorted(apps)


def check_passwords(
    obs: Observation, services: Services, apps: Iterable[str]
) -> dict[str, PasswordVerdict]:
    """Stored password vs role, for every app with both (one batched call to the adapter)."""
    state, stored = obs.database.value, obs.secrets.value
    if state is None or stored is None:
        return {}
    candidates: dict[str, Secret] = {}
    for app in apps:
        creds = stored.get(app)
        role = state.roles.get(app)
        if creds and creds.password and role is not None:
            candidates[app] = creds.password
    if not candidates:
        return {}
    try:
        return services.database.check_passwords(candidates, state=state)
    except PgdbError as exc:
        return {
            app: PasswordVerdict(result=PasswordResult.UNKNOWN, method="login", detail=str(exc))
            for app in candidates
        }
