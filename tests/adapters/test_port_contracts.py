"""The in-memory fakes answer as the real adapters do: each contract below runs on the fake (no
server, in ``make test-fast``) and on the real adapter (PostgreSQL, files, git), so a use-case
test over the fakes tests what production would do. The alert store's contract is the alert
lifecycle itself (test_alerts.py and test_alerts_memory.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.file_secrets import FileSecretStore
from bot.adapters.local_git import LocalGitHost
from bot.adapters.postgres.approvals import PostgresApprovalStore
from bot.adapters.postgres.migrations import BotSchema
from bot.adapters.postgres.roles import PostgresDatabase
from bot.adapters.postgres.state import PostgresBotState
from bot.core.errors import BackendUnavailable, ConflictError
from bot.core.model import (
    ApprovalStatus,
    AuditEntry,
    CheckResult,
    CheckState,
    PasswordResult,
    ProposalState,
    StoredCredentials,
    WorkflowStatus,
)
from bot.core.names import AppName
from bot.core.ports import ApprovalStore, BotState, GitHost, ManagedDatabase, SecretStore
from bot.core.secret import Secret, generate_password
from tests.fakes.approval_store import MemoryApprovalStore
from tests.fakes.bot_state import MemoryBotState
from tests.fakes.database import MemoryDatabase
from tests.fakes.git_host import MANIFESTS, MemoryGitHost
from tests.fakes.secret_store import MemorySecretStore
from tests.fixtures.gitrepo import git
from tests.fixtures.postgres import dsn_user, unique_app

APP = AppName("docspell")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# --- SecretStore --------------------------------------------------------------------------------


def secret_store_contract(store: SecretStore) -> None:
    assert store.read(APP) is None and store.read_all() == {}
    store.write(APP, username=APP, password=Secret("first"), database=APP)
    store.write(APP, username=APP, password=Secret("second"), database=APP)
    expected = StoredCredentials(username=APP, password=Secret("second"), database=APP)
    assert store.read(APP) == expected and store.read_all() == {APP: expected}
    assert APP in store.location(APP)
    assert store.delete(APP) is True and store.delete(APP) is False
    assert store.read(APP) is None


def test_memory_secret_store_keeps_the_contract() -> None:
    secret_store_contract(MemorySecretStore())


def test_file_secret_store_keeps_the_contract(tmp_path: Path) -> None:
    root = tmp_path / "secrets"
    root.mkdir(mode=0o700)
    secret_store_contract(FileSecretStore(root, env="dev"))


# --- GitHost ------------------------------------------------------------------------------------


def git_host_contract(host: GitHost, merge: Callable[[str], None]) -> None:
    """``merge``: a person merges the branch's proposal into the base branch."""
    base = host.snapshot(manifests_path=MANIFESTS)
    assert base.proposals == {} and "kustomization.yaml" in base.files
    kustomization = host.read_file(ref=base.base_sha, path=f"{MANIFESTS}/kustomization.yaml")
    assert kustomization is not None and base.kustomization == kustomization
    assert host.read_file(ref=base.base_sha, path=f"{MANIFESTS}/nothing.yaml") is None
    with pytest.raises(BackendUnavailable):
        host.read_file(ref="no-such-branch", path="README.md")

    new_file = f"{MANIFESTS}/databases/{APP}.yaml"
    sha = host.commit(parent=base.base_sha, files={new_file: "kind: Database\n"}, message="add")
    with pytest.raises(ConflictError):
        host.commit(parent=base.base_sha, files={f"{MANIFESTS}/gone.yaml": None}, message="rm")
    with pytest.raises(ValueError, match="base branch"):
        host.set_branch(branch=base.base_branch, sha=sha)
    host.set_branch(branch=f"pgdb/{APP}", sha=sha)
    proposal = host.open_proposal(branch=f"pgdb/{APP}", title="t", body="b")
    assert (proposal.head_sha, proposal.base_sha, proposal.state) == (
        sha,
        base.base_sha,
        ProposalState.OPEN,
    )
    with pytest.raises(ConflictError):
        host.open_proposal(branch="pgdb/nothing", title="t", body="b")
    assert host.proposal(branch="pgdb/nothing") is None

    checks = [CheckResult(context="pgdb/secret", state=CheckState.SUCCESS, description="ok")]
    host.publish_checks(proposal=proposal, checks=checks)
    host.publish_checks(
        proposal=proposal,
        checks=[CheckResult(context="pgdb/role", state=CheckState.FAILURE, description="no")],
    )
    listed = host.snapshot(manifests_path=MANIFESTS).proposals[APP]
    assert {c.context: c.state for c in listed.checks} == {
        "pgdb/secret": CheckState.SUCCESS,
        "pgdb/role": CheckState.FAILURE,
    }
    assert host.read_file(ref=f"pgdb/{APP}", path=new_file) == "kind: Database\n"

    merge(f"pgdb/{APP}")
    after = host.snapshot(manifests_path=MANIFESTS)
    assert f"databases/{APP}.yaml" in after.files
    assert after.proposals[APP].state is ProposalState.MERGED


