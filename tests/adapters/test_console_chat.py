"""The console chat as a person at a terminal (or a pipe) reads it."""

from __future__ import annotations

import getpass
import io
import os
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.console_chat import ConsoleConversation, run_console
from bot.config import load_settings
from bot.core.reply import Reply, Step, StepState, error_reply
from handlers.context import Services
from tests.fakes.bot_state import MemoryBotState
from tests.fakes.services import memory_services


def printed(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def onboarding() -> Reply:
    return Reply(
        title="Onboarding `docspell`",
        steps=[
            Step(key="secret", label="Credentials in the secret store"),
            Step(key="role", label="PostgreSQL role"),
        ],
    )


# --- ConsoleConversation ------------------------------------------------------------------


def test_title_then_each_settled_step_once() -> None:
    out = io.StringIO()
    chat = ConsoleConversation(out)
    reply = onboarding()

    chat.show(reply)
    assert printed(out) == ["Onboarding `docspell`"]

    reply.step("secret").state = StepState.DONE
    reply.step("secret").detail = "stored at /postgresql/docspell"
    chat.show(reply)
    chat.show(reply)  # nothing changed: nothing printed
    assert printed(out) == [
        "Onboarding `docspell`",
        "  [✔ done] Credentials in the secret store: stored at /postgresql/docspell",
    ]

    reply.step("role").state = StepState.EXISTS
    chat.show(reply)
    assert printed(out)[2:] == ["  [✔ already there] PostgreSQL role"]


def test_a_step_is_printed_again_when_its_state_changes() -> None:
    out = io.StringIO()
    chat = ConsoleConversation(out)
    reply = onboarding()
    reply.step("secret").state = StepState.PLANNED
    chat.show(reply)
    reply.step("secret").state = StepState.FAILED
    reply.step("secret").detail = "permission denied"
    chat.show(reply)
    assert printed(out)[1:] == [
        "  [• would do] Credentials in the secret store",
        "  [✘ failed] Credentials in the secret store: permission denied",
    ]


def test_skipped_step_mark() -> None:
    out = io.StringIO()
    reply = onboarding()
    reply.step("role").state = StepState.SKIPPED
    ConsoleConversation(out).show(reply)
    assert printed(out)[1:] == ["  [- skipped] PostgreSQL role"]


def test_final_reply_shows_new_title_fields_lines_and_code() -> None:
    out = io.StringIO()
    chat = ConsoleConversation(out)
    reply = onboarding()
    chat.show(reply)
    for step in reply.steps:
        step.state = StepState.DONE
    reply.title = "Onboarded `docspell`"
    reply.fields = [("Branch to merge", "pgdb/docspell"), ("Password", "in the secret store")]
    reply.lines = ["Add this to your Deployment:", "", "then merge the branch"]
    reply.code = "env:\n  - name: DB_HOST"
    reply.correlation_id = "abc123"
    reply.final = True
    chat.show(reply)
    assert printed(out) == [
        "Onboarding `docspell`",
        "  [✔ done] Credentials in the secret store",
        "  [✔ done] PostgreSQL role",
        "Onboarded `docspell`",
        "  Branch to merge: pgdb/docspell",
        "  Password: in the secret store",
        "  Add this to your Deployment:",
        "",
        "  then merge the branch",
        "",
        "    env:",
        "      - name: DB_HOST",
    ]


def test_successful_reply_has_no_correlation_id() -> None:
    out = io.StringIO()
    ConsoleConversation(out).show(Reply(title="Done", correlation_id="abc123", final=True))
    assert "abc123" not in out.getvalue()


def test_same_title_is_not_repeated_at_the_end() -> None:
    out = io.StringIO()
    chat = ConsoleConversation(out)
    reply = Reply(title="Status of `docspell`")
    chat.show(reply)
    reply.lines = ["ok"]
    reply.final = True
    chat.show(reply)
    assert printed(out) == ["Status of `docspell`", "  ok"]


def test_error_is_marked_and_carries_the_correlation_id() -> None:
    out = io.StringIO()
    reply = error_reply("unknown command `frob`. Try `/pgdb help`.", title="Usage")
    reply.correlation_id = "b2eaaeb96c46"
    reply.final = True
    ConsoleConversation(out).show(reply)
    assert printed(out) == [
        "! Usage",
        "  unknown command `frob`. Try `/pgdb help`.",
        "  (correlation id b2eaaeb96c46)",
    ]


def test_failed_workflow_shows_the_correlation_id() -> None:
    out = io.StringIO()
    chat = ConsoleConversation(out)
    reply = onboarding()
    chat.show(reply)
    reply.step("secret").state = StepState.FAILED
    reply.ok = False
    reply.title = "Onboarding `docspell` stopped"
    reply.lines = ["re-run `/pgdb create docspell` once fixed"]
    reply.correlation_id = "feed42"
    reply.final = True
    chat.show(reply)
    assert printed(out)[-1] == "  (correlation id feed42)"
    assert "Onboarding `docspell` stopped" in printed(out)


def test_nothing_but_the_title_until_final() -> None:
    out = io.StringIO()
    chat = ConsoleConversation(out)
    reply = Reply(title="Diagnostics", lines=["not yet"], fields=[("a", "b")], code="x")
    chat.show(reply)
    assert printed(out) == ["Diagnostics"]


# --- run_console, with commands that need no backend --------------------------------------


class Unused:
    configured = False

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the console touched a backend ({name}) for this command")


@pytest.fixture
def state() -> MemoryBotState:
    """The bot state port: its audit log is what these tests read."""
    return MemoryBotState()


@pytest.fixture
def services(state: MemoryBotState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Services:
    for name in list(os.environ):
        if name.upper().startswith("PGDB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return memory_services(
        settings=load_settings(),
        secrets=Unused(),
        database=Unused(),
        state=state,
        git=Unused(),
        cluster=Unused(),
        bot_role="",
    )


def console(services: Services, text: str, *, user: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = run_console(services, user=user, stdin=io.StringIO(text), stdout=out)
    return code, out.getvalue()


def test_piped_commands_are_echoed_and_answered(services: Services, state: MemoryBotState) -> None:
    code, out = console(services, "/pgdb help\nfrobnicate\n")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "> /pgdb help"
    assert lines[1] == "pgdb — self-service PostgreSQL databases"
    assert "> frobnicate" in lines
    assert "! Usage" in lines
    assert "  unknown command `frobnicate`. Try `/pgdb help`." in lines
    assert [e.result for e in state.audit] == ["ok", "usage"]
    assert lines[-2].startswith("  (correlation id ")
    assert state.audit[1].correlation_id in lines[-2]


def test_blank_lines_and_comments_are_skipped(services: Services, state: MemoryBotState) -> None:
    code, out = console(services, "\n   \n# a comment\n")
    assert (code, out, state.audit) == (0, "", [])


@pytest.mark.parametrize("word", ["exit", "quit"])
def test_exit_stops_reading(services: Services, state: MemoryBotState, word: str) -> None:
    code, out = console(services, f"help\n{word}\nhelp\n")
    assert code == 0
    assert out.count("> help") == 1
    assert len(state.audit) == 1


def test_console_owner_is_an_operator(services: Services, state: MemoryBotState) -> None:
    _, out = console(services, "rotate pg-admin\n")
    # past authorization (an operator command): the app name is checked next, before any backend
    assert "! Invalid app name" in out and "Not allowed" not in out
    assert state.audit[0].user == getpass.getuser()
    assert state.audit[0].platform == "console"


def test_acting_as_another_user_follows_the_lists(
    services: Services, state: MemoryBotState
) -> None:
    _, out = console(services, "diagnose\n", user="alice-the-tester")
    assert "! Not allowed" in out
    assert "`/pgdb diagnose` is for operators" in out
    assert "PGDB_OPERATORS" in out
    assert state.audit[0].user == "alice-the-tester"
    assert state.audit[0].result == "refused"


def test_an_unparsable_command_is_audited(services: Services, state: MemoryBotState) -> None:
    console(services, "create 'docspell\n")
    assert state.audit[0].command == "(unparsable)"
    assert state.audit[0].result == "usage"
