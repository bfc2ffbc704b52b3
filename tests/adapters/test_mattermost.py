"""The Mattermost adapter against a fake Mattermost server on loopback: rendering, the REST
client's retries, posts updated in place, private replies, groups, and the two endpoints."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from bot.adapters.mattermost.api import MattermostApi, MattermostError
from bot.adapters.mattermost.buttons import ButtonConfig, check_button
from bot.adapters.mattermost.conversation import MattermostConversation
from bot.adapters.mattermost.groups import MattermostGroups
from bot.adapters.mattermost.platform import MattermostPlatform
from bot.adapters.mattermost.render import render_alert, render_reply
from bot.config import Settings, load_settings
from bot.core.errors import BackendUnavailable, ConfigError
from bot.core.model import Requester
from bot.core.reply import Alert, Button, Reply, Step, StepState, error_reply
from bot.http_edge import EdgeAudit
from bot.pgcluster import free_port
from bot.runner import CommandRunner
from bot.wiring.chat import build_mattermost, command_intake
from handlers.access import Role, role_of
from tests.fixtures.bot import BotEnv
from tests.fixtures.mattermost import BOT_TOKEN, FakeMattermost, mattermost_id

CHANNEL = "channelid0000000000000000a"
OPS = "opschannel000000000000000a"
USER = "userid00000000000000000001"
COMMAND_TOKEN = "cmdtoken000000000000000001"
SECRET = "action-secret-0123456789abcdef"
BUTTONS = ButtonConfig(url="https://pgdb.example.com/mattermost/actions", secret=SECRET)


def api_for(fake: FakeMattermost, **options: float) -> MattermostApi:
    defaults = {"timeout": 2.0, "attempts": 3, "backoff": 0.05}
    defaults.update(options)
    return MattermostApi(
        base_url=fake.url,
        bot_token=BOT_TOKEN,
        timeout=defaults["timeout"],
        attempts=int(defaults["attempts"]),
        backoff=defaults["backoff"],
    )


def onboarding(*, final: bool = False) -> Reply:
    reply = Reply(
        title="Onboarding `docspell`",
        steps=[
            Step(key="credentials", label="Credentials in the secret store"),
            Step(key="role", label="PostgreSQL role"),
            Step(key="manifests", label="GitOps change"),
        ],
        correlation_id="abc123",
    )
    if final:
        for step in reply.steps:
            step.state, step.detail = StepState.DONE, f"{step.key} ok"
        reply.title = "Onboarded `docspell`"
        reply.fields = [("Pull request", "https://git.example/pr/1")]
        reply.lines = ["Add this to your Deployment:"]
        reply.code = "env:\n  - name: DB_HOST\n"
        reply.final = True
    return reply


# --- rendering ----------------------------------------------------------------------------------


def test_a_reply_renders_as_markdown_with_one_line_per_step() -> None:
    reply = onboarding(final=True)
    reply.steps[1].state = StepState.EXISTS

    text = render_reply(reply, buttons=BUTTONS, footer="_`/pgdb create docspell` · @alan_").text

    lines = text.splitlines()
    assert lines[0] == "**Onboarded `docspell`**"
    assert lines[1] == "✅ Credentials in the secret store — done: credentials ok"
    assert lines[2] == "☑️ PostgreSQL role — already there: role ok"
    assert "**Pull request:** https://git.example/pr/1" in lines
    assert "Add this to your Deployment:" in lines
    assert "```\nenv:\n  - name: DB_HOST\n```" in text
    assert lines[-1] == "_`/pgdb create docspell` · @alan_"
    assert "correlation id" not in text  # only failures show it


def test_a_failure_is_marked_and_carries_its_correlation_id() -> None:
    reply = onboarding()
    reply.ok = False
    reply.steps[0].state, reply.steps[0].detail = StepState.FAILED, "disk full"
    reply.steps[1].state = StepState.SKIPPED

    text = render_reply(reply, buttons=None).text

    assert text.startswith("⚠️ **Onboarding `docspell`**")
    assert "❌ Credentials in the secret store — failed: disk full" in text
    assert "⏭️ PostgreSQL role — skipped" in text
    assert "⏳ GitOps change — pending" in text
    assert "_(correlation id abc123)_" in text


def test_buttons_are_attachment_actions_that_carry_a_signed_nonce_and_the_command() -> None:
    reply = Reply(
        title="Repair `docspell`: confirm",
        buttons=[Button(label="Repair", command="/pgdb repair docspell --yes", style="primary")],
    )

    message = render_reply(reply, buttons=BUTTONS, root_id="rootpost")

    [attachment] = message.attachments
    [action] = attachment["actions"]
    assert re.fullmatch(r"[A-Za-z0-9]+", action["id"])  # Mattermost routes clicks by this id
    assert action["name"] == "Repair"
    assert action["type"] == "button"
    assert action["style"] == "primary"
    assert action["integration"]["url"] == "https://pgdb.example.com/mattermost/actions"
    context = action["integration"]["context"]
    assert context == {
        "command": "/pgdb repair docspell --yes",
        "root_id": "rootpost",
        "nonce": ANY,
        "expires": ANY,
        "signature": ANY,
    }
    # one-time and expiring, signed with the action secret, which itself never travels
    assert check_button(context, secret=SECRET, now=time.time()) is None
    assert check_button(context, secret=SECRET, now=context["expires"] + 1) == "expired"
    assert check_button({**context, "command": "/pgdb x"}, secret=SECRET, now=0) is not None
    again = render_reply(reply, buttons=BUTTONS, root_id="rootpost").attachments[0]["actions"]
    assert again[0]["integration"]["context"]["nonce"] != context["nonce"]
    assert SECRET not in json.dumps(message.attachments) + message.text


def test_without_buttons_the_decision_is_a_command_to_type() -> None:
    reply = Reply(title="Repair", buttons=[Button(label="Repair", command="/pgdb repair x --yes")])

    message = render_reply(reply, buttons=None)

    assert message.attachments == []
    assert "➡️ Repair: type `/pgdb repair x --yes`" in message.text


ZWSP = "\u200b"
HOSTILE = "@channel @all @here @alice ![img](http://evil.example/x.png) [docs](http://e.example)"


def test_user_text_neither_mentions_nor_links_and_the_bots_markdown_stays() -> None:
    reply = Reply(
        title="Request #3 denied: `docspell` is not created",
        ok=False,
        steps=[Step(key="x", label="Check", state=StepState.FAILED, detail=f"said {HOSTILE}")],
        fields=[("Reason", HOSTILE), ("Pull request", "https://git.example/pr/1")],
        lines=[f"alice asked for `/pgdb create docspell`: {HOSTILE}", "<https://evil.example>"],
        correlation_id="abc123",
    )

    text = render_reply(reply, buttons=None, footer="_`/pgdb deny 3` · @olga_").text

    # no mention for the server (its words split at anything but letters, digits and :.-_@)
    words = re.split(r"[^\w:.\-@]+", text)
    assert not {"@channel", "@all", "@here", "@alice"} & set(words)
    assert f"@{ZWSP}channel @{ZWSP}all @{ZWSP}here @{ZWSP}alice" in text
    # no image, link or autolink: the brackets and the angle bracket are escaped
    assert "![img](" not in text and "[docs](" not in text
    assert not re.search(r"(?<!\\)<https", text)
    assert "!\\[img\\](http://evil.example/x.png) \\[docs\\](http://e.example)" in text
    assert "\\<https://evil.example>" in text
    # the bot's own formatting is untouched: bold, inline code, its bare link, the footer
    assert text.startswith("⚠️ **Request #3 denied: `docspell` is not created**")
    assert "alice asked for `/pgdb create docspell`:" in text
    assert "**Pull request:** https://git.example/pr/1" in text
    assert text.endswith("_`/pgdb deny 3` · @olga_")


def test_user_backticks_cannot_open_code_that_swallows_the_bots_markdown() -> None:
    lines = ["a stray ` then [x](http://e.example)", "```", "~~~", "`kept` and ``a`b``"]
    text = render_reply(
        Reply(title="t", lines=lines, code="env:\n```\n@channel"), buttons=None
    ).text

    assert "a stray \\` then \\[x\\](http://e.example)" in text
    assert "\n\\`\\`\\`\n" in text  # a fence in text is escaped
    assert "\n\\~~~\n" in text
    assert "`kept` and ``a`b``" in text  # balanced code spans stay code
    # the bot's code block cannot be closed from inside: the inner fence starts with a ZWSP
    assert text.endswith(f"```\nenv:\n{ZWSP}```\n@channel\n```")


def test_alerts_escape_their_title_and_text() -> None:
    alert = Alert(
        key="approval:docspell", severity="info", title=f"denied: {HOSTILE}", text=HOSTILE
    )

    message = render_alert(alert)

    [attachment] = message.attachments
    for shown in (message.text, attachment["text"], attachment["fallback"]):
        assert "@channel" not in shown and "@all" not in shown
    assert "![img](" not in message.text + attachment["text"]


@pytest.mark.parametrize(
    ("severity", "resolved", "colour", "start"),
    [
        ("critical", False, "#d24b4e", "🔴 CRITICAL: "),
        ("warning", False, "#ffbc1f", "🟠 WARNING: "),
        ("info", False, "#2389d7", "🔵 INFO: "),
        ("critical", True, "#3db887", "✅ Resolved: "),
    ],
)
def test_alert_colours_follow_the_severity(
    severity: str, resolved: bool, colour: str, start: str
) -> None:
    alert = Alert(
        key="role_missing:docspell",
        severity=severity,
        title="role docspell is missing",
        text="Fix: /pgdb repair docspell",
        resolved=resolved,
    )

    message = render_alert(alert)

    assert message.text == start + "role docspell is missing"
    assert message.attachments[0]["color"] == colour
    assert message.attachments[0]["text"] == "Fix: /pgdb repair docspell"


# --- the REST client ----------------------------------------------------------------------------


def test_a_post_is_created_as_the_bot_with_an_idempotency_key(
    fake_mattermost: FakeMattermost,
) -> None:
    post = api_for(fake_mattermost).create_post(channel_id=CHANNEL, message="hello")

    [call] = fake_mattermost.recorded("POST", "/api/v4/posts")
    assert call.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert call.headers["content-type"] == "application/json"
    assert call.body["channel_id"] == CHANNEL
    assert call.body["message"] == "hello"
    assert call.body["pending_post_id"]
    assert fake_mattermost.posts[post["id"]]["message"] == "hello"


def test_server_errors_are_retried_then_succeed(fake_mattermost: FakeMattermost) -> None:
    fake_mattermost.fail("POST", "/api/v4/posts", status=502, times=2)

    post = api_for(fake_mattermost).create_post(channel_id=CHANNEL, message="hello")

    calls = fake_mattermost.recorded("POST", "/api/v4/posts")
    assert [c.status for c in calls] == [502, 502, 201]
    assert len({c.body["pending_post_id"] for c in calls}) == 1  # the same post, retried
    assert list(fake_mattermost.posts) == [post["id"]]


def test_rate_limiting_is_honoured(fake_mattermost: FakeMattermost) -> None:
    fake_mattermost.fail("POST", "/api/v4/posts", status=429, retry_after="1")

    api_for(fake_mattermost, backoff=0.01).create_post(channel_id=CHANNEL, message="x")

    first, second = fake_mattermost.recorded("POST", "/api/v4/posts")
    assert first.status == 429
    assert second.status == 201
    assert second.at - first.at >= 0.9


def test_a_hanging_server_times_out_and_is_retried(fake_mattermost: FakeMattermost) -> None:
    fake_mattermost.hang("PUT", r"/api/v4/posts/\w+/patch", seconds=3)
    api = api_for(fake_mattermost, timeout=0.3)
    post = api.create_post(channel_id=CHANNEL, message="before")

    started = time.monotonic()
    api.patch_post(post_id=post["id"], message="after")

    assert time.monotonic() - started < 2.5
    assert fake_mattermost.posts[post["id"]]["message"] == "after"


def test_client_errors_are_not_retried_and_give_up_with_a_log(
    fake_mattermost: FakeMattermost, caplog: pytest.LogCaptureFixture
) -> None:
    api = api_for(fake_mattermost)

    with pytest.raises(MattermostError) as caught:
        api.patch_post(post_id="nosuchpost00000000000000aa", message="x")

    assert caught.value.status == 404
    assert len(fake_mattermost.recorded("PUT")) == 1
    assert "app.post.get.app_error" in caplog.text


def test_retries_are_bounded(fake_mattermost: FakeMattermost) -> None:
    fake_mattermost.fail("POST", "/api/v4/posts", status=503, times=10)

    with pytest.raises(MattermostError) as caught:
        api_for(fake_mattermost, attempts=3).create_post(channel_id=CHANNEL, message="x")

    assert caught.value.status == 503
    assert len(fake_mattermost.recorded("POST", "/api/v4/posts")) == 3


def test_a_wrong_bot_token_is_an_error_not_a_retry_loop(fake_mattermost: FakeMattermost) -> None:
    api = MattermostApi(base_url=fake_mattermost.url, bot_token="wrong-token", backoff=0.01)

    with pytest.raises(MattermostError) as caught:
        api.create_post(channel_id=CHANNEL, message="x")

    assert caught.value.status == 401
    assert len(fake_mattermost.calls) == 1


def test_the_response_url_never_receives_the_bot_token(fake_mattermost: FakeMattermost) -> None:
    api_for(fake_mattermost).respond(
        response_url=f"{fake_mattermost.url}/hooks/commands/abc", body={"text": "hi"}
    )

    [call] = fake_mattermost.recorded("POST", "/hooks/commands/abc")
    assert "authorization" not in call.headers
    assert BOT_TOKEN not in str(call.headers)


# --- one command's post, updated in place ----------------------------------------------------


def private(message: str, *, title: str) -> Reply:
    """A private final reply, as dispatch shows it."""
    reply = error_reply(message, title=title)
    reply.final = True
    return reply


def conversation(
    fake: FakeMattermost, *, min_interval: float = 1.0, **options: Any
) -> MattermostConversation:
    return MattermostConversation(
        api=api_for(fake),
        user_id=USER,
        channel_id=CHANNEL,
        root_id=None,
        buttons=BUTTONS,
        min_interval=min_interval,
        **options,
    )


def test_rapid_updates_are_coalesced_into_one_post_and_one_patch(
    fake_mattermost: FakeMattermost,
) -> None:
    talk = conversation(fake_mattermost)
    reply = onboarding()
    talk.show(reply)
    for step in reply.steps:
        step.state = StepState.DONE
        talk.show(reply)
    final = onboarding(final=True)
    talk.show(final)

    assert len(fake_mattermost.recorded("POST", "/api/v4/posts")) == 1
    assert len(fake_mattermost.recorded("PUT")) == 1
    [post] = fake_mattermost.posts_in(CHANNEL)
    assert post["message"].startswith("**Onboarded `docspell`**")


def test_a_deferred_update_is_sent_later_with_the_newest_state(
    fake_mattermost: FakeMattermost,
) -> None:
    talk = conversation(fake_mattermost, min_interval=0.3)
    reply = onboarding()
    talk.show(reply)
    reply.steps[0].state = StepState.DONE
    talk.show(reply)
    reply.steps[1].state = StepState.DONE
    talk.show(reply)

    fake_mattermost.wait_for(lambda: len(fake_mattermost.recorded("PUT")) == 1, timeout=3)
    time.sleep(0.5)

    [patch] = fake_mattermost.recorded("PUT")
    assert "✅ PostgreSQL role — done" in patch.body["message"]
    assert "props" not in patch.body  # no buttons changed: the post's props are left alone


def test_an_unchanged_state_is_not_sent_again(fake_mattermost: FakeMattermost) -> None:
    talk = conversation(fake_mattermost, min_interval=0)
    final = onboarding(final=True)
    talk.show(onboarding())
    talk.show(final)
    talk.show(final)

    assert len(fake_mattermost.recorded("PUT")) == 1


def test_a_failed_update_leaves_the_final_attempt_with_the_last_state(
    fake_mattermost: FakeMattermost,
) -> None:
    talk = conversation(fake_mattermost, min_interval=0)
    reply = onboarding()
    talk.show(reply)
    fake_mattermost.fail("PUT", r"/api/v4/posts/\w+/patch", status=500, times=3)
    reply.steps[0].state = StepState.DONE
    talk.show(reply)  # every attempt fails: logged, the workflow goes on
    talk.show(onboarding(final=True))

    statuses = [c.status for c in fake_mattermost.recorded("PUT")]
    assert statuses == [500, 500, 500, 200]
    [post] = fake_mattermost.posts_in(CHANNEL)
    assert post["message"].startswith("**Onboarded `docspell`**")


def test_a_post_that_is_gone_is_posted_again(fake_mattermost: FakeMattermost) -> None:
    talk = conversation(fake_mattermost, min_interval=0)
    talk.show(onboarding())
    fake_mattermost.posts.clear()  # deleted by someone in the channel

    talk.show(onboarding(final=True))

    [post] = fake_mattermost.posts_in(CHANNEL)
    assert post["message"].startswith("**Onboarded `docspell`**")


def test_progress_goes_in_the_thread_the_command_came_from(
    fake_mattermost: FakeMattermost,
) -> None:
    root = api_for(fake_mattermost).create_post(channel_id=CHANNEL, message="a thread")["id"]
    talk = MattermostConversation(
        api=api_for(fake_mattermost), user_id=USER, channel_id=CHANNEL, root_id=root, buttons=None
    )

    talk.show(onboarding(final=True))

    [reply_post] = [p for p in fake_mattermost.posts_in(CHANNEL) if p["id"] != root]
    assert reply_post["root_id"] == root


def test_a_late_private_reply_is_an_ephemeral_post_for_the_requester(
    fake_mattermost: FakeMattermost,
) -> None:
    talk = conversation(fake_mattermost)

    talk.show(private("`/pgdb diagnose` is for operators", title="Not allowed"))

    [ephemeral] = fake_mattermost.ephemerals
    assert ephemeral["for_user"] == USER
    assert ephemeral["channel_id"] == CHANNEL
    assert "Not allowed" in ephemeral["message"]
    assert fake_mattermost.posts == {}


def test_without_the_ephemeral_permission_the_response_url_is_used(
    fake_mattermost: FakeMattermost,
) -> None:
    fake_mattermost.ephemeral_allowed = False
    talk = conversation(fake_mattermost, response_url=f"{fake_mattermost.url}/hooks/commands/x1")

    talk.show(private("nope", title="Not allowed"))

    [hook] = fake_mattermost.hooks
    assert hook["body"]["response_type"] == "ephemeral"
    assert "Not allowed" in hook["body"]["text"]


def test_a_private_ending_after_public_progress_closes_the_public_post(
    fake_mattermost: FakeMattermost,
) -> None:
    talk = conversation(fake_mattermost, min_interval=0)
    talk.show(onboarding())

    talk.show(private("internal error; give this id to an operator: abc", title="Error"))

    [post] = fake_mattermost.posts_in(CHANNEL)
    assert post["message"].startswith("**Onboarding `docspell`**")
    assert post["message"].endswith("_Ended: the answer was shown to the requester only._")
    assert "internal error" in fake_mattermost.ephemerals[0]["message"]


def test_showing_never_raises_when_mattermost_is_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    api = MattermostApi(base_url=f"http://127.0.0.1:{port}", bot_token="x", backoff=0.01)
    talk = MattermostConversation(
        api=api, user_id=USER, channel_id=CHANNEL, root_id=None, buttons=None
    )

    talk.show(onboarding())
    talk.show(onboarding(final=True))
    talk.show(private("x", title="Error"))


# --- groups -------------------------------------------------------------------------------------


def test_groups_resolve_to_member_ids_and_are_cached(fake_mattermost: FakeMattermost) -> None:
    members = [mattermost_id() for _ in range(5)]
    fake_mattermost.add_group("dba", members)
    fake_mattermost.add_group("dba-interns", [mattermost_id()])
    groups = MattermostGroups(api=api_for(fake_mattermost), per_page=2)

    assert set(groups.members("dba")) == set(members)
    assert set(groups.members("dba")) == set(members)

    assert len(fake_mattermost.recorded("GET", "/api/v4/groups")) == 1
    assert len(fake_mattermost.recorded("GET", r"/api/v4/groups/\w+/members")) == 3


def test_an_unknown_group_has_no_members_and_an_unreachable_one_is_an_error(
    fake_mattermost: FakeMattermost,
) -> None:
    groups = MattermostGroups(api=api_for(fake_mattermost), ttl=0)
    assert list(groups.members("nobody")) == []

    fake_mattermost.fail("GET", "/api/v4/groups", status=500, times=10)
    with pytest.raises(BackendUnavailable, match="group:dba"):
        list(groups.members("dba"))
    # the authorization filter counts that as "not a member", for that rule alone
    asker = Requester(user_id=USER, platform="mattermost")
    assert role_of(asker, requesters=["*"], operators=["group:dba"], groups=groups) is (
        Role.REQUESTER
    )


def test_every_page_of_groups_is_read_until_the_group_is_found(
    fake_mattermost: FakeMattermost,
) -> None:
    for i in range(5):
        fake_mattermost.add_group(f"dba-{i}", [mattermost_id()], display_name=f"Aa dba {i}")
    member = mattermost_id()
    fake_mattermost.add_group("dba", [member], display_name="Zz dba")
    groups = MattermostGroups(api=api_for(fake_mattermost), per_page=2)

    assert set(groups.members("dba")) == {member}

    pages = fake_mattermost.recorded("GET", "/api/v4/groups")
    assert [(c.query["page"], c.query["per_page"]) for c in pages] == [
        (["0"], ["2"]),
        (["1"], ["2"]),
        (["2"], ["2"]),
    ]
    assert list(MattermostGroups(api=api_for(fake_mattermost), per_page=2).members("db")) == []


# --- the endpoints, in process --------------------------------------------------------------


@pytest.fixture
def platform(bot_env: BotEnv, fake_mattermost: FakeMattermost) -> Iterator[MattermostPlatform]:
    runner = CommandRunner(workers=2)
    services = bot_env.services(operators=["operator0000000000000000001"])
    yield MattermostPlatform(
        api=api_for(fake_mattermost),
        intake=command_intake(services),
        runner=runner,
        edge_audit=EdgeAudit(services.state),
        command_token=COMMAND_TOKEN,
        ops_channel=OPS,
        buttons=BUTTONS,
        min_interval=0.2,
    )
    runner.shutdown(deadline_seconds=10)


@pytest.fixture
def client(platform: MattermostPlatform) -> Iterator[httpx.Client]:
    """The platform's routes served by uvicorn on loopback, as `pgdb-bot run` serves them."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=platform.routes()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started and time.monotonic() < end:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def form(text: str, **extra: str) -> dict[str, str]:
    fields = {
        "channel_id": CHANNEL,
        "channel_name": "town-square",
        "command": "/pgdb",
        "response_url": "http://127.0.0.1:9/hooks/commands/abc",
        "team_domain": "team",
        "team_id": mattermost_id(),
        "text": text,
        "trigger_id": "trigger",
        "user_id": USER,
        "user_name": "alan",
    }
    fields.update(extra)
    return fields


