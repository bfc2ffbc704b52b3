"""The environments file (PGDB_CONFIG): what each environment resolves to, and what is refused
with the key named."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.core.errors import ConfigError
from bot.environments import Environments, resolve, state_dsn_of
from bot.wiring import core_settings

DEV = "postgresql://pgdb@pg-dev/postgres"
PROD = "postgresql://pgdb@pg-prod/postgres"
STATE = "postgresql://pgdb@pg-state/postgres"


def _settings(tmp_path: Path, text: str, **variables: Any) -> Settings:
    path = tmp_path / "environments.yaml"
    path.write_text(text)
    return Settings(config=path, **variables)


def _resolve(base: Settings) -> Environments:
    assert base.config is not None
    return resolve(base, base.config)


def test_keys_left_out_take_the_variables_and_secrets_env_defaults_to_the_name(
    tmp_path: Path,
) -> None:
    base = _settings(
        tmp_path,
        f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\n"
        f"  prod: {{pg_dsn: '{PROD}', gitops_path: prod/base, kube_context: prod,"
        " require_approval: all, operators: 'ann,bob'}\n",
        cluster="shared",
        gitops_path="dev/base",
        pg_dsn=STATE,
    )

    declared = _resolve(base)

    dev, prod = declared.settings["dev"], declared.settings["prod"]
    assert (dev.env, dev.gitops_path, dev.cluster, dev.require_approval) == (
        "dev",
        "dev/base",
        "shared",
        "off",
    )
    assert (prod.env, prod.gitops_path, prod.kube_context, prod.operators) == (
        "prod",
        "prod/base",
        "prod",
        ["ann", "bob"],
    )
    assert prod.require_approval == "all" and prod.cluster == "shared"
    assert declared.default == ("dev",)  # the first, when default_environments is left out
    assert declared.state_dsn == STATE  # PGDB_PG_DSN when the file says no state_dsn


def test_the_state_database_is_the_files_then_the_variables(tmp_path: Path) -> None:
    text = f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\nstate_dsn: 'postgresql://s/state'\n"
    base = _settings(tmp_path, text, pg_dsn="postgresql://x/postgres")
    assert state_dsn_of(base) == "postgresql://s/state"
    assert _resolve(base).state_dsn == "postgresql://s/state"
    plain = _settings(
        tmp_path, f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\n", state_dsn="postgresql://v/st"
    )
    assert state_dsn_of(plain) == "postgresql://v/st"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("environments: {}\n", "declare at least one"),
        ("environments:\n  Prod: {}\n", "environment name 'Prod'"),
        ("environments:\n  a--b: {}\n", "environment name 'a--b'"),
        (f"environments:\n  dev: {{pg_dsn: '{DEV}', colour: red}}\n", "environments.dev.colour"),
        (
            f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\ndefault_environments: [prod]\n",
            "default_environments: prod is not declared",
        ),
        ("environments:\n  dev: {}\n", "environments.dev.pg_dsn: missing"),
        (
            f"environments:\n  dev: {{pg_dsn: '{DEV}', namespace: 'Not A Label'}}\n",
            "environments.dev.namespace",
        ),
        (
            f"environments:\n  dev: {{pg_dsn: '{DEV}', secrets_env: 'BAD_ENV'}}\n",
            "environments.dev.secrets_env",
        ),
        (
            f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\n  qa: {{pg_dsn: '{DEV}', "
            "secrets_env: dev, gitops_path: qa}\n",
            "same PostgreSQL server (pg-dev:5432) and the same secret-store environment (dev)",
        ),
        ("- just\n- a list\n", "expected a mapping"),
        ("environments: [\n", "not valid YAML"),
    ],
)
def test_refused_files_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    base = _settings(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        _resolve(base)
    assert "PGDB_CONFIG" in str(refused.value)
    assert expected in str(refused.value)


def test_a_missing_file_says_how_to_go_back_to_one_environment(tmp_path: Path) -> None:
    base = Settings(config=tmp_path / "nowhere.yaml")
    with pytest.raises(ConfigError, match="unset PGDB_CONFIG"):
        _resolve(base)


def test_a_lone_operator_under_require_approval_all_is_warned_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = f"environments:\n  prod: {{pg_dsn: '{PROD}', require_approval: all, operators: ann}}\n"
    base = _settings(tmp_path, text, pg_dsn=STATE)
    with caplog.at_level(logging.WARNING):
        _resolve(base)
    assert "can never be approved" in caplog.text


def test_each_environment_scopes_its_branches_and_the_legacy_one_keeps_the_old(
    tmp_path: Path,
) -> None:
    text = (
        f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\n  prod: {{pg_dsn: '{PROD}', gitops_path: p}}\n"
    )
    base = _settings(tmp_path, text, env="dev", pg_dsn=STATE)
    declared = _resolve(base)
    dev = core_settings(declared.settings["dev"], environment="dev", legacy=declared.legacy)
    prod = core_settings(declared.settings["prod"], environment="prod", legacy=declared.legacy)
    assert dev.layout.onboard_branch("docspell") == "pgdb/dev--docspell"
    assert dev.layout.app_of_branch("docspell") == "docspell"  # opened before the file
    assert prod.layout.app_of_branch("docspell") is None
    assert prod.layout.manifests.env == "prod"  # Infisical envSlug, file-store folder
    single = core_settings(Settings())
    assert single.layout.onboard_branch("docspell") == "pgdb/docspell"


def test_no_state_database_anywhere_is_refused(tmp_path: Path) -> None:
    base = _settings(tmp_path, f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\n")
    with pytest.raises(ConfigError, match="state_dsn: missing"):
        _resolve(base)


def test_guardrails_may_differ_per_environment(tmp_path: Path) -> None:
    text = (
        f"environments:\n  dev: {{pg_dsn: '{DEV}'}}\n"
        f"  prod: {{pg_dsn: '{PROD}', gitops_path: p, connection_limit: 50,"
        " statement_timeout: 30s, allowed_extensions: 'vector,pg_trgm'}\n"
    )
    base = _settings(tmp_path, text, pg_dsn=STATE, allowed_extensions="pg_trgm")
    declared = _resolve(base)
    dev = core_settings(declared.settings["dev"], environment="dev").guardrails
    prod = core_settings(declared.settings["prod"], environment="prod").guardrails
    assert (dev.connection_limit, dev.allowed_extensions) == (20, ("pg_trgm",))
    assert prod.connection_limit == 50
    assert set(prod.allowed_extensions) == {"vector", "pg_trgm"}
    assert (prod.statement_timeout_ms, dev.statement_timeout_ms) == (30_000, 0)
