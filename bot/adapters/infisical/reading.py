"""Reading the store: every app folder under the prefix, or one app's three keys. A fixed
number of calls whatever the number of apps; only ``shared`` secrets named like the bot's keys
count (a personal override or another key is not the bot's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.adapters.infisical.session import InfisicalSession
from bot.core.model import SECRET_KEYS, StoredCredentials
from bot.core.names import AppName
from bot.core.secret import Secret


def read_all(session: InfisicalSession) -> dict[str, StoredCredentials]:
    """Every app folder under the prefix: one listing of the folders and one recursive
    listing of the secrets, whatever the number of apps (an empty folder is an app too)."""
    with session.operation():
        project_id = session.project_id()
        folders = list_folders(session, project_id, session.place.prefix)
        listing = list_secrets(
            session,
            project_id,
            session.place.prefix,
            action=f"list the secrets under {session.place.prefix}",
            include_imports=False,
            recursive=True,
        )
    values: dict[str, dict[str, str]] = {str(f.name): {} for f in folders.folders}
    for secret in listing.secrets:
        app = session.place.app_of(secret.secretPath)
        if app is not None and secret.secretKey in SECRET_KEYS and secret.type == "shared":
            values.setdefault(app, {})[secret.secretKey] = secret.secretValue
    return {app: _credentials(values[app]) for app in sorted(values)}


def read(session: InfisicalSession, app: AppName) -> StoredCredentials | None:
    """The app's keys (one listing); when it has none, whether its folder exists."""
    path = session.place.folder(app)
    with session.operation():
        project_id = session.project_id()
        listing = list_secrets(
            session, project_id, path, action=f"read {path}", include_imports=False
        )
        values = {
            s.secretKey: s.secretValue
            for s in listing.secrets
            if s.secretKey in SECRET_KEYS and s.type == "shared"
        }
        if values:
            return _credentials(values)
        folders = list_folders(session, project_id, session.place.prefix)
    exists = any(str(f.name) == app for f in folders.folders)
    return StoredCredentials() if exists else None


def list_secrets(
    session: InfisicalSession, project_id: str, path: str, *, action: str, **options: bool
) -> Any:
    """The SDK's listing of the secrets at ``path``, references left as written (the bot's
    values hold none); ``options`` are the SDK's other switches (``recursive``…)."""
    return session.call(
        action,
        lambda: session.sdk.secrets.list_secrets(
            environment_slug=session.place.env,
            secret_path=path,
            project_id=project_id,
            expand_secret_references=False,
            **options,
        ),
    )


def list_folders(session: InfisicalSession, project_id: str, path: str) -> Any:
    """The SDK's listing of the folders directly under ``path`` (said "under" the prefix, "in"
    an app's folder)."""
    where = "under" if path == session.place.prefix else "in"
    return session.call(
        f"list the folders {where} {path}",
        lambda: session.sdk.folders.list_folders(
            project_id=project_id, environment_slug=session.place.env, path=path
        ),
    )


def _credentials(values: Mapping[str, str]) -> StoredCredentials:
    password = values.get("password")
    return StoredCredentials(
        username=values.get("username"),
        password=None if password is None else Secret(password),
        database=values.get("database"),
    )
