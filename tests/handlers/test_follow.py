"""The follow-through after ``create`` with real adapters: the bot watches the app until every
layer is ok, then says so once in the command's thread; past the deadline it names the first
layer that is not ok."""

from __future__ import annotations

import io
from datetime import timedelta

from bot.adapters.console_chat import ConsoleConversation
from bot.core.model import Requester
from bot.core.names import AppName
from bot.core.reply import Alert, Reply
from handlers.context import CommandContext, Services
from handlers.create import run_create
from handlers.findings import diagnose
from handlers.follow import READY, STUCK, decide, follow_through
from handlers.observe import observe
from tests.fixtures.bot import BotEnv

APP = AppName("docspell")
LINK = "test:C1:1700000000.000100"
DAY = timedelta(hours=24)


class ThreadedConversation:
    """A chat conversation whose progress message has a reference once shown."""

    def __init__(self) -> None:
        self._console = ConsoleConversation(io.StringIO())
        self.message_link: str | None = None

    def show(self, reply: Reply) -> None:
        self._console.show(reply)
        self.message_link = LINK


class Thread:
    name = "test"

    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []

    def reply_in_thread(self, link: str, text: str) -> bool:
        if not link.startswith("test:"):
            return False
        self.posted.append((link, text))
        return True


class Ops:
    name = "ops"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send_alert(self, alert: Alert) -> str | None:
        self.alerts.append(alert)
        return "ops-1"


def _create(services: Services) -> None:
    ctx = CommandContext(
        services=services,
        requester=Requester(user_id="alice", platform="test"),
        conversation=ThreadedConversation(),
    )
    assert run_create(ctx, APP, extra_namespace=None, dry_run=False).ok


def _pass(services: Services, thread: Thread, ops: Ops, deadline: timedelta = DAY) -> list[str]:
    obs = observe(services)
    verdicts = diagnose(obs, services).verdicts
    done = follow_through(obs, services, verdicts, repliers=[thread], ops=[ops], deadline=deadline)
    return [f.result for f in done]


def test_ready_once_every_layer_is_ok_in_the_original_thread(bot_env: BotEnv) -> None:
    services = bot_env.services()
    thread, ops = Thread(), Ops()
    _create(services)
    [pending] = services.state.pending_follow_ups()
    assert pending.message_link == LINK

    # the manifests wait on their branch, the database on CloudNativePG: keep watching
    assert _pass(services, thread, ops) == []
    assert thread.posted == []

    bot_env.git("merge", "-q", "--ff-only", "pgdb/docspell")
    assert _pass(services, thread, ops) == []  # the database is not created yet
    bot_env.sql("CREATE DATABASE docspell OWNER docspell")

    assert _pass(services, thread, ops) == [READY]
    [(link, text)] = thread.posted
    assert link == LINK
    assert text.startswith("`docspell` is ready")
    password = bot_env.stored(APP)
    assert password is not None and password not in text
    # once: the next pass posts nothing
    assert _pass(services, thread, ops) == []
    assert len(thread.posted) == 1
    assert ops.alerts == []


def test_past_the_deadline_the_layer_that_blocks_is_named_once(bot_env: BotEnv) -> None:
    """Unmerged, the PR is what blocks (the database follows from it), so it is named."""
    services = bot_env.services()
    thread, ops = Thread(), Ops()
    _create(services)
    obs = observe(services)
    [workflow] = services.state.pending_follow_ups()
    verdict = diagnose(obs, services).verdicts.get(APP)

    assert decide(obs, services, workflow, verdict, deadline=DAY) is None
    stuck = decide(obs, services, workflow, verdict, deadline=timedelta(0))
    assert stuck is not None and stuck.result == STUCK
    assert stuck.stuck_at is not None and stuck.stuck_at.name == "manifests"

    assert _pass(services, thread, ops, deadline=timedelta(0)) == [STUCK]
    [(link, text)] = thread.posted
    assert link == LINK
    assert "stuck at manifests" in text
    [alert] = ops.alerts
    assert alert.key == "follow_stuck:docspell"
    assert _pass(services, thread, ops, deadline=timedelta(0)) == []
    assert len(thread.posted) == 1


def test_no_thread_and_no_platform_means_no_follow_through(bot_env: BotEnv) -> None:
    services = bot_env.services()
    ctx = CommandContext(
        services=services,
        requester=Requester(user_id="alice", platform="console"),
        conversation=ConsoleConversation(io.StringIO()),
    )
    assert run_create(ctx, APP, extra_namespace=None, dry_run=False).ok
    assert services.state.pending_follow_ups() == []  # the console has no thread
    obs = observe(services)
    assert follow_through(obs, services, {}, repliers=[], deadline=timedelta(0)) == []
