"""App names: what a developer may type after `/pgdb create`, and why not."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.names import (
    AppName,
    InvalidAppName,
    InvalidNamespace,
    is_system_role,
    parse_app_name,
    parse_namespace,
)


def refusal(raw: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidAppName) as caught:
        parse_app_name(raw, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    "name",
    ["docspell", "ab", "a1", "my-app", "app2", "a-b-c", "x" * 40, "pg", "postgresql", "apps"],
)
def test_valid_names_are_accepted(name: str) -> None:
    parsed = parse_app_name(name)
    assert parsed == name
    assert isinstance(parsed, AppName)


def test_surrounding_spaces_are_dropped() -> None:
    assert parse_app_name("  docspell \n") == "docspell"


@pytest.mark.parametrize(
    "name",
    [
        "a",  # too short
        "x" * 41,  # too long
        "Docspell",  # uppercase
        "1app",  # starts with a digit
        "-app",
        "app-",  # ends with a dash
        "my_app",  # underscore
        "my app",
        "my.app",
        "café",
        "docspell;drop",
        "../etc",
    ],
)
def test_names_outside_the_pattern_are_refused_with_a_hint(name: str) -> None:
    message = refusal(name)
    assert "not a valid app name" in message
    assert "lowercase letters, digits and single dashes" in message
    assert "docspell" in message  # an example of what to type


def test_double_dash_is_refused() -> None:
    assert "not a valid app name" in refusal("my--app")


def test_empty_name_asks_for_one() -> None:
    assert "an app name is required" in refusal("   ")


def test_very_long_input_is_shortened_in_the_message() -> None:
    message = refusal("a" * 500)
    assert len(message) < 200
    assert "..." in message


@pytest.mark.parametrize(
    "name",
    [
        "postgres",
        "template0",
        "template1",
        "app",
        "streaming-replica",  # the dashed spelling of streaming_replica
        "pg-admin",
        "pg-x",
        "cnpg",
        "cnpg-pooler",
        "cnpgapp",
    ],
)
def test_reserved_names_are_refused(name: str) -> None:
    message = refusal(name)
    assert f"`{name}` is reserved by PostgreSQL or CloudNativePG" in message
    assert "choose another app name" in message


@pytest.mark.parametrize("name", ["pg_admin", "streaming_replica", "cnpg_pooler"])
def test_underscored_reserved_names_are_refused_too(name: str) -> None:
    refusal(name)


def test_bot_role_is_refused() -> None:
    message = refusal("pgdbbot", bot_role="pgdbbot")
    assert "the bot's own role" in message
    assert "choose another app name" in message


def test_bot_role_comparison_ignores_case() -> None:
    assert "the bot's own role" in refusal("pgdbbot", bot_role="PGDBBOT")


def test_without_a_bot_role_nothing_extra_is_refused() -> None:
    assert parse_app_name("pgdbbot", bot_role="") == "pgdbbot"


def test_deny_list_is_refused_and_named() -> None:
    message = refusal("legacy", deny=["other", " legacy "])
    assert "PGDB_DENY_NAMES" in message
    assert "choose another app name" in message


def test_deny_list_does_not_refuse_other_names() -> None:
    assert parse_app_name("docspell", deny=["legacy", ""]) == "docspell"


# --- system roles (never apps, never orphans) ---------------------------------------------


@pytest.mark.parametrize(
    "role",
    ["postgres", "streaming_replica", "pg_monitor", "pg_read_all_data", "cnpg_pooler_pgbouncer"],
)
def test_system_roles(role: str) -> None:
    assert is_system_role(role, bot_role="pgdb_bot")


def test_bot_role_is_a_system_role() -> None:
    assert is_system_role("pgdb_bot", bot_role="pgdb_bot")


@pytest.mark.parametrize("role", ["docspell", "app", "legacy_user", "pgdb_bot", "pg", "cnpg"])
def test_other_roles_are_not_system_roles(role: str) -> None:
    assert not is_system_role(role, bot_role="the_bot")


# --- namespaces (`--namespace`) -----------------------------------------------------------


@pytest.mark.parametrize("name", ["docspell", "a", "team-1", "x" * 63])
def test_valid_namespaces(name: str) -> None:
    assert parse_namespace(f" {name} ") == name


@pytest.mark.parametrize("name", ["Docs", "docs_ns", "-docs", "docs-", "x" * 64, "", "a.b"])
def test_invalid_namespaces_say_what_one_looks_like(name: str) -> None:
    with pytest.raises(InvalidNamespace) as caught:
        parse_namespace(name)
    assert "is not a Kubernetes namespace" in str(caught.value)
    assert "--namespace docspell" in str(caught.value)
