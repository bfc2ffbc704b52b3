"""Where an Infisical store keeps its secrets: the server, the project and environment, and
the folder of app folders (``<prefix>/<app>``). Checked once, when the store is built, so a
bad value is a ``ValueError`` at start and never a request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.core.names import AppName

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_FOLDER = re.compile(r"^[A-Za-z0-9_-]+$")  # what Infisical accepts as a folder name


@dataclass(frozen=True, kw_only=True)
class Place:
    """The server (no trailing slash), project and environment slugs, and the prefix
    (``/a/b``: leading slash, no trailing one)."""

    url: str
    project: str
    env: str
    prefix: str

    @classmethod
    def checked(cls, *, url: str, project: str, env: str, prefix: str) -> Place:
        """The place these values name, in the form Infisical expects; ValueError when one is
        unusable."""
        parts = [p for p in prefix.split("/") if p]
        if not parts or not all(_FOLDER.fullmatch(p) for p in parts):
            raise ValueError(f"unusable secret path prefix {prefix!r}")
        if not _SLUG.fullmatch(project):
            raise ValueError(f"unusable Infisical project slug {project!r}")
        if not _SLUG.fullmatch(env):
            raise ValueError(f"unusable Infisical environment slug {env!r}")
        split = urlsplit(url)
        if split.scheme not in {"http", "https"} or not split.hostname:
            raise ValueError("the Infisical URL must be http(s)://host[:port][/path]")
        return cls(url=url.rstrip("/"), project=project, env=env, prefix="/" + "/".join(parts))

    def folder(self, app: AppName) -> str:
        """The app's folder: ``<prefix>/<app>``."""
        if not _FOLDER.fullmatch(app):
            raise ValueError("not an app folder name")
        return f"{self.prefix}/{app}"

    def app_of(self, secret_path: object) -> str | None:
        """The app folder a secret's path is directly in, or None (deeper or elsewhere)."""
        if not isinstance(secret_path, str):
            return None
        rest = secret_path.rstrip("/").removeprefix(self.prefix + "/")
        if rest == secret_path or not rest or "/" in rest:
            return None
        return rest
