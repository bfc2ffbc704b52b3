"""Configuration as an operator sets it: environment variables and a ``.env`` file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.core.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PGDB_* variable from the caller's shell, and a working directory without `.env`."""
    for name in list(os.environ):
        if name.upper().startswith("PGDB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


# --- defaults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "default"),
    [
        ("pg_dsn", None),
        ("env", "dev"),
        ("namespace", "databases"),
        ("cluster", "postgresql-shared"),
        ("gitops_repo", None),
        ("gitops_base_branch", "main"),
        ("gitops_path", "apps/04-databases/postgresql-shared/base"),
        ("secrets_dir", None),
        ("secrets_prefix", "/postgresql"),
        ("infisical_host_api", "http://192.168.111.69:8085"),
        ("infisical_project", "vixens"),
        ("infisical_resync_interval", 60),
        ("infisical_auth_secret", "infisical-universal-auth"),
        ("infisical_auth_namespace", "argocd"),
        ("state_dir", None),
        ("state_schema", "pgdb_bot"),
        ("http_port", 8080),
        ("public_url", None),
        ("action_secret", None),
        ("requesters", ["*"]),
        ("operators", []),
        ("deny_names", []),
        ("ignore_roles", []),
        ("diagnose_interval", "5m"),
        ("alert_repeat", "24h"),
        ("grace", "10m"),
        ("log_level", "INFO"),
    ],
)
def test_default_matches_the_spec(attribute: str, default: object) -> None:
    assert getattr(load_settings(), attribute) == default


def test_default_grace_is_ten_minutes() -> None:
    assert load_settings().grace_seconds == 600


def test_state_dir_defaults_to_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load_settings().default_state_dir() == tmp_path / "xdg" / "pgdb-bot"


def test_state_dir_without_xdg_is_under_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_settings().default_state_dir() == tmp_path / "home/.local/share/pgdb-bot"


def test_explicit_state_dir_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PGDB_STATE_DIR", str(tmp_path / "state"))
    assert load_settings().default_state_dir() == tmp_path / "state"


# --- every variable is read from its documented name ---------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("PGDB_PG_DSN", "host=db user=bot", "pg_dsn", "host=db user=bot"),
        ("PGDB_ENV", "prod", "env", "prod"),
        ("PGDB_NAMESPACE", "pg", "namespace", "pg"),
        ("PGDB_CLUSTER", "shared-2", "cluster", "shared-2"),
        ("PGDB_GITOPS_REPO", "/srv/gitops", "gitops_repo", Path("/srv/gitops")),
        ("PGDB_GITOPS_BASE_BRANCH", "trunk", "gitops_base_branch", "trunk"),
        ("PGDB_GITOPS_PATH", "apps/db", "gitops_path", "apps/db"),
        ("PGDB_SECRETS_DIR", "/srv/secrets", "secrets_dir", Path("/srv/secrets")),
        ("PGDB_SECRETS_PREFIX", "/db", "secrets_prefix", "/db"),
        ("PGDB_INFISICAL_HOST_API", "https://infisical", "infisical_host_api", "https://infisical"),
        ("PGDB_INFISICAL_PROJECT", "acme", "infisical_project", "acme"),
        ("PGDB_INFISICAL_RESYNC_INTERVAL", "30", "infisical_resync_interval", 30),
        ("PGDB_INFISICAL_AUTH_SECRET", "auth", "infisical_auth_secret", "auth"),
        ("PGDB_INFISICAL_AUTH_NAMESPACE", "infisical", "infisical_auth_namespace", "infisical"),
        ("PGDB_STATE_DIR", "/srv/state", "state_dir", Path("/srv/state")),
        ("PGDB_STATE_SCHEMA", "bot_state", "state_schema", "bot_state"),
        ("PGDB_HTTP_PORT", "9000", "http_port", 9000),
        ("PGDB_PUBLIC_URL", "https://bot.example", "public_url", "https://bot.example"),
        ("PGDB_DIAGNOSE_INTERVAL", "1h", "diagnose_interval", "1h"),
        ("PGDB_ALERT_REPEAT", "2d", "alert_repeat", "2d"),
        ("PGDB_GRACE", "30s", "grace", "30s"),
        ("PGDB_GRACE", "0", "grace", "0"),  # 0 turns the grace period off
        ("PGDB_LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ],
)
def test_variable_is_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), attribute) == expected


