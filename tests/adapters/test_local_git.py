"""The local git host: branches as proposals, built with plumbing that never touches a checkout."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bot.adapters.local_git import LocalGitHost, init_demo_repo
from bot.core.errors import BackendUnavailable, ConflictError
from bot.core.model import CheckResult, CheckState, ProposalState
from bot.core.ports import GitHost
from tests.fixtures.gitrepo import MANIFESTS, git, repo_state, run_python

DATABASE = f"{MANIFESTS}/databases/docspell.yaml"
CREDENTIALS = f"{MANIFESTS}/credentials/docspell-secret.yaml"
KUSTOMIZATION = f"{MANIFESTS}/kustomization.yaml"


def onboard(host: LocalGitHost, *, app: str = "docspell", parent: str = "main") -> str:
    """What the workflow does: one commit with the two manifests and the kustomization."""
    base = host.read_file(ref=parent, path=KUSTOMIZATION)
    assert base is not None
    files = {
        f"{MANIFESTS}/databases/{app}.yaml": f"kind: Database\nmetadata:\n  name: {app}\n",
        f"{MANIFESTS}/credentials/{app}-secret.yaml": f"kind: InfisicalSecret # {app}\n",
        KUSTOMIZATION: base + f"  - credentials/{app}-secret.yaml\n  - databases/{app}.yaml\n",
    }
    sha = host.commit(parent=parent, files=files, message=f"pgdb: onboard {app}")
    host.set_branch(branch=f"pgdb/{app}", sha=sha)
    return sha


def make_dirty(repo: Path) -> None:
    """A person's work in progress: a staged change, an unstaged change, an untracked file."""
    (repo / "README.md").write_text("# edited, staged\n")
    git(repo, "add", "README.md")
    (repo / KUSTOMIZATION).write_text("# half-edited by a human\n")
    (repo / "notes.txt").write_text("untracked\n")


CHECKS = [
    CheckResult(context="pgdb/secret", state=CheckState.SUCCESS, description="stored"),
    CheckResult(context="pgdb/role", state=CheckState.SUCCESS, description="role can log in"),
    CheckResult(context="pgdb/manifests", state=CheckState.PENDING, description="validating"),
]


# --- the demo repository --------------------------------------------------------------------


