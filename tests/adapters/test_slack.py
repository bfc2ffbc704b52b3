"""The Slack adapter against the fake Slack on loopback: signatures (the official vector),
Block Kit rendering, user groups, progress in place with coalescing and rate limits, alerts."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import ANY
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from ruamel.yaml import YAML
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.applications import Starlette

from bot.adapters.slack.client import web_client
from bot.adapters.slack.conversation import Messenger, SlackConversation
from bot.adapters.slack.groups import SlackGroups
from bot.adapters.slack.inbound import normalize_command_text, signature_ok
from bot.adapters.slack.platform import EVENTS_PATH, SlackPlatform
from bot.adapters.slack.render import MAX_BLOCKS, SECTION_LIMIT, render, render_alert
from bot.chat_updates import UpdateBudget
from bot.config import Settings, load_settings
from bot.core.errors import BackendUnavailable, ConfigError, PgdbError
from bot.core.model import Requester
from bot.core.reply import Alert, Button, Reply, Step, StepState, error_reply
from bot.pgcluster import free_port
from bot.runner import CommandRunner
from bot.wiring.chat import SlackConfig, build_slack, slack_config, slack_platform
from handlers.access import Role, role_of
from handlers.context import Services
from tests.fakes.services import memory_services
from tests.fixtures.slack import FakeSlack, slack_signature

# The official worked example (shared/reference/examples/slack_examples/signing_test_vector.txt)
VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TIMESTAMP = "1531420618"
VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
    b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
CHANNEL = "C0PGDB"


# --- signatures ---------------------------------------------------------------------------


def vector_ok(
    *,
    body: bytes = VECTOR_BODY,
    timestamp: str | None = VECTOR_TIMESTAMP,
    signature: str | None = VECTOR_SIGNATURE,
    secret: str = VECTOR_SECRET,
    now: float = 1531420618,
) -> bool:
    return signature_ok(secret=secret, body=body, timestamp=timestamp, signature=signature, now=now)


def test_the_official_signing_example_verifies() -> None:
    assert vector_ok()
    assert vector_ok(now=1531420618 + 300)
    assert vector_ok(now=1531420618 - 300)


@pytest.mark.parametrize(
    "change",
    [
        {"now": 1531420618 + 301},  # stale: outside the 5-minute window
        {"now": 1531420618 - 301},  # from the future
        {"body": VECTOR_BODY.replace(b"roadrunner", b"roadrunnex")},
        {"secret": "8f742231b10e8888abcd99yyyzzz85a6"},
        {"timestamp": "1531420619"},
        {"timestamp": None},
        {"signature": None},
        {"signature": ""},
        {"signature": VECTOR_SIGNATURE.upper()},
        {"signature": "v0=ä" + VECTOR_SIGNATURE[4:]},
        {"timestamp": "-1531420618"},
        {"timestamp": "1531420618.0"},
        {"timestamp": "١٥٣١٤٢٠٦١٨"},  # digits, but not ASCII ones
    ],
)
def test_anything_else_is_refused(change: dict[str, Any]) -> None:
    assert not vector_ok(**change)


def test_the_vector_agrees_with_slack_sdk_and_the_test_signer() -> None:
    class Frozen(Clock):
        def now(self) -> float:
            return 1531420618

    verifier = SignatureVerifier(VECTOR_SECRET, clock=Frozen())
    assert verifier.is_valid(VECTOR_BODY, VECTOR_TIMESTAMP, VECTOR_SIGNATURE)
    assert slack_signature(VECTOR_SECRET, VECTOR_BODY, int(VECTOR_TIMESTAMP)) == VECTOR_SIGNATURE


# --- rendering ----------------------------------------------------------------------------


def onboarding(*, final: bool) -> Reply:
    reply = Reply(
        title="Onboarding `docspell`",
        steps=[
            Step(key="credentials", label="Credentials", state=StepState.DONE, detail="stored"),
            Step(key="role", label="PostgreSQL role", state=StepState.EXISTS, detail="adopted"),
            Step(key="manifests", label="GitOps change"),
        ],
        correlation_id="abc123",
    )
    if final:
        reply.title = "Onboarded `docspell`"
        reply.steps[2].state = StepState.DONE
        reply.fields = [
            ("Pull request", "https://github.com/org/gitops/pull/7?a=1&b=2"),
            ("Connection", "postgresql://docspell:<password>@postgresql-shared-rw:5432/docspell"),
        ]
        reply.lines = ["Add this to your Deployment:"]
        reply.code = 'env:\n  - name: DB_HOST\n    value: "x"'
        reply.final = True
    return reply


def texts(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_progress_shows_each_step_with_its_state() -> None:
    text, blocks = render(onboarding(final=False), footer="<@U1> · `/pgdb create docspell`")

    assert text == "Onboarding `docspell`"
    assert blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Onboarding `docspell`*"},
    }
    steps = blocks[1]["text"]["text"]
    assert steps.splitlines() == [
        "✅ *Credentials* · _done_",
        "stored",
        "☑️ *PostgreSQL role* · _already there_",
        "adopted",
        "⏳ *GitOps change*",
    ]
    assert blocks[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "<@U1> · `/pgdb create docspell`"}],
    }


def test_the_report_escapes_slack_markup_and_keeps_links_and_code() -> None:
    _, blocks = render(onboarding(final=True))

    rendered = texts(blocks)
    assert "&lt;password&gt;" in rendered and "<password>" not in rendered
    assert "pull/7?a=1&amp;b=2" in rendered
    assert '```\\nenv:\\n  - name: DB_HOST\\n    value: \\"x\\"\\n```' in rendered
    # long values are stacked (label over value), which reads well on a phone
    assert not any("fields" in b for b in blocks)
    assert "*Pull request*\\nhttps://github.com/org/gitops/pull/7" in rendered


def test_user_text_cannot_mention_link_or_broadcast() -> None:
    hostile = "<!channel> <@U0BOSS> <https://evil.example|docs> @here @channel"
    reply = Reply(title=f"Denied: {hostile}", lines=[f"reason: {hostile}"], fields=[("R", hostile)])

    text, blocks = render(reply)

    for shown in (text, texts(blocks)):
        assert "<!" not in shown and "<@" not in shown and "<https" not in shown
        assert "&lt;!channel&gt; &lt;@U0BOSS&gt; &lt;https://evil.example|docs&gt;" in shown
        assert "@here" not in shown and "@channel" not in shown
        assert "@\u200bhere @\u200bchannel" in shown


def test_short_fields_sit_side_by_side() -> None:
    reply = Reply(title="pgdb status", fields=[(f"system {i}", "✅ ok") for i in range(12)])

    _, blocks = render(reply)

    assert [len(b["fields"]) for b in blocks[1:]] == [10, 2]
    assert blocks[1]["fields"][0] == {"type": "mrkdwn", "text": "*system 0*\n✅ ok"}


def test_buttons_become_block_kit_actions_carrying_the_command() -> None:
    reply = Reply(
        title="Repair `docspell`: confirm",
        buttons=[
            Button(label="Repair", command="/pgdb repair docspell --yes", style="primary"),
            Button(label="Offboard", command="/pgdb offboard docspell --yes", style="danger"),
        ],
    )

    _, blocks = render(reply)

    actions = next(b for b in blocks if b["type"] == "actions")
    first, second = actions["elements"]
    assert first["action_id"] == "pgdb_command_0" and second["action_id"] == "pgdb_command_1"
    assert first["value"] == "/pgdb repair docspell --yes"
    assert first["style"] == "primary" and "confirm" not in first
    assert second["style"] == "danger" and second["confirm"]["confirm"]["text"] == "Offboard"


def test_errors_carry_their_correlation_id() -> None:
    text, blocks = render(error_reply("`pg-admin` is reserved", correlation_id="c0ffee"))

    assert text == "Error: `pg-admin` is reserved"
    assert blocks[0]["text"]["text"] == "⚠️ *Error*"
    assert "correlation id `c0ffee`" in texts(blocks)


def test_a_long_list_stays_within_slack_limits() -> None:
    reply = Reply(
        title="Known apps (5000), page 1/100",
        lines=[f"✅ app-{i:04d}: ok " + "x" * 180 for i in range(400)],
    )

    _, blocks = render(reply)

    assert len(blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks if "text" in b)


def test_alerts_show_severity_app_message_and_remedy() -> None:
    alert = Alert(
        key="role_missing:docspell",
        severity="critical",
        title="Role `docspell` is missing",
        text="The secret exists but the role does not.\nFix: /pgdb repair docspell",
    )

    text, blocks = render_alert(alert)

    assert text == "🔴 Role `docspell` is missing"
    rendered = texts(blocks)
    assert "Fix: /pgdb repair docspell" in rendered
    assert "*Severity*\\ncritical" in rendered and "*App*\\ndocspell" in rendered
    assert render_alert(Alert(**{**alert.__dict__, "resolved": True, "thread": "1.2"}))[
        0
    ].startswith("✅ Resolved")


def test_command_text_is_read_as_typed() -> None:
    assert normalize_command_text("create docspell —dry-run") == "create docspell --dry-run"
    assert normalize_command_text("create x \u2013namespace a") == "create x --namespace a"
    assert normalize_command_text("deny 12 \u201ctoo big\u201d") == 'deny 12 "too big"'
    assert normalize_command_text(" status a&amp;b ") == "status a&b"


# --- configuration ------------------------------------------------------------------------


def test_slack_is_off_without_its_variables() -> None:
    assert slack_config(Settings()) is None


def test_http_mode_needs_the_signing_secret() -> None:
    with pytest.raises(ConfigError, match="PGDB_SLACK_SIGNING_SECRET"):
        slack_config(Settings(slack_bot_token="xoxb-1"))


def test_socket_mode_needs_the_bot_token_too() -> None:
    with pytest.raises(ConfigError, match="PGDB_SLACK_BOT_TOKEN"):
        slack_config(Settings(slack_app_token="xapp-1"))


def test_ops_channel_falls_back_to_the_shared_one() -> None:
    config = slack_config(
        Settings(slack_bot_token="xoxb-1", slack_app_token="xapp-1", ops_channel="C0OPS")
    )
    assert config is not None and config.socket_mode and config.ops_channel == "C0OPS"
    config = slack_config(
        Settings(
            slack_bot_token="xoxb-1",
            slack_signing_secret="s",
            ops_channel="C0OPS",
            slack_ops_channel="C0SLACK",
        )
    )
    assert config is not None and not config.socket_mode and config.ops_channel == "C0SLACK"


def test_tokens_are_checked_without_being_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_SLACK_BOT_TOKEN", "xoxp-user-token-sekrit")
    monkeypatch.setenv("PGDB_SLACK_APP_TOKEN", "xoxb-wrong-kind-sekrit")
    monkeypatch.setenv("PGDB_SLACK_API_URL", "ftp://example")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "PGDB_SLACK_BOT_TOKEN" in message and "xoxb-" in message
    assert "PGDB_SLACK_APP_TOKEN" in message and "xapp-" in message
    assert "PGDB_SLACK_API_URL" in message
    assert "sekrit" not in message


# --- the platform -------------------------------------------------------------------------


@pytest.fixture
def offline_services() -> Services:
    """Ports that are never reached in these tests (nothing is dispatched)."""
    return memory_services()


def platform_for(
    fake: FakeSlack,
    services: Services,
    *,
    ops: str | None = "C0OPS",
    token: str = "xoxb-t",  # noqa: S107 (a fake)
    runner: CommandRunner | None = None,
) -> SlackPlatform:
    config = SlackConfig(
        bot_token=token,
        signing_secret="secret",
        app_token=None,
        api_url=fake.api_url,
        ops_channel=ops,
    )
    return slack_platform(config, services=services, runner=runner or CommandRunner(workers=1))


def test_the_token_is_checked_at_start(slack_api: FakeSlack, offline_services: Services) -> None:
    settings = Settings(
        slack_bot_token="xoxb-t", slack_signing_secret="s", slack_api_url=slack_api.api_url
    )
    platform = build_slack(settings, offline_services, CommandRunner())
    assert platform is not None
    assert [r.path for r in platform.routes()] == ["/slack/events"]  # type: ignore[attr-defined]
    assert [c.method for c in slack_api.calls] == ["auth.test"]
    slack_api.revoked.add("xoxb-revoked")
    with pytest.raises(ConfigError, match="PGDB_SLACK_BOT_TOKEN"):
        platform_for(slack_api, offline_services, token="xoxb-revoked")


def test_alerts_go_to_the_ops_channel_and_follow_ups_to_its_thread(
    slack_api: FakeSlack, offline_services: Services
) -> None:
    platform = platform_for(slack_api, offline_services)
    alert = Alert(
        key="password_drift:docspell",
        severity="warning",
        title="Password drift on `docspell`",
        text="The stored password does not open the role. Fix: /pgdb rotate docspell",
    )

    ref = platform.send_alert(alert)
    reminder = platform.send_alert(Alert(**{**alert.__dict__, "thread": ref}))
    resolved = platform.send_alert(Alert(**{**alert.__dict__, "thread": ref, "resolved": True}))

    assert ref is not None and reminder == ref and resolved == ref
    first, second, third = slack_api.channel_messages("C0OPS")
    assert first.thread_ts is None and "/pgdb rotate docspell" in first.content
    assert "🟠" in first.text and "docspell" in first.content
    assert second.thread_ts == ref and "Still open" in second.text
    assert third.thread_ts == ref and third.text.startswith("✅ Resolved")


def test_the_follow_through_replies_in_the_thread_of_the_command_message(
    slack_api: FakeSlack, offline_services: Services
) -> None:
    platform = platform_for(slack_api, offline_services)
    talk = SlackConversation(
        messenger=Messenger(client=web_client(token="xoxb-t", api_url=slack_api.api_url)),
        channel="C0DEV",
        user="U0ALICE",
        command="/pgdb create docspell",
        response_url=None,
    )
    assert talk.message_link is None
    talk.show(Reply(title="Onboarding `docspell`"))
    [progress] = slack_api.channel_messages("C0DEV")
    assert progress.thread_ts is None
    link = talk.message_link
    assert link is not None and link.startswith("slack:C0DEV:")

    assert platform.reply_in_thread("mattermost:c:p", "not mine") is False
    assert platform.reply_in_thread(link, "`docspell` is ready") is True
    _, reply = slack_api.channel_messages("C0DEV")
    assert reply.thread_ts == link.rsplit(":", 1)[1] and reply.text == "`docspell` is ready"
    slack_api.not_in_channel.add("C0DEV")
    with pytest.raises(BackendUnavailable, match="could not reply in thread"):
        platform.reply_in_thread(link, "again")


def test_an_undelivered_alert_is_reported_with_the_fix(
    slack_api: FakeSlack, offline_services: Services
) -> None:
    slack_api.not_in_channel.add("C0OPS")
    alert = Alert(key="orphan_role:x", severity="info", title="t", text="m")

    with pytest.raises(BackendUnavailable, match="/invite @pgdb"):
        platform_for(slack_api, offline_services).send_alert(alert)
    assert platform_for(slack_api, offline_services, ops=None).send_alert(alert) is None


# --- groups -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_groups_resolve_by_handle_and_are_cached_briefly(slack_api: FakeSlack) -> None:
    slack_api.usergroups = {"dba": ("S0DBA", ["U0ALICE", "U0BOB"]), "dev": ("S0DEV", ["U0C"])}
    clock = FakeClock()
    groups = SlackGroups(client=web_client(token="xoxb-t", api_url=slack_api.api_url), clock=clock)

    assert set(groups.members("dba")) == {"U0ALICE", "U0BOB"}
    assert set(groups.members("@dba")) == {"U0ALICE", "U0BOB"}
    assert list(groups.members("nobody")) == []
    calls = len(slack_api.calls)
    slack_api.usergroups["dba"] = ("S0DBA", ["U0ALICE"])
    assert set(groups.members("dba")) == {"U0ALICE", "U0BOB"}  # cached
    assert len(slack_api.calls) == calls
    clock.now += 61
    assert set(groups.members("dba")) == {"U0ALICE"}
    assert [c.method for c in slack_api.calls[calls:]] == [
        "usergroups.list",
        "usergroups.users.list",
    ]


def test_groups_decide_roles_and_a_slack_outage_is_an_error_not_a_refusal(
    slack_api: FakeSlack,
) -> None:
    slack_api.usergroups = {"dba": ("S0DBA", ["U0ALICE"])}
    clock = FakeClock()
    groups = SlackGroups(client=web_client(token="xoxb-t", api_url=slack_api.api_url), clock=clock)

    def role(user: str) -> Role:
        return role_of(
            Requester(user_id=user, platform="slack"),
            requesters=["*"],
            operators=["U0ROOT", "group:dba"],
            groups=groups,
        )

    assert role("U0ALICE") is Role.OPERATOR
    assert role("U0BOB") is Role.REQUESTER
    clock.now += 61
    slack_api.fail("usergroups.list", status=500, times=3)
    assert role("U0ALICE") is Role.OPERATOR  # the last answer, while Slack fails
    fresh = SlackGroups(client=web_client(token="xoxb-t", api_url=slack_api.api_url))
    slack_api.fail("usergroups.list", status=500, times=3)
    with pytest.raises(PgdbError, match="group:dba"):
        list(fresh.members("dba"))


# --- progress in place --------------------------------------------------------------------


def messenger_for(
    fake: FakeSlack, *, interval: float = 0.3, per_minute: float = 40, burst: float = 20
) -> Messenger:
    return Messenger(
        client=web_client(token="xoxb-t", api_url=fake.api_url),
        budget=UpdateBudget(per_minute=per_minute, burst=burst),
        min_interval=interval,
    )


def conversation(
    fake: FakeSlack, messenger: Messenger, channel: str = CHANNEL
) -> SlackConversation:
    return SlackConversation(
        messenger=messenger,
        channel=channel,
        user="U0DEV",
        command="/pgdb create docspell",
        response_url=fake.response_url(),
    )


def test_updates_are_coalesced_and_the_final_state_always_lands(slack_api: FakeSlack) -> None:
    talk = conversation(slack_api, messenger_for(slack_api))
    reply = onboarding(final=False)

    talk.show(reply)
    for i in range(20):
        reply.steps[2].detail = f"progress {i}"
        talk.show(reply)
    final = onboarding(final=True)
    talk.show(final)

    (message,) = slack_api.channel_messages(CHANNEL)
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert len(slack_api.calls_to("chat.update")) <= 2
    assert message.text == "Onboarded `docspell`"
    times = [c.at for c in slack_api.calls if c.method.startswith("chat.")]
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(times))


def test_a_waiting_update_is_shown_without_a_further_step(slack_api: FakeSlack) -> None:
    talk = conversation(slack_api, messenger_for(slack_api))
    reply = onboarding(final=False)
    talk.show(reply)
    reply.steps[2].detail = "opened"
    talk.show(reply)  # too soon: held back, then sent by the timer

    slack_api.wait_for(lambda: slack_api.calls_to("chat.update"), timeout=3)
    assert "opened" in slack_api.channel_messages(CHANNEL)[0].content


def test_fifty_workflows_at_once_under_rate_limits_lose_nothing(slack_api: FakeSlack) -> None:
    messenger = messenger_for(slack_api, interval=0.2, per_minute=40, burst=5)
    slack_api.fail("chat.postMessage", status=429, times=10, retry_after=0)
    slack_api.fail("chat.update", status=429, times=10, retry_after=0)

    def workflow(i: int) -> None:
        talk = conversation(slack_api, messenger, channel=f"C{i:03d}")
        reply = onboarding(final=False)
        talk.show(reply)
        for step in reply.steps:
            step.state = StepState.DONE
            talk.show(reply)
            time.sleep(0.01)
        final = onboarding(final=True)
        final.title = f"Onboarded app-{i}"
        talk.show(final)

    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(workflow, range(50)))

    for i in range(50):
        (message,) = slack_api.channel_messages(f"C{i:03d}")
        assert message.text == f"Onboarded app-{i}"
    updates = len(slack_api.calls_to("chat.update")) - 10  # the refused ones were retried
    assert updates <= 50 + 5  # the finals, plus what the budget let through


def test_a_private_ending_replaces_the_progress_and_goes_to_the_requester(
    slack_api: FakeSlack,
) -> None:
    talk = conversation(slack_api, messenger_for(slack_api, interval=0.0))
    talk.show(onboarding(final=False))
    busy = Reply(title="`docspell` is already being onboarded", ok=False, private=True)
    busy.final = True

    talk.show(busy)

    (message,) = slack_api.channel_messages(CHANNEL)
    assert message.text == "Not run"
    (answer,) = slack_api.calls_to("response_url")
    assert answer.params["response_type"] == "ephemeral"
    assert "already being onboarded" in answer.raw


@pytest.mark.slow
def test_slack_failures_never_reach_the_workflow(slack_api: FakeSlack) -> None:
    talk = conversation(slack_api, messenger_for(slack_api, interval=0.0))
    slack_api.fail("chat.postMessage", status=500, times=3)
    talk.show(onboarding(final=False))  # logged, not raised: the response_url carries it
    assert slack_api.calls_to("response_url")[0].params["response_type"] == "in_channel"
    slack_api.fail("response_url", status=500, times=6)
    busy = error_reply("nope")
    busy.final = True
    talk.show(busy)  # the response_url fails too
    assert slack_api.calls_to("chat.postEphemeral")  # the last way to tell the requester


def test_the_app_manifest_matches_what_the_bot_serves() -> None:
    path = Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yaml"
    manifest = YAML(typ="safe").load(path.read_text())

    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/pgdb"
    assert command["url"].endswith(EVENTS_PATH)
    assert manifest["settings"]["interactivity"]["request_url"].endswith(EVENTS_PATH)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "usergroups:read"} <= scopes


@contextmanager
def serving(platform: SlackPlatform) -> Iterator[httpx.Client]:
    """The platform's routes on uvicorn on loopback, as `pgdb-bot run` serves them."""
    port = free_port()
    config = uvicorn.Config(
        Starlette(routes=platform.routes()),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started and time.monotonic() < end:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _signed_post(client: httpx.Client, body: bytes) -> httpx.Response:
    timestamp = int(time.time())
    return client.post(
        EVENTS_PATH,
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": slack_signature("secret", body, timestamp),
        },
    )


