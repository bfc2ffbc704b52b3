"""The ``pgdb/manifests`` status check's rules for each file: the two manifests
against the CRD schemas vendored in ``schemas/`` (see ``SOURCES.md`` there) plus the rules the
schemas cannot say, and the kustomization's well-formedness.

jsonschema is imported on the first schema check, not with this module: commands that never
validate (and ``--help``) do not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources as importlib_resources
from typing import TYPE_CHECKING, Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.core.manifests.kustomization import (
    KUSTOMIZE_API_VERSION,
    NotYaml,
    normalized,
    parse_kustomization,
)
from bot.core.manifests.layout import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    ManifestSettings,
    relative_path_problem,
)
from bot.core.manifests.render import DATABASE_API_VERSION, INFISICAL_API_VERSION
from bot.core.manifests.yaml_text import describe, one_line

if TYPE_CHECKING:
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import ValidationError

DATABASE_SCHEMA: Final = "postgresql.cnpg.io_v1_database.json"
CLUSTER_SCHEMA: Final = "postgresql.cnpg.io_v1_cluster.json"
INFISICAL_SCHEMA: Final = "secrets.infisical.com_v1alpha1_infisicalsecret.json"
_SCHEMA_FILES: Final = frozenset({DATABASE_SCHEMA, CLUSTER_SCHEMA, INFISICAL_SCHEMA})

# CEL rules of the Database CRD that a JSON Schema validator skips (SOURCES.md).
_RESERVED_DATABASE_NAMES: Final = frozenset({"postgres", "template0", "template1"})
_CREATION_POLICIES: Final = ("Owner", "Orphan")


def load_schema(filename: str) -> dict[str, Any]:
    """A fresh copy of one vendored CRD schema (``DATABASE_SCHEMA``, ``CLUSTER_SCHEMA`` ...)."""
    if filename not in _SCHEMA_FILES:
        raise ValueError(f"no vendored schema {filename!r}; known: {sorted(_SCHEMA_FILES)}")
    folder = importlib_resources.files("bot.core.manifests").joinpath("schemas")
    schema: dict[str, Any] = json.loads(folder.joinpath(filename).read_text("utf-8"))
    return schema


def _strict(schema: Any) -> Any:
    """Report unknown fields: the API server silently prunes them, hiding a typo'd key."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def _validator(filename: str) -> Draft7Validator:
    from jsonschema import Draft7Validator  # here: see the module's docstring

    schema = _strict(load_schema(filename))
    schema["properties"].pop("status", None)  # manifests carry no status
    return Draft7Validator(schema)


def _json_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _schema_messages(error: ValidationError) -> Iterator[str]:
    path = list(error.absolute_path)
    where = _json_path(path)
    expected: Any = error.validator_value
    schema: Any = error.schema
    if error.validator == "required" and isinstance(error.instance, dict):
        for missing in expected:
            if missing not in error.instance:
                yield f"{_json_path([*path, missing])}: required field is missing"
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = schema.get("properties", {})
        for extra in error.instance:
            if extra not in known:
                yield (
                    f"{_json_path([*path, extra])}: unknown field "
                    "(Kubernetes would silently drop it; check the spelling)"
                )
    elif error.validator == "type":
        yield f"{where}: expected {expected}, got {describe(error.instance)}"
    elif error.validator == "enum":
        allowed = ", ".join(repr(v) for v in expected)
        yield f"{where}: {error.instance!r} is not allowed; use one of {allowed}"
    else:
        yield f"{where}: {error.message}"


