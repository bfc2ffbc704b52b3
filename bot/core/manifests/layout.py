"""Where one app's files live in the GitOps repository, what they are called, and the settings
the manifests carry besides the app name.

Imports no YAML or schema library, so configuration can build :class:`ManifestSettings` cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from bot.core.names import AppName

KUSTOMIZATION_FILE: Final = "kustomization.yaml"

DNS1123_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


@dataclass(frozen=True, kw_only=True)
class ManifestSettings:
    """What the manifests say besides the app name; defaults are the seed's values."""

    namespace: str = "databases"
    cluster: str = "postgresql-shared"
    manifests_path: str = "apps/04-databases/postgresql-shared/base"
    infisical_host_api: str = "http://192.168.111.69:8085"
    infisical_project: str = "vixens"
    env: str = "dev"
    secrets_prefix: str = "/postgresql"
    resync_interval: int = 60
    auth_secret: str = "infisical-universal-auth"  # noqa: S105 - a Secret's name, not a password
    auth_namespace: str = "argocd"

    def __post_init__(self) -> None:
        """Refuse settings that would produce manifests Kubernetes or kustomize rejects."""
        for label, value in (
            ("namespace", self.namespace),
            ("auth_namespace", self.auth_namespace),
        ):
            require_dns_label(value, what=label)
        for label, value in (("cluster", self.cluster), ("auth_secret", self.auth_secret)):
            if not DNS1123_SUBDOMAIN.fullmatch(value) or len(value) > 253:
                raise ValueError(
                    f"{label} {value!r} is not a valid Kubernetes object name "
                    "(lowercase letters, digits, '-' and '.')"
                )
        problem = relative_path_problem(self.manifests_path)
        if problem:
            raise ValueError(f"manifests_path {self.manifests_path!r} {problem}")
        if isinstance(self.resync_interval, bool) or self.resync_interval < 5:
            raise ValueError(
                f"resync_interval must be a number of seconds >= 5, not {self.resync_interval!r}"
            )
        for label, value in (
            ("infisical_host_api", self.infisical_host_api),
            ("infisical_project", self.infisical_project),
            ("env", self.env),
        ):
            if not value.strip():
                raise ValueError(f"{label} must not be empty")
        if not self.secrets_prefix.startswith("/"):
            raise ValueError(
                f"secrets_prefix {self.secrets_prefix!r} must be an absolute secret-store path "
                "such as '/postgresql'"
            )


def database_path(app: AppName) -> str:
    """Where the Database manifest lives, relative to the manifests folder."""
    return f"databases/{checked(app)}.yaml"


def secret_path(app: AppName) -> str:
    """Where the InfisicalSecret manifest lives, relative to the manifests folder."""
    return f"credentials/{checked(app)}-secret.yaml"


def secret_name(app: AppName) -> str:
    """Name of both the InfisicalSecret and the Kubernetes Secret it manages (seed runbook)."""
    return f"{checked(app)}-postgresql-credentials"


def checked(app: AppName) -> AppName:
    """Names reach paths and YAML only after validation at the edge."""
    if not isinstance(app, AppName):
        raise TypeError("app must be an AppName from bot.core.names.parse_app_name, not a str")
    return app


def require_dns_label(value: str, *, what: str) -> None:
    """Raise ValueError, with a hint, unless ``value`` can name a Kubernetes namespace."""
    if not isinstance(value, str) or len(value) > 63 or not DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid Kubernetes namespace: use at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit (e.g. 'my-app')"
        )


def relative_path_problem(path: Any) -> str | None:
    """Why ``path`` cannot be a path inside the manifests folder; None when it can."""
    if not isinstance(path, str) or not path.strip():
        return "is empty"
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        return "must be relative to the kustomization folder, not absolute"
    if ".." in re.split(r"[\\/]", path):
        return "must not climb out of the kustomization folder with '..'"
    return None