def test_action_secret_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_ACTION_SECRET", "s3cr3t-shared-by-replicas")
    assert load_settings().action_secret == "s3cr3t-shared-by-replicas"


def test_blank_dsn_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_PG_DSN", "   ")
    assert load_settings().pg_dsn is None


def test_paths_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_SECRETS_PREFIX", "postgresql/")
    monkeypatch.setenv("PGDB_GITOPS_PATH", "/apps/db/")
    settings = load_settings()
    assert settings.secrets_prefix == "/postgresql"
    assert settings.gitops_path == "apps/db"


# --- comma lists --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("PGDB_REQUESTERS", "requesters"),
        ("PGDB_OPERATORS", "operators"),
        ("PGDB_DENY_NAMES", "deny_names"),
        ("PGDB_IGNORE_ROLES", "ignore_roles"),
    ],
)
def test_comma_list_is_split_and_trimmed(
    monkeypatch: pytest.MonkeyPatch, variable: str, attribute: str
) -> None:
    monkeypatch.setenv(variable, "alice, bob,group:dba")
    assert getattr(load_settings(), attribute) == ["alice", "bob", "group:dba"]


def test_comma_list_drops_empty_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_OPERATORS", " alice ,, ,bob, ")
    assert load_settings().operators == ["alice", "bob"]


def test_single_item_list_is_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_REQUESTERS", "*")
    assert load_settings().requesters == ["*"]


