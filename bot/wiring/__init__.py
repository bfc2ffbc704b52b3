"""The composition root: builds every adapter from the configuration, one module per outside system
where the building is more than a constructor call."""

from __future__ import annotations

import dataclasses
import getpass
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from psycopg.conninfo import conninfo_to_dict

from bot.adapters.file_secrets import FileSecretStore
from bot.adapters.local_git import LocalGitHost
from bot.adapters.postgres.alerts import PostgresAlertStore
from bot.adapters.postgres.approvals import PostgresApprovalStore
from bot.adapters.postgres.migrations import BotSchema
from bot.adapters.postgres.roles import PostgresDatabase
from bot.adapters.postgres.state import PostgresBotState
from bot.config import Settings
from bot.core.errors import ConfigError
from bot.core.ports import (
    ApprovalStore,
    BotState,
    ChatPlatform,
    Cluster,
    GitHost,
    ManagedDatabase,
    Metrics,
    SecretStore,
)
from bot.core.secret import Secret
from bot.runner import CommandRunner
from bot.wiring.kubernetes import build_cluster
from handlers.announce import Announcer
from handlers.context import Fleet, Services
from handlers.settings import (
    Access,
    CoreSettings,
    Duration,
    Guardrails,
    Layout,
    Size,
    Timing,
    WorkflowOptions,
)

if TYPE_CHECKING:
    from bot.adapters.kubernetes.api import KubeApi
    from bot.adapters.kubernetes.source import KubeSource

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


def uses_secret_store(settings: Settings) -> bool:
    """Whether a secret store is configured: Infisical (all three variables), or a folder."""
    return settings.infisical_store() is not None or settings.secrets_dir is not None


def build_secret_store(settings: Settings) -> SecretStore:
    """Infisical when its URL, client id and secret are set; then the file store is not used."""
    infisical = settings.infisical_store()
    if infisical is not None:
        # imported here: the SDK (and boto3 under it) costs ~0.4 s at start when unused
        from bot.adapters.infisical.store import InfisicalSecretStore

        url, client_id, client_secret = infisical
        return InfisicalSecretStore(
            url=url,
            client_id=client_id,
            client_secret=Secret(client_secret),
            project=settings.infisical_project,
            env=settings.env,
            prefix=settings.secrets_prefix,
        )
    if settings.secrets_dir is None:
        raise ConfigError(f"missing configuration: PGDB_SECRETS_DIR {LOCAL_ONLY}")
    return FileSecretStore(settings.secrets_dir, env=settings.env, prefix=settings.secrets_prefix)


def uses_git_host(settings: Settings) -> bool:
    """Whether a git host is configured: GitHub (PGDB_GITHUB_*), or a local repository."""
    return settings.github_enabled or settings.gitops_repo is not None


def build_git_host(settings: Settings) -> GitHost:
    """GitHub when a PGDB_GITHUB_* variable selects it (then PGDB_GITOPS_REPO is not used),
    else the local repository."""
    if settings.github_enabled:
        # imported here: the GitHub adapter (and cryptography for an App) is not needed otherwise
        from bot.wiring.github import build_github_host

        return build_github_host(settings)
    if settings.gitops_repo is None:
        raise ConfigError(f"missing configuration: PGDB_GITOPS_REPO {LOCAL_ONLY}")
    return LocalGitHost(settings.gitops_repo, base_branch=settings.gitops_base_branch)


def core_settings(
    settings: Settings, *, environment: str | None = None, legacy: str | None = None
) -> CoreSettings:
    """The slices of the configuration the use cases read (they never see the whole model).
    ``environment`` names a declared environment (branches scoped by it); ``legacy`` is the
    one that existed before environments were declared (it keeps the unscoped branches)."""
    backup = settings.backup_max_age_seconds
    return CoreSettings(
        layout=Layout(
            manifests=settings.manifest_settings,
            base_branch=settings.gitops_base_branch,
            own_namespace=settings.own_namespace,
            argocd_namespace=settings.argocd_namespace,
            argocd_app=settings.argocd_app,
            secret_namespaces=tuple(settings.secret_namespaces),
            ignore_roles=tuple(settings.ignore_roles),
            environment=environment or settings.env,
            branch_scope=environment,
            owns_unscoped=environment is None or environment == legacy,
        ),
        access=Access(
            requesters=tuple(settings.requesters),
            operators=tuple(settings.operators),
            require_approval=settings.require_approval,
            approval_ttl=Duration(settings.approval_ttl, settings.approval_ttl_seconds),
            deny_names=tuple(settings.deny_names),
        ),
        timing=Timing(
            grace=Duration(settings.grace, settings.grace_seconds),
            pr_stale_after=Duration(settings.pr_stale_after, settings.pr_stale_after_seconds),
            backup_max_age=None if backup is None else Duration(settings.backup_max_age, backup),
            rotate_sync_timeout=Duration(
                settings.rotate_sync_timeout, settings.rotate_sync_timeout_seconds
            ),
        ),
        options=WorkflowOptions(
            rollout=settings.rollout_enabled,
            offboard_delete_secret=settings.offboard_delete_secret,
        ),
        guardrails=guardrails(settings),
    )


def guardrails(settings: Settings) -> Guardrails:
    """The guardrails settings of one environment (a per-environment file overrides them later)."""
    return Guardrails(
        connection_limit=settings.connection_limit,
        statement_timeout_ms=settings.statement_timeout_ms,
        allowed_extensions=tuple(settings.allowed_extensions),
        database_size_warn=Size(settings.database_size_warn, settings.database_size_warn_bytes),
        storage_warn_ratio=settings.storage_warn_ratio,
    )


