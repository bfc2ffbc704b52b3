"""What offboarding changes in the GitOps repository, and what makes it unsafe (issue 10).

Pure code, text in and text out, like :mod:`bot.core.manifests`: the handler reads the base
branch, these functions decide.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.core.manifests import (
    KUSTOMIZATION_FILE,
    database_path,
    remove_resources,
    secret_path,
)
from bot.core.names import AppName

OFFBOARD_BRANCH_PREFIX = "pgdb-offboard/"


def offboard_branch(app: AppName) -> str:
    """``pgdb-offboard/<app>``: not under ``pgdb/``, where every branch is an onboarding (and
    ``pgdb/offboard/<app>`` would clash in git refs with an app named ``offboard``)."""
    return OFFBOARD_BRANCH_PREFIX + app


def _documents(text: str) -> list[Any]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


def reclaim_problem(database_manifest: str) -> str | None:
    """Why deleting this ``Database`` manifest could drop the database; None when it is safe.

    CloudNativePG drops the database when a ``Database`` with ``databaseReclaimPolicy: delete``
    is deleted. An absent policy is the CRD's default, ``retain``, which the API server wrote
    into the live object when it was created.
    """
    try:
        documents = _documents(database_manifest)
    except YAMLError as exc:
        first = " ".join(str(exc).split())[:160]
        return f"it is not valid YAML ({first}), so its reclaim policy cannot be checked"
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != "Database":
            continue
        spec = doc.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        policy = spec.get("databaseReclaimPolicy", "retain")
        if policy != "retain":
            return f"it says `databaseReclaimPolicy: {policy}`"
    return None


def orphaned_copies(secret_manifest: str, *, namespace: str) -> list[tuple[str, str]]:
    """(namespace, Secret) copies the ``InfisicalSecret`` writes outside ``namespace``: they
    are not owned by it (cross-namespace owners are refused), so they outlive its removal."""
    try:
        documents = _documents(secret_manifest)
    except YAMLError:
        return []
    found: list[tuple[str, str]] = []
    for doc in documents:
        spec = doc.get("spec") if isinstance(doc, dict) else None
        refs = spec.get("managedKubeSecretReferences") if isinstance(spec, dict) else None
        for ref in refs if isinstance(refs, list) else []:
            if not isinstance(ref, dict):
                continue
            where, name = ref.get("secretNamespace"), ref.get("secretName")
            if isinstance(where, str) and isinstance(name, str) and where != namespace:
                found.append((where, name))
    return found


def removal(
    app: AppName, *, folder: str, files_on_base: frozenset[str], kustomization: str | None
) -> dict[str, str | None]:
    """The commit that takes the app off the base branch: repo-relative path -> new text, None
    for a file to delete. Only what is there is touched; empty when nothing is.

    Raises ValueError when the kustomization cannot be edited (the message says what to fix).
    """
    folder = folder.strip("/")
    entries = [database_path(app), secret_path(app)]
    changes: dict[str, str | None] = {
        posixpath.join(folder, rel): None for rel in entries if rel in files_on_base
    }
    if kustomization is not None:
        edited = remove_resources(kustomization, entries)
        if edited != kustomization:
            changes[posixpath.join(folder, KUSTOMIZATION_FILE)] = edited
    return changes
