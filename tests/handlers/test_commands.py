"""Reading what a user typed into a command, or a short usage error."""

from __future__ import annotations

import pytest

from handlers.access import Role
from handlers.commands import COMMANDS, UsageError, parse


def usage_error(text: str) -> str:
    with pytest.raises(UsageError) as caught:
        parse(text)
    return str(caught.value)


@pytest.mark.parametrize(
    "text", ["/pgdb create docspell", "pgdb create docspell", "create docspell"]
)
def test_prefix_is_optional(text: str) -> None:
    command = parse(text)
    assert command.name == "create"
    assert command.args == {"app": "docspell"}
    assert not command.flags and not command.options


@pytest.mark.parametrize("text", ["", "   ", "/pgdb", "pgdb"])
def test_nothing_typed_is_help(text: str) -> None:
    assert parse(text).name == "help"


def test_command_name_ignores_case() -> None:
    assert parse("/pgdb STATUS docspell").name == "status"


def test_text_is_kept_for_the_audit_log() -> None:
    assert parse("  /pgdb create docspell --dry-run \n").text == "/pgdb create docspell --dry-run"


def test_flag() -> None:
    command = parse("/pgdb create docspell --dry-run")
    assert command.flags == {"dry-run"}
    assert command.args == {"app": "docspell"}


def test_flag_before_the_app() -> None:
    command = parse("/pgdb create --dry-run docspell")
    assert command.flags == {"dry-run"} and command.args == {"app": "docspell"}


@pytest.mark.parametrize(
    "text",
    [
        "/pgdb create docspell --namespace docs",
        "/pgdb create docspell --namespace=docs",
        "/pgdb create --namespace docs docspell",
    ],
)
def test_option_with_space_or_equals(text: str) -> None:
    command = parse(text)
    assert command.options == {"namespace": "docs"}
    assert command.args == {"app": "docspell"}


def test_option_and_flag_together() -> None:
    command = parse("/pgdb create docspell --namespace docs --dry-run")
    assert command.options == {"namespace": "docs"}
    assert command.flags == {"dry-run"}


def test_repair_confirmation_flag() -> None:
    command = parse("/pgdb repair docspell --yes")
    assert command.name == "repair" and command.flags == {"yes"}


def test_list_page_option() -> None:
    assert parse("/pgdb list --page 2").options == {"page": "2"}


def test_status_app_is_optional() -> None:
    assert parse("/pgdb status").args == {}
    assert parse("/pgdb status docspell").args == {"app": "docspell"}


def test_quoted_argument_is_one_word() -> None:
    assert parse("/pgdb status 'doc spell'").args == {"app": "doc spell"}


def test_spec_is_reachable_from_the_command() -> None:
    assert parse("diagnose").spec.needs is Role.OPERATOR


# --- usage errors -------------------------------------------------------------------------


def test_missing_argument_names_it_and_shows_usage() -> None:
    message = usage_error("/pgdb create")
    assert "missing <app>" in message
    assert "/pgdb create <app> [--namespace <ns>]" in message and "[--dry-run]" in message


def test_missing_second_argument() -> None:
    assert "missing <duration>" in usage_error("/pgdb silence docspell")


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("/pgdb create a b", "/pgdb create <app>"),
        ("/pgdb status a b", "/pgdb status [<app>]"),
        ("/pgdb diagnose now", "/pgdb diagnose"),
        ("/pgdb help me", "/pgdb help"),
    ],
)
def test_too_many_arguments(text: str, usage: str) -> None:
    message = usage_error(text)
    assert "too many arguments" in message and usage in message


def test_unknown_command_points_to_help() -> None:
    message = usage_error("/pgdb frobnicate docspell")
    assert "unknown command `frobnicate`" in message
    assert "/pgdb help" in message


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/pgdb create docspell --force", "`--force`"),
        ("/pgdb create docspell --dry-run=yes", "`--dry-run=yes`"),
        ("/pgdb status docspell --yes", "`--yes`"),
        ("/pgdb create docspell --", "`--`"),
    ],
)
def test_unknown_option_is_named_with_usage(text: str, shown: str) -> None:
    message = usage_error(text)
    assert f"unknown option {shown}" in message
    assert "Usage: `/pgdb " in message


@pytest.mark.parametrize(
    "text",
    [
        "/pgdb create docspell --namespace",
        "/pgdb create docspell --namespace=",
        "/pgdb create docspell --namespace --dry-run",
    ],
)
def test_option_without_value(text: str) -> None:
    assert "`--namespace` needs a value" in usage_error(text)


@pytest.mark.parametrize("text", ["/pgdb create 'docspell", '/pgdb create "docspell'])
def test_unbalanced_quotes(text: str) -> None:
    message = usage_error(text)
    assert "check the quotes" in message
    assert "Traceback" not in message


# --- free text after the arguments (deny <id> [reason]) -----------------------------------


def test_deny_with_a_reason_of_several_words() -> None:
    command = parse("/pgdb deny 42 not needed in prod")
    assert command.args == {"id": "42", "rest": "not needed in prod"}


def test_deny_without_a_reason() -> None:
    assert parse("/pgdb deny 42").args == {"id": "42"}


def test_deny_reason_may_look_like_an_option() -> None:
    command = parse("/pgdb deny 42 --force is not a reason")
    assert command.args["rest"] == "--force is not a reason"
    assert not command.options and not command.flags


def test_deny_reason_in_quotes() -> None:
    assert parse('/pgdb deny 42 "use the shared one"').args["rest"] == "use the shared one"


def test_deny_needs_an_id() -> None:
    assert "missing <id>" in usage_error("/pgdb deny")


def test_deny_reason_with_an_apostrophe() -> None:
    assert parse("/pgdb deny 42 we don't need it").args["rest"] == "we don't need it"


# --- the command table --------------------------------------------------------------------


def test_every_usage_starts_with_its_command() -> None:
    for name, spec in COMMANDS.items():
        assert spec.usage.startswith(f"/pgdb {name}")


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("help", Role.REQUESTER),
        ("create", Role.REQUESTER),
        ("status", Role.REQUESTER),
        ("list", Role.REQUESTER),
        ("diagnose", Role.OPERATOR),
        ("repair", Role.OPERATOR),
        ("silence", Role.OPERATOR),
        ("rotate", Role.OPERATOR),
        ("offboard", Role.OPERATOR),
        ("approve", Role.OPERATOR),
        ("deny", Role.OPERATOR),
    ],
)
def test_who_may_run_each_command(name: str, needs: Role) -> None:
    assert COMMANDS[name].needs is needs
