"""The answer to `create` reaches the chat before the pull request's commit statuses are posted:
against a real GitHub, posting them is the slowest part of an onboarding."""

from __future__ import annotations

import time

import pytest

from bot.core.names import parse_app_name
from tests.e2e.test_github_console import CONTEXTS, github_env
from tests.e2e.test_slack_run import CHANNEL, final_message, running, slack_env
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.github import Call, FakeGitHub
from tests.fixtures.slack import FakeSlack

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py


def posted_statuses(github: FakeGitHub) -> list[Call]:
    return [c for c in list(github.calls) if c.method == "POST" and "/statuses/" in c.path]


@pytest.mark.slow
def test_the_pr_link_and_snippet_are_shown_before_the_statuses_go_out(
    bot_env: BotEnv, slack_api: FakeSlack, fake_github: FakeGitHub
) -> None:
    app = parse_app_name("docspell")
    fake_github.latency = 0.2  # a realistic round trip: the statuses take a while
    # No spacing between GitHub writes: the order must not rest on it (nor may the scheduled
    # pass publish checks on a proposal whose create is still running).
    github = {**github_env(fake_github), "PGDB_GITHUB_WRITE_SPACING": "0"}
    env = bot_env.env(**slack_env(slack_api), **github)

    with running(env, bot_env.state_dir, slack_api) as bot:
        response, _, _ = bot.command(f"create {app}")
        assert response.status_code == 200, response.text
        final_message(slack_api, CHANNEL, f"Onboarded `{app}`")
        deadline = time.monotonic() + 20  # the answer is out; the statuses follow it
        while len(posted_statuses(fake_github)) < len(CONTEXTS) and time.monotonic() < deadline:
            time.sleep(0.05)
        [pr] = fake_github.open_pulls()

    url = f"{fake_github.root}/acme/gitops/pull/{pr.number}"
    shown = [
        call
        for call in slack_api.calls
        if call.method in {"chat.postMessage", "chat.update"}
        and url in str(call.params.get("blocks", "")) + str(call.params.get("text", ""))
        and "postgresql://docspell" in str(call.params.get("blocks", ""))
    ]
    statuses = posted_statuses(fake_github)
    assert shown, "the PR link and the connection snippet were never shown"
    assert len(statuses) == len(CONTEXTS)
    assert shown[0].at < statuses[0].at, "the statuses went out before the answer was shown"
    head = fake_github.branch_sha(f"pgdb/{app}")
    assert head is not None
    assert {s["context"]: s["state"] for s in fake_github.statuses[head]} == dict.fromkeys(
        CONTEXTS, "success"
    )
