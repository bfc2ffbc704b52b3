"""What onboarding changes in the GitOps repository: both manifests and the
kustomization that lists them, built from the base branch's kustomization (and the app's line
on the runbook page when the folder has one); and whether an app is already on the base branch,
so that nothing is committed twice.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.core.limits import DatabaseOptions
from bot.core.manifests.kustomization import (
    add_resources,
    listed_resources,
    listed_set,
    new_kustomization,
    normalized,
)
from bot.core.manifests.layout import (
    KUSTOMIZATION_FILE,
    ManifestSettings,
    checked,
    database_path,
    secret_path,
)
from bot.core.manifests.render import render_database, render_infisical_secret
from bot.core.manifests.runbook_page import page_path, with_app
from bot.core.manifests.validate import (
    validate_database,
    validate_infisical_secret,
    validate_kustomization,
)
from bot.core.names import AppName


@dataclass(frozen=True, kw_only=True)
class ManifestSet:
    """The files one onboarding commits, keyed by repo-relative path: both
    manifests, the kustomization, and the runbook page when its list gains the app's line."""

    app: AppName
    manifests_path: str
    files: dict[str, str] = field(default_factory=dict)

    @property
    def database_path(self) -> str:
        """Repo-relative path of the Database manifest."""
        return posixpath.join(self.manifests_path, database_path(self.app))

    @property
    def secret_path(self) -> str:
        """Repo-relative path of the InfisicalSecret manifest."""
        return posixpath.join(self.manifests_path, secret_path(self.app))

    @property
    def kustomization_path(self) -> str:
        """Repo-relative path of the kustomization that lists both manifests."""
        return posixpath.join(self.manifests_path, KUSTOMIZATION_FILE)

    @property
    def resources(self) -> tuple[str, str]:
        """The two entries added to ``resources`` (relative to the manifests folder)."""
        return database_path(self.app), secret_path(self.app)

    def changed(self, base_files: Mapping[str, str | None]) -> dict[str, str]:
        """The files whose content differs from the base branch (``None`` = file absent)."""
        return {path: text for path, text in self.files.items() if base_files.get(path) != text}

    def validate(self, *, settings: ManifestSettings | None = None) -> list[str]:
        """Every problem, prefixed with its file: the ``pgdb/manifests`` status check."""
        checks = (
            (self.database_path, validate_database),
            (self.secret_path, validate_infisical_secret),
        )
        errors = [
            f"{path}: {problem}"
            for path, check in checks
            for problem in check(self.files[path], settings=settings)
        ]
        kustomization = self.files[self.kustomization_path]
        errors.extend(
            f"{self.kustomization_path}: {problem}"
            for problem in validate_kustomization(kustomization)
        )
        listed = {normalized(p) for p in listed_resources(kustomization)}
        errors.extend(
            f"{self.kustomization_path}: resources: {entry!r} is not listed"
            for entry in self.resources
            if normalized(entry) not in listed
        )
        return errors


def build_manifest_set(
    app: AppName,
    *,
    settings: ManifestSettings,
    base_kustomization: str | None,
    extra_namespace: str | None = None,
    runbook_page: str | None = None,
    database_options: DatabaseOptions | None = None,
) -> ManifestSet:
    """Render both manifests and the kustomization that lists them, from the base branch's.
    ``database_options``: the Database's connection limit, extensions and schemas.

    ``base_kustomization`` is None when the base has no kustomization yet: one is created.
    ``runbook_page`` is the base branch's runbook page (None: the folder has none); when its
    "Applications déployées" list lacks the app, the page with the app's line is committed too.
    Raises ValueError when the base's kustomization cannot be edited (not a mapping, or
    ``resources`` not a list of paths): the message says what to fix by hand.
    """
    app = checked(app)
    base = base_kustomization if base_kustomization is not None else new_kustomization()
    folder = settings.manifests_path.strip("/")
    files = {
        posixpath.join(folder, database_path(app)): render_database(
            app, settings=settings, options=database_options
        ),
        posixpath.join(folder, secret_path(app)): render_infisical_secret(
            app, settings=settings, extra_namespace=extra_namespace
        ),
        posixpath.join(folder, KUSTOMIZATION_FILE): add_resources(
            base, [database_path(app), secret_path(app)]
        ),
    }
    if runbook_page is not None and (page := with_app(runbook_page, app)) != runbook_page:
        files[page_path(folder)] = page
    return ManifestSet(app=app, manifests_path=folder, files=files)


def on_base(app: AppName, *, files_on_base: frozenset[str], kustomization: str | None) -> bool:
    """Whether the app is already on the base branch: nothing to commit, no branch, no PR.

    True when both manifests exist (paths relative to the manifests folder) and both are
    listed in ``resources``. Raises ValueError for a malformed kustomization.
    """
    if kustomization is None:
        return False
    return listed_on_base(app, files_on_base=files_on_base, listed=listed_set(kustomization))


def listed_on_base(app: AppName, *, files_on_base: frozenset[str], listed: frozenset[str]) -> bool:
    """``on_base`` with the ``resources`` entries already parsed: a pass over every app parses
    (and compares) the kustomization once, not once per app."""
    return all(p in listed and p in files_on_base for p in (database_path(app), secret_path(app)))
