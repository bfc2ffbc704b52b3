"""The workflow with real adapters, a real fault injected at each step, then a re-run."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.adapters.console_chat import ConsoleConversation
from bot.core.model import Requester
from bot.core.names import AppName
from bot.core.reply import Reply, StepState
from handlers.context import CommandContext, Services
from handlers.create import run_create
from tests.fixtures.bot import BotEnv
from tests.fixtures.postgres import with_params

APP = AppName("docspell")


def create(services: Services) -> Reply:
    ctx = CommandContext(
        services=services,
        requester=Requester(user_id="alice", platform="test"),
        conversation=ConsoleConversation(io.StringIO()),
    )
    return run_create(ctx, APP, extra_namespace=None, dry_run=False)


def _block_secret_folder(env: BotEnv) -> Callable[[], None]:
    parent = env.secrets_dir / "dev" / "postgresql"
    parent.mkdir(parents=True)
    blocker = parent / "docspell"
    blocker.write_text("not a folder")
    return blocker.unlink


def _git_lock(env: BotEnv, ref: str) -> Callable[[], None]:
    lock = Path(env.git("rev-parse", "--git-dir").strip())
    if not lock.is_absolute():
        lock = env.repo / lock
    lock = lock / f"{ref}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    return lock.unlink


@pytest.mark.parametrize("step", ["credentials", "role", "manifests", "checks"])
def test_a_failed_step_is_resumed_by_a_rerun_with_the_original_password(
    bot_env: BotEnv, step: str
) -> None:
    services = bot_env.services()
    faulty = services
    undo: Callable[[], None] = lambda: None  # noqa: E731
    if step == "credentials":
        undo = _block_secret_folder(bot_env)
    elif step == "role":
        # The server refuses DDL for this connection: a real PostgreSQL error.
        read_only = with_params(bot_env.dsn, options="-c default_transaction_read_only=on")
        faulty = bot_env.services(database_dsn=read_only)
    elif step == "manifests":
        undo = _git_lock(bot_env, "refs/heads/pgdb/docspell")
    else:
        undo = _git_lock(bot_env, "refs/notes/pgdb-checks")

    failed = create(faulty)

    assert not failed.ok
    assert failed.step(step).state is StepState.FAILED
    assert failed.step(step).detail
    assert any("run the same command again" in line for line in failed.lines)
    first_password = bot_env.stored("docspell")
    undo()

    resumed = create(services)

    assert resumed.ok, [(s.key, s.state, s.detail) for s in resumed.steps]
    password = bot_env.stored("docspell")
    assert password is not None
    if first_password is not None:
        assert password == first_password
    assert bot_env.can_login("docspell", password)
    assert bot_env.git("rev-list", "--count", "main..pgdb/docspell").strip() == "1"
    notes = bot_env.git("notes", "--ref", "pgdb-checks", "show", "pgdb/docspell")
    assert "pgdb/manifests" in notes and "failure" not in notes
