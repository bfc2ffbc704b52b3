"""The fake GitHub against GitHub's wire protocol: the call sequence recorded in the team's
research (reference/integrations.md §2.2 and §2.3, recorded from a GitHub client library)
replayed request for request over plain HTTP, and what it wrote checked as real git. The App
flow signs its JSON web token with the adapter's signer and the fake verifies it with PyJWT,
an independent implementation. If the fake drifts from the protocol, this is the test that
says so."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from bot.adapters.github.credentials import AppCredentials, app_jwt
from bot.core.secret import Secret
from tests.fixtures.github import PREFIX, FakeGitHub

CONTENT = "kind: X\n"
REPO = "/repos/acme/gitops"


def client(fake: FakeGitHub, credential: str) -> httpx.Client:
    """Plain HTTP to the fake's API, with ``credential`` as the bearer."""
    return httpx.Client(
        base_url=fake.url,
        headers={"Authorization": f"Bearer {credential}", "Accept": "application/vnd.github+json"},
        timeout=10,
    )


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), (response.status_code, response.text)
    return response.json()


def test_the_recorded_token_flow_replays_call_for_call(fake_github: FakeGitHub) -> None:
    fake = fake_github
    with client(fake, fake.token) as gh:
        repo = ok(gh.get(REPO))
        base_sha = ok(gh.get(f"{REPO}/branches/{repo['default_branch']}"))["commit"]["sha"]
        ok(gh.post(f"{REPO}/git/refs", json={"ref": "refs/heads/add-docspell", "sha": base_sha}))
        for path, text in (
            ("apps/docspell/database.yaml", CONTENT),
            ("apps/docspell/kustomization.yaml", "resources: []\n"),
        ):
            ok(
                gh.put(
                    f"{REPO}/contents/{path}",
                    json={
                        "message": "add docspell",
                        "content": base64.b64encode(text.encode()).decode(),
                        "branch": "add-docspell",
                    },
                )
            )
        main = ok(gh.get(f"{REPO}/git/ref/heads/main"))["object"]["sha"]
        base = ok(gh.get(f"{REPO}/git/commits/{main}"))
        element = {
            "path": "apps/docspell2/database.yaml",
            "mode": "100644",
            "type": "blob",
            "content": CONTENT,
        }
        tree = ok(
            gh.post(f"{REPO}/git/trees", json={"tree": [element], "base_tree": base["tree"]["sha"]})
        )
        commit = ok(
            gh.post(
                f"{REPO}/git/commits",
                json={"message": "add docspell2", "tree": tree["sha"], "parents": [base["sha"]]},
            )
        )
        c = commit["sha"]
        ok(gh.post(f"{REPO}/git/refs", json={"ref": "refs/heads/add-docspell2", "sha": c}))
        query = {"state": "open", "head": "acme:add-docspell2"}
        assert ok(gh.get(f"{REPO}/pulls", params=query)) == []
        pr = ok(
            gh.post(
                f"{REPO}/pulls",
                json={
                    "base": "main",
                    "head": "add-docspell2",
                    "title": "add docspell2",
                    "body": "why",
                },
            )
        )
        ok(gh.get(f"{REPO}/commits/{c}"))
        status = {
            "state": "pending",
            "target_url": pr["html_url"],
            "description": "validating",
            "context": "chatops/validate",
        }
        ok(gh.post(f"{REPO}/statuses/{c}", json=status))

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
    assert main == base_sha and base["tree"]["sha"] == fake.git("rev-parse", "main^{tree}").strip()
    assert fake.calls[10].query == {"state": "open", "head": "acme:add-docspell2"}
    assert (pr["number"], pr["state"], pr["head"]["ref"], pr["base"]["ref"]) == (
        1,
        "open",
        "add-docspell2",
        "main",
    )
    assert pr["head"]["label"] == "acme:add-docspell2" and pr["head"]["sha"] == c

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
    with client(fake, fake.token) as gh:
        main = ok(gh.get(f"{REPO}/git/ref/heads/main"))["object"]["sha"]
        base = ok(gh.get(f"{REPO}/git/commits/{main}"))
        element = {"path": "x.yaml", "mode": "100644", "type": "blob", "content": "x: 1\n"}
        tree = ok(
            gh.post(f"{REPO}/git/trees", json={"tree": [element], "base_tree": base["tree"]["sha"]})
        )
        commit = ok(
            gh.post(
                f"{REPO}/git/commits", json={"message": "x", "tree": tree["sha"], "parents": [main]}
            )
        )["sha"]
        ref = {"ref": "refs/heads/pgdb/x", "sha": commit}
        pull = {"base": "main", "head": "pgdb/x", "title": "t", "body": "b"}
        ok(gh.post(f"{REPO}/git/refs", json=ref))
        ok(gh.post(f"{REPO}/pulls", json=pull))

        ref_exists = gh.post(f"{REPO}/git/refs", json=ref)
        assert ref_exists.status_code == 422
        assert ref_exists.json()["message"] == "Reference already exists"
        pull_exists = gh.post(f"{REPO}/pulls", json=pull)
        assert pull_exists.status_code == 422
        assert pull_exists.json()["errors"][0]["message"] == (
            "A pull request already exists for acme:pgdb/x."
        )
        check_run = gh.post(
            f"{REPO}/check-runs",
            json={
                "name": "pgdb/role",
                "head_sha": commit,
                "status": "completed",
                "conclusion": "success",
            },
        )
        assert check_run.status_code == 403
        # moving a branch: forced, and refused for a branch that does not exist
        moved = gh.patch(f"{REPO}/git/refs/heads/pgdb/x", json={"sha": main, "force": True})
        assert ok(moved)["object"]["sha"] == main
        gone = gh.patch(f"{REPO}/git/refs/heads/pgdb/none", json={"sha": main, "force": True})
        assert (gone.status_code, gone.json()["message"]) == (422, "Reference does not exist")
        # without the owner, GitHub ignores the head filter and lists every open pull request
        ok(gh.post(f"{REPO}/git/refs", json={"ref": "refs/heads/other", "sha": commit}))
        ok(gh.post(f"{REPO}/pulls", json=pull | {"head": "other"}))
        assert len(ok(gh.get(f"{REPO}/pulls", params={"state": "open", "head": "pgdb/x"}))) == 2
        assert (
            len(ok(gh.get(f"{REPO}/pulls", params={"state": "open", "head": "acme:pgdb/x"}))) == 1
        )


