"""`pgdb-bot run` with Slack, started as an operator would start it, against a fake Slack.

Signed requests go to the bot's real HTTP endpoint; the real slack_sdk inside the bot talks to
the fake Web API on loopback (tests/fixtures/slack.py).
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.pgcluster import free_port
from tests.fixtures.bot import BotEnv, one_account, wait_healthy
from tests.fixtures.slack import FakeSlack, FakeSocketMode, Message, slack_signature

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py

SECRET = "e2e-signing-secret-1234"
CHANNEL = "C0PGDB"
REQUESTER = "U0DEV"
OPERATOR = "U0OPS"


@dataclass
class SlackBot:
    process: subprocess.Popen[str]
    port: int
    slack: FakeSlack

    http: httpx.Client

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, float]:
        """POST to /slack/events; the answer and how long it took to arrive."""
        start = time.monotonic()
        response = self.http.post(
            f"http://127.0.0.1:{self.port}/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )
        return response, time.monotonic() - start

    def command(
        self, text: str, *, user: str = REQUESTER, channel: str = CHANNEL
    ) -> tuple[httpx.Response, float, str]:
        """A signed slash command; the HTTP answer, its latency and the response_url."""
        response_url = self.slack.response_url()
        body = slash_body(text, user=user, channel=channel, response_url=response_url)
        response, elapsed = self.post(body, signed(body))
        return response, elapsed, response_url

    def logs(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        _, stderr = self.process.communicate(timeout=40)
        return stderr


def slash_body(text: str, *, user: str, channel: str, response_url: str) -> bytes:
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0FAKE",
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "platform",
            "user_id": user,
            "user_name": "someone",
            "command": "/pgdb",
            "text": text,
            "api_app_id": "A0PGDB",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    ).encode()


def signed(body: bytes, *, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    timestamp = int(time.time()) - age
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(secret, body, timestamp),
    }


@contextmanager
def running(env: dict[str, str], cwd: Path, slack: FakeSlack) -> Iterator[SlackBot]:
    port = free_port()
    env = {**env, "PGDB_HTTP_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(process, port)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        with httpx.Client(timeout=10, limits=limits) as http:
            yield SlackBot(process=process, port=port, slack=slack, http=http)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def slack_env(slack: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        "PGDB_SLACK_BOT_TOKEN": "xoxb-e2e-bot-token",
        "PGDB_SLACK_SIGNING_SECRET": SECRET,
        "PGDB_SLACK_API_URL": slack.api_url,
        "PGDB_OPS_CHANNEL": "C0OPS",
        "PGDB_LOG_FORMAT": "text",
        **extra,
    }


@pytest.fixture
def slack_bot(bot_env: BotEnv, slack_api: FakeSlack) -> Iterator[SlackBot]:
    with running(bot_env.env(**slack_env(slack_api)), bot_env.state_dir, slack_api) as bot:
        yield bot


def final_message(slack: FakeSlack, channel: str, title: str) -> Message:
    """The command's channel message once its final text (``title``) is in it."""

    def done() -> Message | None:
        return next((m for m in slack.channel_messages(channel) if title in m.text), None)

    found: Message = slack.wait_for(done)
    return found


def web_api_calls(slack: FakeSlack) -> list[str]:
    return [c.method for c in slack.calls if c.method not in {"auth.test"}]


# --- the whole create workflow ------------------------------------------------------------


