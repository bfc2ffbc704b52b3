"""Writing the store: an app's folder and its three keys (created, or updated when they
exist), and deleting them — only them: a folder holding anything else is refused whole."""

from __future__ import annotations

from bot.adapters.infisical.errors import SYSTEM
from bot.adapters.infisical.reading import list_folders, list_secrets
from bot.adapters.infisical.session import InfisicalSession, Tolerated
from bot.core.errors import BackendUnavailable
from bot.core.model import SECRET_KEYS
from bot.core.names import AppName
from bot.core.secret import Secret


def write(
    session: InfisicalSession, app: AppName, *, username: str, password: Secret, database: str
) -> None:
    """The folder first (Infisical creates missing parents and returns an existing folder),
    then each key: created, or updated when it exists. Writes what it is told."""
    path = session.place.folder(app)
    values = {"username": username, "password": password.reveal(), "database": database}
    with session.operation(hide=values["password"]):
        project_id = session.project_id()
        session.call(
            f"create the folder {path}",
            lambda: session.sdk.folders.create_folder(
                name=str(app),
                environment_slug=session.place.env,
                project_id=project_id,
                path=session.place.prefix,
            ),
        )
        for key in SECRET_KEYS:
            _put(session, project_id, path=path, key=key, value=values[key])


def delete(session: InfisicalSession, app: AppName) -> bool:
    """Each key, then the folder; an absent one (404) is already gone, so a re-run after a
    failure part-way finishes the job.

    Like the file store, only what the bot writes goes: the folder's secrets, sub-folders
    and secret imports are listed first, and a folder holding anything but the three keys
    is refused with nothing deleted (deleting a folder deletes everything beneath it)."""
    path = session.place.folder(app)
    removed = False
    with session.operation():
        project_id = session.project_id()
        foreign = _foreign(session, project_id, app)
        if foreign:
            raise BackendUnavailable(
                SYSTEM,
                f"{path} (env {session.place.env}) holds what the bot did not write"
                f" ({'; '.join(foreign)}), so nothing was deleted — move them elsewhere in"
                " Infisical (or delete them there if nobody needs them), then run the"
                " command again",
            )
        for key in SECRET_KEYS:
            target = f"`{key}` at {path}"
            gone = session.call(
                f"delete {target}",
                lambda key=key: session.sdk.secrets.delete_secret_by_name(  # type: ignore[misc]
                    secret_name=key,
                    secret_path=path,
                    environment_slug=session.place.env,
                    project_id=project_id,
                ),
                tolerate=frozenset({404}),
                writes=target,
            )
            removed = removed or not isinstance(gone, Tolerated)
        folder = session.call(
            f"delete the folder {path}",
            lambda: session.sdk.folders.delete_folder(
                folder_id_or_name=str(app),
                environment_slug=session.place.env,
                project_id=project_id,
                path=session.place.prefix,
            ),
            tolerate=frozenset({404}),
        )
    return removed or not isinstance(folder, Tolerated)


def _foreign(session: InfisicalSession, project_id: str, app: AppName) -> list[str]:
    """What the app's folder holds besides the bot's three keys, described without values:
    other secrets, sub-folders, secret imports. Empty when the folder is absent."""
    path = session.place.folder(app)
    listing = list_secrets(
        session,
        project_id,
        path,
        action=f"list the secrets in {path}",
        view_secret_value=False,
        include_imports=True,
    )
    folders = list_folders(session, project_id, path)
    keys = sorted(
        {
            f"{s.secretKey} ({s.type})" if s.type != "shared" else str(s.secretKey)
            for s in listing.secrets
            if s.secretKey not in SECRET_KEYS or s.type != "shared"
        }
    )
    found: list[str] = []
    if keys:
        found.append(f"secrets {', '.join(keys)}")
    names = sorted(str(f.name) for f in folders.folders)
    if names:
        found.append(f"folders {', '.join(names)}")
    imports = sorted(f"{i.environment}:{i.secretPath}" for i in listing.imports or ())
    if imports:
        found.append(f"secret imports from {', '.join(imports)}")
    return found


def _put(session: InfisicalSession, project_id: str, *, path: str, key: str, value: str) -> None:
    """Create the key; Infisical answers 400 when it exists, and then it is updated."""
    target = f"`{key}` at {path}"
    where = {
        "secret_path": path,
        "environment_slug": session.place.env,
        "project_id": project_id,
        "secret_value": value,
    }
    created = session.call(
        f"create {target}",
        lambda: session.sdk.secrets.create_secret_by_name(secret_name=key, **where),
        tolerate=frozenset({400}),
        writes=target,
    )
    if not isinstance(created, Tolerated):
        return
    updated = session.call(
        f"update {target}",
        lambda: session.sdk.secrets.update_secret_by_name(current_secret_name=key, **where),
        tolerate=frozenset({404}),
        writes=target,
    )
    if isinstance(updated, Tolerated):  # so the 400 was not "already exists"
        raise BackendUnavailable(
            SYSTEM,
            f"the server refused to create {target}: HTTP 400 ({created.said}) — check the"
            " server's logs for this request",
        )
