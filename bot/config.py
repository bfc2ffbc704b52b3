"""Configuration: every ``PGDB_*`` variable of SPEC §9, validated once at start.

Errors name the variable and say what a valid value looks like.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.durations import parse_duration, parse_schedule
from bot.core.manifests import ManifestSettings

CommaList = Annotated[list[str], NoDecode]
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfigError(Exception):
    """Invalid configuration; the message lists each offending variable."""


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All settings. Paths left unset are filled by the local mode (``pgdb-bot console``)."""

    model_config = SettingsConfigDict(
        env_prefix="PGDB_", env_file=".env", extra="ignore", validate_default=True
    )

    pg_dsn: str | None = None
    env: str = "dev"
    namespace: str = "databases"
    cluster: str = "postgresql-shared"
    gitops_repo: Path | None = None
    gitops_base_branch: str = "main"
    gitops_path: str = "apps/04-databases/postgresql-shared/base"
    secrets_dir: Path | None = None
    secrets_prefix: str = "/postgresql"
    infisical_host_api: str = "http://192.168.111.69:8085"
    infisical_project: str = "vixens"
    infisical_resync_interval: int = Field(default=60, ge=5)
    infisical_auth_secret: str = "infisical-universal-auth"  # noqa: S105 (a Secret name)
    infisical_auth_namespace: str = "argocd"
    state_dir: Path | None = None
    state_schema: str = "pgdb_bot"
    http_port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = None
    action_secret: str | None = None
    requesters: CommaList = Field(default_factory=lambda: ["*"])
    operators: CommaList = Field(default_factory=list)
    deny_names: CommaList = Field(default_factory=list)
    ignore_roles: CommaList = Field(default_factory=list)
    diagnose_interval: str = "5m"
    alert_repeat: str = "24h"
    grace: str = "10m"
    log_level: str = "INFO"

    _split = field_validator(
        "requesters", "operators", "deny_names", "ignore_roles", mode="before"
    )(_split_commas)

    @field_validator("pg_dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        # Parsed for real (libpq syntax) when the adapter is wired; here only emptiness.
        return value.strip() if value and value.strip() else None

    @field_validator("env", "namespace", "cluster", "infisical_auth_namespace")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} must be a DNS label (lowercase letters, digits, dashes)")
        return value

    @field_validator("secrets_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        cleaned = "/" + value.strip("/")
        if cleaned == "/" or ".." in cleaned.split("/"):
            raise ValueError(f"{value!r} must be a folder path such as /postgresql")
        return cleaned

    @field_validator("gitops_path")
    @classmethod
    def _gitops_path(cls, value: str) -> str:
        cleaned = value.strip("/")
        if not cleaned or ".." in cleaned.split("/"):
            raise ValueError(f"{value!r} must be a relative folder path inside the repository")
        return cleaned

    @field_validator("state_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError(f"{value!r} must be a lowercase SQL identifier such as pgdb_bot")
        return value

    @field_validator("alert_repeat", "grace")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("diagnose_interval")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"{value!r} must be one of DEBUG, INFO, WARNING, ERROR")
        return upper

    @property
    def grace_seconds(self) -> float:
        return parse_duration(self.grace)

    @property
    def manifest_settings(self) -> ManifestSettings:
        return ManifestSettings(
            namespace=self.namespace,
            cluster=self.cluster,
            manifests_path=self.gitops_path,
            infisical_host_api=self.infisical_host_api,
            infisical_project=self.infisical_project,
            env=self.env,
            secrets_prefix=self.secrets_prefix,
            resync_interval=self.infisical_resync_interval,
            auth_secret=self.infisical_auth_secret,
            auth_namespace=self.infisical_auth_namespace,
        )

    def default_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(xdg) / "pgdb-bot"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and ``.env``); raise ConfigError naming every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "?"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"PGDB_{field.upper()}: {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
