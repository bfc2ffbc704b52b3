"""End to end on Mattermost: `pgdb-bot run` in a subprocess, configured like production and
pointed at a fake Mattermost server on loopback; slash commands and button clicks are POSTed to
its real endpoints, as Mattermost would, and the test looks at what reached Mattermost and at
PostgreSQL, the secret store and the GitOps repository."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.pgcluster import free_port
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.mattermost import BOT_TOKEN, FakeMattermost

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py

CHANNEL = "devchannel0000000000000001"
OPS = "opschannel0000000000000001"
REQUESTER = "requester00000000000000001"
OPERATOR = "operator000000000000000001"
COMMAND_TOKEN = "commandtoken00000000000001"
ACTION_SECRET = "e2e-action-secret-0123456789"
PATCH = r"/api/v4/posts/\w+/patch"


@dataclass
class RunningBot:
    """`pgdb-bot run` serving Mattermost, and how to talk to it as Mattermost does."""

    process: subprocess.Popen[str]
    url: str
    log: Path
    hooks_url: str  # where the commands' response_url points (the fake Mattermost)

    def command(
        self,
        text: str,
        *,
        user: str = REQUESTER,
        token: str | None = COMMAND_TOKEN,
        root_id: str = "",
    ) -> httpx.Response:
        """The custom slash command's request: a form body and the `Token` header."""
        body = {
            "channel_id": CHANNEL,
            "channel_name": "dev",
            "command": "/pgdb",
            "response_url": f"{self.hooks_url}/hooks/commands/{user}",
            "root_id": root_id,
            "team_domain": "platform",
            "team_id": "teamid00000000000000000001",
            "text": text,
            "trigger_id": "dHJpZ2dlcg==",
            "user_id": user,
            "user_name": "alan" if user == REQUESTER else "olga",
        }
        headers = {"Accept": "application/json", "User-Agent": "Mattermost-Bot/1.1"}
        if token is not None:
            body["token"] = token
            headers["Authorization"] = f"Token {token}"
        return httpx.post(f"{self.url}/mattermost/command", data=body, headers=headers, timeout=35)

    def click(
        self, context: dict[str, Any], *, user: str, post_id: str, channel: str = CHANNEL
    ) -> httpx.Response:
        """A button click as Mattermost POSTs it to ``integration.url`` (no auth header)."""
        payload = {
            "user_id": user,
            "user_name": "olga",
            "channel_id": channel,
            "channel_name": "dev",
            "team_id": "teamid00000000000000000001",
            "team_domain": "platform",
            "post_id": post_id,
            "trigger_id": "dHJpZ2dlcg==",
            "type": "button",
            "data_source": "",
            "context": context,
        }
        return httpx.post(f"{self.url}/mattermost/actions", json=payload, timeout=35)

    def stop(self) -> str:
        """SIGTERM, as Kubernetes stops it; the process's log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()


@pytest.fixture
def bot(bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path) -> Iterator[RunningBot]:
    with _running_bot(bot_env, fake_mattermost, tmp_path) as running:
        yield running


@contextmanager
def _running_bot(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path, **extra: str
) -> Iterator[RunningBot]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = bot_env.env(
        PGDB_HTTP_PORT=str(port),
        PGDB_MATTERMOST_URL=fake_mattermost.url,
        PGDB_MATTERMOST_BOT_TOKEN=BOT_TOKEN,
        PGDB_MATTERMOST_COMMAND_TOKEN=COMMAND_TOKEN,
        PGDB_MATTERMOST_OPS_CHANNEL=OPS,
        PGDB_PUBLIC_URL=url,
        PGDB_ACTION_SECRET=ACTION_SECRET,
        **{"PGDB_OPERATORS": OPERATOR, **extra},
    )
    log = tmp_path / "pgdb-bot.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env=env,
            cwd=bot_env.state_dir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = RunningBot(process=process, url=url, log=log, hooks_url=fake_mattermost.url)
    try:
        _wait_until_healthy(running)
        yield running
    finally:
        running.stop()


def _wait_until_healthy(bot: RunningBot, *, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:  # one client: each new one loads the CA bundle
        while time.monotonic() < end:
            if bot.process.poll() is not None:
                raise AssertionError(f"pgdb-bot run exited early:\n{bot.log.read_text()}")
            try:
                if client.get(f"{bot.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
    raise AssertionError(f"pgdb-bot run did not become healthy:\n{bot.log.read_text()}")


def _post_saying(fake: FakeMattermost, text: str, *, timeout: float = 60) -> dict[str, Any]:
    fake.wait_for(
        lambda: any(text in p["message"] for p in fake.posts_in(CHANNEL)), timeout=timeout
    )
    [post] = [p for p in fake.posts_in(CHANNEL) if text in p["message"]]
    return post


def _role_can_login(env: BotEnv, role: str) -> list[tuple[object, ...]]:
    return env.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", role)


def test_create_by_slash_command_posts_progress_and_onboards_the_app(
    bot: RunningBot, fake_mattermost: FakeMattermost, bot_env: BotEnv
) -> None:
    thread = fake_mattermost.user_post(CHANNEL, "we need a database", user_id=REQUESTER)
    fake_mattermost.fail("PUT", PATCH, status=503)  # the first update meets a server error

    started = time.monotonic()
    response = bot.command("create docspell", root_id=thread)
    ack = time.monotonic() - started

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "response_type": "ephemeral",
        "text": "⏳ Working on `/pgdb create docspell`…",
    }
    assert ack < 1.0
    post = _post_saying(fake_mattermost, "Onboarded `docspell`")
    assert post["root_id"] == thread
    assert post["user_id"] != REQUESTER  # posted by the bot account
    assert "✅ Credentials in the secret store — done" in post["message"]
    assert "✅ PostgreSQL role — done" in post["message"]
    assert "postgresql://docspell:<password>@postgresql-shared-rw.databases.svc" in post["message"]
    assert post["message"].endswith("_`/pgdb create docspell` · @alan_")

    # the command's own message (a scheduled alert would go to the ops channel)
    creates = [
        c
        for c in fake_mattermost.recorded("POST", "/api/v4/posts")
        if c.body.get("channel_id") == CHANNEL
    ]
    patches = fake_mattermost.recorded("PUT", rf"/api/v4/posts/{post['id']}/patch")
    assert len(creates) == 1
    assert "Onboarding `docspell`" in creates[0].body["message"]
    assert patches[0].status == 503
    assert patches[1].status == 200
    assert patches[1].body == patches[0].body  # the failed update, retried as it was
    assert "Onboarded `docspell`" in patches[-1].body["message"]  # later ones follow it
    assert all(c.headers["authorization"] == f"Bearer {BOT_TOKEN}" for c in creates + patches)

    assert _role_can_login(bot_env, "docspell") == [(True,)]
    password = bot_env.stored("docspell")
    assert password is not None
    assert bot_env.can_login("docspell", password)
    assert bot_env.git("rev-parse", "--verify", "pgdb/docspell").strip()
    [entry] = bot_env.audit_once(lambda entries: len(entries) >= 1)
    assert (entry.user, entry.platform, entry.command, entry.result) == (
        REQUESTER,
        "mattermost",
        "/pgdb create docspell",
        "ok",
    )
    # health, readiness and the command counter moved by this chat command (/metrics)
    assert httpx.get(f"{bot.url}/healthz").status_code == 200
    assert httpx.get(f"{bot.url}/readyz").status_code == 200
    metrics = httpx.get(f"{bot.url}/metrics").text
    assert 'pgdb_commands_total{command="create",result="ok"} 1.0' in metrics
    assert 'pgdb_workflow_step_seconds_count{step="create-role"} 1.0' in metrics

    log = bot.stop()
    for where, text in {
        "Mattermost requests": fake_mattermost.everything_sent(),
        "command response": response.text,
        "bot log": log,
    }.items():
        assert password not in text, f"the password reached the {where}"
    assert COMMAND_TOKEN not in log
    assert BOT_TOKEN not in log
    # The numbers the issue asks for (shown with `pytest -s`).
    print(
        f"\nMattermost create: ack {ack * 1000:.0f} ms; REST calls: {len(creates)} create, "
        f"{len(patches)} patches ({sum(c.status >= 500 for c in patches)} failed and retried)"
    )


def test_a_wrong_or_missing_token_gets_401_and_changes_nothing(
    bot: RunningBot, fake_mattermost: FakeMattermost, bot_env: BotEnv
) -> None:
    refs_before = bot_env.git("for-each-ref")
    wrong = "wrongtoken0000000000000001"

    refused = [
        bot.command("create docspell", token=wrong),
        bot.command("create docspell", token=None),
    ]

    assert [r.status_code for r in refused] == [401, 401]
    time.sleep(1.0)
    assert fake_mattermost.calls == []
    assert _role_can_login(bot_env, "docspell") == []
    assert bot_env.stored("docspell") is None
    assert bot_env.git("for-each-ref") == refs_before
    log = bot.stop()
    assert log.count("wrong or missing token") == 2
    assert wrong not in log


def test_a_repair_button_is_checked_and_authorized_on_every_click(
    bot: RunningBot, fake_mattermost: FakeMattermost, bot_env: BotEnv
) -> None:
    assert bot.command("create docspell").status_code == 200
    _post_saying(fake_mattermost, "Onboarded `docspell`")
    bot_env.sql("DROP ROLE docspell")  # the seed's failure: the role is gone

    assert bot.command("repair docspell", user=OPERATOR).status_code == 200
    confirm = _post_saying(fake_mattermost, "Repair `docspell`: confirm")
    [action] = confirm["props"]["attachments"][0]["actions"]
    assert action["integration"]["url"] == f"{bot.url}/mattermost/actions"
    context = action["integration"]["context"]
    assert context["command"] == "/pgdb repair docspell --yes"

    forged = bot.click(
        {**context, "command": "/pgdb offboard docspell --yes"},
        user=OPERATOR,
        post_id=confirm["id"],
    )
    assert forged.status_code == 403

    by_requester = bot.click(context, user=REQUESTER, post_id=confirm["id"])
    assert by_requester.status_code == 200
    assert "Not allowed" in by_requester.json()["ephemeral_text"]
    time.sleep(0.5)
    assert _role_can_login(bot_env, "docspell") == []
    assert fake_mattermost.posts[confirm["id"]]["props"]["attachments"][0]["actions"]

    # a button works once (its nonce is spent, whoever clicked): a fresh one is asked for
    again = bot.click(context, user=OPERATOR, post_id=confirm["id"])
    assert again.status_code == 200  # answered in the response, or as an ephemeral post
    fake_mattermost.wait_for(
        lambda: "already received once" in again.text + fake_mattermost.everything_sent()
    )
    assert bot.command("repair docspell", user=OPERATOR).status_code == 200
    fake_mattermost.wait_for(
        lambda: (
            len([p for p in fake_mattermost.posts_in(CHANNEL) if "confirm" in p["message"]]) == 2
        )
    )
    confirm = [p for p in fake_mattermost.posts_in(CHANNEL) if "confirm" in p["message"]][-1]
    [action] = confirm["props"]["attachments"][0]["actions"]
    context = action["integration"]["context"]
    by_operator = bot.click(context, user=OPERATOR, post_id=confirm["id"])
    assert by_operator.status_code == 200
    fake_mattermost.wait_for(
        lambda: "Repair `docspell`: done" in fake_mattermost.posts[confirm["id"]]["message"],
        timeout=60,
    )
    assert fake_mattermost.posts[confirm["id"]]["props"] == {"attachments": []}  # no more buttons
    password = bot_env.stored("docspell")
    assert password is not None
    assert bot_env.can_login("docspell", password)

    audit = [
        (e.user, e.command, e.result)
        for e in bot_env.audit_once(lambda entries: sum("--yes" in e.command for e in entries) >= 3)
        if "--yes" in e.command
    ]
    assert sorted(audit) == sorted(
        [
            (REQUESTER, "/pgdb repair docspell --yes", "refused"),
            (OPERATOR, "/pgdb repair docspell --yes", "replayed"),
            (OPERATOR, "/pgdb repair docspell --yes", "ok"),
        ]
    )
    log = bot.stop()
    assert password not in fake_mattermost.everything_sent()
    assert password not in log
    assert ACTION_SECRET not in log


@pytest.mark.slow
def test_follow_through_says_ready_in_the_command_thread_once_the_app_is_usable(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    with _running_bot(bot_env, fake_mattermost, tmp_path, PGDB_DIAGNOSE_INTERVAL="1s") as bot:
        thread = fake_mattermost.user_post(CHANNEL, "we need a database", user_id=REQUESTER)
        assert bot.command("create docspell", root_id=thread).status_code == 200
        _post_saying(fake_mattermost, "Onboarded `docspell`")
        time.sleep(3)  # a few passes: the manifests are on their branch, no database yet
        assert not [p for p in fake_mattermost.posts_in(CHANNEL) if "is ready" in p["message"]]

        bot_env.git("merge", "-q", "--ff-only", "pgdb/docspell")  # the PR is merged
        bot_env.sql("CREATE DATABASE docspell OWNER docspell")  # CloudNativePG applies it
        ready = _post_saying(fake_mattermost, "`docspell` is ready", timeout=30)
        assert ready["root_id"] == thread
        time.sleep(2.5)  # later passes say nothing more
        said = [p for p in fake_mattermost.posts_in(CHANNEL) if "is ready" in p["message"]]
        assert len(said) == 1
        password = bot_env.stored("docspell")
        assert password is not None and password not in ready["message"]
        assert bot.stop().count("follow-through: docspell ready") == 1
