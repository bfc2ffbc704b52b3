"""The GitHub git host against a fake GitHub on loopback (real HTTP through the adapter's httpx
client, real git objects behind it), driven by the real onboarding workflow.

Only the git host is real here: the secret store, PostgreSQL and the bot's records are small
in-memory doubles, so each test is about what reaches GitHub and what the workflow makes of it.
"""

from __future__ import annotations

import io
import itertools
import logging
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ruamel.yaml import YAML

from bot.adapters.console_chat import ConsoleConversation
from bot.adapters.github.credentials import AppCredentials, load_private_key
from bot.adapters.github.host import GitHubHost
from bot.adapters.github.retry import RetryPolicy
from bot.config import Settings
from bot.core.errors import BackendUnavailable, ConfigError
from bot.core.manifests.validate import validate_database, validate_infisical_secret
from bot.core.model import (
    CheckResult,
    CheckState,
    Proposal,
    ProposalState,
    Requester,
)
from bot.core.names import AppName
from bot.core.ports import GitHost
from bot.core.reply import Reply, StepState
from bot.core.secret import Secret
from bot.wiring.github import build_github_host
from handlers.context import CommandContext, Services
from handlers.create import run_create
from handlers.status import run_status
from tests.fakes.faults import FakeClock
from tests.fakes.services import MemoryWorld, memory_services
from tests.fixtures.github import FakeGitHub, Pull
from tests.fixtures.gitrepo import KUBECTL, MANIFESTS, PROJECT_ROOT

APP = AppName("docspell")
BRANCH = "pgdb/docspell"
CONTEXTS = ["pgdb/secret", "pgdb/role", "pgdb/manifests"]


# --- helpers ----------------------------------------------------------------------------------


def quick_retry() -> RetryPolicy:
    """The production rules with test-sized waits."""
    return RetryPolicy(secondary_rate_wait=0.3, max_rate_limit_wait=5.0, backoff=0.0)


def token_host(fake: FakeGitHub, **options: Any) -> GitHubHost:
    return GitHubHost(
        repo=fake.full_name,
        token=Secret(fake.token),
        api_url=fake.url,
        write_spacing=0,
        retry=quick_retry(),
        **options,
    )


@pytest.fixture
def host(fake_github: FakeGitHub) -> GitHubHost:
    return token_host(
        fake_github, labels=["pgdb", "onboarding"], reviewers=["alice", "acme/platform"]
    )


@pytest.fixture
def world() -> MemoryWorld:
    """The other ports, in memory; the fake GitHub dates its objects from the real clock."""
    return MemoryWorld(clock=FakeClock(datetime.now(UTC)))


def services_for(git: GitHost, world: MemoryWorld) -> Services:
    return memory_services(world, git=git)


def context(services: Services) -> CommandContext:
    return CommandContext(
        services=services,
        requester=Requester(user_id="alice", platform="test"),
        conversation=ConsoleConversation(io.StringIO()),
    )


def create(git: GitHost, world: MemoryWorld) -> Reply:
    return run_create(context(services_for(git, world)), APP, extra_namespace=None, dry_run=False)


def explain(reply: Reply) -> list[tuple[str, str, str]]:
    return [(s.key, s.state.value, s.detail) for s in reply.steps]


def head_parent(fake: FakeGitHub, branch: str = BRANCH) -> str:
    return fake.git("rev-parse", f"refs/heads/{branch}^").strip()


def changed_files(fake: FakeGitHub, branch: str = BRANCH) -> list[str]:
    head = fake.branch_sha(branch)
    out = fake.git("diff", "--name-status", f"{head}^", str(head))
    return sorted(out.splitlines())


def latest_statuses(fake: FakeGitHub, sha: str) -> dict[str, str]:
    latest: dict[str, str] = {}
    for status in fake.statuses.get(sha, []):
        latest[status["context"]] = status["state"]
    return latest


THREE_FILES = sorted(
    [
        f"A\t{MANIFESTS}/credentials/docspell-secret.yaml",
        f"A\t{MANIFESTS}/databases/docspell.yaml",
        f"M\t{MANIFESTS}/kustomization.yaml",
    ]
)