def test_signed_create_is_acked_fast_then_shown_in_place(
    slack_bot: SlackBot, bot_env: BotEnv
) -> None:
    slack = slack_bot.slack

    response, elapsed, response_url = slack_bot.command("create docspell")

    assert response.status_code == 200, response.text
    assert elapsed < 1.0, f"ack took {elapsed:.3f}s"
    assert response.json() == {
        "response_type": "ephemeral",
        "text": "Working on `/pgdb create docspell`…",
    }
    message = final_message(slack, CHANNEL, "Onboarded `docspell`")
    posts = slack.posts_in(CHANNEL)
    updates = slack.calls_to("chat.update")
    assert len(posts) == 1 and len(slack.channel_messages(CHANNEL)) == 1  # one message, in place
    assert updates and all(u.params["ts"] == message.ts for u in updates)
    assert "docspell" in posts[0].params["text"]
    assert all("docspell" in u.params["text"] for u in updates)
    # the report: PR link (a branch here), where the password is, the connection snippet
    content = message.content
    assert "pgdb/docspell" in content
    assert "/postgresql/docspell" in content
    assert "postgresql://docspell:&lt;password&gt;@postgresql-shared-rw.databases.svc" in content
    assert "secretKeyRef" in content
    assert f"<@{REQUESTER}>" in content
    assert slack.responses_to(response_url) == []  # nothing needed the fallback
    # the systems really changed
    password = bot_env.stored("docspell")
    assert password is not None
    assert bot_env.can_login("docspell", password)
    assert "pgdb/docspell" in bot_env.git("branch", "--list", "pgdb/*")
    # and the password never reached Slack, nor the logs
    assert password not in slack.everything_sent()
    logs = slack_bot.logs()
    assert password not in logs
    print(
        f"\nSlack calls for one create: {web_api_calls(slack)} "
        f"(+1 auth.test at start); ack {elapsed * 1000:.0f} ms"
    )


def mangled(mangle: str, slack: FakeSlack) -> tuple[bytes, dict[str, str]]:
    """A `create docspell` request that fails Slack's signature check as ``mangle`` says."""
    body = slash_body(
        "create docspell", user=REQUESTER, channel=CHANNEL, response_url=slack.response_url()
    )
    headers = signed(body)
    if mangle == "unsigned":
        headers = {}
    elif mangle == "tampered":
        body = body.replace(b"docspell", b"docspelx")
    elif mangle == "stale":
        headers = signed(body, age=301)
    elif mangle == "wrong secret":
        headers = signed(body, secret="not-the-secret")
    else:
        headers["X-Slack-Request-Timestamp"] = "12abc"
    return body, headers


def test_unauthenticated_requests_get_401_and_change_nothing(
    slack_bot: SlackBot, bot_env: BotEnv
) -> None:
    slack = slack_bot.slack
    # one bot answers every kind (a bot process per kind cost ten start-ups)
    for mangle in ("unsigned", "tampered", "stale", "wrong secret", "garbage timestamp"):
        response, _ = slack_bot.post(*mangled(mangle, slack))

        assert response.status_code == 401, (mangle, response.text)
    time.sleep(1.0)
    assert web_api_calls(slack) == []
    assert bot_env.stored("docspell") is None
    assert bot_env.stored("docspelx") is None
    assert bot_env.git("branch", "--list", "pgdb/*").strip() == ""


def test_errors_for_the_requester_are_ephemeral(slack_bot: SlackBot) -> None:
    slack = slack_bot.slack

    response, _, response_url = slack_bot.command("create pg-admin")

    assert response.status_code == 200
    answer = slack.wait_for(lambda: slack.responses_to(response_url))[0]
    assert answer["response_type"] == "ephemeral"
    assert "reserved" in json.dumps(answer)
    assert slack.posts_in(CHANNEL) == []


def test_rate_limits_are_honoured_not_dropped(slack_bot: SlackBot) -> None:
    slack = slack_bot.slack
    slack.fail("chat.postMessage", status=429, retry_after=1)
    slack.fail("chat.update", status=429, retry_after=1)

    response, elapsed, _ = slack_bot.command("create docspell")

    assert response.status_code == 200 and elapsed < 1.0
    message = final_message(slack, CHANNEL, "Onboarded `docspell`")
    posts = slack.posts_in(CHANNEL)
    assert len(posts) == 2
    assert posts[1].at - posts[0].at >= 1.0  # waited for Retry-After
    assert message.updates >= 1
    assert slack_bot.process.poll() is None


def test_server_errors_are_retried(slack_bot: SlackBot) -> None:
    slack = slack_bot.slack
    slack.fail("chat.postMessage", status=503, times=2)

    slack_bot.command("help")

    final_message(slack, CHANNEL, "self-service PostgreSQL")
    assert len(slack.posts_in(CHANNEL)) == 3