def test_memory_git_host_keeps_the_contract() -> None:
    host = MemoryGitHost()

    def merge(branch: str) -> None:
        host.merge(branch)

    git_host_contract(host, merge)


def test_local_git_host_keeps_the_contract(bare_gitops_repo: Path, tmp_path: Path) -> None:
    def merge(branch: str) -> None:
        clone = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(bare_gitops_repo), str(clone))
        git(clone, "merge", "-q", "--no-ff", "-m", "merge", f"origin/{branch}")
        git(clone, "push", "-q", "origin", "main")

    git_host_contract(LocalGitHost(bare_gitops_repo), merge)


# --- BotState -----------------------------------------------------------------------------------


def bot_state_contract(state: BotState) -> None:
    state.ping()
    first = state.start_workflow(app=APP, kind="create", requester="alice")
    state.update_workflow(first, step="role", status=WorkflowStatus.RUNNING, proposal_url="pr/1")
    state.update_workflow(first, step="done", status=WorkflowStatus.DONE)
    state.set_message_link(first, link="chat:C1:1")
    state.set_password_fingerprint(first, fingerprint="SCRAM-SHA-256$fingerprint")
    with pytest.raises(ConflictError):
        state.update_workflow(999_999, step="x", status=WorkflowStatus.DONE)

    latest = state.latest_workflow(APP)
    assert latest is not None
    assert (latest.id, latest.step, latest.status, latest.proposal_url) == (
        first,
        "done",
        WorkflowStatus.DONE,
        "pr/1",  # kept when a later update names none
    )
    assert state.password_fingerprint(first) == "SCRAM-SHA-256$fingerprint"
    assert [w.id for w in state.pending_follow_ups()] == [first]
    assert state.mark_followed_up(first, result="ready") is True
    assert state.mark_followed_up(first, result="ready") is False  # another replica won
    state.clear_follow_up(first, result="ready")
    assert [w.id for w in state.pending_follow_ups()] == [first]

    second = state.start_workflow(app=APP, kind="rotate", requester="bob")
    [record] = [w for w in state.workflows() if w.app == APP]
    assert (record.id, record.app_requester) == (second, "alice")
    assert record.app_first_at is not None and record.app_first_at <= record.started_at
    assert state.pending_follow_ups() == []  # the latest record is not a finished create

    with state.app_lock(APP) as mine, state.app_lock(APP) as other:
        assert (mine, other) == (True, False)
    with state.app_lock(APP) as again:
        assert again is True

    until = datetime.now(UTC) + timedelta(minutes=5)
    assert state.first_sight("nonce-1", platform="slack", until=until) is True
    assert state.first_sight("nonce-1", platform="slack", until=until) is False

    state.record_audit(
        AuditEntry(user="alice", platform="slack", command="/pgdb help", app=None, result="ok")
    )
    [entry] = state.audit_entries(limit=1)
    assert (entry.user, entry.command, entry.result) == ("alice", "/pgdb help", "ok")
    assert entry.at is not None