# --- the workflow's rules -----------------------------------------------------------------------


def test_first_run_opens_one_pull_request_with_one_commit_on_the_base(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld, tmp_path: Path
) -> None:
    base = fake_github.branch_sha("main")

    reply = create(host, world)

    assert reply.ok, explain(reply)
    assert reply.step("manifests").state is StepState.DONE
    [pr] = fake_github.open_pulls()
    assert (pr.head, pr.base, pr.title) == (BRANCH, "main", "pgdb: onboard docspell")
    assert "correlation id" in pr.body and "<password>" in pr.body
    password = world.secrets.password(APP)
    assert password is not None and password not in pr.body
    assert pr.labels == ["pgdb", "onboarding"]
    assert (pr.reviewers, pr.teams) == (["alice"], ["platform"])
    assert head_parent(fake_github) == base
    assert changed_files(fake_github) == THREE_FILES
    head = fake_github.branch_sha(BRANCH)
    assert head is not None
    assert latest_statuses(fake_github, head) == dict.fromkeys(CONTEXTS, "success")
    assert ("Pull request", f"{fake_github.root}/acme/gitops/pull/1") in reply.fields
    # the commit is real git: the branch builds
    checkout = fake_github.checkout(BRANCH, tmp_path / "checkout")
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(checkout / MANIFESTS)],
        capture_output=True,
        text=True,
        check=True,
    )
    kinds = [(d["kind"], d["metadata"]["name"]) for d in YAML(typ="safe").load_all(built.stdout)]
    assert ("Database", "docspell") in kinds
    assert ("InfisicalSecret", "docspell-postgresql-credentials") in kinds
    database = (checkout / MANIFESTS / "databases" / "docspell.yaml").read_text()
    secret = (checkout / MANIFESTS / "credentials" / "docspell-secret.yaml").read_text()
    assert validate_database(database) == []
    assert validate_infisical_secret(secret) == []
    # token auth: no check runs are attempted (GitHub answers 403 to tokens)
    assert fake_github.requests("POST", "/repos/acme/gitops/check-runs") == []


