"""Approvals on Slack and Mattermost: the request reaches the ops channel with Approve and Deny,
an operator clicks, and the requester hears the decision in the thread of their command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e import test_mattermost_run as mm
from tests.e2e.test_slack_run import (
    CHANNEL,
    OPERATOR,
    REQUESTER,
    click,
    final_message,
    running,
    slack_env,
)
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.mattermost import FakeMattermost
from tests.fixtures.slack import FakeSlack, Message

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py

OPS = "C0OPS"


def _in_thread(slack: FakeSlack, channel: str, ts: str, text: str) -> Message:
    def found() -> Message | None:
        return next(
            (m for m in slack.channel_messages(channel) if m.thread_ts == ts and text in m.text),
            None,
        )

    message: Message = slack.wait_for(found)
    return message


def test_slack_an_operator_approves_with_the_button(bot_env: BotEnv, slack_api: FakeSlack) -> None:
    env = bot_env.env(
        **slack_env(slack_api, PGDB_REQUIRE_APPROVAL="requesters", PGDB_OPERATORS=OPERATOR)
    )
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command("create docspell")
        asked = final_message(slack_api, CHANNEL, "waits for an operator's approval")
        announcement = final_message(slack_api, OPS, "asks for `/pgdb create docspell`")
        assert REQUESTER in announcement.text
        labels = [
            e["text"]["text"]
            for b in announcement.blocks
            if b["type"] == "actions"
            for e in b["elements"]
        ]
        assert labels == ["Approve", "Deny"]
        assert bot_env.stored("docspell") is None

        assert click(bot, announcement, user=REQUESTER, label="Approve")[0].status_code == 200
        time.sleep(1.0)
        assert bot_env.stored("docspell") is None  # a requester's click is refused

        assert click(bot, announcement, user=OPERATOR, label="Approve")[0].status_code == 200

        # the announcement becomes the onboarding's progress, in place
        final_message(slack_api, OPS, "Onboarded `docspell`")
        assert slack_api.messages[(OPS, announcement.ts)].text.startswith("Onboarded")
        told = _in_thread(slack_api, CHANNEL, asked.ts, "approved by")
        assert f"Request #1 was approved by {OPERATOR}" in told.text
        assert "pgdb/docspell" in told.text
        _in_thread(slack_api, OPS, announcement.ts, f"Request #1 approved by {OPERATOR}")
        password = bot_env.stored("docspell")
        assert password is not None and bot_env.can_login("docspell", password)
        assert password not in slack_api.everything_sent()
        assert password not in bot.logs()


def test_slack_a_denial_reaches_the_requester_thread(bot_env: BotEnv, slack_api: FakeSlack) -> None:
    env = bot_env.env(
        **slack_env(slack_api, PGDB_REQUIRE_APPROVAL="requesters", PGDB_OPERATORS=OPERATOR)
    )
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command("create docspell")
        asked = final_message(slack_api, CHANNEL, "waits for an operator's approval")
        final_message(slack_api, OPS, "asks for `/pgdb create docspell`")

        bot.command("deny 1 not on the shared cluster", user=OPERATOR, channel=OPS)

        told = _in_thread(slack_api, CHANNEL, asked.ts, "was denied")
        assert f"denied by {OPERATOR}: not on the shared cluster" in told.text
        assert bot_env.stored("docspell") is None


def test_slack_an_expired_request_is_announced_to_the_requester(
    bot_env: BotEnv, slack_api: FakeSlack
) -> None:
    env = bot_env.env(
        **slack_env(
            slack_api,
            PGDB_REQUIRE_APPROVAL="all",
            PGDB_APPROVAL_TTL="2s",
            PGDB_DIAGNOSE_INTERVAL="1s",
        )
    )
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command("create docspell")
        asked = final_message(slack_api, CHANNEL, "waits for an operator's approval")
        announcement = final_message(slack_api, OPS, "asks for `/pgdb create docspell`")

        told = _in_thread(slack_api, CHANNEL, asked.ts, "expired")

        assert "no operator decided it within 2s" in told.text
        _in_thread(slack_api, OPS, announcement.ts, "expired")
        assert bot_env.stored("docspell") is None


def _mm_click(bot: mm.RunningBot, post: dict[str, Any], *, user: str, label: str) -> httpx.Response:
    """A click on the ops-channel post's button named ``label``."""
    [attachment] = post["props"]["attachments"]
    action = next(a for a in attachment["actions"] if a["name"] == label)
    return bot.click(
        action["integration"]["context"], user=user, post_id=post["id"], channel=mm.OPS
    )


def test_mattermost_an_operator_approves_with_the_button(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    with mm._running_bot(
        bot_env, fake_mattermost, tmp_path, PGDB_REQUIRE_APPROVAL="requesters"
    ) as bot:
        assert bot.command("create docspell", user=mm.REQUESTER).status_code == 200
        fake_mattermost.wait_for(
            lambda: any(
                "waits for an operator's approval" in p["message"]
                for p in fake_mattermost.posts_in(mm.CHANNEL)
            )
        )
        [asked] = [
            p
            for p in fake_mattermost.posts_in(mm.CHANNEL)
            if "waits for an operator's approval" in p["message"]
        ]
        fake_mattermost.wait_for(lambda: bool(fake_mattermost.posts_in(mm.OPS)))
        [announcement] = fake_mattermost.posts_in(mm.OPS)
        assert "asks for `/pgdb create docspell`" in announcement["message"]
        actions = announcement["props"]["attachments"][0]["actions"]
        assert [a["name"] for a in actions] == ["Approve", "Deny"]
        context = actions[0]["integration"]["context"]
        assert context["signature"] and mm.ACTION_SECRET not in str(context)  # signed, not sent

        # each button works once, whoever clicks: the requester's refused click spends Deny's
        refused = _mm_click(bot, announcement, user=mm.REQUESTER, label="Deny")
        assert "Not allowed" in refused.json()["ephemeral_text"]
        assert bot_env.stored("docspell") is None

        assert _mm_click(bot, announcement, user=mm.OPERATOR, label="Approve").status_code == 200

        fake_mattermost.wait_for(
            lambda: any(
                p["root_id"] == asked["id"] and "approved by" in p["message"]
                for p in fake_mattermost.posts_in(mm.CHANNEL)
            ),
            timeout=60,
        )
        fake_mattermost.wait_for(
            lambda: "Onboarded `docspell`" in fake_mattermost.posts[announcement["id"]]["message"],
            timeout=60,
        )
        assert any(
            p["root_id"] == announcement["id"] and "approved by" in p["message"]
            for p in fake_mattermost.posts_in(mm.OPS)
        )
        password = bot_env.stored("docspell")
        assert password is not None and bot_env.can_login("docspell", password)
        log = bot.stop()
        assert password not in fake_mattermost.everything_sent()
        assert password not in log