def test_memory_bot_state_keeps_the_contract() -> None:
    bot_state_contract(MemoryBotState(clock=lambda: datetime.now(UTC)))


def test_postgres_bot_state_keeps_the_contract(state_dsn: str) -> None:
    bot_state_contract(PostgresBotState(BotSchema(state_dsn)))


# --- ApprovalStore ------------------------------------------------------------------------------


def approval_store_contract(store: ApprovalStore) -> None:
    def ask(app: AppName) -> int:
        return store.request(
            app=app,
            namespace=None,
            requester="alice",
            platform="slack",
            expires_at=NOW + timedelta(hours=24),
            message_link="slack:C1:1",
        ).id

    first = ask(APP)
    with pytest.raises(ConflictError):
        ask(APP)  # one pending request per app
    other = ask(AppName("wiki"))
    store.set_threads(first, {"slack": "1.1"})
    store.set_threads(first, {"mattermost": "p1"})
    found = store.get(first)
    assert found is not None and found.threads == {"slack": "1.1", "mattermost": "p1"}
    assert [r.id for r in store.pending()] == [first, other]

    results: list[object] = []

    def decide(status: ApprovalStatus) -> None:
        results.append(store.decide(first, status=status, by="bob", at=NOW))

    threads = [threading.Thread(target=decide, args=(s,)) for s in [ApprovalStatus.APPROVED] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1  # one decision wins
    assert [r.id for r in store.pending()] == [other]
    second = ask(APP)  # decided: the app may be asked for again
    latest = store.latest_for(APP)
    assert latest is not None and latest.id == second
    assert store.get(999_999) is None


def test_memory_approval_store_keeps_the_contract() -> None:
    approval_store_contract(MemoryApprovalStore())


def test_postgres_approval_store_keeps_the_contract(state_dsn: str) -> None:
    approval_store_contract(PostgresApprovalStore(BotSchema(state_dsn)))


# --- ManagedDatabase ----------------------------------------------------------------------------


def database_contract(db: ManagedDatabase, app: AppName) -> None:
    password, other = generate_password(), generate_password()
    db.create_role(app, password=password)
    with pytest.raises(ConflictError):
        db.create_role(app, password=password)
    state = db.observe()
    role = state.roles[app]
    assert role.can_login and not role.dangerous_attributes and role.member_of == ()
    assert role.bot_can_alter
    assert state.bot_role in state.roles

    def result(candidate: Secret, name: AppName = app) -> PasswordResult:
        return db.check_passwords({name: candidate}, state=db.observe())[name].result

    assert result(password) is PasswordResult.MATCH
    assert result(other) is PasswordResult.MISMATCH
    assert result(password, unique_app()) is PasswordResult.UNKNOWN  # no such role
    assert db.disable_login(app) == 0
    assert not db.observe().roles[app].can_login
    db.enable_login(app, password=other)
    assert db.observe().roles[app].can_login and result(other) is PasswordResult.MATCH
    db.set_password(app, password=password)
    assert result(password) is PasswordResult.MATCH and result(other) is PasswordResult.MISMATCH
    missing = unique_app()
    with pytest.raises(ConflictError):
        db.set_password(missing, password=password)
    with pytest.raises(ConflictError):
        db.disable_login(missing)


@pytest.mark.parametrize("superuser", [True, False])
def test_memory_database_keeps_the_contract(superuser: bool) -> None:
    database_contract(MemoryDatabase(bot_is_superuser=superuser), unique_app())


def test_postgres_database_keeps_the_contract(scram_admin_dsn: str) -> None:
    """On the scram cluster, where a login really checks the password (the CREATEROLE account
    cannot read the verifiers)."""
    db = PostgresDatabase(scram_admin_dsn)
    assert dsn_user(scram_admin_dsn) in db.observe().roles
    database_contract(db, unique_app())
