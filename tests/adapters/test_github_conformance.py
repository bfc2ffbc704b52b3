"""The fake GitHub against real PyGithub: the call sequence recorded in the team's research
(reference/integrations.md §2.2 and §2.3) replayed call for call, and what it wrote checked as
real git. If PyGithub or the fake drift apart, this is the test that says so."""

from __future__ import annotations

import base64

import pytest
from github import Auth, Github, GithubException, InputGitTreeElement

from tests.fixtures.github import PREFIX, FakeGitHub

CONTENT = "kind: X\n"


def client(fake: FakeGitHub, auth: Auth.Auth) -> Github:
    """As the research recorded it: eager objects, no throttling, no retries."""
    return Github(
        auth=auth,
        base_url=fake.url,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def test_the_recorded_token_flow_replays_call_for_call(fake_github: FakeGitHub) -> None:
    fake = fake_github
    gh = client(fake, Auth.Token(fake.token))

    repo = gh.get_repo("acme/gitops")
    base_sha = repo.get_branch(repo.default_branch).commit.sha
    repo.create_git_ref(ref="refs/heads/add-docspell", sha=base_sha)
    repo.create_file("apps/docspell/database.yaml", "add docspell", CONTENT, branch="add-docspell")
    repo.create_file(
        "apps/docspell/kustomization.yaml", "add docspell", "resources: []\n", branch="add-docspell"
    )
    main = repo.get_git_ref("heads/main").object.sha
    base = repo.get_git_commit(main)
    tree = repo.create_git_tree(
        [InputGitTreeElement("apps/docspell2/database.yaml", "100644", "blob", content=CONTENT)],
        base_tree=base.tree,
    )
    commit = repo.create_git_commit("add docspell2", tree, [base])
    repo.create_git_ref("refs/heads/add-docspell2", commit.sha)
    assert list(repo.get_pulls(state="open", head="acme:add-docspell2")) == []
    pr = repo.create_pull(base="main", head="add-docspell2", title="add docspell2", body="why")
    repo.get_commit(commit.sha).create_status(
        "pending", target_url=pr.html_url, description="validating", context="chatops/validate"
    )

    c = commit.sha
    recorded = [(call.method, PREFIX + call.path) for call in fake.calls]
    assert recorded == [
        ("GET", "/api/v3/repos/acme/gitops"),
        ("GET", "/api/v3/repos/acme/gitops/branches/main"),
        ("POST", "/api/v3/repos/acme/gitops/git/refs"),
        ("PUT", "/api/v3/repos/acme/gitops/contents/apps/docspell/database.yaml"),
        ("PUT", "/api/v3/repos/acme/gitops/contents/apps/docspell/kustomization.yaml"),
        ("GET", "/api/v3/repos/acme/gitops/git/ref/heads/main"),
        ("GET", f"/api/v3/repos/acme/gitops/git/commits/{base_sha}"),
        ("POST", "/api/v3/repos/acme/gitops/git/trees"),
        ("POST", "/api/v3/repos/acme/gitops/git/commits"),
        ("POST", "/api/v3/repos/acme/gitops/git/refs"),
        ("GET", "/api/v3/repos/acme/gitops/pulls"),
        ("POST", "/api/v3/repos/acme/gitops/pulls"),
        ("GET", f"/api/v3/repos/acme/gitops/commits/{c}"),
        ("POST", f"/api/v3/repos/acme/gitops/statuses/{c}"),
    ]
    assert all(call.auth == "token" and call.status in (200, 201) for call in fake.calls)
    bodies = [call.body for call in fake.calls]
    assert bodies[2] == {"ref": "refs/heads/add-docspell", "sha": base_sha}
    assert bodies[3]["content"] == base64.b64encode(CONTENT.encode()).decode() == "a2luZDogWAo="
    assert bodies[3]["branch"] == "add-docspell"
    assert bodies[7]["base_tree"] == base.tree.sha
    assert bodies[7]["tree"] == [
        {
            "path": "apps/docspell2/database.yaml",
            "mode": "100644",
            "type": "blob",
            "content": CONTENT,
        }
    ]
    assert bodies[8] == {"message": "add docspell2", "tree": tree.sha, "parents": [base_sha]}
    assert bodies[9] == {"ref": "refs/heads/add-docspell2", "sha": c}
    assert fake.calls[10].query == {"state": "open", "head": "acme:add-docspell2"}
    assert bodies[11] == {
        "base": "main",
        "head": "add-docspell2",
        "title": "add docspell2",
        "body": "why",
    }
    assert bodies[13]["context"] == "chatops/validate"

    # and what it wrote is real git
    assert fake.git("show", "add-docspell:apps/docspell/database.yaml") == CONTENT
    assert fake.git("rev-list", "--count", "main..add-docspell").strip() == "2"
    assert fake.git("rev-parse", "add-docspell2^").strip() == base_sha
    assert fake.git("show", "add-docspell2:apps/docspell2/database.yaml") == CONTENT
    assert fake.statuses[c][0]["state"] == "pending"


def test_github_answers_duplicates_and_token_check_runs_like_github(
    fake_github: FakeGitHub,
) -> None:
    fake = fake_github
    gh = client(fake, Auth.Token(fake.token))
    repo = gh.get_repo("acme/gitops")
    main = repo.get_branch("main").commit.sha
    base = repo.get_git_commit(main)
    tree = repo.create_git_tree(
        [InputGitTreeElement("x.yaml", "100644", "blob", content="x: 1\n")], base_tree=base.tree
    )
    commit = repo.create_git_commit("x", tree, [base])
    repo.create_git_ref("refs/heads/pgdb/x", commit.sha)
    repo.create_pull(base="main", head="pgdb/x", title="t", body="b")

    with pytest.raises(GithubException) as ref_exists:
        repo.create_git_ref("refs/heads/pgdb/x", commit.sha)
    assert ref_exists.value.status == 422
    assert "Reference already exists" in str(ref_exists.value)
    with pytest.raises(GithubException) as pull_exists:
        repo.create_pull(base="main", head="pgdb/x", title="t", body="b")
    assert pull_exists.value.status == 422
    assert "A pull request already exists for acme:pgdb/x." in str(pull_exists.value)
    with pytest.raises(GithubException) as check_run:
        repo.create_check_run(
            name="pgdb/role", head_sha=commit.sha, status="completed", conclusion="success"
        )
    assert check_run.value.status == 403
    # without the owner, GitHub ignores the head filter and lists every open pull request
    repo.create_git_ref("refs/heads/other", commit.sha)
    repo.create_pull(base="main", head="other", title="t", body="b")
    assert len(list(repo.get_pulls(state="open", head="pgdb/x"))) == 2
    assert len(list(repo.get_pulls(state="open", head="acme:pgdb/x"))) == 1


def test_the_recorded_app_flow_replays_call_for_call(
    fake_github: FakeGitHub, github_app_key: str
) -> None:
    fake = fake_github
    fake.register_app(
        app_id=123,
        private_key_pem=github_app_key,
        installation_id=456,
        permissions={"contents": "write", "pull_requests": "write", "checks": "write"},
    )
    auth = Auth.AppAuth(123, github_app_key).get_installation_auth(456)
    gh = client(fake, auth)

    repo = gh.get_repo("acme/gitops")
    sha = repo.get_branch("main").commit.sha
    repo.create_check_run(name="pgdb/role", head_sha=sha, status="completed", conclusion="success")

    assert [(c.method, c.path, c.auth) for c in fake.calls] == [
        ("POST", "/app/installations/456/access_tokens", "jwt"),
        ("GET", "/repos/acme/gitops", "installation"),
        ("GET", "/repos/acme/gitops/branches/main", "installation"),
        ("POST", "/repos/acme/gitops/check-runs", "installation"),
    ]
    assert fake.check_runs[0]["conclusion"] == "success"