def build_services(settings: Settings) -> Services:
    """The services for ``settings``; every required variable must be set. With
    ``PGDB_CONFIG``, one set of services per declared environment, sharing the bot's state,
    the git host and one Kubernetes client per context; the first environment's services
    carry them all (``Services.fleet``)."""
    if settings.config is None:
        return _single_environment(settings)
    from bot.environments import resolve

    declared = resolve(settings, settings.config)
    schema = BotSchema(declared.state_dsn, name=settings.state_schema)
    shared = _Shared(schema=schema, git=None)
    environments = {
        name: _environment(env_settings, shared=shared, environment=name, legacy=declared.legacy)
        for name, env_settings in declared.settings.items()
    }
    fleet = Fleet(environments=environments, default=declared.default, declared=True)
    first = next(iter(environments.values()))
    return dataclasses.replace(first, fleet=fleet)


@dataclasses.dataclass(kw_only=True)
class _Shared:
    """What every environment shares: the bot's state, the GitOps repository, one Kubernetes
    client per context (and, once `instrumented`, the metrics)."""

    schema: BotSchema
    git: GitHost | None
    # one Kubernetes client per context, whichever environments use it
    kube_clients: dict[KubeSource, KubeApi] = dataclasses.field(default_factory=dict)
    announcer: Announcer = dataclasses.field(default_factory=Announcer)  # the ops channel


def _require_configured(settings: Settings) -> None:
    """Every variable ``run`` needs is set, or a ConfigError names each missing one."""
    missing = [
        variable
        for variable, value in (
            ("PGDB_PG_DSN", settings.pg_dsn),
            ("PGDB_GITOPS_REPO (or the PGDB_GITHUB_* variables)", uses_git_host(settings)),
            ("PGDB_SECRETS_DIR (or the PGDB_INFISICAL_* variables)", uses_secret_store(settings)),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"missing configuration: {', '.join(missing)} {LOCAL_ONLY}")


def _single_environment(settings: Settings) -> Services:
    _require_configured(settings)
    dsn = settings.state_dsn or settings.pg_dsn
    assert dsn is not None
    schema = BotSchema(dsn, name=settings.state_schema)  # one schema, migrated once, for all
    shared = _Shared(schema=schema, git=None)
    return _environment(settings, shared=shared, environment=None, legacy=settings.env)


def _environment(
    settings: Settings, *, shared: _Shared, environment: str | None, legacy: str
) -> Services:
    """One environment's services: its own server, secret store and cluster, the shared rest."""
    _require_configured(settings)
    dsn = settings.pg_dsn
    assert dsn is not None
    if shared.git is None:
        shared.git = build_git_host(settings)
    name = environment or settings.env
    return Services(
        settings=core_settings(settings, environment=environment, legacy=legacy),
        secrets=build_secret_store(settings),
        database=PostgresDatabase(dsn),
        state=PostgresBotState(shared.schema, env=name, legacy_env=legacy),
        alerts=PostgresAlertStore(shared.schema),
        approvals=PostgresApprovalStore(shared.schema, env=name, legacy_env=legacy),
        git=shared.git,
        cluster=build_cluster(settings, clients=shared.kube_clients),
        bot_role=bot_role_of(dsn),
        announcer=shared.announcer,
    )


def build_platforms(
    settings: Settings, services: Services, runner: CommandRunner
) -> list[ChatPlatform]:
    """Every chat platform whose variables are set; `run` serves them all at once."""
    # imported here: the chat adapters (slack_bolt under one) are for `pgdb-bot run` only
    from bot.wiring.chat import build_mattermost, build_slack

    platforms: list[ChatPlatform] = []
    mattermost = build_mattermost(settings, services, runner)
    if mattermost is not None:
        platforms.append(mattermost)
    slack = build_slack(settings, services, runner)
    if slack is not None:
        platforms.append(slack)
    return platforms


def readiness_checks(services: Services) -> list[tuple[str, Callable[[], None]]]:
    """What /readyz asks: PostgreSQL (the bot's state and the managed server are the same)."""
    return [("PostgreSQL (PGDB_PG_DSN)", services.state.ping)]


def instrumented(services: Services) -> Services:
    """The same services, each adapter counted by system, and the commands and workflow steps
    counted, for /metrics (in every environment). Only `pgdb-bot run` serves /metrics: the
    console and diagnose count nothing, so they do not load prometheus_client."""
    from bot.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    fleet = services.fleet
    if fleet is None:
        return _instrumented(services, metrics=metrics)
    environments = {
        name: _instrumented(env, metrics=metrics) for name, env in fleet.environments.items()
    }
    fleet = dataclasses.replace(fleet, environments=environments)
    return dataclasses.replace(next(iter(environments.values())), fleet=fleet)


def _instrumented(services: Services, *, metrics: Metrics) -> Services:
    from bot.metrics import Instrumented

    return dataclasses.replace(
        services,
        metrics=metrics,
        secrets=cast(SecretStore, Instrumented(services.secrets, system="secret store")),
        database=cast(ManagedDatabase, Instrumented(services.database, system="postgresql")),
        state=cast(BotState, Instrumented(services.state, system="bot state")),
        git=cast(GitHost, Instrumented(services.git, system="git")),
        cluster=cast(Cluster, Instrumented(services.cluster, system="kubernetes")),
        approvals=cast(ApprovalStore, Instrumented(services.approvals, system="bot state"))
        if services.approvals is not None
        else None,
    )