@pytest.mark.parametrize(
    "how",
    ["header", "field", "no token", "wrong header", "wrong field", "bearer scheme"],
)
def test_only_the_command_token_is_accepted(
    client: httpx.Client, fake_mattermost: FakeMattermost, how: str
) -> None:
    headers: dict[str, str] = {}
    body = form("help")
    if how == "header":
        headers["Authorization"] = f"Token {COMMAND_TOKEN}"
    elif how == "field":
        body["token"] = COMMAND_TOKEN
    elif how == "wrong header":
        headers["Authorization"] = "Token wrongtoken00000000000000"
    elif how == "wrong field":
        body["token"] = "wrongtoken00000000000000"
    elif how == "bearer scheme":
        headers["Authorization"] = f"Bearer {COMMAND_TOKEN}"

    response = client.post("/mattermost/command", data=body, headers=headers)

    accepted = how in {"header", "field"}
    assert response.status_code == (200 if accepted else 401)
    if not accepted:
        time.sleep(0.3)
        assert fake_mattermost.calls == []


def test_a_refused_token_is_logged_without_the_token(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrongtoken00000000000000zz"
    body = form("create docspell", token=wrong)

    response = client.post("/mattermost/command", data=body)

    assert response.status_code == 401
    assert "wrong or missing token" in caplog.text
    assert wrong not in caplog.text


def test_a_usage_error_is_answered_in_the_response_with_no_rest_call(
    client: httpx.Client, fake_mattermost: FakeMattermost
) -> None:
    response = client.post(
        "/mattermost/command",
        data=form("frobnicate docspell", token=COMMAND_TOKEN),
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["response_type"] == "ephemeral"
    assert "unknown command `frobnicate`" in response.json()["text"]
    time.sleep(0.3)
    assert fake_mattermost.calls == []


def test_a_get_command_reads_the_query_string(
    client: httpx.Client, fake_mattermost: FakeMattermost
) -> None:
    response = client.get(
        "/mattermost/command",
        params=form("help"),
        headers={"Authorization": f"Token {COMMAND_TOKEN}"},
    )

    assert response.status_code == 200
    assert response.json()["text"].startswith("⏳ Working on `/pgdb help`")
    fake_mattermost.wait_for(lambda: bool(fake_mattermost.posts_in(CHANNEL)))
    [post] = fake_mattermost.posts_in(CHANNEL)
    assert "**pgdb — self-service PostgreSQL databases**" in post["message"]
    assert post["message"].endswith("_`/pgdb help` · @alan_")


def test_a_click_with_a_wrong_secret_is_refused_and_runs_nothing(
    client: httpx.Client, fake_mattermost: FakeMattermost, bot_env: BotEnv
) -> None:
    click = {
        "user_id": "operator0000000000000000001",
        "channel_id": CHANNEL,
        "post_id": mattermost_id(),
        "context": {"command": "/pgdb repair docspell --yes", "secret": "guessed"},
    }

    refused = client.post("/mattermost/actions", json=click)
    missing = client.post("/mattermost/actions", json={**click, "context": {}})

    assert refused.status_code == 403
    assert missing.status_code == 403
    time.sleep(0.3)
    assert fake_mattermost.calls == []
    assert bot_env.services().state.audit_entries() == []  # nothing was dispatched


def test_alerts_go_to_the_ops_channel_and_follow_ups_to_their_thread(
    platform: MattermostPlatform, fake_mattermost: FakeMattermost
) -> None:
    alert = Alert(key="role_missing:x", severity="critical", title="role x missing", text="fix")

    first = platform.send_alert(alert)
    assert first is not None
    again = platform.send_alert(dataclasses.replace(alert, resolved=True, thread=first))

    posts = {p["id"]: p for p in fake_mattermost.posts_in(OPS)}
    assert posts[first]["props"]["attachments"][0]["color"] == "#d24b4e"
    assert again is not None
    assert posts[again]["root_id"] == first
    assert posts[again]["props"]["attachments"][0]["color"] == "#3db887"


def test_the_follow_through_replies_in_the_thread_of_the_command_post(
    platform: MattermostPlatform, fake_mattermost: FakeMattermost
) -> None:
    talk = conversation(fake_mattermost)
    assert talk.message_link is None  # nothing posted yet
    talk.show(Reply(title="Onboarding `docspell`"))
    [progress] = fake_mattermost.posts_in(CHANNEL)
    link = talk.message_link
    assert link == f"mattermost:{CHANNEL}:{progress['id']}"
    assert link is not None

    assert platform.reply_in_thread("slack:C1:1.2", "not mine") is False
    assert platform.reply_in_thread(link, "`docspell` is ready") is True

    [reply] = [p for p in fake_mattermost.posts_in(CHANNEL) if p["id"] != progress["id"]]
    assert (reply["root_id"], reply["message"]) == (progress["id"], "`docspell` is ready")
    fake_mattermost.fail("POST", "/api/v4/posts", status=500, times=10)
    with pytest.raises(BackendUnavailable, match="could not reply in thread"):
        platform.reply_in_thread(link, "again")


def test_an_undelivered_alert_is_reported_so_it_is_sent_again(
    platform: MattermostPlatform, fake_mattermost: FakeMattermost
) -> None:
    fake_mattermost.fail("POST", "/api/v4/posts", status=500, times=10)
    alert = Alert(key="k", severity="warning", title="t", text="x")

    with pytest.raises(BackendUnavailable, match="Mattermost: the alert k was not posted"):
        platform.send_alert(alert)


# --- configuration --------------------------------------------------------------------------


def settings(**values: Any) -> Settings:
    return Settings(pg_dsn="postgresql://x@127.0.0.1/x", **values)


def test_mattermost_is_off_unless_configured(bot_env: BotEnv) -> None:
    assert build_mattermost(settings(), bot_env.services(), CommandRunner(workers=1)) is None


def test_a_partial_configuration_names_what_is_missing(bot_env: BotEnv) -> None:
    with pytest.raises(ConfigError) as caught:
        build_mattermost(
            settings(mattermost_url="https://chat.example.com"),
            bot_env.services(),
            CommandRunner(workers=1),
        )
    assert "PGDB_MATTERMOST_BOT_TOKEN" in str(caught.value)
    assert "PGDB_MATTERMOST_COMMAND_TOKEN" in str(caught.value)


def test_buttons_need_the_public_url_and_the_action_secret(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    base = {
        "mattermost_url": "https://chat.example.com",
        "mattermost_bot_token": BOT_TOKEN,
        "mattermost_command_token": COMMAND_TOKEN,
    }
    runner = CommandRunner(workers=1)
    without = build_mattermost(settings(**base), bot_env.services(), runner)
    assert without is not None
    without.start()
    assert "PGDB_PUBLIC_URL and PGDB_ACTION_SECRET" in caplog.text

    with pytest.raises(ConfigError, match="PGDB_ACTION_SECRET"):
        build_mattermost(
            settings(**base, public_url="https://bot.example", action_secret="short"),
            bot_env.services(),
            runner,
        )
    with pytest.raises(ConfigError, match="PGDB_PUBLIC_URL"):
        build_mattermost(
            settings(**base, public_url="bot.example", action_secret=SECRET),
            bot_env.services(),
            runner,
        )
    runner.shutdown(deadline_seconds=1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PGDB_MATTERMOST_URL", "chat.example.com"),
        ("PGDB_MATTERMOST_BOT_TOKEN", "has spaces in it"),
        ("PGDB_MATTERMOST_OPS_CHANNEL", "town-square"),
    ],
)
def test_invalid_mattermost_variables_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert variable in str(caught.value)
    if "TOKEN" in variable:
        assert value not in str(caught.value)


def test_the_http_client_has_timeouts() -> None:
    api = MattermostApi(base_url="http://127.0.0.1:9", bot_token="x")
    timeout = api._http.timeout
    assert isinstance(timeout, httpx.Timeout)
    assert timeout.read is not None and timeout.connect is not None