# --- bad values name the variable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PGDB_GRACE", "ten"),
        ("PGDB_GRACE", "-1"),
        ("PGDB_ALERT_REPEAT", "-1h"),
        ("PGDB_HTTP_PORT", "0"),
        ("PGDB_HTTP_PORT", "65536"),
        ("PGDB_HTTP_PORT", "http"),
        ("PGDB_NAMESPACE", "Bad_NS"),
        ("PGDB_ENV", "Dev"),
        ("PGDB_CLUSTER", "-shared"),
        ("PGDB_INFISICAL_AUTH_NAMESPACE", "argo cd"),
        ("PGDB_INFISICAL_RESYNC_INTERVAL", "4"),
        ("PGDB_SECRETS_PREFIX", "/"),
        ("PGDB_SECRETS_PREFIX", "/postgresql/../etc"),
        ("PGDB_GITOPS_PATH", "../outside"),
        ("PGDB_STATE_SCHEMA", "Bot-State"),
        ("PGDB_LOG_LEVEL", "LOUD"),
        ("PGDB_DIAGNOSE_INTERVAL", "every day"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = config_error(monkeypatch, variable, value)
    assert f"{variable}:" in message


def test_bad_duration_says_what_a_valid_one_looks_like(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, "PGDB_GRACE", "ten")
    assert "PGDB_GRACE" in message and "'ten'" in message and "5m" in message


def test_bad_namespace_says_dns_label(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, "PGDB_NAMESPACE", "Bad_NS")
    assert "PGDB_NAMESPACE" in message and "DNS label" in message


def test_every_bad_variable_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_GRACE", "ten")
    monkeypatch.setenv("PGDB_HTTP_PORT", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "PGDB_GRACE" in message and "PGDB_HTTP_PORT" in message


def test_config_error_is_not_a_stack_of_pydantic_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, "PGDB_NAMESPACE", "Bad_NS")
    assert "pydantic" not in message.lower() and "Value error" not in message


# --- the diagnostics schedule -------------------------------------------------------------


@pytest.mark.parametrize("value", ["30s", "5m", "1h", "300", "*/5 * * * *", "0 3 * * mon-fri"])
def test_diagnose_interval_accepts_durations_and_cron(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PGDB_DIAGNOSE_INTERVAL", value)
    assert load_settings().diagnose_interval == value


@pytest.mark.parametrize("value", ["every day", "5 minutes", "* * * *", "*/5 * * * * *", ""])
def test_diagnose_interval_refuses_the_rest(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert "PGDB_DIAGNOSE_INTERVAL" in config_error(monkeypatch, "PGDB_DIAGNOSE_INTERVAL", value)


@pytest.mark.parametrize("value", ["run it every day please", "99 99 99 99 99"])
def test_diagnose_interval_refuses_five_words_that_are_not_cron(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    assert "PGDB_DIAGNOSE_INTERVAL" in config_error(monkeypatch, "PGDB_DIAGNOSE_INTERVAL", value)


# --- .env file ----------------------------------------------------------------------------


def test_dotenv_in_the_working_directory_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "# local overrides\nPGDB_ENV=staging\nPGDB_OPERATORS=alice, bob\nUNRELATED=1\n"
    )
    settings = load_settings()
    assert settings.env == "staging"
    assert settings.operators == ["alice", "bob"]


def test_environment_wins_over_dotenv(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    (clean_env / ".env").write_text("PGDB_ENV=staging\n")
    monkeypatch.setenv("PGDB_ENV", "prod")
    assert load_settings().env == "prod"


def test_bad_value_in_dotenv_names_the_variable(clean_env: Path) -> None:
    (clean_env / ".env").write_text("PGDB_GRACE=ten\n")
    with pytest.raises(ConfigError, match="PGDB_GRACE"):
        load_settings()


def test_dotenv_elsewhere_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / ".env").write_text("PGDB_ENV=staging\n")
    monkeypatch.chdir(elsewhere)
    assert load_settings().env == "dev"


# --- guardrails of a shared cluster ---------------------------------------------


def test_guardrail_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()

    assert settings.connection_limit == 20
    assert settings.statement_timeout_ms == 0
    assert settings.allowed_extensions == []
    assert settings.database_size_warn_bytes == 5 * 1024**3
    assert settings.storage_warn_ratio == 0.8


def test_guardrails_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_CONNECTION_LIMIT", "8")
    monkeypatch.setenv("PGDB_STATEMENT_TIMEOUT", "30s")
    monkeypatch.setenv("PGDB_ALLOWED_EXTENSIONS", " vector, pg_trgm ,earthdistance,cube")
    monkeypatch.setenv("PGDB_DATABASE_SIZE_WARN", "500MiB")
    monkeypatch.setenv("PGDB_STORAGE_WARN_RATIO", "0.9")

    settings = load_settings()

    assert settings.connection_limit == 8
    assert settings.statement_timeout_ms == 30_000
    assert settings.allowed_extensions == ["vector", "pg_trgm", "earthdistance", "cube"]
    assert settings.database_size_warn_bytes == 500 * 1024**2
    assert settings.storage_warn_ratio == 0.9


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("PGDB_CONNECTION_LIMIT", "-5", "PGDB_CONNECTION_LIMIT"),
        ("PGDB_STATEMENT_TIMEOUT", "soon", "e.g. 30s, 500ms, 5m, or 0 for none"),
        ("PGDB_ALLOWED_EXTENSIONS", "vector,Bad Name", "is not an extension name"),
        ("PGDB_DATABASE_SIZE_WARN", "big", "use e.g. 5GiB"),
        ("PGDB_STORAGE_WARN_RATIO", "1.5", "PGDB_STORAGE_WARN_RATIO"),
    ],
)
def test_a_bad_guardrail_names_the_variable_and_a_valid_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, hint: str
) -> None:
    message = config_error(monkeypatch, name, value)

    assert name in message and hint in message
