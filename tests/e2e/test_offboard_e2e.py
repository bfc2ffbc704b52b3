"""``/pgdb offboard`` end to end on every chat surface: the console (`pgdb-bot console`, local
git and then the fake GitHub), Slack and Mattermost (`pgdb-bot run` against their fakes, the
confirmation button clicked), with real PostgreSQL and the data really kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from tests.e2e.test_github_console import github_env
from tests.e2e.test_mattermost_run import OPERATOR as MM_OPERATOR
from tests.e2e.test_mattermost_run import _post_saying, _running_bot
from tests.e2e.test_slack_run import CHANNEL, OPERATOR, click, final_message, running, slack_env
from tests.fixtures.bot import BotEnv
from tests.fixtures.github import FakeGitHub
from tests.fixtures.gitrepo import MANIFESTS, git
from tests.fixtures.mattermost import FakeMattermost
from tests.fixtures.postgres import with_params
from tests.fixtures.slack import FakeSlack

BRANCH = "pgdb-offboard/docspell"


def _data(env: BotEnv, password: str) -> None:
    """What CloudNativePG and the app do once the onboarding is merged."""
    env.sql("CREATE DATABASE docspell OWNER docspell")
    dsn = with_params(env.superuser_dsn, user="docspell", password=password, dbname="docspell")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes VALUES (1, 'invoice'), (2, 'receipt')")


def _rows(env: BotEnv, *, password: str | None = None) -> list[tuple[object, ...]]:
    dsn = with_params(env.superuser_dsn, dbname="docspell")
    if password is not None:
        dsn = with_params(dsn, user="docspell", password=password)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()


def test_console_offboard_then_create_on_local_git(bot_env: BotEnv) -> None:
    created = bot_env.console("/pgdb create docspell")
    assert "Onboarded `docspell`" in created.stdout, created.stdout + created.stderr
    git(bot_env.repo, "merge", "-q", "--no-ff", "-m", "Merge onboarding", "pgdb/docspell")
    password = bot_env.stored("docspell")
    assert password is not None
    _data(bot_env, password)

    asked = bot_env.console("/pgdb offboard docspell")
    assert "Offboard `docspell`: confirm" in asked.stdout, asked.stdout
    assert "/pgdb offboard docspell --yes" in asked.stdout
    assert bot_env.git("branch", "--list", BRANCH) == ""
    assert bot_env.can_login("docspell", password)

    done = bot_env.console("/pgdb offboard docspell --yes", "/pgdb offboard docspell --yes")

    assert done.returncode == 0, done.stderr
    assert "Offboarded `docspell`" in done.stdout, done.stdout
    assert "`docspell` is already offboarded: nothing to do" in done.stdout
    assert not bot_env.can_login("docspell", password)
    git(bot_env.repo, "merge", "-q", "--no-ff", "-m", "Merge offboarding", BRANCH)
    assert not (bot_env.repo / MANIFESTS / "databases" / "docspell.yaml").exists()
    assert _rows(bot_env) == [(1, "invoice"), (2, "receipt")]

    looked = bot_env.console("/pgdb status docspell", "/pgdb list")
    assert "Status of `docspell`: offboarded" in looked.stdout, looked.stdout
    assert "docspell: offboarded on" in looked.stdout
    diagnosed = bot_env.diagnose("--json")
    found = json.loads(diagnosed.stdout)["findings"]
    assert [f for f in found if f["app"] == "docspell"] == [], found

    back = bot_env.console("/pgdb create docspell")

    assert "Onboarded `docspell`" in back.stdout, back.stdout
    assert bot_env.stored("docspell") == password
    assert _rows(bot_env, password=password) == [(1, "invoice"), (2, "receipt")]
    for output in (created, asked, done, looked, back):
        assert password not in output.stdout + output.stderr


@pytest.mark.slow
def test_console_offboard_on_github_with_a_server_error_then_a_rerun(
    bot_env: BotEnv, fake_github: FakeGitHub
) -> None:
    env = github_env(fake_github)
    assert "Onboarded `docspell`" in bot_env.console("/pgdb create docspell", **env).stdout
    [onboarding] = fake_github.open_pulls()
    fake_github.merge(onboarding.number)
    password = bot_env.stored("docspell")
    assert password is not None
    _data(bot_env, password)
    fake_github.fail("POST", r"/git/trees$", status=502, times=10)

    failed = bot_env.console("/pgdb offboard docspell --yes", **env)

    assert "Offboard `docspell`: stopped" in failed.stdout, failed.stdout
    assert "502" in failed.stdout
    assert fake_github.open_pulls() == []
    assert bot_env.can_login("docspell", password)  # stopped before the role
    fake_github.faults.clear()

    done = bot_env.console("/pgdb offboard docspell --yes", **env)

    assert "Offboarded `docspell`" in done.stdout, done.stdout
    [pr] = fake_github.open_pulls()
    assert (pr.head, pr.title) == (BRANCH, "pgdb: offboard docspell")
    assert sorted(fake_github.git("diff", "--name-status", "main", BRANCH).splitlines()) == [
        f"D\t{MANIFESTS}/credentials/docspell-secret.yaml",
        f"D\t{MANIFESTS}/databases/docspell.yaml",
        f"M\t{MANIFESTS}/kustomization.yaml",
    ]
    assert not bot_env.can_login("docspell", password)
    status = bot_env.console("/pgdb status docspell", **env)
    assert "Status of `docspell`: offboarded" in status.stdout, status.stdout
    assert f"The offboarding proposal {fake_github.root}/acme/gitops/pull/{pr.number}" in (
        status.stdout
    )

    fake_github.merge(pr.number)
    assert _rows(bot_env) == [(1, "invoice"), (2, "receipt")]
    back = bot_env.console("/pgdb create docspell", **env)

    assert "Onboarded `docspell`" in back.stdout, back.stdout
    assert _rows(bot_env, password=password) == [(1, "invoice"), (2, "receipt")]
    assert [p.head for p in fake_github.open_pulls()] == ["pgdb/docspell"]
    assert password not in pr.body


def test_slack_offboard_button(bot_env: BotEnv, slack_api: FakeSlack) -> None:
    env = bot_env.env(**slack_env(slack_api, PGDB_OPERATORS=OPERATOR))
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command("create docspell")
        final_message(slack_api, CHANNEL, "Onboarded `docspell`")
        password = bot_env.stored("docspell")
        assert password is not None

        bot.command("offboard docspell", user=OPERATOR)
        prompt = final_message(slack_api, CHANNEL, "Offboard `docspell`: confirm")
        actions = next(b for b in prompt.blocks if b["type"] == "actions")
        assert actions["elements"][0]["style"] == "danger"
        assert bot_env.can_login("docspell", password)

        accepted, _ = click(bot, prompt, user=OPERATOR, label="Offboard")

        assert accepted.status_code == 200
        final_message(slack_api, CHANNEL, "Offboarded `docspell`")
        offboarded = slack_api.messages[(CHANNEL, prompt.ts)]  # the same message, updated
        assert '"actions"' not in json.dumps(offboarded.blocks)
        assert not bot_env.can_login("docspell", password)
        records = bot_env.services().state.workflows()
        assert [(w.kind, w.status.value) for w in records if w.app == "docspell"] == [
            ("offboard", "done")
        ]
        assert password not in slack_api.everything_sent()


def test_mattermost_offboard_button(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    with _running_bot(bot_env, fake_mattermost, tmp_path) as bot:
        assert bot.command("create docspell").status_code == 200
        _post_saying(fake_mattermost, "Onboarded `docspell`")
        password = bot_env.stored("docspell")
        assert password is not None

        assert bot.command("offboard docspell", user=MM_OPERATOR).status_code == 200
        confirm = _post_saying(fake_mattermost, "Offboard `docspell`: confirm")
        [action] = confirm["props"]["attachments"][0]["actions"]
        context = action["integration"]["context"]
        assert context["command"] == "/pgdb offboard docspell --yes"
        time.sleep(0.3)
        assert bot_env.can_login("docspell", password)

        clicked = bot.click(context, user=MM_OPERATOR, post_id=confirm["id"])

        assert clicked.status_code == 200
        fake_mattermost.wait_for(
            lambda: "Offboarded `docspell`" in fake_mattermost.posts[confirm["id"]]["message"],
            timeout=60,
        )
        assert fake_mattermost.posts[confirm["id"]]["props"] == {"attachments": []}
        assert not bot_env.can_login("docspell", password)
        assert password not in fake_mattermost.everything_sent()
