"""Environments (dev, staging, prod…) from one bot: the ``PGDB_CONFIG`` file.

Each environment has its own PostgreSQL server, secret-store environment, GitOps folder,
cluster, Kubernetes context and policy; keys left out take the ``PGDB_*`` variables' values.
This module reads and checks the file and turns each environment into a complete ``Settings``
(the variables with the environment's keys on top), so the composition root builds each
environment exactly as it builds the single one. Errors name the file and the key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.config import Settings
from bot.core.errors import ConfigError
from bot.core.names import ENV_SEPARATOR, InvalidAppName, parse_app_name

log = logging.getLogger(__name__)

# An environment's key -> the setting it overrides (the rest have the same name).
RENAMED = {"secrets_env": "env"}


class EnvironmentConfig(BaseModel):
    """One environment's keys; each one left out takes the ``PGDB_*`` variable's value."""

    model_config = ConfigDict(extra="forbid")

    pg_dsn: str | None = Field(
        default=None,
        description="admin connection to this environment's PostgreSQL (else PGDB_PG_DSN)",
    )
    secrets_env: str | None = Field(
        default=None,
        description="secret-store environment: Infisical envSlug, file-store folder "
        "(default: the environment's name)",
    )
    gitops_path: str | None = Field(
        default=None,
        description="this environment's manifests folder in the GitOps repository (else "
        "PGDB_GITOPS_PATH; each environment needs its own)",
    )
    cluster: str | None = Field(default=None, description="CNPG cluster name (else PGDB_CLUSTER)")
    namespace: str | None = Field(
        default=None, description="namespace of the cluster and CRs (else PGDB_NAMESPACE)"
    )
    kube_context: str | None = Field(
        default=None, description="Kubernetes context (else PGDB_KUBE_CONTEXT)"
    )
    argocd_app: str | None = Field(
        default=None, description="Argo CD Application to check (else PGDB_ARGOCD_APP)"
    )
    require_approval: str | None = Field(
        default=None,
        description="off | requesters | all, for commands on this environment (else "
        "PGDB_REQUIRE_APPROVAL)",
    )
    requesters: list[str] | None = Field(
        default=None, description="who may request here (else PGDB_REQUESTERS)"
    )
    operators: list[str] | None = Field(
        default=None, description="who operates here (else PGDB_OPERATORS)"
    )
    connection_limit: int | None = Field(
        default=None,
        description="each new role's CONNECTION LIMIT and the manifest's connectionLimit "
        "(else PGDB_CONNECTION_LIMIT)",
    )
    statement_timeout: str | None = Field(
        default=None, description="each new role's statement_timeout (else PGDB_STATEMENT_TIMEOUT)"
    )
    allowed_extensions: list[str] | None = Field(
        default=None,
        description="extensions apps may ask for here (else PGDB_ALLOWED_EXTENSIONS)",
    )

    @field_validator("requesters", "operators", "allowed_extensions", mode="before")
    @classmethod
    def _commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


class ConfigFile(BaseModel):
    """The whole file: the environments, which ones ``create`` uses by default, and where the
    bot keeps its own state."""

    model_config = ConfigDict(extra="forbid")

    environments: dict[str, EnvironmentConfig] = Field(
        description="environment name -> its keys (names like app names: dev, staging, prod)"
    )
    default_environments: list[str] | None = Field(
        default=None, description="where `create` goes without --env (default: the first)"
    )
    state_dsn: str | None = Field(
        default=None,
        description="the bot's own state (records, audit, approvals, alerts, locks) for every "
        "environment (default: PGDB_STATE_DSN, else PGDB_PG_DSN)",
    )

    @field_validator("environments")
    @classmethod
    def _names(cls, value: dict[str, EnvironmentConfig]) -> dict[str, EnvironmentConfig]:
        if not value:
            raise ValueError("declare at least one environment, e.g. `dev: {}`")
        for name in value:
            if not _valid_name(name):
                raise ValueError(
                    f"environment name {name!r} must be lowercase letters, digits and single "
                    "dashes, 2-40 characters, e.g. `prod`"
                )
        return value


@dataclass(frozen=True, kw_only=True)
class Environments:
    """Each environment's complete settings, in the file's order."""

    settings: dict[str, Settings]
    default: tuple[str, ...]
    state_dsn: str
    legacy: str  # PGDB_ENV: the environment the records made before the file belong to


def _valid_name(name: str) -> bool:
    try:
        parse_app_name(name)
    except InvalidAppName:
        return False
    return ENV_SEPARATOR not in name


def read_config_file(path: Path) -> ConfigFile:
    """The file, parsed and checked; a ConfigError names the file and the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"PGDB_CONFIG: cannot read {path}: {exc.strerror or exc}; fix the path or unset "
            "PGDB_CONFIG to serve the single environment of the PGDB_* variables"
        ) from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ConfigError(f"PGDB_CONFIG {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"PGDB_CONFIG {path}: expected a mapping with `environments:` at the top")
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"PGDB_CONFIG {path}: " + _problems(exc)) from None