def test_not_in_channel_falls_back_to_the_response_url(slack_bot: SlackBot) -> None:
    slack = slack_bot.slack
    slack.not_in_channel.add("C0PRIVATE")

    response, _, response_url = slack_bot.command("create docspell", channel="C0PRIVATE")

    assert response.status_code == 200
    answers = slack.wait_for(
        lambda: (
            [a for a in slack.responses_to(response_url) if "Onboarded" in json.dumps(a)]
            and slack.responses_to(response_url)
        )
    )
    assert answers[0]["response_type"] == "in_channel"
    assert "replace_original" not in answers[0]
    assert all(a["replace_original"] is True for a in answers[1:])
    assert len(answers) <= 5  # a response_url takes at most 5 messages
    assert slack.calls_to("chat.update") == []


# --- buttons ------------------------------------------------------------------------------


def click(
    bot: SlackBot, message: Message, *, user: str, label: str | None = None
) -> tuple[httpx.Response, str]:
    """A click on the message's button named ``label`` (the first one when None), as Slack
    sends it; the answer and the click's response_url."""
    actions = next(b for b in message.blocks if b["type"] == "actions")
    button = next(e for e in actions["elements"] if label in (None, e["text"]["text"]))
    response_url = bot.slack.response_url()
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T0FAKE"},
        "api_app_id": "A0PGDB",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        },
        "channel": {"id": message.channel, "name": "platform"},
        "message": {"type": "message", "ts": message.ts, "text": message.text},
        "response_url": response_url,
        "trigger_id": "1.2.3",
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "b",
                "text": button["text"],
                "value": button["value"],
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    response, _ = bot.post(body, signed(body))
    return response, response_url


def test_a_button_runs_as_the_user_who_clicks_it(bot_env: BotEnv, slack_api: FakeSlack) -> None:
    env = bot_env.env(**slack_env(slack_api, PGDB_OPERATORS=OPERATOR))
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command("create docspell")
        final_message(slack_api, CHANNEL, "Onboarded `docspell`")
        bot_env.sql("DROP ROLE docspell")
        bot.command("repair docspell", user=OPERATOR)
        prompt = final_message(slack_api, CHANNEL, "Repair `docspell`: confirm")
        assert "/pgdb repair docspell --yes" in prompt.content

        refused, refusal_url = click(bot, prompt, user=REQUESTER)

        assert refused.status_code == 200
        answer = slack_api.wait_for(lambda: slack_api.responses_to(refusal_url))[0]
        assert answer["response_type"] == "ephemeral"
        assert "Not allowed" in json.dumps(answer)
        assert bot_env.sql("SELECT 1 FROM pg_roles WHERE rolname = 'docspell'") == []
        assert "actions" in json.dumps(slack_api.messages[(CHANNEL, prompt.ts)].blocks)

        accepted, _ = click(bot, prompt, user=OPERATOR)

        assert accepted.status_code == 200
        final_message(slack_api, CHANNEL, "Repair `docspell`: done")
        repaired = slack_api.messages[(CHANNEL, prompt.ts)]  # the same message, updated
        assert "Repair `docspell`: done" in repaired.text
        assert '"actions"' not in json.dumps(repaired.blocks)
        password = bot_env.stored("docspell")
        assert password is not None and bot_env.can_login("docspell", password)
        assert password not in slack_api.everything_sent()


# --- the ack under load and while a backend hangs -----------------------------------------


