"""End to end with GitHub as the git host: the console, a real PostgreSQL, and the fake GitHub
on loopback selected by the PGDB_GITHUB_* variables (the local repository is then unused)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ruamel.yaml import YAML

from bot import localmode
from bot.config import Settings
from bot.core.manifests.validate import validate_database, validate_infisical_secret
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.github import FakeGitHub
from tests.fixtures.gitrepo import KUBECTL, MANIFESTS

pytestmark = one_account()  # GitHub's cases: tests/fixtures/bot.py

CONTEXTS = {"pgdb/secret", "pgdb/role", "pgdb/manifests"}


def github_env(fake: FakeGitHub) -> dict[str, str]:
    """The bot on the fake GitHub. Its writes are not spaced: GitHub's second between writes
    would add 6 s to every onboarding (tests/adapters/test_github.py checks the spacing)."""
    return {
        "PGDB_GITHUB_REPO": fake.full_name,
        "PGDB_GITHUB_API_URL": fake.url,
        "PGDB_GITHUB_TOKEN": fake.token,
        "PGDB_GITHUB_LABELS": "pgdb",
        "PGDB_GITHUB_WRITE_SPACING": "0",
    }


def test_create_opens_exactly_one_pull_request_with_the_three_files(
    bot_env: BotEnv, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake = fake_github
    base = fake.branch_sha("main")

    first = bot_env.console("/pgdb create docspell", **github_env(fake))

    assert first.returncode == 0, first.stderr
    [pr] = fake.open_pulls()
    url = f"{fake.root}/acme/gitops/pull/{pr.number}"
    assert f"Pull request: {url}" in first.stdout, first.stdout
    assert (pr.head, pr.base, pr.title, pr.labels) == (
        "pgdb/docspell",
        "main",
        "pgdb: onboard docspell",
        ["pgdb"],
    )
    head = fake.branch_sha("pgdb/docspell")
    assert fake.git("rev-parse", "pgdb/docspell^").strip() == base
    assert sorted(fake.git("diff", "--name-status", "main", "pgdb/docspell").splitlines()) == [
        f"A\t{MANIFESTS}/credentials/docspell-secret.yaml",
        f"A\t{MANIFESTS}/databases/docspell.yaml",
        f"M\t{MANIFESTS}/kustomization.yaml",
    ]
    checkout = fake.checkout("pgdb/docspell", tmp_path / "checkout")
    folder = checkout / MANIFESTS
    assert validate_database((folder / "databases" / "docspell.yaml").read_text()) == []
    assert (
        validate_infisical_secret((folder / "credentials" / "docspell-secret.yaml").read_text())
        == []
    )
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(folder)], capture_output=True, text=True, check=True
    )
    names = {(d["kind"], d["metadata"]["name"]) for d in YAML(typ="safe").load_all(built.stdout)}
    assert {
        ("Database", "docspell"),
        ("InfisicalSecret", "docspell-postgresql-credentials"),
    } <= names
    assert head is not None
    latest = {s["context"]: s["state"] for s in fake.statuses[head]}
    assert latest == dict.fromkeys(CONTEXTS, "success")
    fake.clear_calls()

    second = bot_env.console("/pgdb create docspell", "/pgdb status docspell", **github_env(fake))

    assert second.returncode == 0, second.stderr
    assert len(fake.pulls) == 1
    assert fake.writes() == []
    assert fake.branch_sha("pgdb/docspell") == head
    assert "reused the open proposal" in second.stdout
    assert (
        f"#1 open: {url} (pgdb/secret success, pgdb/role success, pgdb/manifests success)"
        " [git (GitHub)]" in second.stdout
    ), second.stdout
    # GitHub was the host: the local repository was not touched
    assert bot_env.git("branch", "--list", "pgdb/*") == ""
    password = bot_env.stored("docspell")
    assert password is not None
    for output in (first, second):
        assert fake.token not in output.stdout + output.stderr
        assert password not in output.stdout + output.stderr
    assert password not in pr.body


def test_local_mode_makes_no_demo_repository_when_github_is_the_host(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        pg_dsn="postgresql://nobody@127.0.0.1:1/postgres",
        state_dir=tmp_path / "state",
        secrets_dir=tmp_path / "secrets",
        github_repo="acme/gitops",
        github_token="ghp_not_used",
    )

    prepared, notes = localmode.prepare(settings)

    assert not (tmp_path / "state" / "gitops").exists()
    assert prepared.gitops_repo is None
    assert "GitOps repo: GitHub acme/gitops at https://api.github.com (branch main)" in notes
