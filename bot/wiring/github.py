"""The GitHub host from the PGDB_GITHUB_* variables: which credentials (a token, or a GitHub
App's three values, never both), the App's key checked now, and a ``ConfigError`` that names
what is missing or wrong. Imported only when GitHub is configured (the adapter loads with it,
and cryptography when the bot is a GitHub App)."""

from __future__ import annotations

from bot.adapters.github.credentials import AppCredentials, load_private_key
from bot.adapters.github.host import GitHubHost
from bot.config import Settings
from bot.core.errors import ConfigError
from bot.core.secret import Secret


def build_github_host(settings: Settings, *, throttle: bool = True) -> GitHubHost:
    """The GitHub host the PGDB_GITHUB_* variables describe; ConfigError names what is
    missing or wrong (the local git host is then not used). Writes are spaced by
    PGDB_GITHUB_WRITE_SPACING (1 s, as GitHub asks of integrations); ``throttle`` off drops the
    spacing whatever the setting: for a benchmark against the fake only."""
    if settings.github_repo is None:
        raise ConfigError(
            "missing configuration: PGDB_GITHUB_REPO (owner/name of the GitOps repository)"
        )
    app_values = {
        "PGDB_GITHUB_APP_ID": settings.github_app_id,
        "PGDB_GITHUB_APP_PRIVATE_KEY": settings.github_app_private_key,
        "PGDB_GITHUB_INSTALLATION_ID": settings.github_installation_id,
    }
    given = [name for name, value in app_values.items() if value is not None]
    token = settings.github_token
    if token is not None and given:
        raise ConfigError(
            "invalid configuration: set PGDB_GITHUB_TOKEN or the PGDB_GITHUB_APP_* variables,"
            f" not both (found {', '.join(['PGDB_GITHUB_TOKEN', *given])})"
        )
    if token is not None:
        return _host(settings, token=Secret(token), throttle=throttle)
    if len(given) != len(app_values):
        missing = (
            [name for name in app_values if name not in given]
            if given
            else [
                "PGDB_GITHUB_TOKEN (or PGDB_GITHUB_APP_ID, PGDB_GITHUB_APP_PRIVATE_KEY and"
                " PGDB_GITHUB_INSTALLATION_ID)"
            ]
        )
        raise ConfigError(f"missing configuration: {', '.join(missing)}")
    assert settings.github_app_id is not None and settings.github_app_private_key is not None
    assert settings.github_installation_id is not None
    try:
        key = load_private_key(settings.github_app_private_key.get_secret_value())
    except ValueError as exc:
        raise ConfigError(f"invalid configuration:\n  PGDB_GITHUB_APP_PRIVATE_KEY: {exc}") from None
    app = AppCredentials(
        app_id=settings.github_app_id,
        private_key=key,
        installation_id=settings.github_installation_id,
    )
    return _host(settings, app=app, throttle=throttle)


def _host(
    settings: Settings,
    *,
    token: Secret | None = None,
    app: AppCredentials | None = None,
    throttle: bool,
) -> GitHubHost:
    assert settings.github_repo is not None
    return GitHubHost(
        repo=settings.github_repo,
        token=token,
        app=app,
        api_url=settings.github_api_url,
        base_branch=settings.gitops_base_branch,
        labels=settings.github_labels,
        reviewers=settings.github_reviewers,
        write_spacing=settings.github_write_spacing_seconds if throttle else 0.0,
    )
