"""What offboarding changes in the GitOps repository, and what makes it unsafe (issue 10).

Pure code, text in and text out, like the rest of :mod:`bot.core.manifests`: the handler reads
the base branch, these functions decide.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.core.manifests.kustomization import NotYaml, parse_kustomization, remove_resources
from bot.core.manifests.layout import KUSTOMIZATION_FILE, database_path, secret_path
from bot.core.manifests.runbook_page import page_path, without_app
from bot.core.names import AppName


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


# The kustomization fields whose entries patch resources (kustomize v5 and the deprecated two).
PATCH_FIELDS = ("patches", "patchesStrategicMerge", "patchesJson6902")
_DATABASES_FOLDER = "databases"  # where database_path() puts every Database manifest


def _selects(pattern: object, value: str) -> bool:
    """Whether a kustomize target field (an anchored regular expression) selects ``value``."""
    if not isinstance(pattern, str):
        return False
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return pattern == value


def _target_problem(target: object, app: AppName) -> str | None:
    """Why a patch target may select a ``Database``: any target of kind Database (whatever its
    name, to be safe), or one of no kind that selects the app's by name or every resource."""
    if not isinstance(target, dict):
        return None
    kind, name = target.get("kind"), target.get("name")
    if kind is not None:
        return f"its target is kind `{kind}`" if _selects(kind, "Database") else None
    if name is None:
        return "its target has no kind nor name, so it selects the Database too"
    return f"its target is named `{name}`, like the Database" if _selects(name, app) else None


def _content_problem(text: str) -> str | None:
    """Why a patch's own text (no target: a strategic merge patch) may change a Database."""
    try:
        documents = _documents(text)
    except YAMLError:
        return "it is not valid YAML, so what it patches cannot be checked"
    for doc in documents:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind == "Database":
            return "it patches kind `Database`"
        if kind is None:
            return "it names no kind, so what it patches cannot be checked"
    return None


def database_patches(
    kustomization: str, app: AppName, *, read: Callable[[str], str | None]
) -> list[str]:
    """Every entry of ``kustomization.yaml``'s patch fields that may change a ``Database``
    (its ``databaseReclaimPolicy`` among others), described for a human; empty when none may.

    Conservative: a target of kind Database (any name), a target that selects every resource
    or the app's name, a patch file under ``databases/``, a target-less patch of kind
    Database, and a patch file that cannot be read or parsed all count. ``read`` returns a
    file's text by its path relative to the kustomization, None when it does not exist.
    """
    try:
        parsed = parse_kustomization(kustomization)
    except NotYaml:
        parsed = None
    if parsed is None or parsed.unknown_tag is not None:  # what kustomize makes of `!x` is unsure
        return ["kustomization.yaml is not valid YAML, so its patches cannot be checked"]
    root = parsed.data if isinstance(parsed.data, dict) else {}
    found: list[str] = []
    for field_name in PATCH_FIELDS:
        entries = root.get(field_name)
        if entries is None:
            continue
        if not isinstance(entries, list):
            found.append(f"`{field_name}` is not a list, so it cannot be checked")
            continue
        for index, entry in enumerate(entries):
            where = f"`{field_name}[{index}]`"
            problem = _patch_problem(field_name, entry, app, read=read)
            if problem is not None:
                found.append(f"{where} ({problem})")
    return found


def _patch_problem(
    field_name: str, entry: object, app: AppName, *, read: Callable[[str], str | None]
) -> str | None:
    if isinstance(entry, str):  # patchesStrategicMerge: a file, or the patch itself inline
        entry = {"patch": entry} if "\n" in entry.strip() else {"path": entry}
    if not isinstance(entry, dict):
        return "not a mapping, so it cannot be checked"
    target = entry.get("target")
    path, patch = entry.get("path"), entry.get("patch")
    if isinstance(path, str):
        normalized = posixpath.normpath(path)
        if normalized == _DATABASES_FOLDER or normalized.startswith(_DATABASES_FOLDER + "/"):
            return f"`{path}` is under {_DATABASES_FOLDER}/"
    if target is not None:
        return _target_problem(target, app)
    if field_name == "patchesJson6902":
        return "it has no target, so what it patches cannot be checked"
    if isinstance(path, str):
        text = read(path)
        if text is None:
            return f"`{path}` cannot be read, so what it patches cannot be checked"
        problem = _content_problem(text)
        return None if problem is None else f"`{path}`: {problem}"
    if isinstance(patch, str):
        return _content_problem(patch)
    return "it has neither a path nor a patch, so it cannot be checked"


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
    app: AppName,
    *,
    folder: str,
    files_on_base: frozenset[str],
    kustomization: str | None,
    runbook_page: str | None = None,
) -> dict[str, str | None]:
    """The commit that takes the app off the base branch: repo-relative path -> new text, None
    for a file to delete. Only what is there is touched; empty when nothing is.

    ``runbook_page`` is the base branch's runbook page (None: none): the app's line leaves its
    list in the same commit. The line alone is no reason for a commit, as it is no part of
    "on the base branch" for onboarding.

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
    page = without_app(runbook_page, app) if changes and runbook_page is not None else None
    if page is not None and page != runbook_page:
        changes[page_path(folder)] = page
    return changes
