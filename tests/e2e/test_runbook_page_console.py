"""The runbook page in the GitOps folder, through the console (local git, then the fake
GitHub): `/pgdb create` proposes the app's line in "Applications déployées" with the
manifests, `/pgdb offboard` proposes its removal, and the rest of the page reaches the
branches byte for byte."""

from __future__ import annotations

import subprocess

from tests.e2e.test_github_console import github_env
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.github import FakeGitHub
from tests.fixtures.gitrepo import MANIFESTS, git

pytestmark = one_account()  # the GitOps repository's page cases: tests/fixtures/bot.py

PAGE_PATH = f"{MANIFESTS}/README.md"
LINE = b"- **Nextcloud**: onboarded with pgdb-bot (database: `nextcloud`, user: `nextcloud`)\n"
# The runbook page as the team keeps it (CRLF-free, UTF-8, trailing spaces and a code block
# whose comment looks like a heading included): every byte of it must survive.
PAGE = """# PostgreSQL Shared Cluster

Cluster PostgreSQL mutualisé pour toutes les applications nécessitant une base de données.\x20\x20

## Troubleshooting

```bash
# Vérifier si le user existe
kubectl exec -n databases postgresql-shared-1 -- psql -U postgres -c "\\du"
```

## Applications déployées

- **Docspell**: Document management system (database: `docspell`, user: `docspell`)
- **Zammad**: Helpdesk (database: `zammad`, user: `zammad`)

## Tâches à venir

- [ ] Intégrer monitoring Prometheus
""".encode()
WITH_LINE = PAGE.replace(b"- **Zammad**", LINE + b"- **Zammad**")


def page(env: BotEnv, ref: str) -> bytes:
    """The page's bytes at ``ref`` (no newline translation on the way)."""
    return subprocess.run(
        ["git", "-C", str(env.repo), "show", f"{ref}:{PAGE_PATH}"],
        capture_output=True,
        check=True,
    ).stdout


def commit_page(env: BotEnv, text: bytes, message: str) -> None:
    (env.repo / PAGE_PATH).write_bytes(text)
    git(env.repo, "add", PAGE_PATH)
    git(env.repo, "commit", "-q", "-m", message)


def test_create_adds_the_line_and_offboard_removes_it(bot_env: BotEnv) -> None:
    commit_page(bot_env, PAGE, "The runbook page")

    created = bot_env.console("/pgdb create nextcloud")

    assert "Onboarded `nextcloud`" in created.stdout, created.stdout + created.stderr
    assert page(bot_env, "pgdb/nextcloud") == WITH_LINE  # sorted in, the rest as it was
    assert page(bot_env, "main") == PAGE
    assert sorted(bot_env.git("diff", "--name-only", "main", "pgdb/nextcloud").split()) == sorted(
        [
            f"{MANIFESTS}/credentials/nextcloud-secret.yaml",
            f"{MANIFESTS}/databases/nextcloud.yaml",
            f"{MANIFESTS}/kustomization.yaml",
            PAGE_PATH,
        ]
    )
    git(bot_env.repo, "merge", "-q", "--no-ff", "-m", "Merge onboarding", "pgdb/nextcloud")

    done = bot_env.console("/pgdb offboard nextcloud --yes")

    assert "Offboarded `nextcloud`" in done.stdout, done.stdout + done.stderr
    assert page(bot_env, "pgdb-offboard/nextcloud") == PAGE
    git(
        bot_env.repo, "merge", "-q", "--no-ff", "-m", "Merge offboarding", "pgdb-offboard/nextcloud"
    )
    assert page(bot_env, "main") == PAGE


def test_the_line_alone_is_no_reason_for_a_proposal(bot_env: BotEnv) -> None:
    commit_page(bot_env, PAGE, "The runbook page")
    assert "Onboarded `nextcloud`" in bot_env.console("/pgdb create nextcloud").stdout
    git(bot_env.repo, "merge", "-q", "--no-ff", "-m", "Merge onboarding", "pgdb/nextcloud")
    commit_page(bot_env, PAGE, "The list is kept by hand")  # someone took the line out again
    branch = bot_env.git("rev-parse", "pgdb/nextcloud")

    again = bot_env.console("/pgdb create nextcloud")

    assert "the manifests are already on branch main" in again.stdout, again.stdout
    assert bot_env.git("rev-parse", "pgdb/nextcloud") == branch
    assert page(bot_env, "main") == PAGE


def test_on_github_the_pull_requests_carry_the_page(
    bot_env: BotEnv, fake_github: FakeGitHub
) -> None:
    env = github_env(fake_github)
    fake_github.commit_on("main", {PAGE_PATH: PAGE.decode()}, "The runbook page")

    created = bot_env.console("/pgdb create nextcloud", **env)

    assert "Onboarded `nextcloud`" in created.stdout, created.stdout + created.stderr
    [onboarding] = fake_github.open_pulls()
    shown = fake_github.git("show", f"{onboarding.head}:{PAGE_PATH}")
    assert shown.encode() == WITH_LINE
    fake_github.merge(onboarding.number)

    done = bot_env.console("/pgdb offboard nextcloud --yes", **env)

    assert "Offboarded `nextcloud`" in done.stdout, done.stdout + done.stderr
    [offboarding] = fake_github.open_pulls()
    assert offboarding.head == "pgdb-offboard/nextcloud"
    assert fake_github.git("show", f"{offboarding.head}:{PAGE_PATH}").encode() == PAGE
