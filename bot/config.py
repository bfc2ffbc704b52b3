"""Configuration: every ``PGDB_*`` variable (docs/configuration.md), validated once at start.

Errors name the variable and say what a valid value looks like.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.durations import parse_duration, parse_schedule
from bot.core.errors import ConfigError
from bot.core.limits import parse_names, parse_statement_timeout
from bot.core.manifests.layout import ManifestSettings
from bot.core.sizes import parse_size

CommaList = Annotated[list[str], NoDecode]
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAMESPACE_GLOB = re.compile(r"^[-a-z0-9*?]{1,63}$")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# The settings whose values are credentials, masked wherever they appear in a log line. Named
# one by one: a name that merely contains "secret" (PGDB_SECRETS_DIR, PGDB_SECRETS_PREFIX,
# PGDB_INFISICAL_AUTH_SECRET, a Kubernetes Secret's name) is not one.
SECRET_SETTINGS = frozenset(
    {
        "github_token",
        "github_app_private_key",
        "infisical_client_secret",
        "action_secret",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "mattermost_bot_token",
        "mattermost_command_token",
    }
)


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All settings. Paths left unset are filled by the local mode (``pgdb-bot console``)."""

    model_config = SettingsConfigDict(
        env_prefix="PGDB_", env_file=".env", extra="ignore", validate_default=True
    )

    pg_dsn: str | None = Field(
        default=None,
        description="The bot's admin connection to the shared cluster (libpq URI or key=value); "
        "its account needs CREATEROLE, not superuser. Unset: `pgdb-bot console` finds or starts a"
        " local server; `run` and `diagnose` refuse to start.",
    )
    env: str = Field(
        default="dev",
        description="Environment slug: the Infisical `envSlug`, the file store's folder, and part"
        " of the leader Lease's name.",
    )
    config: Path | None = Field(
        default=None,
        description="A YAML file declaring several environments (dev, staging, prod…), each with "
        "its own PostgreSQL, secret-store environment, GitOps folder, cluster and policy (see "
        "Environments below). Unset: these variables define the single environment.",
    )
    state_dsn: str | None = Field(
        default=None,
        description="Where the bot keeps its own state (records, audit, approvals, alerts, locks) "
        "for every environment. Unset: `PGDB_PG_DSN`.",
    )
    namespace: str = Field(
        default="databases",
        description="Namespace of the CloudNativePG cluster, of the Database and InfisicalSecret "
        "resources, and of the credentials Secrets.",
    )
    cluster: str = Field(
        default="postgresql-shared",
        description="CloudNativePG Cluster name; its services are `<cluster>-rw`, `<cluster>-ro` "
        "and `<cluster>-r`.",
    )
    gitops_repo: Path | None = Field(
        default=None,
        description="Path of a local git repository holding the manifests (unused with GitHub). "
        "Unset: the console creates a demo repository in `<state dir>/gitops`.",
    )
    gitops_base_branch: str = Field(
        default="main",
        description="Branch the manifests are read from and every proposal targets.",
    )
    gitops_path: str = Field(
        default="apps/04-databases/postgresql-shared/base",
        description="Folder of the manifests in the GitOps repository (`kustomization.yaml`, "
        "`databases/`, `credentials/`).",
    )
    # GitHub (README "### GitHub"): selected when these are set; then PGDB_GITOPS_REPO is unused
    github_repo: str | None = Field(
        default=None,
        description="The GitOps repository on GitHub, as `owner/name`; with a token or the App "
        "variables, GitHub is the git host.",
    )
    github_api_url: str = Field(
        default="https://api.github.com",
        description="GitHub API base URL: `https://<host>/api/v3` for GitHub Enterprise Server.",
    )
    github_token: str | None = Field(
        default=None,
        description="A fine-grained personal access token restricted to the GitOps repository (or"
        " a classic one with scope `repo`).",
    )
    github_app_id: str | None = Field(
        default=None,
        description="GitHub App id (numeric), instead of a token; with the private key and the "
        "installation id.",
    )
    github_app_private_key: SecretStr | None = Field(
        default=None,
        description="The GitHub App's private key: the `.pem` file's contents (newlines may be "
        "written `\\n`) or its path.",
    )
    github_installation_id: int | None = Field(
        default=None,
        description="The App's installation id: the number at the end of the installation's "
        "settings URL.",
    )
    github_labels: CommaList = Field(
        default_factory=list,
        description="Comma-separated labels put on new pull requests (GitHub creates the missing "
        "ones).",
    )
    github_reviewers: CommaList = Field(
        default_factory=list,
        description="Comma-separated reviewers asked on new pull requests: logins, or "
        "`org/team-slug` for a team.",
    )
    github_write_spacing: str = Field(
        default="1s",
        description="Time between two writes to GitHub, which asks integrations for a second "
        "against its secondary rate limits; `0` turns the spacing off (a GitHub Enterprise "
        "Server without those limits, a test's fake GitHub).",
    )
    pr_stale_after: str = Field(
        default="7d",
        description="An onboarding pull request open longer than this is a `pr_stale` warning.",
    )
    secrets_dir: Path | None = Field(
        default=None,
        description="Root of the file secret store, `<dir>/<env>/<prefix>/<app>/<key>` (unused "
        "with Infisical). Unset: the console uses `<state dir>/secrets`.",
    )
    secrets_prefix: str = Field(
        default="/postgresql",
        description="Folder of the apps' credentials, `<prefix>/<app>`, in Infisical and in the "
        "file store.",
    )
    infisical_host_api: str = Field(
        default="http://192.168.111.69:8085",
        description="`hostAPI` written into each InfisicalSecret manifest: the Infisical API as "
        "the operator in the cluster reaches it.",
    )
    infisical_project: str = Field(
        default="vixens",
        description="Infisical project slug, written into the manifests and used by the Infisical"
        " secret store.",
    )
    infisical_resync_interval: int = Field(
        default=60,
        ge=5,
        description="`resyncInterval` written into the manifests, in seconds (at least 5).",
    )
    infisical_auth_secret: str = Field(
        default="infisical-universal-auth",
        description="Name of the Kubernetes Secret holding the Infisical operator's Universal "
        "Auth credentials (`credentialsRef` in the manifests).",
    )
    infisical_auth_namespace: str = Field(
        default="argocd",
        description="Namespace of that Secret.",
    )
    # the Infisical API the bot itself calls (the secret store); hostAPI above is the operator's
    infisical_url: str | None = Field(
        default=None,
        description="The Infisical API the bot itself calls, e.g. "
        "`https://infisical.example.com`; with the client id and secret, Infisical is the secret "
        "store.",
    )
    infisical_client_id: str | None = Field(
        default=None,
        description="Client ID of the bot's Infisical machine identity (Universal Auth).",
    )
    infisical_client_secret: str | None = Field(
        default=None,
        description="Client secret of the bot's Infisical machine identity.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Local mode's files: the demo repository, the file store, the private server,"
        " the log. Unset: `$XDG_DATA_HOME/pgdb-bot`, else `~/.local/share/pgdb-bot`.",
    )
    state_schema: str = Field(
        default="pgdb_bot",
        description="Schema of the bot's own tables (audit log, workflows, approvals, alert "
        "state) in the database of PGDB_PG_DSN.",
    )
    http_port: int = Field(
        default=8080,
        ge=1,
        le=65535,
        description="Port of the HTTP server of `pgdb-bot run`: the chat routes, `/healthz`, "
        "`/readyz`, `/metrics`.",
    )
    public_url: str | None = Field(
        default=None,
        description="The bot's address as the Mattermost server reaches it: button clicks come "
        "back to `<url>/mattermost/actions`.",
    )
    action_secret: str | None = Field(
        default=None,
        description="Signs Mattermost buttons: a random string of 16 characters or more (`openssl"
        " rand -hex 32`), the same on every replica.",
    )
    ops_channel: str | None = Field(  # alerts, for every chat platform unless overridden
        default=None,
        description="Ops channel for alerts and approval requests on every chat platform that has"
        " no channel of its own. Unset: alerts go to the log.",
    )
    # Slack: Socket Mode with an app token, else HTTP mode at /slack/events
    slack_bot_token: str | None = Field(
        default=None,
        description="The Slack app's bot token (`xoxb-…`); setting it turns Slack on.",
    )
    slack_signing_secret: str | None = Field(
        default=None,
        description="Slack HTTP mode (no app token): verifies the signature of every request to "
        "`POST /slack/events`.",
    )
    slack_app_token: str | None = Field(
        default=None,
        description="A Slack app-level token (`xapp-…`, scope `connections:write`): Socket Mode, "
        "no ingress needed.",
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="Slack Web API base URL (a local fake in tests).",
    )
    slack_ops_channel: str | None = Field(
        default=None,
        description="Ops channel on Slack: a channel id such as `C0123ABCD`, or `#name`. Unset: "
        "PGDB_OPS_CHANNEL.",
    )
    # Mattermost: a custom slash command plus a bot account for the posts
    mattermost_url: str | None = Field(
        default=None,
        description="Mattermost server base URL as the bot reaches it, e.g. "
        "`https://chat.example.com`; with both tokens, Mattermost is on.",
    )
    mattermost_bot_token: str | None = Field(
        default=None,
        description="The Mattermost bot account's access token (REST API).",
    )
    mattermost_command_token: str | None = Field(
        default=None,
        description="The `/pgdb` slash command's token, checked on every command.",
    )
    mattermost_ops_channel: str | None = Field(
        default=None,
        description="Ops channel on Mattermost: the channel id (26 characters, from View Info), "
        "not its name. Unset: PGDB_OPS_CHANNEL.",
    )
    requesters: CommaList = Field(
        default_factory=lambda: ["*"],
        description="Who may `create`, `status`, `list`: comma-separated user ids, "
        "`group:<handle>`, or `*` for everyone.",
    )
    operators: CommaList = Field(
        default_factory=list,
        description="Who may also `diagnose`, `repair`, `silence`, `rotate`, `offboard`, "
        "`approve`, `deny`: user ids and `group:<handle>`. The console's own OS user is always an"
        " operator.",
    )
    deny_names: CommaList = Field(
        default_factory=list,
        description="Comma-separated app names refused on top of the reserved ones.",
    )
    ignore_roles: CommaList = Field(
        default_factory=list,
        description="Comma-separated roles and databases never reported as orphans.",
    )
    # Kubernetes (README "### Kubernetes"): auto = only when a kubeconfig or in-cluster env exists
    kubernetes: str = Field(
        default="auto",
        description="`auto`: use Kubernetes when a kubeconfig or the in-cluster service account "
        "exists; `on`: refuse to start without one; `off`: never.",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file, tried first. Unset: the pod's service account, then "
        "`$KUBECONFIG`, then `~/.kube/config`.",
    )
    kube_context: str | None = Field(
        default=None,
        description="kubeconfig context. Unset: the file's current context.",
    )
    kube_timeout: str = Field(
        default="10s",
        description="Timeout of each Kubernetes API call.",
    )
    argocd_app: str | None = Field(
        default=None,
        description="The Argo CD Application whose sync and health `status` shows. Unset: Argo CD"
        " is not read.",
    )
    argocd_namespace: str = Field(
        default="argocd",
        description="Namespace of the Argo CD Applications; never a destination for an app's "
        "Secret.",
    )
    # --namespace: globs a Secret may be delivered to; the never-list is in
    # handlers/policy.py. The bot's own namespace: set, else the pod's, else PGDB_NAMESPACE.
    secret_namespaces: CommaList = Field(
        default_factory=lambda: ["*"],
        description="Comma-separated namespaces or globs (`team-*,apps`) that `create "
        "--namespace` may deliver an app's Secret to; `kube-*`, `default`, the bot's and Argo "
        "CD's namespaces are refused whatever this says.",
    )
    bot_namespace: str | None = Field(
        default=None,
        description="The bot's own namespace, never a destination for an app's Secret. Unset: the"
        " pod's namespace, else PGDB_NAMESPACE.",
    )
    backup_max_age: str = Field(
        default="26h",
        description="A last successful backup older than this is `backup_stale`; `off` does not "
        "check backups.",
    )
    pod_name: str | None = Field(  # the leader Lease's holder identity (the Deployment sets it)
        default=None,
        description="This replica's name in the scheduler's leader Lease (the Deployment sets "
        "it). Unset: `<hostname>-<pid>`.",
    )
    diagnose_interval: str = Field(
        default="5m",
        description="Schedule of the diagnostics in `pgdb-bot run`: a duration (`30s`, `5m`, "
        "`1h`) or a 5-field cron, in UTC.",
    )
    alert_repeat: str = Field(
        default="24h",
        description="A persisting finding is re-announced in its alert's thread at most this "
        "often.",
    )
    grace: str = Field(
        default="10m",
        description="Problems of an app are not reported until this long after its first "
        "appearance; `0` turns it off. Keep it above PGDB_ROTATE_SYNC_TIMEOUT.",
    )
    follow_deadline: str = Field(
        default="24h",
        description="After a `create` from chat, say which layer is stuck when the app is not "
        "ready this long after.",
    )
    # offboarding (README "Offboarding an app"): also delete the app's stored credentials
    offboard_delete_secret: bool = Field(
        default=False,
        description="`true`: `offboard` also deletes the app's stored credentials (only when "
        "their folder holds nothing else).",
    )
    # approvals (README "Approvals"): off | requesters | all
    require_approval: str = Field(
        default="off",
        description="`off`; `requesters`: a `create` by a non-operator waits for an operator's "
        "approval; `all`: every `create` waits, never for its own requester.",
    )
    approval_ttl: str = Field(
        default="24h",
        description="A request nobody decided expires after this; an approval stays valid this "
        "long for the same requester's re-runs.",
    )
    # /pgdb rotate (README "Rotating a password"): how long to wait for the Kubernetes Secret to
    # carry the new password, and whether to restart the workloads that read it
    rotate_sync_timeout: str = Field(
        default="2m",
        description="`/pgdb rotate` waits this long for the Kubernetes Secret to carry the new "
        "password; on timeout the old one is put back.",
    )
    rollout: str = Field(
        default="off",
        description="`on`: after a rotation, restart the Deployments and StatefulSets that read "
        "the app's Secret (needs the optional rollout RBAC).",
    )
    # guardrails of a shared cluster (README "Limits, extensions and usage")
    connection_limit: int = Field(
        default=20,
        ge=-1,
        le=10_000,
        description="CONNECTION LIMIT of each role create makes, and connectionLimit in its "
        "Database manifest; -1 for none",
    )
    statement_timeout: str = Field(
        default="0",
        description="statement_timeout set on each role create makes (30s, 500ms, 5m); 0 for none",
    )
    allowed_extensions: CommaList = Field(
        default_factory=list,
        description="extensions apps may ask for (create --extension, update --extension), "
        "comma-separated; empty allows none",
    )
    database_size_warn: str = Field(
        default="5GiB",
        description="an app's database above this size is the database_large finding",
    )
    storage_warn_ratio: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="the databases' total size above this share of the Cluster CR's storage "
        "size is the cluster_storage_low finding",
    )
    log_level: str = Field(
        default="INFO",
        description="`DEBUG`, `INFO`, `WARNING` or `ERROR`.",
    )
    log_format: str = Field(  # json | text | auto (text on a terminal, JSON otherwise)
        default="auto",
        description="`json`, `text`, or `auto` (text on a terminal, JSON otherwise).",
    )

    _split = field_validator(
        "requesters",
        "operators",
        "deny_names",
        "ignore_roles",
        "secret_namespaces",
        "allowed_extensions",
        mode="before",
    )(_split_commas)

    @field_validator("pg_dsn", "state_dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        # Parsed for real (libpq syntax) when the adapter is wired; here only emptiness.
        return value.strip() if value and value.strip() else None

    @field_validator("env", "namespace", "cluster", "infisical_auth_namespace", "argocd_namespace")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} must be a DNS label (lowercase letters, digits, dashes)")
        return value

    @field_validator("infisical_url")
    @classmethod
    def _infisical_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        split = urlsplit(url)
        if split.scheme not in {"http", "https"} or not split.hostname:
            raise ValueError("must be the Infisical API's base URL, e.g. https://infisical.example")
        if split.username or split.password or split.query or split.fragment:
            raise ValueError("must be a plain base URL: no credentials, query or fragment")
        return url

    @field_validator("infisical_client_id", "infisical_client_secret")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    def infisical_store(self) -> tuple[str, str, str] | None:
        """URL, client id and client secret when the Infisical secret store is selected (all
        three set), else None. Half a configuration is an error, not a silent fallback to the
        file store."""
        values = {
            "PGDB_INFISICAL_URL": self.infisical_url,
            "PGDB_INFISICAL_CLIENT_ID": self.infisical_client_id,
            "PGDB_INFISICAL_CLIENT_SECRET": self.infisical_client_secret,
        }
        missing = [name for name, value in values.items() if value is None]
        if len(missing) == len(values):
            return None
        if missing:
            raise ConfigError(
                f"missing configuration: {', '.join(missing)} (the Infisical secret store needs"
                " PGDB_INFISICAL_URL, PGDB_INFISICAL_CLIENT_ID and PGDB_INFISICAL_CLIENT_SECRET;"
                " unset all three to use the file store)"
            )
        assert self.infisical_url and self.infisical_client_id and self.infisical_client_secret
        return self.infisical_url, self.infisical_client_id, self.infisical_client_secret

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

    _split_github = field_validator("github_labels", "github_reviewers", mode="before")(
        _split_commas
    )

    @field_validator("github_repo")
    @classmethod
    def _github_repo(cls, value: str | None) -> str | None:
        cleaned = value.strip() if value else ""
        if not cleaned:
            return None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}", cleaned):
            raise ValueError(f"{value!r} must be the repository as owner/name, e.g. acme/gitops")
        return cleaned

    @field_validator("github_api_url")
    @classmethod
    def _github_api_url(cls, value: str) -> str:
        cleaned = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/@]+(/\S*)?", cleaned):
            raise ValueError(
                f"{value!r} must be the API's base URL: https://api.github.com, or "
                "https://<host>/api/v3 for GitHub Enterprise Server"
            )
        return cleaned

    @field_validator("github_token")
    @classmethod
    def _github_token(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @field_validator("github_app_id")
    @classmethod
    def _github_app_id(cls, value: str | None) -> str | None:
        cleaned = value.strip() if value else ""
        if cleaned and not (cleaned.isascii() and cleaned.isdigit()):
            raise ValueError(f"{value!r} must be the App's numeric id (App settings: App ID)")
        return cleaned or None

    @field_validator("github_app_private_key", "github_installation_id", mode="before")
    @classmethod
    def _github_blank(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("pr_stale_after")
    @classmethod
    def _pr_stale_after(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("github_write_spacing")
    @classmethod
    def _github_write_spacing(cls, value: str) -> str:
        if parse_duration(value, zero_allowed=True) > 60:
            raise ValueError(f"{value!r} must be at most 60s (GitHub asks for 1s between writes)")
        return value

    @property
    def github_enabled(self) -> bool:
        """GitHub is the git host when any PGDB_GITHUB_* variable that selects it is set."""
        return any(
            value is not None
            for value in (
                self.github_repo,
                self.github_token,
                self.github_app_id,
                self.github_app_private_key,
                self.github_installation_id,
            )
        )

    @property
    def pr_stale_after_seconds(self) -> float:
        return parse_duration(self.pr_stale_after)

    @property
    def github_write_spacing_seconds(self) -> float:
        return parse_duration(self.github_write_spacing, zero_allowed=True)

    @field_validator("state_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError(f"{value!r} must be a lowercase SQL identifier such as pgdb_bot")
        return value

    @field_validator("require_approval")
    @classmethod
    def _approval_mode(cls, value: str) -> str:
        if value.strip().lower() not in {"off", "requesters", "all"}:
            raise ValueError(
                f"{value!r} must be off, requesters (a create by a non-operator waits for an "
                "operator) or all (every create waits for another operator)"
            )
        return value.strip().lower()

    @field_validator("alert_repeat", "follow_deadline", "kube_timeout", "approval_ttl")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        parse_duration(value, zero_allowed=True)  # 0 turns the grace period off
        return value

    @field_validator("diagnose_interval")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value.lower() not in {"json", "text", "auto"}:
            raise ValueError(f"{value!r} must be json, text or auto")
        return value.lower()

    def secret_values(self) -> list[str]:
        """Every configured token, secret, key or password, for the log redaction (a private
        key is masked line by line, since a log would show it line by line)."""
        found: list[str] = []
        for name, value in self:
            if not value or name not in SECRET_SETTINGS:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            found.extend(line for line in str(value).splitlines() if len(line) >= 16)
            found.append(str(value))
        return found

    @field_validator(
        "ops_channel",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "slack_ops_channel",
    )
    @classmethod
    def _optional(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @field_validator("slack_bot_token", "slack_app_token")
    @classmethod
    def _slack_token(cls, value: str | None, info: ValidationInfo) -> str | None:
        prefix = "xoxb-" if info.field_name == "slack_bot_token" else "xapp-"
        if value is not None and not value.startswith(prefix):
            kind = "bot token" if prefix == "xoxb-" else "app-level token"
            raise ValueError(f"must be a Slack {kind} starting with {prefix} (value not shown)")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_api_url(cls, value: str) -> str:
        cleaned = value.strip()
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", cleaned):
            raise ValueError(f"{value!r} must be an http(s) URL such as https://slack.com/api/")
        return cleaned.rstrip("/") + "/"

    @field_validator("mattermost_url")
    @classmethod
    def _mattermost_url(cls, value: str | None) -> str | None:
        cleaned = value.strip() if value else ""
        if not cleaned:
            return None
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", cleaned):
            raise ValueError(
                f"{value!r} must be the server's base URL such as https://chat.example.com"
            )
        return cleaned.rstrip("/")

    @field_validator("mattermost_bot_token", "mattermost_command_token")
    @classmethod
    def _mattermost_token(cls, value: str | None) -> str | None:
        cleaned = value.strip() if value else ""
        if cleaned and not re.fullmatch(r"[A-Za-z0-9_-]{8,128}", cleaned):
            raise ValueError("must be a Mattermost token: letters and digits (value not shown)")
        return cleaned or None

    @field_validator("mattermost_ops_channel")
    @classmethod
    def _mattermost_channel(cls, value: str | None) -> str | None:
        cleaned = value.strip() if value else ""
        if cleaned and not re.fullmatch(r"[a-z0-9]{26}", cleaned):
            raise ValueError(
                f"{value!r} must be a Mattermost channel id (26 lowercase letters and digits, "
                "from the channel's View Info), not its name"
            )
        return cleaned or None

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"{value!r} must be one of DEBUG, INFO, WARNING, ERROR")
        return upper

    @field_validator("kubernetes")
    @classmethod
    def _kubernetes(cls, value: str) -> str:
        if value.strip().lower() not in {"auto", "on", "off"}:
            raise ValueError(f"{value!r} must be auto, on or off")
        return value.strip().lower()

    @field_validator("kube_context", "argocd_app")
    @classmethod
    def _optional_name(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @field_validator("backup_max_age")
    @classmethod
    def _backup_age(cls, value: str) -> str:
        if value.strip().lower() != "off":
            parse_duration(value)
        return value.strip()

    @property
    def backup_max_age_seconds(self) -> float | None:
        """None when backup freshness is not checked (``PGDB_BACKUP_MAX_AGE=off``)."""
        return None if self.backup_max_age.lower() == "off" else parse_duration(self.backup_max_age)

    @property
    def alert_repeat_seconds(self) -> float:
        return parse_duration(self.alert_repeat)

    @property
    def grace_seconds(self) -> float:
        return parse_duration(self.grace, zero_allowed=True)

    @property
    def follow_deadline_seconds(self) -> float:
        return parse_duration(self.follow_deadline)

    @property
    def approval_ttl_seconds(self) -> float:
        return parse_duration(self.approval_ttl)

    @field_validator("rotate_sync_timeout")
    @classmethod
    def _rotate_sync_timeout(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError(f"{value!r} must be a positive duration such as 2m or 90s")
        return value

    @field_validator("rollout")
    @classmethod
    def _rollout(cls, value: str) -> str:
        if value.strip().lower() not in {"on", "off"}:
            raise ValueError(
                f"{value!r} must be on (restart the Deployments and StatefulSets that read the "
                "app's Secret after a rotation) or off"
            )
        return value.strip().lower()

    @property
    def rotate_sync_timeout_seconds(self) -> float:
        return parse_duration(self.rotate_sync_timeout)

    @property
    def rollout_enabled(self) -> bool:
        return self.rollout == "on"

    @field_validator("statement_timeout")
    @classmethod
    def _statement_timeout(cls, value: str) -> str:
        parse_statement_timeout(value)
        return value.strip()

    @property
    def statement_timeout_ms(self) -> int:
        return parse_statement_timeout(self.statement_timeout)

    @field_validator("allowed_extensions")
    @classmethod
    def _extensions(cls, value: list[str]) -> list[str]:
        return list(parse_names(",".join(value), what="extension")) if value else []

    @field_validator("database_size_warn")
    @classmethod
    def _size(cls, value: str) -> str:
        parse_size(value)
        return value.strip()

    @property
    def database_size_warn_bytes(self) -> int:
        return parse_size(self.database_size_warn)

    @field_validator("secret_namespaces")
    @classmethod
    def _namespace_globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            if not _NAMESPACE_GLOB.fullmatch(glob):
                raise ValueError(
                    f"{glob!r} must be a namespace or a glob of one (lowercase letters, digits, "
                    "dashes, `*`, `?`), e.g. `team-*,apps`"
                )
        return value

    @field_validator("bot_namespace")
    @classmethod
    def _bot_namespace(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _DNS_LABEL.fullmatch(value.strip()):
            raise ValueError(f"{value!r} must be a DNS label (lowercase letters, digits, dashes)")
        return value.strip()

    @property
    def own_namespace(self) -> str:
        """The namespace the bot runs in: PGDB_BOT_NAMESPACE, else the pod's service-account
        namespace, else PGDB_NAMESPACE (where deploy/ puts the bot)."""
        return self.bot_namespace or pod_namespace() or self.namespace

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


def pod_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str | None:
    """The namespace Kubernetes mounts with the pod's service account; None outside a pod."""
    try:
        found = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return found if _DNS_LABEL.fullmatch(found) else None


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
