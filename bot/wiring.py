"""Builds one adapter per outside system from the configuration."""

from __future__ import annotations

import getpass

from psycopg.conninfo import conninfo_to_dict

from bot.adapters.file_secrets import FileSecretStore
from bot.adapters.local_git import LocalGitHost
from bot.adapters.no_cluster import NoCluster
from bot.adapters.postgres import PostgresBotState, PostgresDatabase
from bot.chat import ChatPlatform
from bot.config import ConfigError, Settings
from bot.runner import CommandRunner
from handlers.context import Services

LOCAL_ONLY = "(local-mode defaults apply to `pgdb-bot console` only)"


def bot_role_of(dsn: str) -> str:
    """The role the DSN logs in as (libpq falls back to the OS user)."""
    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        raise ConfigError(
            "PGDB_PG_DSN: not a valid libpq connection string or URI "
            "(e.g. postgresql://pgdb_bot@db.example:5432/postgres)"
        ) from None
    return str(params.get("user") or getpass.getuser())


def build_services(settings: Settings) -> Services:
    """The services for ``settings``; every required variable must be set."""
    missing = [
        variable
        for variable, value in (
            ("PGDB_PG_DSN", settings.pg_dsn),
            ("PGDB_GITOPS_REPO", settings.gitops_repo),
            ("PGDB_SECRETS_DIR", settings.secrets_dir),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"missing configuration: {', '.join(missing)} {LOCAL_ONLY}")
    dsn, repo, secrets_dir = settings.pg_dsn, settings.gitops_repo, settings.secrets_dir
    assert dsn is not None and repo is not None and secrets_dir is not None
    bot_role = bot_role_of(dsn)
    return Services(
        settings=settings,
        secrets=FileSecretStore(secrets_dir, env=settings.env, prefix=settings.secrets_prefix),
        database=PostgresDatabase(dsn),
        state=PostgresBotState(dsn, schema=settings.state_schema),
        git=LocalGitHost(repo, base_branch=settings.gitops_base_branch),
        cluster=NoCluster(),
        bot_role=bot_role,
    )


def build_platforms(
    settings: Settings, services: Services, runner: CommandRunner
) -> list[ChatPlatform]:
    """Every chat platform whose variables are set; `run` serves them all at once."""
    platforms: list[ChatPlatform] = []
    return platforms