def test_lists_are_paged_with_link_headers(fake_github: FakeGitHub) -> None:
    fake = fake_github
    with client(fake, fake.token) as gh:
        main = ok(gh.get(f"{REPO}/git/ref/heads/main"))["object"]["sha"]
        for n in range(3):
            ok(gh.post(f"{REPO}/statuses/{main}", json={"state": "success", "context": f"c{n}"}))
        first = gh.get(f"{REPO}/statuses/{main}", params={"per_page": 2})
        assert len(ok(first)) == 2
        following = first.links["next"]["url"]
        assert following.startswith(fake.url + REPO)
        second = gh.get(following)
        assert len(ok(second)) == 1 and "next" not in second.links


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
    app = AppCredentials(app_id="123", private_key=Secret(github_app_key), installation_id=456)

    with client(fake, app_jwt(app).reveal()) as as_app:
        issued = ok(as_app.post("/app/installations/456/access_tokens"))
        assert issued["token"].startswith("ghs_") and issued["expires_at"].endswith("Z")
    with client(fake, issued["token"]) as gh:
        repo = ok(gh.get(REPO))
        sha = ok(gh.get(f"{REPO}/branches/{repo['default_branch']}"))["commit"]["sha"]
        run = {"name": "pgdb/role", "head_sha": sha, "status": "completed", "conclusion": "success"}
        ok(gh.post(f"{REPO}/check-runs", json=run))

    assert [(c.method, c.path, c.auth) for c in fake.calls] == [
        ("POST", "/app/installations/456/access_tokens", "jwt"),
        ("GET", "/repos/acme/gitops", "installation"),
        ("GET", "/repos/acme/gitops/branches/main", "installation"),
        ("POST", "/repos/acme/gitops/check-runs", "installation"),
    ]
    assert fake.check_runs[0]["conclusion"] == "success"


def test_a_token_signed_by_another_key_or_expired_is_refused(
    fake_github: FakeGitHub, github_app_key: str
) -> None:
    fake = fake_github
    fake.register_app(
        app_id=123, private_key_pem=github_app_key, installation_id=456, permissions={}
    )
    app = AppCredentials(app_id="123", private_key=Secret(github_app_key), installation_id=456)
    stale = app_jwt(app, now=1_000_000_000).reveal()  # expired long ago
    signed = app_jwt(app).reveal()
    middle = len(signed) - 40  # a character of the signature
    tampered = signed[:middle] + ("B" if signed[middle] != "B" else "C") + signed[middle + 1 :]

    for token in (stale, tampered):
        with client(fake, token) as as_app:
            refused = as_app.post("/app/installations/456/access_tokens")
        assert refused.status_code == 401
    assert fake.installation_tokens == {}