def test_demo_repo_looks_like_the_gitops_repo(gitops_repo: Path) -> None:
    yaml = YAML(typ="safe")
    kustomization = yaml.load(git(gitops_repo, "show", f"main:{KUSTOMIZATION}"))
    cluster = yaml.load(git(gitops_repo, "show", f"main:{MANIFESTS}/cluster.yaml"))

    assert kustomization == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "databases",
        "resources": ["cluster.yaml"],
    }
    assert "\n#" in git(gitops_repo, "show", f"main:{KUSTOMIZATION}")
    assert cluster["kind"] == "Cluster"
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["metadata"] == {"name": "postgresql-shared", "namespace": "databases"}
    assert cluster["spec"]["instances"] == 1
    assert cluster["spec"]["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.6"
    assert cluster["spec"]["storage"]["size"] == "20Gi"
    assert git(gitops_repo, "log", "--format=%an <%ae>", "main").splitlines() == [
        "pgdb-bot <pgdb-bot@localhost>"
    ]
    assert git(gitops_repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(gitops_repo, "status", "--porcelain", "--untracked-files=all") == ""


def test_demo_repo_leaves_an_existing_repository_alone(gitops_repo: Path) -> None:
    (gitops_repo / "README.md").write_text("mine\n")
    git(gitops_repo, "commit", "-qam", "my change")
    before = repo_state(gitops_repo)

    init_demo_repo(gitops_repo)

    assert repo_state(gitops_repo) == before


def test_demo_repo_uses_the_given_names(tmp_path: Path) -> None:
    init_demo_repo(
        tmp_path / "r", manifests_path="db/", base_branch="trunk", namespace="pg", cluster="c1"
    )

    cluster = YAML(typ="safe").load(git(tmp_path / "r", "show", "trunk:db/cluster.yaml"))
    assert cluster["metadata"] == {"name": "c1", "namespace": "pg"}
    assert "namespace: pg\n" in git(tmp_path / "r", "show", "trunk:db/kustomization.yaml")


def test_demo_repo_refuses_to_fill_a_folder_that_is_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file.txt").write_text("keep me")

    with pytest.raises(BackendUnavailable, match="not empty and is not a git repository"):
        init_demo_repo(tmp_path / "stuff")

    assert [p.name for p in (tmp_path / "stuff").iterdir()] == ["file.txt"]


# --- commits and branches -------------------------------------------------------------------


def test_commit_on_a_branch_changes_exactly_the_given_files(gitops_repo: Path) -> None:
    make_dirty(gitops_repo)
    before = repo_state(gitops_repo)
    host: GitHost = LocalGitHost(gitops_repo)

    sha = onboard(LocalGitHost(gitops_repo))

    diff = git(gitops_repo, "diff", "--name-status", "main..pgdb/docspell").splitlines()
    assert sorted(diff) == [f"A\t{CREDENTIALS}", f"A\t{DATABASE}", f"M\t{KUSTOMIZATION}"]
    assert git(gitops_repo, "rev-parse", "pgdb/docspell").strip() == sha
    assert (
        git(gitops_repo, "rev-parse", f"{sha}^").strip()
        == git(gitops_repo, "rev-parse", "main").strip()
    )
    assert git(gitops_repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", sha).strip() == (
        "pgdb-bot <pgdb-bot@localhost>|pgdb-bot <pgdb-bot@localhost>|pgdb: onboard docspell"
    )
    assert git(gitops_repo, "show", f"pgdb/docspell:{DATABASE}") == (
        "kind: Database\nmetadata:\n  name: docspell\n"
    )
    assert host.read_file(ref="pgdb/docspell", path=KUSTOMIZATION) == (
        git(gitops_repo, "show", f"main:{KUSTOMIZATION}")
        + "  - credentials/docspell-secret.yaml\n  - databases/docspell.yaml\n"
    )
    assert repo_state(gitops_repo) == before


def test_moving_a_branch_rebuilds_it_on_a_newer_base(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    first = onboard(host)
    # Another onboarding reached the base branch meanwhile.
    git(gitops_repo, "merge", "-q", "--ff-only", onboard(host, app="paperless"))
    before = repo_state(gitops_repo)
    new_base = git(gitops_repo, "rev-parse", "main").strip()

    second = onboard(host)

    assert second != first
    assert git(gitops_repo, "rev-parse", "pgdb/docspell").strip() == second
    assert git(gitops_repo, "rev-parse", f"{second}^").strip() == new_base
    proposal = host.snapshot(manifests_path=MANIFESTS).proposals["docspell"]
    assert proposal.head_sha == second
    assert proposal.base_sha == new_base
    kustomization = host.read_file(ref="pgdb/docspell", path=KUSTOMIZATION) or ""
    assert "paperless" in kustomization
    assert "docspell" in kustomization
    assert repo_state(gitops_repo) == before


def test_set_branch_refuses_the_base_branch_and_a_checked_out_branch(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    sha = onboard(host)
    git(gitops_repo, "checkout", "-q", "pgdb/docspell")
    newer = host.commit(parent=sha, files={"x.txt": "x\n"}, message="more")

    with pytest.raises(ValueError, match="base branch"):
        host.set_branch(branch="main", sha=newer)
    with pytest.raises(ConflictError, match="checked out"):
        host.set_branch(branch="pgdb/docspell", sha=newer)

    assert git(gitops_repo, "rev-parse", "pgdb/docspell").strip() == sha
    assert git(gitops_repo, "status", "--porcelain") == ""


def test_commit_replaces_a_file_in_a_nested_folder_without_losing_its_siblings(
    gitops_repo: Path,
) -> None:
    host = LocalGitHost(gitops_repo)
    sha = host.commit(parent="main", files={"a/b/c/one.txt": "1\n"}, message="one")
    sha = host.commit(
        parent=sha, files={"a/b/c/two.txt": "2\n", "a/b/c/one.txt": "1b"}, message="two"
    )

    tree = git(gitops_repo, "ls-tree", "-r", "--name-only", sha).splitlines()
    assert {"a/b/c/one.txt", "a/b/c/two.txt", KUSTOMIZATION, "README.md"} <= set(tree)
    assert host.read_file(ref=sha, path="a/b/c/one.txt") == "1b"


@pytest.mark.parametrize(
    "files",
    [{"apps": "a file in place of the manifests folder"}, {"README.md/x.txt": "under a file"}],
)
def test_commit_refuses_to_swap_a_file_and_a_folder(
    gitops_repo: Path, files: dict[str, str]
) -> None:
    host = LocalGitHost(gitops_repo)

    with pytest.raises(ValueError, match="cannot replace it"):
        host.commit(parent="main", files=files, message="m")

    assert host.snapshot(manifests_path=MANIFESTS).files == {"kustomization.yaml", "cluster.yaml"}


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", ".git/config", "a/../../b"])
def test_commit_refuses_paths_outside_the_repository(gitops_repo: Path, path: str) -> None:
    with pytest.raises(ValueError, match="not a usable repository path"):
        LocalGitHost(gitops_repo).commit(parent="main", files={path: "x"}, message="m")


# --- snapshot and proposals -----------------------------------------------------------------


def test_snapshot_shows_base_files_and_an_open_proposal(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    sha = onboard(host)

    snap = host.snapshot(manifests_path=MANIFESTS)

    assert snap.base_branch == "main"
    assert snap.base_sha == git(gitops_repo, "rev-parse", "main").strip()
    assert snap.files == {"kustomization.yaml", "cluster.yaml"}
    assert snap.kustomization == git(gitops_repo, "show", f"main:{KUSTOMIZATION}")
    assert list(snap.proposals) == ["docspell"]
    proposal = snap.proposals["docspell"]
    assert proposal.branch == "pgdb/docspell"
    assert proposal.head_sha == sha
    assert proposal.state is ProposalState.OPEN
    assert proposal.base_sha == snap.base_sha
    assert proposal.checks == ()
    assert "pgdb/docspell" in proposal.url
    assert str(gitops_repo) in proposal.url
    assert proposal.created_at is not None
    assert abs(datetime.now(UTC) - proposal.created_at) < timedelta(minutes=5)


def test_a_merged_branch_shows_as_merged_and_its_files_reach_the_base(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    onboard(host)
    onboard(host, app="paperless")
    git(gitops_repo, "merge", "-q", "--ff-only", "pgdb/docspell")

    snap = host.snapshot(manifests_path=MANIFESTS)

    assert snap.proposals["docspell"].state is ProposalState.MERGED
    assert snap.proposals["paperless"].state is ProposalState.OPEN
    assert snap.files == {
        "kustomization.yaml",
        "cluster.yaml",
        "databases/docspell.yaml",
        "credentials/docspell-secret.yaml",
    }
    assert "databases/docspell.yaml" in (snap.kustomization or "")


def test_an_update_branch_is_discovered_as_an_update_until_merged(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    onboard(host)
    git(gitops_repo, "merge", "-q", "--ff-only", "pgdb/docspell")
    sha = host.commit(
        parent="main",
        files={
            DATABASE: "kind: Database\nmetadata:\n  name: docspell\nspec:\n  connectionLimit: 40\n"
        },
        message="pgdb: update docspell",
    )
    host.set_branch(branch="pgdb-update/docspell", sha=sha)

    snap = host.snapshot(manifests_path=MANIFESTS)

    assert snap.updates["docspell"].branch == "pgdb-update/docspell"
    assert snap.updates["docspell"].state is ProposalState.OPEN
    assert snap.proposals["docspell"].branch == "pgdb/docspell"  # not an onboarding
    git(gitops_repo, "merge", "-q", "--ff-only", "pgdb-update/docspell")
    assert "docspell" not in host.snapshot(manifests_path=MANIFESTS).updates


def test_open_proposal_returns_the_branch_and_refuses_a_missing_one(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    sha = onboard(host)

    proposal = host.open_proposal(branch="pgdb/docspell", title="Onboard docspell", body="...")

    assert proposal.head_sha == sha
    assert proposal.state is ProposalState.OPEN
    assert proposal == host.snapshot(manifests_path=MANIFESTS).proposals["docspell"]
    with pytest.raises(ConflictError, match="pgdb/nothing does not exist"):
        host.open_proposal(branch="pgdb/nothing", title="t", body="b")


def test_checks_round_trip_through_notes_without_touching_the_checkout(
    gitops_repo: Path,
) -> None:
    host = LocalGitHost(gitops_repo)
    onboard(host)
    make_dirty(gitops_repo)
    before = repo_state(gitops_repo)
    proposal = host.open_proposal(branch="pgdb/docspell", title="t", body="b")

    host.publish_checks(proposal=proposal, checks=CHECKS)
    done = CheckResult(context="pgdb/manifests", state=CheckState.FAILURE, description="bad")
    host.publish_checks(proposal=proposal, checks=[done])

    shown = host.snapshot(manifests_path=MANIFESTS).proposals["docspell"].checks
    assert shown == (CHECKS[0], CHECKS[1], done)
    assert host.open_proposal(branch="pgdb/docspell", title="t", body="b").checks == shown
    note = json.loads(git(gitops_repo, "notes", "--ref=pgdb-checks", "show", proposal.head_sha))
    assert note["checks"][2] == {
        "context": "pgdb/manifests",
        "state": "failure",
        "description": "bad",
    }
    assert repo_state(gitops_repo) == before


def test_checks_belong_to_the_head_commit(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    onboard(host)
    host.publish_checks(
        proposal=host.open_proposal(branch="pgdb/docspell", title="t", body="b"), checks=CHECKS
    )
    git(gitops_repo, "commit", "-q", "--allow-empty", "-m", "base moved")

    onboard(host)  # rebuilt: a new head, no checks yet

    assert host.snapshot(manifests_path=MANIFESTS).proposals["docspell"].checks == ()


def test_snapshot_over_many_branches_uses_a_few_git_calls(
    gitops_repo: Path, tmp_path: Path
) -> None:
    host = LocalGitHost(gitops_repo)
    base = git(gitops_repo, "rev-parse", "main").strip()
    apps = [f"app-{n:03d}" for n in range(300)]
    heads = {}
    for app in apps[:3]:
        heads[app] = onboard(host, app=app)
    shared = host.commit(parent=base, files={"many.txt": "x\n"}, message="many")
    git(
        gitops_repo,
        "update-ref",
        "--stdin",
        stdin="".join(f"create refs/heads/pgdb/{app} {shared}\n" for app in apps[3:]),
    )
    host.publish_checks(
        proposal=host.open_proposal(branch="pgdb/app-001", title="t", body="b"), checks=CHECKS
    )
    git(gitops_repo, "merge", "-q", "--ff-only", "pgdb/app-002")
    # Count git processes with a logging shim in front of the real git, in a child process.
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "git-calls.log"
    real_git = git(gitops_repo, "--exec-path").strip() + "/git"
    (shim / "git").write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real_git} "$@"\n')
    (shim / "git").chmod(stat.S_IRWXU)
    child = run_python(
        f"""
from pathlib import Path
from bot.adapters.local_git import LocalGitHost
snap = LocalGitHost(Path({str(gitops_repo)!r})).snapshot(manifests_path={MANIFESTS!r})
print(len(snap.proposals), snap.proposals["app-001"].checks[1].description,
      snap.proposals["app-002"].state, snap.proposals["app-299"].state)
""",
        env={"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"},
    )

    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["300", "role", "can", "log", "in", "merged", "open"]
    calls = log.read_text().split()
    assert len(calls) <= 6, calls


# --- bare repositories ----------------------------------------------------------------------


def test_everything_works_on_a_bare_repository(bare_gitops_repo: Path) -> None:
    host = LocalGitHost(bare_gitops_repo)
    before = repo_state(bare_gitops_repo)

    sha = onboard(host)
    proposal = host.open_proposal(branch="pgdb/docspell", title="t", body="b")
    host.publish_checks(proposal=proposal, checks=CHECKS)
    snap = host.snapshot(manifests_path=MANIFESTS)

    assert snap.proposals["docspell"].head_sha == sha
    assert snap.proposals["docspell"].checks == tuple(CHECKS)
    assert snap.files == {"kustomization.yaml", "cluster.yaml"}
    assert host.read_file(ref=sha, path=DATABASE) is not None
    assert repo_state(bare_gitops_repo) == before
    assert not (bare_gitops_repo / "index").exists()


# --- errors ---------------------------------------------------------------------------------


def test_reading_a_missing_file_folder_or_ref(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)

    assert host.read_file(ref="main", path="databases/nope.yaml") is None
    assert host.read_file(ref="main", path=MANIFESTS) is None
    with pytest.raises(BackendUnavailable, match="pgdb/nope is neither a branch nor a commit"):
        host.read_file(ref="pgdb/nope", path=KUSTOMIZATION)
    with pytest.raises(BackendUnavailable, match="neither a branch nor a commit"):
        host.commit(parent="0" * 40, files={}, message="m")


def test_a_missing_base_branch_says_which_and_how_to_fix_it(gitops_repo: Path) -> None:
    with pytest.raises(BackendUnavailable) as err:
        LocalGitHost(gitops_repo, base_branch="production").snapshot(manifests_path=MANIFESTS)

    assert err.value.system == "git"
    assert "branch production does not exist" in str(err.value)
    assert "PGDB_GITOPS_BASE_BRANCH" in str(err.value)


@pytest.mark.parametrize("where", ["missing", "plain-folder", "inside-a-repo", "a-file"])
def test_a_path_that_is_not_a_repository_is_refused(
    gitops_repo: Path, tmp_path: Path, where: str
) -> None:
    paths = {
        "missing": tmp_path / "missing",
        "plain-folder": tmp_path / "plain",
        "inside-a-repo": gitops_repo / "apps",  # its parent is a repo: not good enough
        "a-file": gitops_repo / "README.md",
    }
    (tmp_path / "plain").mkdir()

    with pytest.raises(BackendUnavailable) as err:
        LocalGitHost(paths[where]).snapshot(manifests_path=MANIFESTS)

    assert str(paths[where]) in str(err.value)
    assert "PGDB_GITOPS_REPO" in str(err.value)


def test_git_not_installed_is_reported_clearly(gitops_repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    child = run_python(
        f"""
from pathlib import Path
from bot.adapters.local_git import LocalGitHost
from bot.core.errors import BackendUnavailable
try:
    LocalGitHost(Path({str(gitops_repo)!r})).snapshot(manifests_path="x")
except BackendUnavailable as exc:
    print(exc)
""",
        env={"PATH": str(empty)},
    )

    assert child.returncode == 0, child.stderr
    assert "git: the `git` command is not installed or not on PATH" in child.stdout


def test_a_ref_locked_by_another_git_process_is_named(gitops_repo: Path) -> None:
    host = LocalGitHost(gitops_repo)
    sha = host.commit(parent="main", files={DATABASE: "x\n"}, message="m")
    branch_lock = gitops_repo / ".git" / "refs/heads/pgdb/docspell.lock"
    notes_lock = gitops_repo / ".git" / "refs/notes/pgdb-checks.lock"
    for lock in (branch_lock, notes_lock):
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")

    with pytest.raises(BackendUnavailable) as branch_err:
        host.set_branch(branch="pgdb/docspell", sha=sha)
    branch_lock.unlink()
    host.set_branch(branch="pgdb/docspell", sha=sha)
    proposal = host.open_proposal(branch="pgdb/docspell", title="t", body="b")
    with pytest.raises(BackendUnavailable) as notes_err:
        host.publish_checks(proposal=proposal, checks=CHECKS)
    notes_lock.unlink()
    host.publish_checks(proposal=proposal, checks=CHECKS)

    for lock, err in ((branch_lock, branch_err), (notes_lock, notes_err)):
        assert str(lock) in str(err.value)
        assert "another git process" in str(err.value)
    assert host.snapshot(manifests_path=MANIFESTS).proposals["docspell"].checks == tuple(CHECKS)