def _problems(exc: ValidationError, *, prefix: str = "") -> str:
    found = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "?"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (see docs/configuration.md for the keys)"
        found.append(f"{prefix}{where}: {message}")
    return "; ".join(found)


def resolve(base: Settings, path: Path) -> Environments:
    """Every environment of the file as complete ``Settings``, checked against each other."""
    file = read_config_file(path)
    names = list(file.environments)
    default = tuple(file.default_environments or names[:1])
    unknown = [name for name in default if name not in file.environments]
    if unknown:
        raise ConfigError(
            f"PGDB_CONFIG {path}: default_environments: {', '.join(unknown)} is not declared "
            f"under environments (declared: {', '.join(names)})"
        )
    values = base.model_dump()
    resolved: dict[str, Settings] = {}
    for name, env in file.environments.items():
        keys = env.model_dump(exclude_none=True)
        overrides = {RENAMED.get(k, k): v for k, v in keys.items()}
        overrides.setdefault("env", name)
        try:
            resolved[name] = type(base)(**{**values, **overrides})
        except ValidationError as exc:
            raise ConfigError(
                f"PGDB_CONFIG {path}: "
                + _problems(exc, prefix=f"environments.{name}.").replace(".env:", ".secrets_env:")
            ) from None
        if resolved[name].pg_dsn is None:
            raise ConfigError(
                f"PGDB_CONFIG {path}: environments.{name}.pg_dsn: missing (set it there, or "
                "PGDB_PG_DSN for every environment that leaves it out)"
            )
    _refuse_overlaps(path, resolved)
    state_dsn = file.state_dsn or base.state_dsn or base.pg_dsn
    if not state_dsn:
        raise ConfigError(
            f"PGDB_CONFIG {path}: state_dsn: missing: the bot keeps its own state in one "
            "database for every environment (set state_dsn, PGDB_STATE_DSN or PGDB_PG_DSN)"
        )
    for name, settings in resolved.items():
        if settings.require_approval == "all" and len(settings.operators) == 1:
            log.warning(
                "environment %s: require_approval is `all` and %s is its only operator: its "
                "requests need another operator and can never be approved; add an operator",
                name,
                settings.operators[0],
            )
    return Environments(settings=resolved, default=default, state_dsn=state_dsn, legacy=base.env)


def state_dsn_of(settings: Settings) -> str | None:
    """Where the bot keeps its own state: the file's ``state_dsn``, else PGDB_STATE_DSN, else
    PGDB_PG_DSN."""
    file = read_config_file(settings.config) if settings.config is not None else None
    return (file.state_dsn if file else None) or settings.state_dsn or settings.pg_dsn


def server_of(dsn: str) -> tuple[str, str]:
    """Which server a DSN reaches (host and port, libpq's defaults filled in)."""
    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return (dsn, "")
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    return (host, str(params.get("port") or "5432"))


def _refuse_overlaps(path: Path, resolved: dict[str, Settings]) -> None:
    """Two environments on one server and one secret-store environment are one environment
    under two names; two on one GitOps folder would overwrite each other's manifests."""
    seen_store: dict[tuple[tuple[str, str], str], str] = {}
    seen_path: dict[str, str] = {}
    for name, settings in resolved.items():
        assert settings.pg_dsn is not None
        store = (server_of(settings.pg_dsn), settings.env)
        if store in seen_store:
            other = seen_store[store]
            raise ConfigError(
                f"PGDB_CONFIG {path}: environments {other} and {name} use the same PostgreSQL "
                f"server ({':'.join(store[0])}) and the same secret-store environment "
                f"({settings.env}): that is one environment under two names; give each its "
                "own pg_dsn or secrets_env"
            )
        seen_store[store] = name
        if settings.gitops_path in seen_path:
            other = seen_path[settings.gitops_path]
            raise ConfigError(
                f"PGDB_CONFIG {path}: environments {other} and {name} use the same gitops_path "
                f"({settings.gitops_path}): each environment needs its own manifests folder"
            )
        seen_path[settings.gitops_path] = name
