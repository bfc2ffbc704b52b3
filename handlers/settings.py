"""The settings the use cases read, in narrow typed slices.

The composition root (``bot.wiring.core_settings``) builds them from the environment's
configuration; the use cases never see that whole model. Defaults are the runbook's values, the
same as the configuration's (a test keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.limits import RoleLimits
from bot.core.manifests.layout import ManifestSettings
from bot.core.names import (
    OFFBOARD_BRANCH_PREFIX,
    ONBOARD_BRANCH_PREFIX,
    UPDATE_BRANCH_PREFIX,
    app_of_suffix,
    branch_suffix,
)


@dataclass(frozen=True)
class Duration:
    """A configured duration: as the operator wrote it (for messages) and in seconds."""

    text: str
    seconds: float

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Size:
    """A configured size: as the operator wrote it (for messages) and in bytes."""

    text: str
    bytes: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where an app's pieces live: the cluster, the GitOps folder, the secret store's path."""

    manifests: ManifestSettings = field(default_factory=ManifestSettings)
    base_branch: str = "main"  # the GitOps repository's branch that Argo CD deploys
    own_namespace: str = "databases"  # the bot's own namespace (never a Secret's destination)
    argocd_namespace: str = "argocd"
    argocd_app: str | None = None  # the Argo CD Application to check, when one is named
    secret_namespaces: tuple[str, ...] = ("*",)  # globs --namespace may deliver to
    ignore_roles: tuple[str, ...] = ()  # roles that are neither apps nor orphans
    # The environment's name. ``branch_scope`` is set when a configuration file
    # declares environments: branches are then ``pgdb/<env>--<app>``; the environment that
    # existed before keeps the unscoped ``pgdb/<app>`` branches it opened (``owns_unscoped``).
    environment: str = "dev"
    branch_scope: str | None = None
    owns_unscoped: bool = True

    def onboard_branch(self, app: str) -> str:
        return ONBOARD_BRANCH_PREFIX + branch_suffix(app, scope=self.branch_scope)

    def offboard_branch(self, app: str) -> str:
        """``pgdb-offboard/<app>``: not under ``pgdb/``, where every branch is an onboarding
        (and ``pgdb/offboard/<app>`` would clash in git refs with an app named ``offboard``)."""
        return OFFBOARD_BRANCH_PREFIX + branch_suffix(app, scope=self.branch_scope)

    def update_branch(self, app: str) -> str:
        """The branch of every later change to the app's manifests (limits, extensions): one
        open at a time, a further change is added to it."""
        return UPDATE_BRANCH_PREFIX + branch_suffix(app, scope=self.branch_scope)

    def app_of_branch(self, suffix: str) -> str | None:
        """The app of a branch suffix when it is this environment's, else None."""
        return app_of_suffix(suffix, scope=self.branch_scope, owns_unscoped=self.owns_unscoped)

    @property
    def namespace(self) -> str:
        """The cluster's namespace, where the Database and InfisicalSecret objects live."""
        return self.manifests.namespace

    @property
    def cluster(self) -> str:
        return self.manifests.cluster

    @property
    def gitops_path(self) -> str:
        """The folder of the GitOps repository holding the manifests and the kustomization."""
        return self.manifests.manifests_path

    @property
    def secrets_prefix(self) -> str:
        return self.manifests.secrets_prefix


@dataclass(frozen=True, kw_only=True)
class Access:
    """Who may do what: requesters, operators, approvals, names never to take."""

    requesters: tuple[str, ...] = ("*",)
    operators: tuple[str, ...] = ()
    require_approval: str = "off"  # off | requesters | all
    approval_ttl: Duration = Duration("24h", 86400.0)
    deny_names: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Timing:
    """How long the judgement and the workflows wait before they call something wrong."""

    grace: Duration = Duration("10m", 600.0)  # a new app's first minutes are not findings
    pr_stale_after: Duration = Duration("7d", 604800.0)
    backup_max_age: Duration | None = Duration("26h", 93600.0)  # None: backups not checked
    rotate_sync_timeout: Duration = Duration("2m", 120.0)


@dataclass(frozen=True, kw_only=True)
class WorkflowOptions:
    """Choices the operators made for the workflows."""

    rollout: bool = False  # rotate restarts the app's workloads (PGDB_ROLLOUT=on)
    offboard_delete_secret: bool = False  # offboard also deletes the stored credentials


@dataclass(frozen=True, kw_only=True)
class Guardrails:
    """What a shared cluster allows each app: the limits ``create`` gives its role
    and manifest, the extensions it may ask for, and when usage becomes a finding."""

    connection_limit: int = 20  # CONNECTION LIMIT of each new role; -1: none
    statement_timeout_ms: int = 0  # the role's statement_timeout; 0: none
    allowed_extensions: tuple[str, ...] = ()  # empty: no extension may be asked for
    database_size_warn: Size = Size("5GiB", 5 * 1024**3)  # database_large above this
    storage_warn_ratio: float = 0.8  # cluster_storage_low above this share of the storage

    @property
    def role_limits(self) -> RoleLimits:
        """The limits a role the bot creates gets (and its Database manifest's limit)."""
        return RoleLimits(
            connection_limit=self.connection_limit, statement_timeout_ms=self.statement_timeout_ms
        )


@dataclass(frozen=True, kw_only=True)
class CoreSettings:
    """Every slice, carried by the services; a use case reads the slice it needs."""

    layout: Layout = field(default_factory=Layout)
    access: Access = field(default_factory=Access)
    timing: Timing = field(default_factory=Timing)
    options: WorkflowOptions = field(default_factory=WorkflowOptions)
    guardrails: Guardrails = field(default_factory=Guardrails)
