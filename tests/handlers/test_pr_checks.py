"""While an onboarding PR is open, the diagnostics passes keep its `pgdb/*` checks true."""

from __future__ import annotations

import io
import json

from bot.adapters.console_chat import ConsoleConversation
from bot.core.model import Requester
from bot.core.names import AppName
from handlers.context import CommandContext
from handlers.create import run_create
from handlers.findings import diagnose
from handlers.observe import observe
from handlers.pr_checks import CheckRefresher
from tests.fixtures.bot import BotEnv


def checks_on_branch(env: BotEnv) -> dict[str, str]:
    note = json.loads(env.git("notes", "--ref", "pgdb-checks", "show", "pgdb/docspell"))
    return {c["context"]: c["state"] for c in note["checks"]}


def test_a_role_dropped_under_an_open_pr_turns_its_check_red_once(bot_env: BotEnv) -> None:
    services = bot_env.services()
    ctx = CommandContext(
        services=services,
        requester=Requester(user_id="alice", platform="test"),
        conversation=ConsoleConversation(io.StringIO()),
    )
    assert run_create(ctx, AppName("docspell"), extra_namespace=None, dry_run=False).ok
    refresher = CheckRefresher()

    def refresh() -> int:
        obs = observe(services)
        return refresher.refresh(obs, services, diagnose(obs, services))

    assert refresh() == 0  # what create published is still true
    bot_env.sql("DROP ROLE docspell")
    assert refresh() == 1
    assert checks_on_branch(bot_env) == {
        "pgdb/secret": "success",
        "pgdb/role": "failure",
        "pgdb/manifests": "success",
    }
    assert refresh() == 0  # unchanged: nothing published again