@pytest.fixture
def hanging_postgres() -> Iterator[str]:
    """A DSN whose server accepts TCP connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        port = listener.getsockname()[1]
        yield f"postgresql://pgdb_bot@127.0.0.1:{port}/postgres"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_the_ack_stays_fast_while_postgresql_hangs_and_under_load(
    tmp_path: Path, gitops_repo: Path, hanging_postgres: str, slack_api: FakeSlack
) -> None:
    env = BotEnv(
        dsn=hanging_postgres,
        superuser_dsn=hanging_postgres,
        repo=gitops_repo,
        secrets_dir=tmp_path / "secrets",
        state_dir=tmp_path,
    ).env(**slack_env(slack_api), PGDB_LOG_LEVEL="INFO")
    results: dict[int, list[float]] = {}
    with running(env, tmp_path, slack_api) as bot:
        for concurrency in (1, 10, 50):
            apps = [f"create app-{concurrency}-{i}" for i in range(concurrency)]
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                answers = list(pool.map(bot.command, apps))
            assert all(r.status_code == 200 for r, _, _ in answers)
            results[concurrency] = [elapsed for _, elapsed, _ in answers]
        # the work goes on after the ack: the requester is told what is wrong, privately
        answer = slack_api.wait_for(lambda: slack_api.calls_to("response_url"), timeout=30)[0]
        assert answer.params["response_type"] == "ephemeral"
        assert "PostgreSQL" in answer.raw or "postgres" in answer.raw
    report = ", ".join(
        f"{n} concurrent: p50 {statistics.median(v) * 1000:.0f} ms, "
        f"p99 {_percentile(v, 0.99) * 1000:.0f} ms, max {max(v) * 1000:.0f} ms"
        for n, v in results.items()
    )
    print(f"\nack latency with a hanging PostgreSQL: {report}")
    for latencies in results.values():
        assert _percentile(latencies, 0.99) < 1.5, report
        assert max(latencies) < 3.0, report


# --- Socket Mode --------------------------------------------------------------------------


def socket_command(text: str, slack: FakeSlack) -> dict[str, Any]:
    """A slash command's Socket Mode payload."""
    return {
        "token": "x",
        "team_id": "T0FAKE",
        "channel_id": CHANNEL,
        "user_id": REQUESTER,
        "command": "/pgdb",
        "text": text,
        "api_app_id": "A0PGDB",
        "response_url": slack.response_url(),
        "trigger_id": "1.2.3",
    }


def test_socket_mode_create(
    bot_env: BotEnv, slack_api: FakeSlack, slack_socket: FakeSocketMode
) -> None:
    env = bot_env.env(**slack_env(slack_api, PGDB_SLACK_APP_TOKEN="xapp-1-e2e"))
    del env["PGDB_SLACK_SIGNING_SECRET"]
    with running(env, bot_env.state_dir, slack_api) as bot:
        slack_socket.wait_connected()
        ack, elapsed = slack_socket.push(
            kind="slash_commands", payload=socket_command("create docspell", slack_api)
        )

        assert elapsed < 1.0
        assert "envelope_id" in ack
        print(f"\nSocket Mode ack after {elapsed * 1000:.0f} ms: {ack}")
        final_message(slack_api, CHANNEL, "Onboarded `docspell`")
        password = bot_env.stored("docspell")
        assert password is not None and bot_env.can_login("docspell", password)
        assert password not in slack_api.everything_sent()
        # no HTTP endpoint in Socket Mode
        assert httpx.post(f"http://127.0.0.1:{bot.port}/slack/events").status_code == 404
        # SIGTERM closes the socket and stops cleanly
        logs = bot.logs()
        assert bot.process.returncode == 0, logs
        assert "Socket Mode connected" in logs
        assert password not in logs


@pytest.mark.slow
@pytest.mark.parametrize("how", ["refresh requested", "dropped connection"])
def test_socket_mode_reconnects_and_keeps_serving(
    bot_env: BotEnv, slack_api: FakeSlack, slack_socket: FakeSocketMode, how: str
) -> None:
    env = bot_env.env(**slack_env(slack_api, PGDB_SLACK_APP_TOKEN="xapp-1-e2e"))
    del env["PGDB_SLACK_SIGNING_SECRET"]
    with running(env, bot_env.state_dir, slack_api) as bot:
        slack_socket.wait_connected()

        slack_socket.drop(refresh=how == "refresh requested")

        slack_socket.wait_connections(2)
        ack, _ = slack_socket.push(
            kind="slash_commands", payload=socket_command("status", slack_api)
        )
        assert "envelope_id" in ack
        final_message(slack_api, CHANNEL, "pgdb status")
        assert len(slack_api.calls_to("apps.connections.open")) >= 2
        assert bot.logs().count("Traceback") == 0
