"""Issue 15 through the chat surfaces: user text escaped per platform (case 6), group lookups
that fail closed for one rule alone (case 7), four eyes by person across Slack and the console
(case 5), and the namespace policy at the command edge (case 4, the policy half).

Each runs `pgdb-bot run` (or the console) for real against the Slack and Mattermost fakes and
looks at what a person would see there, at PostgreSQL and at the audit log.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.e2e import test_mattermost_run as mm
from tests.e2e.test_slack_run import CHANNEL, OPERATOR, final_message, running, slack_env
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.mattermost import FakeMattermost
from tests.fixtures.slack import FakeSlack, Message

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py

OPS = "C0OPS"
APP = "docspell"
SLACK_PAYLOAD = "<!channel> <@U0BOSS> <https://evil.example|docs>"
SLACK_ESCAPED = "&lt;!channel&gt; &lt;@U0BOSS&gt; &lt;https://evil.example|docs&gt;"
MM_PAYLOAD = "@channel @all ![img](http://evil.example/x.png) [docs](http://evil.example)"
ZWSP = "\u200b"


def _audit(env: BotEnv) -> list[tuple[Any, ...]]:
    """The audit rows so far; none while the bot has not yet created its schema (it does so
    on its first command, which may still be running)."""
    try:
        return env.sql(
            "SELECT username, platform, command, result, detail FROM pgdb_bot.audit_log "
            "ORDER BY id",
            in_state_db=True,
        )
    except psycopg.errors.UndefinedTable:
        return []


def _audit_if_created(env: BotEnv) -> list[tuple[Any, ...]]:
    try:
        return _audit(env)
    except psycopg.errors.UndefinedTable:
        return []


def _audited(env: BotEnv, *, count: int) -> list[tuple[Any, ...]]:
    """The audit log once it holds ``count`` rows (a command is audited after its reply; on a
    busy machine the bot may not even have created its tables yet)."""
    end = time.monotonic() + 30
    while len(rows := _audit_if_created(env)) < count:
        assert time.monotonic() < end, rows
        time.sleep(0.1)
    return rows


def _nothing_created(env: BotEnv) -> None:
    assert env.stored(APP) is None
    assert env.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", APP) == []
    assert env.git("branch", "--list", "pgdb/*").strip() == ""


def _in_thread(slack: FakeSlack, channel: str, ts: str, text: str) -> Message:
    def found() -> Message | None:
        return next(
            (m for m in slack.channel_messages(channel) if m.thread_ts == ts and text in m.text),
            None,
        )

    message: Message = slack.wait_for(found)
    return message


# --- case 6: user text escaped per platform ---------------------------------------------------


def test_slack_a_deny_reason_arrives_as_literal_text_everywhere(
    bot_env: BotEnv, slack_api: FakeSlack
) -> None:
    env = bot_env.env(
        **slack_env(slack_api, PGDB_REQUIRE_APPROVAL="requesters", PGDB_OPERATORS=OPERATOR)
    )
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command(f"create {APP}")
        asked = final_message(slack_api, CHANNEL, "waits for an operator's approval")
        announcement = final_message(slack_api, OPS, f"asks for `/pgdb create {APP}`")

        bot.command(f"deny 1 {SLACK_PAYLOAD}", user=OPERATOR, channel=OPS)

        # the requester's notification, the ops thread note and the deny reply itself
        told = _in_thread(slack_api, CHANNEL, asked.ts, "was denied")
        note = _in_thread(slack_api, OPS, announcement.ts, "denied by")
        reply = final_message(slack_api, OPS, "denied: `docspell` is not created")
        assert f"denied by {OPERATOR}: {SLACK_ESCAPED}" in told.text
        assert SLACK_ESCAPED in note.content
        assert SLACK_ESCAPED in reply.content
        for message in slack_api.channel_messages(CHANNEL) + slack_api.channel_messages(OPS):
            for control in ("<!channel>", "<@U0BOSS>", "<https://evil.example"):
                assert control not in message.content, message
        # the commands typed are echoed escaped too (the footer of the deny reply)
        assert "<!" not in json.dumps([c.params for c in slack_api.calls])
        _nothing_created(bot_env)


def _outside_code(message: str) -> str:
    """What Mattermost renders as markdown: the message without its inline code spans."""
    return re.sub(r"(`+)(?:(?!\1).)+?\1", " ", message)


def test_mattermost_a_deny_reason_neither_notifies_nor_renders(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    with mm._running_bot(
        bot_env, fake_mattermost, tmp_path, PGDB_REQUIRE_APPROVAL="requesters"
    ) as bot:
        assert bot.command(f"create {APP}", user=mm.REQUESTER).status_code == 200
        fake_mattermost.wait_for(lambda: bool(fake_mattermost.posts_in(mm.OPS)))
        [asked] = [
            p
            for p in fake_mattermost.posts_in(mm.CHANNEL)
            if "waits for an operator's approval" in p["message"]
        ]

        assert bot.command(f"deny 1 {MM_PAYLOAD}", user=mm.OPERATOR).status_code == 200

        fake_mattermost.wait_for(
            lambda: any(
                p["root_id"] == asked["id"] and "was denied" in p["message"]
                for p in fake_mattermost.posts_in(mm.CHANNEL)
            )
        )
        fake_mattermost.wait_for(
            lambda: any("denied by" in p["message"] for p in fake_mattermost.posts_in(mm.OPS))
        )
        fake_mattermost.wait_for(
            lambda: any(
                "is not created" in p["message"] for p in fake_mattermost.posts_in(mm.CHANNEL)
            )
        )
        bot.stop()
        shown = [p["message"] for p in fake_mattermost.posts.values()]
        shown += [p["message"] for p in fake_mattermost.ephemerals]
        attachments = [
            a for p in fake_mattermost.posts.values() for a in p["props"].get("attachments") or []
        ]
        shown += [a.get("text", "") for a in attachments]
        plain = [a.get("fallback", "") for a in attachments]  # notifications: not markdown
        for message in shown + plain:
            assert not re.search(r"@(channel|all|here)\b", message, re.IGNORECASE), message
        for message in shown:
            rendered = _outside_code(message)
            assert "![img](" not in rendered and "[docs](" not in rendered, message
        told = next(
            p["message"]
            for p in fake_mattermost.posts_in(mm.CHANNEL)
            if p["root_id"] == asked["id"] and "was denied" in p["message"]
        )
        # the reason is still readable: the mentions carry a zero-width space, the markdown
        # is backslash-escaped (Mattermost shows `![img](…)` as written)
        assert f"@{ZWSP}channel @{ZWSP}all !\\[img\\](http://evil.example/x.png)" in told
        _nothing_created(bot_env)


# --- case 7: groups fail closed for one rule alone --------------------------------------------


def test_slack_group_api_down_refuses_only_what_needs_the_group(
    bot_env: BotEnv, slack_api: FakeSlack
) -> None:
    slack_api.usergroups = {"dba": ("S0DBA", ["U0ALICE"])}
    slack_api.fail("usergroups.list", status=500, times=1000)
    env = bot_env.env(**slack_env(slack_api, PGDB_OPERATORS="U0ROOT,group:dba"))
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command("help", user="U0ALICE")
        final_message(slack_api, CHANNEL, "self-service PostgreSQL")
        assert slack_api.calls_to("usergroups.list") == []  # `*` decided: nothing asked

        _, _, refusal_url = bot.command("diagnose", user="U0ALICE")

        answer = slack_api.wait_for(lambda: slack_api.responses_to(refusal_url))[0]
        text = json.dumps(answer)
        assert answer["response_type"] == "ephemeral"
        assert "Not allowed" in text and "`group:dba` could not be checked" in text
        assert slack_api.calls_to("usergroups.list")  # asked, and failed: counted as no member
        rows = _audited(bot_env, count=2)
    assert [(user, command, result) for user, _, command, result, _ in rows] == [
        ("U0ALICE", "/pgdb help", "ok"),
        ("U0ALICE", "/pgdb diagnose", "refused"),
    ]


def test_mattermost_an_operator_group_past_the_first_page_is_found(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    for i in range(230):  # a search for "ops" matches all of these before the real group
        fake_mattermost.add_group(f"ops-{i:03d}", [], display_name=f"Aaa ops {i:03d}")
    fake_mattermost.add_group("ops", ["member0000000000000000001"], display_name="Zz ops")
    member = "member0000000000000000001"
    with mm._running_bot(bot_env, fake_mattermost, tmp_path, PGDB_OPERATORS="group:ops") as bot:
        assert bot.command("diagnose", user=member).status_code == 200
        rows = _audited(bot_env, count=1)
        log = bot.stop()
    assert [(command, result) for _, _, command, result, _ in rows] == [("/pgdb diagnose", "ok")]
    pages = fake_mattermost.recorded("GET", "/api/v4/groups")
    assert [c.query["page"] for c in pages] == [["0"], ["1"]], log


# --- case 5: four eyes by person, across surfaces -----------------------------------------------


def test_a_slack_request_is_not_approved_by_the_same_person_on_the_console(
    bot_env: BotEnv, slack_api: FakeSlack
) -> None:
    rules = {"PGDB_REQUIRE_APPROVAL": "all", "PGDB_OPERATORS": f"{OPERATOR},U0BOSS"}
    env = bot_env.env(**slack_env(slack_api, **rules))
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command(f"create {APP}", user=OPERATOR)
        final_message(slack_api, CHANNEL, "waits for an operator's approval")

        own = bot_env.console("/pgdb approve 1", as_user=OPERATOR, **rules)

        assert own.returncode == 0, own.stderr
        assert "request #1 is yours (asked as U0OPS on slack)" in own.stdout
        assert "another operator decides it (four eyes)" in own.stdout
        _nothing_created(bot_env)
        assert (OPERATOR, "console", "/pgdb approve 1", "refused") in [
            row[:4] for row in _audited(bot_env, count=2)
        ]
        # nor on Slack itself, nor by denying it
        _, _, url = bot.command("approve 1", user=OPERATOR, channel=OPS)
        assert "is yours" in json.dumps(slack_api.wait_for(lambda: slack_api.responses_to(url)))
        _nothing_created(bot_env)

        other = bot_env.console("/pgdb approve 1", as_user="U0BOSS", **rules)

        assert f"Onboarded `{APP}`" in other.stdout, other.stdout + other.stderr
        password = bot_env.stored(APP)
        assert password is not None and bot_env.can_login(APP, password)


# --- case 4: the namespace policy at the command edge -------------------------------------------


def test_namespaces_on_the_never_list_are_refused_for_everyone(bot_env: BotEnv) -> None:
    commands = [
        f"/pgdb create {APP} --namespace kube-system",
        f"/pgdb create {APP} --namespace default",
        f"/pgdb create {APP} --namespace argocd",
        f"/pgdb create {APP} --namespace databases --dry-run",  # the bot's own (PGDB_NAMESPACE)
        f"/pgdb create {APP} --namespace tools",  # PGDB_BOT_NAMESPACE
    ]
    run = bot_env.console(*commands, PGDB_BOT_NAMESPACE="tools")  # the console user: an operator

    assert run.returncode == 0, run.stderr
    assert "`kube-system` can never receive an app's credentials" in run.stdout
    assert "Kubernetes' own namespaces (`kube-*`)" in run.stdout
    assert "`default` can never receive" in run.stdout
    assert "Argo CD's namespace (`argocd`, PGDB_ARGOCD_NAMESPACE)" in run.stdout
    assert "`databases` can never receive" not in run.stdout  # not the bot's: tools is
    assert "the bot's own namespace (`tools`)" in run.stdout
    assert "operators included" in run.stdout
    _nothing_created(bot_env)
    rows = [(command, result, detail) for _, _, command, result, detail in _audit(bot_env)]
    for command in commands[:3] + commands[4:]:
        assert [r for c, r, _ in rows if c == command] == ["refused"], rows
    assert ("Namespace `kube-system` not allowed") in [d for _, _, d in rows]


def test_secret_namespaces_globs_decide_the_rest(bot_env: BotEnv) -> None:
    rules = {"PGDB_SECRET_NAMESPACES": "team-*,apps"}
    run = bot_env.console(
        f"/pgdb create {APP} --namespace billing --dry-run",
        f"/pgdb create {APP} --namespace team-docs --dry-run",
        as_user="dev1",
        **rules,
    )

    assert run.returncode == 0, run.stderr
    assert "`billing` is not a namespace this bot delivers credentials to" in run.stdout
    assert "PGDB_SECRET_NAMESPACES allows `team-*`, `apps`" in run.stdout
    assert "ask a platform operator to add it to PGDB_SECRET_NAMESPACES" in run.stdout
    assert f"Plan for `{APP}`" in run.stdout  # team-docs matches: the plan is shown
    results = [(c, r) for _, _, c, r, _ in _audit(bot_env)]
    assert (f"/pgdb create {APP} --namespace billing --dry-run", "refused") in results
    _nothing_created(bot_env)


# --- cases 1 and 2 on the chat platforms: what create may undo or take -------------------------


def test_slack_a_requester_cannot_bring_back_an_offboarded_app(
    bot_env: BotEnv, slack_api: FakeSlack
) -> None:
    assert bot_env.console(f"/pgdb create {APP}", f"/pgdb offboard {APP} --yes").returncode == 0
    env = bot_env.env(**slack_env(slack_api, PGDB_OPERATORS=OPERATOR))
    with running(env, bot_env.state_dir, slack_api) as bot:
        _, _, url = bot.command(f"create {APP}")  # a requester (approvals off)

        refused = json.dumps(slack_api.wait_for(lambda: slack_api.responses_to(url)))
        rows = _audited(bot_env, count=3)

    assert "Not allowed" in refused  # an ephemeral answer to the requester
    assert f"`{APP}` was offboarded" in refused and OPERATOR in refused
    assert bot_env.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", APP) == [(False,)]
    assert [r[:2] + r[3:4] for r in rows[2:]] == [("U0DEV", "slack", "refused")]


def test_mattermost_create_never_takes_a_database_owned_by_another_role(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    bot_env.sql('CREATE ROLE "olduser" NOLOGIN')
    bot_env.sql(f'CREATE DATABASE "{APP}" OWNER "olduser"')
    with mm._running_bot(bot_env, fake_mattermost, tmp_path) as bot:
        bot.command(f"create {APP}")

        post = mm._post_saying(fake_mattermost, "stopped")

    assert "owned by `olduser`" in post["message"]
    assert "never hands existing data" in post["message"]
    assert bot_env.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", APP) == []
    assert bot_env.git("branch", "--list", "pgdb/*").strip() == ""