def test_a_rerun_reuses_the_pull_request_and_writes_nothing(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    create(host, world)
    head = fake_github.branch_sha(BRANCH)
    fake_github.clear_calls()

    again = create(host, world)

    assert again.ok, explain(again)
    assert again.step("manifests").state is StepState.EXISTS
    assert "reused the open proposal" in again.step("manifests").detail
    assert again.step("checks").state is StepState.EXISTS
    assert fake_github.writes() == []
    assert len(fake_github.pulls) == 1
    assert fake_github.branch_sha(BRANCH) == head
    # the open pull request is looked up with the owner in the filter, never without
    lookups = fake_github.requests("GET", "/repos/acme/gitops/pulls")
    assert lookups and all(c.query.get("head") in (None, f"acme:{BRANCH}") for c in lookups)


def test_manifests_already_on_the_base_need_no_branch_and_no_pull_request(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    create(host, world)
    fake_github.merge(1)
    fake_github.git("update-ref", "-d", f"refs/heads/{BRANCH}")
    fake_github.clear_calls()

    again = create(host, world)

    assert again.ok, explain(again)
    assert again.step("manifests").state is StepState.EXISTS
    assert "already on branch main" in again.step("manifests").detail
    assert fake_github.writes() == []
    assert fake_github.open_pulls() == []
    assert fake_github.branch_sha(BRANCH) is None


def test_a_branch_without_a_pull_request_is_rebuilt_and_proposed(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    main = fake_github.branch_sha("main")
    assert main is not None
    fake_github.git("update-ref", f"refs/heads/{BRANCH}", main)
    fake_github.commit_on(BRANCH, {f"{MANIFESTS}/databases/docspell.yaml": "junk: 1\n"}, "wip")

    reply = create(host, world)

    assert reply.ok, explain(reply)
    [pr] = fake_github.open_pulls()
    assert pr.head == BRANCH
    assert head_parent(fake_github) == main
    assert changed_files(fake_github) == THREE_FILES


def test_a_branch_behind_the_base_is_rebuilt_on_it_in_the_same_pull_request(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    create(host, world)
    old_head = fake_github.branch_sha(BRANCH)
    # another onboarding merged meanwhile, touching kustomization.yaml too
    kustomization = fake_github.git("show", f"main:{MANIFESTS}/kustomization.yaml")
    newer = fake_github.commit_on(
        "main",
        {
            f"{MANIFESTS}/kustomization.yaml": kustomization + "  - databases/other.yaml\n",
            f"{MANIFESTS}/databases/other.yaml": "kind: Database\n",
        },
        "pgdb: onboard other",
    )
    before = host.proposal(branch=BRANCH)
    assert before is not None and before.base_sha != newer and before.mergeable is False

    reply = create(host, world)

    assert reply.ok, explain(reply)
    assert "rebuilt on the current base" in reply.step("manifests").detail
    assert len(fake_github.pulls) == 1
    head = fake_github.branch_sha(BRANCH)
    assert head != old_head
    assert head_parent(fake_github) == newer
    assert changed_files(fake_github) == THREE_FILES
    kustomization = fake_github.git("show", f"{BRANCH}:{MANIFESTS}/kustomization.yaml")
    assert "databases/other.yaml" in kustomization and "databases/docspell.yaml" in kustomization
    assert head is not None and latest_statuses(fake_github, head) == dict.fromkeys(
        CONTEXTS, "success"
    )
    after = host.proposal(branch=BRANCH)
    assert after is not None and after.mergeable is True and after.base_sha == newer


def test_a_closed_pull_request_is_left_alone_and_a_new_one_opened(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    create(host, world)
    fake_github.close(1)
    closed = host.proposal(branch=BRANCH)
    assert closed is not None and closed.state is ProposalState.CLOSED and closed.number == 1

    reply = create(host, world)

    assert reply.ok, explain(reply)
    assert fake_github.pulls[1].state == "closed"
    [new] = fake_github.open_pulls()
    assert new.number == 2 and new.head == BRANCH
    assert ("Pull request", f"{fake_github.root}/acme/gitops/pull/2") in reply.fields


def test_a_failure_between_the_commit_and_the_pull_request_is_finished_by_a_rerun(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    fake_github.fail("POST", r"/pulls$", status=502, times=10)

    failed = create(host, world)

    assert not failed.ok
    assert failed.step("manifests").state is StepState.FAILED
    assert "502" in failed.step("manifests").detail
    assert "run the command again" in failed.step("manifests").detail
    assert fake_github.branch_sha(BRANCH) is not None
    assert fake_github.pulls == {}
    fake_github.faults.clear()

    resumed = create(host, world)

    assert resumed.ok, explain(resumed)
    [pr] = fake_github.open_pulls()
    assert pr.head == BRANCH
    assert head_parent(fake_github) == fake_github.branch_sha("main")
    assert changed_files(fake_github) == THREE_FILES


def test_a_pull_request_created_but_unanswered_is_found_not_duplicated(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    # GitHub creates the pull request, the answer is lost, the adapter retries the POST: 422
    fake_github.drop("POST", r"/pulls$", after=True)
    # the same for the branch: created, answer lost, retried: "Reference already exists"
    fake_github.drop("POST", r"/git/refs$", after=True)

    reply = create(host, world)

    assert reply.ok, explain(reply)
    assert len(fake_github.pulls) == 1
    posts = fake_github.requests("POST", "/repos/acme/gitops/pulls")
    assert [c.status for c in posts] == [-201, 422]


# --- rate limits, faults, timeouts -----------------------------------------------------------


def test_a_primary_rate_limit_waits_until_the_announced_reset(
    fake_github: FakeGitHub, host: GitHubHost
) -> None:
    reset = int(time.time()) + 2
    fake_github.fail(
        "GET",
        r"/git/ref/heads/main$",
        status=403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        body={"message": "API rate limit exceeded for user ID 1."},
    )
    started = time.monotonic()

    snapshot = host.snapshot(manifests_path=MANIFESTS)

    assert snapshot.base_sha == fake_github.branch_sha("main")
    assert time.time() >= reset  # waited for the reset, not a fixed back-off
    assert time.monotonic() - started < 5
    assert [c.status for c in fake_github.requests("GET", "/repos/acme/gitops/git/ref/")] == [
        403,
        200,
    ]


def test_retry_after_and_secondary_limits_are_honoured(
    fake_github: FakeGitHub, host: GitHubHost
) -> None:
    fake_github.fail("GET", r"/pulls$", status=429, headers={"Retry-After": "1"})
    fake_github.fail(
        "GET",
        r"/git/blobs/",
        status=403,
        body={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes"
            " before you try again."
        },
    )
    started = time.monotonic()

    host.snapshot(manifests_path=MANIFESTS)

    elapsed = time.monotonic() - started
    assert elapsed >= 1.0 + 0.3  # Retry-After, then the (test-sized) secondary back-off
    assert [c.status for c in fake_github.requests("GET", "/repos/acme/gitops/pulls")] == [429, 200]


def test_a_rate_limit_that_resets_too_late_fails_at_once_with_the_reset_time(
    fake_github: FakeGitHub, host: GitHubHost
) -> None:
    reset = int(time.time()) + 3600
    fake_github.fail(
        "GET",
        r"/git/ref/heads/main$",
        status=403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        body={"message": "API rate limit exceeded for user ID 1."},
    )
    started = time.monotonic()

    with pytest.raises(BackendUnavailable) as failed:
        host.snapshot(manifests_path=MANIFESTS)

    assert time.monotonic() - started < 2
    at = datetime.fromtimestamp(reset, UTC).strftime("%H:%M:%S UTC")
    assert f"rate limit is reached; it resets at {at}" in str(failed.value)
    assert str(failed.value).startswith("GitHub: reading branch main")


def test_server_errors_and_dropped_connections_are_retried_a_bounded_number_of_times(
    fake_github: FakeGitHub, host: GitHubHost
) -> None:
    fake_github.fail("GET", r"/git/ref/heads/main$", status=502, times=2)
    fake_github.drop("GET", r"/contents/")
    assert host.snapshot(manifests_path=MANIFESTS).files

    fake_github.fail("GET", r"/git/ref/heads/main$", status=503, times=10)
    with pytest.raises(BackendUnavailable) as failed:
        host.snapshot(manifests_path=MANIFESTS)
    assert "GitHub answered 503" in str(failed.value)
    assert "after 3 retries" in str(failed.value)
    assert len(fake_github.requests("GET", "/repos/acme/gitops/git/ref/heads/main")) == 2 + 1 + 4


def test_every_call_has_a_timeout(fake_github: FakeGitHub) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    try:
        host = GitHubHost(
            repo="acme/gitops",
            token=Secret(fake_github.token),
            api_url=f"http://127.0.0.1:{port}/api/v3",
            write_spacing=0,
            timeout=1,
            retry=RetryPolicy(retries=1, backoff=0.0),
        )
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as failed:
            host.snapshot(manifests_path=MANIFESTS)
        assert time.monotonic() - started < 10
        assert "timed out after 1 s" in str(failed.value)
        assert "PGDB_GITHUB_API_URL" in str(failed.value)
    finally:
        silent.close()


# --- errors say what to fix and never carry a credential ---------------------------------------


def test_errors_name_the_fix_and_never_the_token(
    fake_github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = fake_github
    messages: list[str] = []

    wrong = GitHubHost(
        repo="acme/gitops",
        token=Secret("ghp_" + "x" * 36),
        api_url=fake.url,
        write_spacing=0,
        retry=quick_retry(),
    )
    with pytest.raises(BackendUnavailable) as bad_token:
        wrong.snapshot(manifests_path=MANIFESTS)
    messages.append(str(bad_token.value))
    assert "GitHub refused PGDB_GITHUB_TOKEN (401 Bad credentials)" in messages[-1]
    assert "set PGDB_GITHUB_TOKEN" in messages[-1]

    missing = GitHubHost(
        repo="acme/nothing", token=Secret(fake.token), api_url=fake.url, write_spacing=0
    )
    with pytest.raises(BackendUnavailable) as no_repo:
        missing.snapshot(manifests_path=MANIFESTS)
    messages.append(str(no_repo.value))
    assert "repository acme/nothing was not found" in messages[-1]
    assert "PGDB_GITHUB_REPO" in messages[-1]

    other_base = GitHubHost(
        repo="acme/gitops",
        token=Secret(fake.token),
        api_url=fake.url,
        base_branch="trunk",
        write_spacing=0,
    )
    with pytest.raises(BackendUnavailable) as no_branch:
        other_base.snapshot(manifests_path=MANIFESTS)
    messages.append(str(no_branch.value))
    assert "branch trunk does not exist in acme/gitops" in messages[-1]
    assert "PGDB_GITOPS_BASE_BRANCH" in messages[-1]

    fake.denied[fake.token] = {"statuses"}
    host = token_host(fake)
    sha = fake.branch_sha("main")
    assert sha is not None
    with pytest.raises(BackendUnavailable) as no_permission:
        host.publish_checks(
            proposal=Proposal(branch="main", head_sha=sha, url="https://x.test/pull/1"),
            checks=[CheckResult(context="pgdb/role", state=CheckState.SUCCESS, description="ok")],
        )
    messages.append(str(no_permission.value))
    assert "may not do this (403 Resource not accessible by personal access token)" in messages[-1]
    assert "Commit statuses: Read and write" in messages[-1]

    # a token that does not look like GitHub's is scrubbed too
    fake.tokens.add("plain-secret-value-123")
    fake.fail(
        "GET", r"/git/ref/heads/main$", status=400, body={"message": "echo plain-secret-value-123"}
    )
    odd = GitHubHost(
        repo="acme/gitops",
        token=Secret("plain-secret-value-123"),
        api_url=fake.url,
        write_spacing=0,
        retry=quick_retry(),
    )
    with pytest.raises(BackendUnavailable) as echoed:
        odd.snapshot(manifests_path=MANIFESTS)
    messages.append(str(echoed.value))

    everything = "\n".join(messages) + caplog.text
    for secret in (fake.token, "ghp_" + "x" * 36, "plain-secret-value-123"):
        assert secret not in everything
    assert all(m.startswith("GitHub: ") and " — " in m for m in messages)


# --- GitHub App authentication -----------------------------------------------------------------


def app_host(fake: FakeGitHub, key: str, *, installation: int = 456) -> GitHubHost:
    return GitHubHost(
        repo=fake.full_name,
        app=AppCredentials(app_id="123", private_key=Secret(key), installation_id=installation),
        api_url=fake.url,
        write_spacing=0,
        retry=quick_retry(),
    )


ALL_WRITE = {
    "contents": "write",
    "pull_requests": "write",
    "statuses": "write",
    "checks": "write",
}


def test_as_a_github_app_the_checks_are_also_check_runs(
    fake_github: FakeGitHub,
    github_app_key: str,
    world: MemoryWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_github.register_app(
        app_id=123, private_key_pem=github_app_key, installation_id=456, permissions=ALL_WRITE
    )

    reply = create(app_host(fake_github, github_app_key), world)

    assert reply.ok, explain(reply)
    first = fake_github.calls[0]
    assert (first.method, first.path, first.auth) == (
        "POST",
        "/app/installations/456/access_tokens",
        "jwt",
    )
    assert {c.auth for c in fake_github.calls[1:]} == {"installation"}
    head = fake_github.branch_sha(BRANCH)
    runs = [
        (r["name"], r["status"], r["conclusion"], r["head_sha"]) for r in fake_github.check_runs
    ]
    assert runs == [(c, "completed", "success", head) for c in CONTEXTS]
    assert head is not None and latest_statuses(fake_github, head) == dict.fromkeys(
        CONTEXTS, "success"
    )
    for token in fake_github.installation_tokens:
        assert token not in caplog.text


def test_an_app_without_the_checks_permission_still_onboards(
    fake_github: FakeGitHub,
    github_app_key: str,
    world: MemoryWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_github.register_app(
        app_id=123,
        private_key_pem=github_app_key,
        installation_id=456,
        permissions={k: v for k, v in ALL_WRITE.items() if k != "checks"},
    )

    reply = create(app_host(fake_github, github_app_key), world)

    assert reply.ok, explain(reply)
    assert fake_github.check_runs == []
    assert "Checks: Read and write" in caplog.text


def test_app_credentials_that_do_not_work_say_which_variable_to_fix(
    fake_github: FakeGitHub, github_app_key: str
) -> None:
    fake_github.register_app(
        app_id=123, private_key_pem=github_app_key, installation_id=456, permissions=ALL_WRITE
    )
    with pytest.raises(BackendUnavailable) as no_installation:
        app_host(fake_github, github_app_key, installation=999).snapshot(manifests_path=MANIFESTS)
    assert "PGDB_GITHUB_INSTALLATION_ID" in str(no_installation.value)

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(BackendUnavailable) as wrong_key:
        app_host(fake_github, other.decode()).snapshot(manifests_path=MANIFESTS)
    assert "PGDB_GITHUB_APP_PRIVATE_KEY" in str(wrong_key.value)
    assert "BEGIN" not in str(wrong_key.value)


# --- snapshot and proposal: batched, and in detail ----------------------------------------------


def test_the_snapshot_costs_the_same_few_calls_whatever_the_number_of_apps(
    fake_github: FakeGitHub, host: GitHubHost
) -> None:
    main = fake_github.branch_sha("main")
    assert main is not None
    sha = fake_github.commit_on("main", {"README.md": "changed\n"}, "x")
    fake_github.git("update-ref", "refs/heads/main", main)
    now = datetime.now(UTC)

    def open_pull(number: int, head: str, base: str = "main") -> None:
        fake_github.git("update-ref", f"refs/heads/{head}", sha)
        fake_github.pulls[number] = Pull(
            number=number,
            head=head,
            base=base,
            title=head,
            body="",
            user="someone",
            head_sha=sha,
            created_at=now,
            updated_at=now,
        )

    open_pull(1, "pgdb/app1")
    fake_github.clear_calls()
    one = host.snapshot(manifests_path=MANIFESTS)
    calls_for_one = len(fake_github.calls)

    for number in range(2, 151):
        open_pull(number, f"pgdb/app{number}")
    open_pull(151, "feature/unrelated")
    open_pull(152, "pgdb/elsewhere", base="release")
    fake_github.clear_calls()
    many = host.snapshot(manifests_path=MANIFESTS)

    assert set(one.proposals) == {"app1"}
    assert set(many.proposals) == {f"app{n}" for n in range(1, 151)}
    assert calls_for_one == 5
    assert len(fake_github.calls) == 6  # the open pull requests take two pages of 100
    assert all(p.number is not None and p.checks == () for p in many.proposals.values())


def test_status_shows_the_pull_request_with_its_checks(
    fake_github: FakeGitHub, host: GitHubHost, world: MemoryWorld
) -> None:
    create(host, world)
    services = services_for(host, world)

    reply = run_status(context(services), APP)

    manifests = dict(reply.fields)["⏳ manifests"]
    assert manifests.startswith(f"#1 open: {fake_github.root}/acme/gitops/pull/1")
    assert "pgdb/secret success, pgdb/role success, pgdb/manifests success" in manifests
    assert manifests.endswith("[git (GitHub)]")


def test_read_file_and_set_branch_guard_their_inputs(
    fake_github: FakeGitHub, host: GitHubHost
) -> None:
    assert host.read_file(ref="main", path=f"{MANIFESTS}/nothing.yaml") is None
    assert host.read_file(ref="main", path=MANIFESTS) is None  # a folder
    assert "kind: Kustomization" in (
        host.read_file(ref="main", path=f"{MANIFESTS}/kustomization.yaml") or ""
    )
    with pytest.raises(BackendUnavailable, match="neither a branch nor a commit"):
        host.read_file(ref="no-such-branch", path="README.md")
    with pytest.raises(ValueError, match="never moves the base branch"):
        host.set_branch(branch="main", sha=fake_github.branch_sha("main") or "")
    with pytest.raises(ValueError, match="not a relative path"):
        host.read_file(ref="main", path="../etc/passwd")


# --- configuration --------------------------------------------------------------------------------


def test_configuration_selects_github_and_says_what_is_missing(
    github_app_key: str, tmp_path: Path
) -> None:
    def settings(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)

    token = build_github_host(settings(github_repo="acme/gitops", github_token="ghp_abc"))
    assert token.repo == "acme/gitops" and token.api_url == "https://api.github.com"
    with pytest.raises(ConfigError, match="PGDB_GITHUB_TOKEN \\(or PGDB_GITHUB_APP_ID"):
        build_github_host(settings(github_repo="acme/gitops"))
    with pytest.raises(ConfigError, match="PGDB_GITHUB_REPO"):
        build_github_host(settings(github_token="ghp_abc"))
    with pytest.raises(ConfigError, match="not both"):
        build_github_host(settings(github_repo="a/b", github_token="t", github_app_id="1"))
    with pytest.raises(
        ConfigError, match="PGDB_GITHUB_APP_PRIVATE_KEY, PGDB_GITHUB_INSTALLATION_ID"
    ):
        build_github_host(settings(github_repo="a/b", github_app_id="1"))
    with pytest.raises(ConfigError, match="PGDB_GITHUB_APP_PRIVATE_KEY: not an unencrypted PEM"):
        build_github_host(
            settings(
                github_repo="a/b",
                github_app_id="1",
                github_installation_id="2",
                github_app_private_key="-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----",
            )
        )
    key_file = tmp_path / "app.pem"
    key_file.write_text(github_app_key)
    app = build_github_host(
        settings(
            github_repo="a/b",
            github_app_id="1",
            github_installation_id="2",
            github_app_private_key=str(key_file),
        )
    )
    assert app.kind == "GitHub"
    # a key pasted into an environment variable with its newlines escaped
    assert load_private_key(github_app_key.replace("\n", "\\n")).reveal() == github_app_key
    with pytest.raises(ValueError, match="neither a PEM private key nor"):
        load_private_key("/no/such/file.pem")


def test_calls_per_operation(fake_github: FakeGitHub, world: MemoryWorld) -> None:
    """The numbers the README gives: a first create, a re-run, one app's status."""
    host = token_host(fake_github)

    create(host, world)
    first = (len(fake_github.calls), len(fake_github.writes()))
    fake_github.clear_calls()
    create(host, world)
    rerun = (len(fake_github.calls), len(fake_github.writes()))
    fake_github.clear_calls()
    run_status(context(services_for(host, world)), APP)
    status = len(fake_github.calls)

    assert first == (13, 7)
    assert rerun == (12, 0)
    assert status == 5 + 4


# --- the adapter's own HTTP client: spacing, token renewal, no client library -----------------


def test_writes_are_spaced_a_second_apart_and_reads_are_not(fake_github: FakeGitHub) -> None:
    host = GitHubHost(
        repo=fake_github.full_name,
        token=Secret(fake_github.token),
        api_url=fake_github.url,
        retry=quick_retry(),
    )  # the default spacing, as in production
    sha = fake_github.branch_sha("main")
    assert sha is not None
    checks = [CheckResult(context=c, state=CheckState.SUCCESS, description="ok") for c in CONTEXTS]

    host.snapshot(manifests_path=MANIFESTS)
    host.publish_checks(
        proposal=Proposal(branch="main", head_sha=sha, url="https://x.test/pull/1"), checks=checks
    )

    reads = [c.at for c in fake_github.requests("GET")]
    writes = [c.at for c in fake_github.writes()]
    assert len(reads) == 5 and len(writes) == 3
    assert reads[-1] - reads[0] < 1.0
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(writes))


def test_the_spacing_is_a_setting(fake_github: FakeGitHub) -> None:
    """PGDB_GITHUB_WRITE_SPACING: a second unless set (the e2e tests turn it off)."""
    assert Settings(_env_file=None).github_write_spacing_seconds == 1.0
    with pytest.raises(ValueError, match="github_write_spacing"):
        Settings(_env_file=None, github_write_spacing="soon")
    host = build_github_host(
        Settings(
            _env_file=None,
            github_repo=fake_github.full_name,
            github_api_url=fake_github.url,
            github_token=fake_github.token,
            github_write_spacing="0.4s",
        )
    )
    sha = fake_github.branch_sha("main")
    assert sha is not None
    checks = [CheckResult(context=c, state=CheckState.SUCCESS, description="ok") for c in CONTEXTS]

    host.publish_checks(
        proposal=Proposal(branch="main", head_sha=sha, url="https://x.test/pull/1"), checks=checks
    )

    writes = [c.at for c in fake_github.writes()]
    assert len(writes) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(writes)]
    assert min(gaps) >= 0.35 and min(gaps) < 0.9, gaps  # spaced, by less than the default


def test_a_revoked_installation_token_is_renewed_once(
    fake_github: FakeGitHub, github_app_key: str
) -> None:
    fake_github.register_app(
        app_id=123, private_key_pem=github_app_key, installation_id=456, permissions=ALL_WRITE
    )
    host = app_host(fake_github, github_app_key)
    host.snapshot(manifests_path=MANIFESTS)
    fake_github.installation_tokens.clear()  # revoked (or expired early) on GitHub's side
    fake_github.clear_calls()

    assert host.snapshot(manifests_path=MANIFESTS).files

    assert [(c.method, c.status, c.auth) for c in fake_github.calls[:3]] == [
        ("GET", 401, None),
        ("POST", 201, "jwt"),
        ("GET", 200, "installation"),
    ]
    assert len(fake_github.installation_tokens) == 1


ISOLATION = """
import sys
from bot.config import Settings
from bot.wiring.github import build_github_host

url, repo, token, manifests = sys.argv[1:]
host = build_github_host(
    Settings(_env_file=None, github_repo=repo, github_api_url=url, github_token=token),
    throttle=False,
)
assert host.snapshot(manifests_path=manifests).files
loaded = sorted(
    name for name in sys.modules
    if name.split(".")[0] in {"github", "jwt", "nacl", "cryptography", "requests", "urllib3"}
)
print(",".join(loaded) or "none")
"""


def test_the_adapter_loads_no_github_client_library(fake_github: FakeGitHub) -> None:
    """A bot configured with a token reads GitHub without PyGithub, PyJWT or cryptography in
    memory: the footprint issue 17 measured (+16.5 MiB) is gone, not just moved."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            ISOLATION,
            fake_github.url,
            fake_github.full_name,
            fake_github.token,
            MANIFESTS,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"
    assert len(fake_github.requests("GET")) == 5  # it did talk to GitHub


def test_a_next_page_outside_the_api_is_not_followed(
    fake_github: FakeGitHub, host: GitHubHost
) -> None:
    """The token goes with every page: a ``Link`` to another origin is refused, not read."""
    elsewhere = "http://127.0.0.1:9/api/v3/repos/acme/gitops/pulls?page=2"
    fake_github.fail(
        "GET", r"/pulls$", status=200, headers={"Link": f'<{elsewhere}>; rel="next"'}, body=[]
    )

    with pytest.raises(BackendUnavailable) as refused:
        host.snapshot(manifests_path=MANIFESTS)

    assert "listing the open pull requests" in str(refused.value)
    assert f"the next page is outside {fake_github.url}" in str(refused.value)
    assert "PGDB_GITHUB_API_URL" in str(refused.value)


def test_github_failing_at_the_app_login_is_said_as_github_failing(
    fake_github: FakeGitHub, github_app_key: str
) -> None:
    fake_github.register_app(
        app_id=123, private_key_pem=github_app_key, installation_id=456, permissions=ALL_WRITE
    )
    fake_github.fail("POST", r"/access_tokens$", status=502, times=10)

    with pytest.raises(BackendUnavailable) as failed:
        app_host(fake_github, github_app_key).snapshot(manifests_path=MANIFESTS)

    message = str(failed.value)
    assert message.startswith("GitHub: authenticating as GitHub App 123: GitHub answered 502")
    assert "after 3 retries" in message and "githubstatus.com" in message
    assert len(fake_github.requests("POST", "/app/")) == 4
