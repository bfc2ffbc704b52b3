"""Replies that fit the chat platforms (issue 17), through the real adapters and the fakes,
which refuse what Slack and Mattermost refuse: Slack more than 50 blocks, a section over 3,000
characters, blocks holding more than ~12,000 characters of text (``msg_blocks_too_long``), text
over 40,000 (``msg_too_long``); Mattermost a post over 16,383 characters (400). A long reply is
never cut silently: it ends with a line saying how many lines were left out and how to see
them; a refused one is sent again, shorter, saying the same."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bot.adapters.mattermost.api import MattermostApi
from bot.adapters.mattermost.conversation import MattermostConversation
from bot.adapters.mattermost.render import render_reply
from bot.adapters.slack.client import web_client
from bot.adapters.slack.conversation import Messenger, SlackConversation
from bot.adapters.slack.render import render
from bot.core.reply import Reply
from tests.fixtures.mattermost import BOT_TOKEN, MAX_MESSAGE_RUNES, FakeMattermost
from tests.fixtures.slack import FakeSlack, block_text_size, size_error

CHANNEL = "C0DEV"
MM_CHANNEL = "channel0000000000000000001"
HINT = "/pgdb status --page 2"


def fleet_status(*, apps: int = 1200, unhealthy: int = 40) -> Reply:
    """A status-shaped reply: the apps that need attention first, then the healthy ones."""
    lines = [
        f"🔴 app{i:04d}: secret_unsynced — the Secret has not synced for 2h; /pgdb repair app{i:04d}"
        for i in range(unhealthy)
    ]
    lines += [
        f"✅ app{i:04d}: ready (role, secret, Database, PR merged)" for i in range(unhealthy, apps)
    ]
    return Reply(
        title=f"{apps} apps: {apps - unhealthy} ready, {unhealthy} need attention",
        fields=[("Ready", str(apps - unhealthy)), ("Need attention", str(unhealthy))],
        lines=lines,
        more_hint=HINT,
        final=True,
    )


def left_out(text: str) -> int:
    found = re.search(r"… (\d+) more line\(s\) not shown: `/pgdb status --page 2`", text)
    assert found, text[-500:]
    return int(found.group(1))


def slack_lines(blocks: list[dict[str, object]]) -> list[str]:
    out: list[str] = []
    for block in blocks[1:]:
        text = block.get("text")
        if block.get("type") == "section" and isinstance(text, dict):
            out.extend(str(text["text"]).split("\n"))
    return out


# --- Slack ----------------------------------------------------------------------------------


def test_a_long_reply_fits_slack_and_says_what_was_left_out() -> None:
    reply = fleet_status()

    text, blocks = render(reply, footer="<@U0DEV> · `/pgdb status`")

    assert size_error({"text": text, "blocks": blocks}) is None
    assert len(blocks) <= 50 and block_text_size(blocks) <= 12_000
    shown = [line for line in slack_lines(blocks) if line.startswith(("🔴", "✅"))]
    note = " ".join(str(e["text"]) for b in blocks for e in b.get("elements", []))
    assert len(shown) + left_out(note) == len(reply.lines)  # every line shown or counted
    assert all(f"app{i:04d}" in "\n".join(shown) for i in range(40))  # attention first
    assert blocks[-1]["type"] == "context" and "/pgdb status" in str(blocks[-1])  # footer kept


def test_a_short_reply_is_not_touched() -> None:
    reply = fleet_status(apps=30, unhealthy=3)
    _, blocks = render(reply)
    assert "more line(s)" not in str(blocks)
    assert len(slack_lines(blocks)) == 30


def test_a_long_code_block_is_split_not_clipped() -> None:
    code = "\n".join(f"line {i:03d} " + "x" * 60 for i in range(100))  # 7,000 characters
    _, blocks = render(Reply(title="Manifests", code=code))
    assert size_error({"text": "t", "blocks": blocks}) is None
    fenced = [str(b["text"]["text"]) for b in blocks[1:]]
    assert len(fenced) >= 3 and all(t.startswith("```") and t.endswith("```") for t in fenced)
    assert "line 099" in fenced[-1]


@pytest.fixture
def messenger(slack_api: FakeSlack) -> Messenger:
    return Messenger(client=web_client(token="xoxb-t", api_url=slack_api.api_url), min_interval=0)


def slack_talk(fake: FakeSlack, messenger: Messenger) -> SlackConversation:
    return SlackConversation(
        messenger=messenger,
        channel=CHANNEL,
        user="U0DEV",
        command="/pgdb status",
        response_url=fake.response_url(),
    )


def test_fleet_status_through_slack_is_one_message_within_the_limits(
    slack_api: FakeSlack, messenger: Messenger
) -> None:
    slack_talk(slack_api, messenger).show(fleet_status())

    [call] = slack_api.calls_to("chat.postMessage")
    [message] = slack_api.channel_messages(CHANNEL)
    assert size_error({"text": message.text, "blocks": message.blocks}) is None
    assert all(f"app{i:04d}" in message.content for i in range(40))
    assert left_out(message.content) > 0
    assert call.params  # accepted at once: no refusal, no fallback


def test_a_message_slack_refuses_for_size_is_sent_again_shorter_saying_how_to_see_the_rest(
    slack_api: FakeSlack, messenger: Messenger
) -> None:
    slack_api.blocks_text_max = 5_000  # a workspace stricter than our budget
    talk = slack_talk(slack_api, messenger)

    talk.show(dataclasses.replace(fleet_status(), final=False))

    assert len(slack_api.calls_to("chat.postMessage")) == 2  # refused, then the shorter one
    [message] = slack_api.channel_messages(CHANNEL)
    assert block_text_size(message.blocks) <= 5_000
    shown = [line for line in slack_lines(message.blocks) if line.startswith(("🔴", "✅"))]
    assert len(shown) + left_out(message.content) == 1200
    assert "app0000" in message.content
    assert not slack_api.responses_to(talk._response_url or "")  # no response_url fallback

    # an update refused the same way falls back the same way
    talk.show(fleet_status(apps=1300))
    assert message.updates == 1 and "1300 apps" in message.text
    assert left_out(message.content) > 0


# --- Mattermost -----------------------------------------------------------------------------


def test_a_long_reply_fits_a_mattermost_post_and_says_what_was_left_out() -> None:
    reply = fleet_status(apps=5000, unhealthy=40)

    message = render_reply(reply, buttons=None, footer="_@dev · /pgdb status_")

    assert len(message.text) <= MAX_MESSAGE_RUNES
    lines = message.text.split("\n")
    shown = [line for line in lines if line.startswith(("🔴", "✅"))]
    assert len(shown) + left_out(message.text) == len(reply.lines)
    assert lines[-1] == "_@dev · /pgdb status_"  # the footer stays
    assert all(f"app{i:04d}" in message.text for i in range(40))
    assert message.short is not None and len(message.short) <= 3_000
    assert left_out(message.short) > left_out(message.text)


def test_a_cut_code_block_is_closed() -> None:
    code = "\n".join("x" * 100 for _ in range(400))
    message = render_reply(Reply(title="t", code=code, more_hint=HINT), buttons=None)
    body = message.text.split("\n")
    note = next(i for i, line in enumerate(body) if line.startswith("… "))
    assert body[note - 1] in {"```", "````", "~~~"}
    assert left_out(message.text) > 0


def mm_talk(fake: FakeMattermost) -> tuple[MattermostConversation, MattermostApi]:
    api = MattermostApi(base_url=fake.url, bot_token=BOT_TOKEN, timeout=5.0, attempts=1)
    talk = MattermostConversation(
        api=api,
        user_id="user00000000000000000000001",
        channel_id=MM_CHANNEL,
        root_id=None,
        buttons=None,
        min_interval=0,
    )
    return talk, api


def test_fleet_status_through_mattermost_is_within_the_post_limit(
    fake_mattermost: FakeMattermost,
) -> None:
    talk, api = mm_talk(fake_mattermost)
    talk.show(fleet_status())
    api.close()

    [post] = fake_mattermost.posts_in(MM_CHANNEL)
    assert len(post["message"]) <= MAX_MESSAGE_RUNES
    assert all(f"app{i:04d}" in post["message"] for i in range(40))
    assert "Need attention" in post["message"]


def test_a_post_mattermost_refuses_for_size_is_sent_again_shorter(
    fake_mattermost: FakeMattermost,
) -> None:
    fake_mattermost.max_message_runes = 8_000  # a server stricter than our budget
    talk, api = mm_talk(fake_mattermost)
    talk.show(fleet_status())
    api.close()

    posts = fake_mattermost.recorded("POST", "/api/v4/posts")
    assert [c.status for c in posts] == [400, 201]
    [post] = fake_mattermost.posts_in(MM_CHANNEL)
    assert len(post["message"]) <= 3_000
    assert left_out(post["message"]) > 0 and "app0000" in post["message"]