def _load_manifest(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        return None, [f"not valid YAML: {one_line(exc)}"]
    if data is None:
        return None, ["the file is empty"]
    if not isinstance(data, dict):
        return None, [f"(document): expected a mapping, got {describe(data)}"]
    return data, []


@dataclass(frozen=True)
class _Kind:
    """A custom resource kind the bot writes, and the vendored schema of its CRD."""

    api_version: str
    kind: str
    schema: str


_DATABASE: Final = _Kind(DATABASE_API_VERSION, "Database", DATABASE_SCHEMA)
_INFISICAL_SECRET: Final = _Kind(INFISICAL_API_VERSION, "InfisicalSecret", INFISICAL_SCHEMA)


def _validate_object(
    text: str, of: _Kind, *, settings: ManifestSettings | None
) -> tuple[dict[str, Any] | None, list[str]]:
    api_version, kind = of.api_version, of.kind
    namespace = settings.namespace if settings else None
    data, errors = _load_manifest(text)
    if data is None:
        return None, errors
    if data.get("apiVersion") != api_version:
        errors.append(f"apiVersion: expected {api_version!r}, got {data.get('apiVersion')!r}")
    if data.get("kind") != kind:
        errors.append(f"kind: expected {kind!r}, got {data.get('kind')!r}")
    if "status" in data:
        errors.append("status: must not be set in a manifest (the operator writes it)")
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            errors.append("metadata.name: required field is missing")
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
            errors.append(f"metadata.name: {name!r} is not a valid Kubernetes object name")
        ns = metadata.get("namespace")
        if not isinstance(ns, str) or not ns:
            errors.append("metadata.namespace: required field is missing")
        elif len(ns) > 63 or not DNS1123_LABEL.fullmatch(ns):
            errors.append(f"metadata.namespace: {ns!r} is not a valid namespace name")
        elif namespace is not None and ns != namespace:
            errors.append(f"metadata.namespace: expected {namespace!r}, got {ns!r}")
    body = {k: v for k, v in data.items() if k not in ("status", "apiVersion", "kind")}
    for error in _validator(of.schema).iter_errors(body):
        errors.extend(_schema_messages(error))
    return data, errors


def _finish(errors: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(errors))


def validate_database(text: str, *, settings: ManifestSettings | None = None) -> list[str]:
    """Problems with a Database manifest, each naming its field; empty when it is valid.

    Also checks the CRD's CEL rule on reserved database names, which jsonschema skips. With
    ``settings``, the namespace and cluster must be ours: the CNPG controller ignores a Database
    whose cluster is not in its namespace, leaving it without status forever.
    """
    data, errors = _validate_object(text, _DATABASE, settings=settings)
    spec = data.get("spec") if data else None
    if isinstance(spec, dict):
        db_name = spec.get("name")
        if isinstance(db_name, str) and db_name in _RESERVED_DATABASE_NAMES:
            errors.append(f"spec.name: the name {db_name} is reserved")
        cluster = spec.get("cluster")
        cluster_name = cluster.get("name") if isinstance(cluster, dict) else None
        if isinstance(cluster, dict) and not cluster_name:
            errors.append("spec.cluster.name: required field is missing")
        elif settings is not None and cluster_name and cluster_name != settings.cluster:
            errors.append(f"spec.cluster.name: expected {settings.cluster!r}, got {cluster_name!r}")
    return _finish(errors)


def validate_infisical_secret(text: str, *, settings: ManifestSettings | None = None) -> list[str]:
    """Problems with an InfisicalSecret manifest; empty when it is valid.

    Besides the schema, checks the rules the operator (v0.11.5) enforces at run time: one of
    ``managedSecretReference`` / ``managedKubeSecretReferences``, not both; exactly one of
    ``projectSlug`` / ``projectId``; ``creationPolicy`` spelled ``Owner`` or ``Orphan`` (anything
    else silently means Orphan); and no ``Owner`` across namespaces.
    """
    data, errors = _validate_object(text, _INFISICAL_SECRET, settings=settings)
    spec = data.get("spec") if data else None
    if not isinstance(spec, dict):
        if data is not None and "spec" not in data:
            errors.append("spec: required field is missing")
        return _finish(errors)
    metadata = data.get("metadata") if data else None
    own_ns = metadata.get("namespace") if isinstance(metadata, dict) else None

    single = spec.get("managedSecretReference")
    many = spec.get("managedKubeSecretReferences")
    if single is not None and many is not None:
        errors.append(
            "spec: managedSecretReference and managedKubeSecretReferences are both set; "
            "the operator refuses that, keep only managedKubeSecretReferences"
        )
    refs: list[tuple[str, Any]] = []
    if isinstance(single, dict):
        refs.append(("spec.managedSecretReference", single))
    if isinstance(many, list):
        refs.extend((f"spec.managedKubeSecretReferences[{i}]", r) for i, r in enumerate(many))
    if not refs and not spec.get("managedKubeConfigMapReferences"):
        errors.append("spec: no managed Secret reference; the operator would sync nothing")
    for where, ref in refs:
        if not isinstance(ref, dict):
            continue
        policy = ref.get("creationPolicy", "Orphan")
        if policy not in _CREATION_POLICIES:
            errors.append(
                f"{where}.creationPolicy: {policy!r} is not allowed; use 'Owner' or 'Orphan'"
            )
        target = ref.get("secretNamespace")
        if policy == "Owner" and own_ns and target and target != own_ns:
            errors.append(
                f"{where}.creationPolicy: 'Owner' needs the Secret in {own_ns!r}, not {target!r} "
                "(cross-namespace owner references are disallowed); use 'Orphan'"
            )
    auth = spec.get("authentication")
    universal = auth.get("universalAuth") if isinstance(auth, dict) else None
    scope = universal.get("secretsScope") if isinstance(universal, dict) else None
    if isinstance(scope, dict) and bool(scope.get("projectSlug")) == bool(scope.get("projectId")):
        errors.append(
            "spec.authentication.universalAuth.secretsScope: set exactly one of projectSlug "
            "and projectId"
        )
    return _finish(errors)


def validate_kustomization(text: str) -> list[str]:
    """Problems with a kustomization file (well-formed mapping, unique relative resources)."""
    try:
        parsed = parse_kustomization(text)
    except NotYaml as exc:
        return [f"not valid YAML: {exc.reason}"]
    if parsed.unknown_tag is not None:
        return [f"not valid YAML: {parsed.unknown_tag}"]
    data = parsed.data
    if data is None:
        return []
    if not isinstance(data, dict):
        return [f"(document): expected a mapping, got {describe(data)}"]
    errors: list[str] = []
    kind = data.get("kind")
    if kind is not None and kind != "Kustomization":
        errors.append(f"kind: expected 'Kustomization', got {kind!r}")
    api_version = data.get("apiVersion")
    if api_version is not None and api_version != KUSTOMIZE_API_VERSION:
        errors.append(f"apiVersion: expected {KUSTOMIZE_API_VERSION!r}, got {api_version!r}")
    resources = data.get("resources")
    if resources is None:
        return errors
    if not isinstance(resources, list):
        return [*errors, f"resources: expected a list of paths, got {describe(resources)}"]
    seen: dict[str, int] = {}
    for index, entry in enumerate(resources):
        where = f"resources[{index}]"
        if not isinstance(entry, str):
            errors.append(f"{where}: expected a path, got {describe(entry)}")
            continue
        problem = relative_path_problem(entry)
        if problem:
            errors.append(f"{where}: {entry!r} {problem}")
            continue
        key = normalized(entry)
        if key in seen:
            errors.append(f"{where}: {entry!r} is already listed at resources[{seen[key]}]")
        else:
            seen[key] = index
    return errors