def test_the_endpoint_tells_the_requester_when_the_bot_is_stopping(
    slack_api: FakeSlack, offline_services: Services
) -> None:
    runner = CommandRunner(workers=1)
    platform = platform_for(slack_api, offline_services, runner=runner)
    runner.shutdown(deadline_seconds=0)  # what SIGTERM does
    body = urlencode(
        {"command": "/pgdb", "text": "help", "user_id": "U0DEV", "channel_id": CHANNEL}
    ).encode()

    with serving(platform) as client:
        answer = _signed_post(client, body)

    assert answer.status_code == 200
    assert answer.json() == {"text": ANY, "response_type": "ephemeral"}
    assert "restarting" in answer.json()["text"]


def test_the_signature_is_checked_once_by_our_route_not_by_bolt(
    slack_api: FakeSlack, offline_services: Services
) -> None:
    runner = CommandRunner(workers=1)
    platform = platform_for(slack_api, offline_services, runner=runner)
    runner.shutdown(deadline_seconds=0)  # nothing runs: only the answers matter here
    body = urlencode(
        {"command": "/pgdb", "text": "help", "user_id": "U0DEV", "channel_id": CHANNEL}
    ).encode()

    with serving(platform) as client:
        unsigned = client.post(
            EVENTS_PATH, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        signed = _signed_post(client, body)

    assert unsigned.status_code == 401
    assert unsigned.json() == {"error": "invalid request"}  # our refusal, not Bolt's
    # Bolt was given no signing secret: had it checked again, it would have refused this one
    assert signed.status_code == 200


def test_the_endpoint_refuses_oversized_bodies_and_foreign_buttons(
    slack_api: FakeSlack, offline_services: Services
) -> None:
    runner = CommandRunner(workers=1)
    platform = platform_for(slack_api, offline_services, runner=runner)
    foreign = {
        "type": "block_actions",
        "user": {"id": "U0DEV"},
        "channel": {"id": CHANNEL},
        "container": {"message_ts": "1.2", "channel_id": CHANNEL},
        "actions": [{"action_id": "pgdb_command_0", "value": "rm -rf /", "type": "button"}],
    }

    with serving(platform) as client:
        too_big = _signed_post(client, b"x" * (2 << 20))
        clicked = _signed_post(client, urlencode({"payload": json.dumps(foreign)}).encode())

    assert too_big.status_code == 413
    assert clicked.status_code == 200
    assert runner.in_flight == 0
    assert [c.method for c in slack_api.calls] == ["auth.test"]
