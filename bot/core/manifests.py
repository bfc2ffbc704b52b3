"""The GitOps files of one app: render, validate, and edit ``kustomization.yaml`` (SPEC §3.2, §4).

Pure code: text in, text out. YAML is only ever produced by ruamel.yaml's emitter, never by string
templates, so an app name or a setting cannot change the document's structure. Validation runs
against the CRD schemas vendored in ``bot/core/schemas`` (see ``SOURCES.md`` there).

``kustomization.yaml`` is shared by every onboarding, so it is edited in place: ruamel.yaml parses
it and tells where each ``resources`` item sits, and new items are inserted as lines copying the
neighbouring item's indentation and quoting. Everything else in the file stays byte-identical
(other keys, comments, blank lines, other sequences' indentation), which a whole-file re-dump
cannot promise. Shapes that cannot be edited line-wise (flow lists, ``resources: ~``) fall back to
a ruamel.yaml round-trip dump with the file's detected indentation.
"""

from __future__ import annotations

import functools
import io
import json
import posixpath
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources as importlib_resources
from itertools import pairwise
from typing import Any, Final, cast

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from bot.core.names import AppName

__all__ = [
    "CLUSTER_SCHEMA",
    "DATABASE_API_VERSION",
    "DATABASE_SCHEMA",
    "INFISICAL_API_VERSION",
    "INFISICAL_SCHEMA",
    "KUSTOMIZATION_FILE",
    "ManifestSet",
    "ManifestSettings",
    "add_resources",
    "build_manifest_set",
    "database_path",
    "listed_resources",
    "load_schema",
    "on_base",
    "remove_resources",
    "render_database",
    "render_infisical_secret",
    "secret_name",
    "secret_path",
    "validate_database",
    "validate_infisical_secret",
    "validate_kustomization",
]

DATABASE_API_VERSION: Final = "postgresql.cnpg.io/v1"
INFISICAL_API_VERSION: Final = "secrets.infisical.com/v1alpha1"
KUSTOMIZATION_FILE: Final = "kustomization.yaml"
KUSTOMIZE_API_VERSION: Final = "kustomize.config.k8s.io/v1beta1"

DATABASE_SCHEMA: Final = "postgresql.cnpg.io_v1_database.json"
CLUSTER_SCHEMA: Final = "postgresql.cnpg.io_v1_cluster.json"
INFISICAL_SCHEMA: Final = "secrets.infisical.com_v1alpha1_infisicalsecret.json"
_SCHEMA_FILES: Final = frozenset({DATABASE_SCHEMA, CLUSTER_SCHEMA, INFISICAL_SCHEMA})

_DNS1123_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# CEL rules of the Database CRD that a JSON Schema validator skips (SOURCES.md).
_RESERVED_DATABASE_NAMES: Final = frozenset({"postgres", "template0", "template1"})
_CREATION_POLICIES: Final = ("Owner", "Orphan")


# --------------------------------------------------------------------------- settings and paths


@dataclass(frozen=True, kw_only=True)
class ManifestSettings:
    """What the manifests say besides the app name (SPEC §9); defaults are the seed's values."""

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
            _require_dns_label(value, what=label)
        for label, value in (("cluster", self.cluster), ("auth_secret", self.auth_secret)):
            if not _DNS1123_SUBDOMAIN.fullmatch(value) or len(value) > 253:
                raise ValueError(
                    f"{label} {value!r} is not a valid Kubernetes object name "
                    "(lowercase letters, digits, '-' and '.')"
                )
        problem = _relative_path_problem(self.manifests_path)
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
    """Where the Database manifest lives, relative to the manifests folder (SPEC §3.2 step 5)."""
    return f"databases/{_checked(app)}.yaml"


def secret_path(app: AppName) -> str:
    """Where the InfisicalSecret manifest lives, relative to the manifests folder."""
    return f"credentials/{_checked(app)}-secret.yaml"


def secret_name(app: AppName) -> str:
    """Name of both the InfisicalSecret and the Kubernetes Secret it manages (seed runbook)."""
    return f"{_checked(app)}-postgresql-credentials"


def _checked(app: AppName) -> AppName:
    """Names reach paths and YAML only after validation at the edge (SPEC §2)."""
    if not isinstance(app, AppName):
        raise TypeError("app must be an AppName from bot.core.names.parse_app_name, not a str")
    return app


def _require_dns_label(value: str, *, what: str) -> None:
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid Kubernetes namespace: use at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit (e.g. 'my-app')"
        )


# --------------------------------------------------------------------------- rendering


def _rt_yaml() -> YAML:
    """A fresh round-trip YAML instance (instances keep state, so none is shared)."""
    yaml = YAML(typ="rt")
    yaml.width = 4096  # never fold a long value onto a second line
    yaml.preserve_quotes = True
    return yaml


_YAML11: Final = VersionedResolver(version=(1, 1))
_STR_TAG: Final = "tag:yaml.org,2002:str"


def _yaml11_safe(value: str) -> str:
    """Quote strings that a YAML 1.1 reader would not read back as strings.

    ruamel.yaml speaks YAML 1.2, where ``on``/``yes``/``no`` are plain strings; kubectl, kustomize
    and Argo CD read YAML 1.1, where they are booleans. An app called ``on`` must stay ``"on"``.
    """
    if isinstance(value, DoubleQuotedScalarString | SingleQuotedScalarString):
        return value
    if str(_YAML11.resolve(ScalarNode, value, (True, False))) != _STR_TAG:
        return cast(str, DoubleQuotedScalarString(value))
    return str(value)  # plain str: the emitter has no representer for subclasses like AppName


def _commented(data: Mapping[str, Any]) -> CommentedMap:
    out = CommentedMap()
    for key, value in data.items():
        out[key] = _to_node(value)
    return out


def _to_node(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _commented(value)
    if isinstance(value, list):
        return CommentedSeq(_to_node(item) for item in value)
    if isinstance(value, str):
        return _yaml11_safe(value)
    return value


def _emit(document: Mapping[str, Any]) -> str:
    """Dump one manifest the way the seed writes them: ``---`` first, 2-space indents."""
    yaml = _rt_yaml()
    yaml.explicit_start = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(_commented(document), buffer)
    return buffer.getvalue()


def render_database(app: AppName, *, settings: ManifestSettings) -> str:
    """The CNPG Database of SPEC §4; ``retain`` so deleting the CR never drops the data."""
    app = _checked(app)
    return _emit(
        {
            "apiVersion": DATABASE_API_VERSION,
            "kind": "Database",
            "metadata": {"name": app, "namespace": settings.namespace},
            "spec": {
                "cluster": {"name": settings.cluster},
                "name": app,
                "owner": app,
                "ensure": "present",
                "databaseReclaimPolicy": "retain",
            },
        }
    )


def render_infisical_secret(
    app: AppName, *, settings: ManifestSettings, extra_namespace: str | None = None
) -> str:
    """The seed's InfisicalSecret, which syncs ``<prefix>/<app>`` into a Kubernetes Secret.

    Without ``extra_namespace`` this is the seed's singular ``managedSecretReference``. With it,
    the operator's list form ``managedKubeSecretReferences`` (the controller refuses both at
    once) delivers the same Secret to the cluster namespace and to the app's namespace.

    The app-namespace copy uses ``creationPolicy: Orphan``: ``Owner`` makes the operator call
    controller-runtime's ``SetControllerReference``, which refuses an owner in another namespace
    ("cross-namespace owner references are disallowed"), and Kubernetes itself treats such an
    ownerReference as absent and garbage-collects the dependent. The consequence is that deleting
    the InfisicalSecret leaves that copy behind; offboarding must delete it explicitly.
    An ``extra_namespace`` equal to the cluster namespace adds nothing and renders the plain form.
    """
    app = _checked(app)
    if extra_namespace is not None:
        _require_dns_label(extra_namespace, what="--namespace")
        if extra_namespace == settings.namespace:
            extra_namespace = None
    name = secret_name(app)
    prefix = settings.secrets_prefix.rstrip("/")
    spec: dict[str, Any] = {
        "hostAPI": settings.infisical_host_api,
        "resyncInterval": settings.resync_interval,
        "authentication": {
            "universalAuth": {
                "credentialsRef": {
                    "secretName": settings.auth_secret,
                    "secretNamespace": settings.auth_namespace,
                },
                "secretsScope": {
                    "projectSlug": settings.infisical_project,
                    "envSlug": settings.env,
                    "secretsPath": DoubleQuotedScalarString(f"{prefix}/{app}"),
                },
            }
        },
    }
    home = {
        "secretName": name,
        "secretNamespace": settings.namespace,
        "creationPolicy": DoubleQuotedScalarString("Owner"),
    }
    if extra_namespace is None:
        spec["managedSecretReference"] = home
    else:
        spec["managedKubeSecretReferences"] = [
            home,
            {
                "secretName": name,
                "secretNamespace": extra_namespace,
                "creationPolicy": DoubleQuotedScalarString("Orphan"),
            },
        ]
    return _emit(
        {
            "apiVersion": INFISICAL_API_VERSION,
            "kind": "InfisicalSecret",
            "metadata": {"name": name, "namespace": settings.namespace},
            "spec": spec,
        }
    )


def add_secret_namespace(text: str, *, namespace: str, cluster_namespace: str) -> str:
    """The InfisicalSecret manifest ``text`` with its Secret also delivered to ``namespace``,
    edited in place: comments, key order, every other field and the namespaces already there
    are kept (none is ever removed); the singular ``managedSecretReference`` becomes the
    operator's list form with it first. Unchanged when the namespace is already there.
    Raises ValueError when ``text`` is not an InfisicalSecret with a Secret reference."""
    _require_dns_label(namespace, what="--namespace")
    yaml = _rt_yaml()
    yaml.explicit_start = text.lstrip().startswith("---")
    yaml.indent(mapping=2, sequence=4, offset=2)
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise ValueError(f"the InfisicalSecret manifest is not YAML: {_one_line(exc)}") from exc
    spec = data.get("spec") if isinstance(data, CommentedMap) else None
    if not isinstance(spec, CommentedMap):
        raise ValueError("the InfisicalSecret manifest has no `spec` mapping")
    refs = spec.get("managedKubeSecretReferences")
    single = spec.get("managedSecretReference")
    if refs is None:
        if not isinstance(single, CommentedMap):
            raise ValueError("the InfisicalSecret manifest names no managed Secret")
        refs = CommentedSeq([single])
        position = list(spec).index("managedSecretReference")
        del spec["managedSecretReference"]
        spec.insert(position, "managedKubeSecretReferences", refs)
    if not isinstance(refs, CommentedSeq) or not refs:
        raise ValueError("`managedKubeSecretReferences` is not a list of Secret references")
    present = {r.get("secretNamespace") for r in refs if isinstance(r, Mapping)}
    if namespace in present or (namespace == cluster_namespace and single is not None):
        return text
    name = refs[0].get("secretName") if isinstance(refs[0], Mapping) else None
    if not isinstance(name, str):
        raise ValueError("the first managed Secret reference has no `secretName`")
    refs.append(
        _commented(
            {
                "secretName": name,
                "secretNamespace": namespace,
                "creationPolicy": DoubleQuotedScalarString("Orphan"),
            }
        )
    )
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- schemas


def load_schema(filename: str) -> dict[str, Any]:
    """A fresh copy of one vendored CRD schema (``DATABASE_SCHEMA``, ``CLUSTER_SCHEMA`` ...)."""
    if filename not in _SCHEMA_FILES:
        raise ValueError(f"no vendored schema {filename!r}; known: {sorted(_SCHEMA_FILES)}")
    text = importlib_resources.files("bot.core").joinpath("schemas", filename).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
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


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in (
        (bool, "a boolean"),
        (dict, "a mapping"),
        (list, "a list"),
        (str, "a string"),
        (int | float, "a number"),
    ):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _describe(value: Any) -> str:
    """A value as users know it: ``a string 'x'``, ``a list``; containers are not dumped."""
    name = _kind_name(value)
    if value is None or isinstance(value, dict | list):
        return name
    return f"{name} {value!r}"


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
        yield f"{where}: expected {expected}, got {_describe(error.instance)}"
    elif error.validator == "enum":
        allowed = ", ".join(repr(v) for v in expected)
        yield f"{where}: {error.instance!r} is not allowed; use one of {allowed}"
    else:
        yield f"{where}: {error.message}"


def _load_manifest(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        return None, [f"not valid YAML: {_one_line(exc)}"]
    if data is None:
        return None, ["the file is empty"]
    if not isinstance(data, dict):
        return None, [f"(document): expected a mapping, got {_describe(data)}"]
    return data, []


def _one_line(exc: BaseException) -> str:
    """A YAML error as ``<problem> at line L, column C`` rather than ruamel's multi-line dump."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _validate_object(
    text: str, *, api_version: str, kind: str, schema: str, namespace: str | None
) -> tuple[dict[str, Any] | None, list[str]]:
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
        elif len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
            errors.append(f"metadata.name: {name!r} is not a valid Kubernetes object name")
        ns = metadata.get("namespace")
        if not isinstance(ns, str) or not ns:
            errors.append("metadata.namespace: required field is missing")
        elif len(ns) > 63 or not _DNS1123_LABEL.fullmatch(ns):
            errors.append(f"metadata.namespace: {ns!r} is not a valid namespace name")
        elif namespace is not None and ns != namespace:
            errors.append(f"metadata.namespace: expected {namespace!r}, got {ns!r}")
    body = {k: v for k, v in data.items() if k not in ("status", "apiVersion", "kind")}
    for error in _validator(schema).iter_errors(body):
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
    data, errors = _validate_object(
        text,
        api_version=DATABASE_API_VERSION,
        kind="Database",
        schema=DATABASE_SCHEMA,
        namespace=settings.namespace if settings else None,
    )
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
    data, errors = _validate_object(
        text,
        api_version=INFISICAL_API_VERSION,
        kind="InfisicalSecret",
        schema=INFISICAL_SCHEMA,
        namespace=settings.namespace if settings else None,
    )
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


# --------------------------------------------------------------------------- kustomization


class _NeedsRewrite(Exception):
    """The file's shape cannot be edited line-wise; fall back to a round-trip dump."""


@dataclass(frozen=True)
class _Parsed:
    """One parse of a kustomization: plain values for logic, nodes for positions."""

    data: Any  # CommentedMap, or None for an empty document
    root: MappingNode | None
    key: ScalarNode | None  # the ``resources`` key, when present
    value: Node | None  # its value node
    entries: list[str] | None  # None when the key is absent


def _parse_fresh(text: str) -> _Parsed:
    try:
        data = _rt_yaml().load(text)
        root = _rt_yaml().compose(text)
    except YAMLError as exc:
        raise ValueError(f"{KUSTOMIZATION_FILE} is not valid YAML: {_one_line(exc)}") from exc
    if data is None:
        return _Parsed(None, None, None, None, None)
    if not isinstance(data, dict) or not isinstance(root, MappingNode):
        raise ValueError(
            f"{KUSTOMIZATION_FILE} must be a YAML mapping with a `resources` list, "
            f"not {_kind_name(data)}"
        )
    key = value = None
    for key_node, value_node in root.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "resources":
            key, value = key_node, value_node
    if "resources" not in data:
        return _Parsed(data, root, None, None, None)
    raw = data["resources"]
    if raw is None:
        return _Parsed(data, root, key, value, [])
    if not isinstance(raw, list):
        raise ValueError(
            f"`resources` in {KUSTOMIZATION_FILE} must be a list of paths, not {_describe(raw)}"
        )
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            raise ValueError(
                f"`resources[{index}]` in {KUSTOMIZATION_FILE} must be a path, "
                f"not {_describe(item)}"
            )
    return _Parsed(data, root, key, value, [str(item) for item in raw])


# A kustomization is parsed many times per command (plan, insert, check, validate, listing) and
# parsing a large one with ruamel is slow: parses are shared, read-only. `_rewrite`, which
# mutates the parsed document, takes a fresh one.
_parse = functools.lru_cache(maxsize=16)(_parse_fresh)


# ----- fast path: plainly laid out files, edited without a round-trip parse
#
# A round-trip parse keeps every comment and position, which makes it slow: about 1.4 s for a
# kustomization listing 10,000 resources, paid several times per onboarding. Nearly every real
# file is laid out plainly (`resources:` at the left margin, then one `- path` per line), so such
# a file is read by scanning its lines, and the scan is confirmed by a C-accelerated safe load
# (libyaml through ruamel.yaml.clib, same YAML 1.2 resolution): the scanned paths must be exactly
# the loaded ones, and the edited text must load to the intended list with every other key
# unchanged. Whatever the scan does not recognise takes the exact path below, unchanged; both
# produce the same text (tests/core/test_manifests.py compares them on generated files).

# one `- path` line: the dash prefix, a plain or quoted path without escapes, an optional comment
_ITEM_LINE: Final = re.compile(
    r"(?P<prefix> *- +)"
    r"(?P<item>'(?:[^']|'')*'"  # single-quoted
    r"|\"[^\"\\]*\""  # double-quoted, no escapes
    r"|[^-?:,\[\]{}#&*!|>'\"%@`\s](?:[^#\s:]|:(?=\S)|[ ](?=[^ #])|#)*)"  # plain
    r"(?P<tail>[ ]+#.*| *)"
)
_RESOURCES_KEY_LINE: Final = re.compile(r"resources:(?:[ ]+#.*| *)")
_OTHER_TOP_LINE: Final = re.compile(r"[^\s#-]|-[^ ]")  # a top-level key (or `---`) ends the list
# line breaks that str.splitlines honours but YAML does not (or that mark lines differently)
_ODD_BREAKS: Final = re.compile("[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class _Item:
    line: int  # index in the file's lines
    value: str
    style: str | None  # '"', "'" or None (plain)
    prefix: str  # the `  - ` before it


@dataclass(frozen=True)
class _Plain:
    """A kustomization whose ``resources`` is a plain block list, as the line scan found it."""

    key_line: int
    items: tuple[_Item, ...]
    rest: dict[str, Any]  # every other top-level key, as loaded

    @property
    def entries(self) -> list[str]:
        return [item.value for item in self.items]


def _fast_load(text: str) -> Any:
    """A safe load through libyaml when ruamel.yaml.clib is installed (else pure Python)."""
    return YAML(typ="safe").load(text)


def _unquoted(raw: str) -> tuple[str, str | None]:
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'"), "'"
    if raw.startswith('"'):
        return raw[1:-1], '"'
    return raw, None


@functools.lru_cache(maxsize=4)
def _scan(text: str) -> _Plain | None:
    """The plain layout of ``text``, or None when the exact (round-trip) path must handle it."""
    if "\t" in text or _ODD_BREAKS.search(text.replace("\r\n", "\n")):
        return None
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if _RESOURCES_KEY_LINE.fullmatch(line)]
    if len(keys) != 1:
        return None
    items: list[_Item] = []
    for at in range(keys[0] + 1, len(lines)):
        line = lines[at]
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        found = _ITEM_LINE.fullmatch(line)
        if found is None:
            if _OTHER_TOP_LINE.match(line):
                break
            return None  # an indented line that is not an item: a layout the scan does not know
        if items and len(found["prefix"]) - len(found["prefix"].lstrip(" ")) != len(
            items[0].prefix
        ) - len(items[0].prefix.lstrip(" ")):
            return None
        value, style = _unquoted(found["item"])
        items.append(_Item(line=at, value=value, style=style, prefix=found["prefix"]))
    if not items:
        return None  # `resources:` alone, or followed by something else: the exact path decides
    try:
        data = _fast_load(text)
    except Exception:  # any doubt goes to the exact path, which explains errors
        return None
    if not isinstance(data, dict) or data.get("resources") != [item.value for item in items]:
        return None
    rest = {k: v for k, v in data.items() if k != "resources"}
    return _Plain(key_line=keys[0], items=tuple(items), rest=rest)


def _fast_edit(
    text: str, *, inserts: list[_Insert], deletes: list[int], expected: list[str]
) -> str | None:
    """The same edit as the exact line-wise path, on a plainly laid out file; None when the file
    is not plain or the result does not load back as intended."""
    plain = _scan(text)
    if plain is None:
        return None
    lines, eol = _lines(text)
    items = list(plain.items)
    for index in sorted(deletes, reverse=True):
        del lines[items[index].line]
        items = [*items[:index], *(_shifted(item, -1) for item in items[index + 1 :])]
    for index, path in inserts:
        if not items:
            return None  # an emptied list is written anew by the exact path
        at, prefix = _insert_position(plain.key_line, items, index, path)
        scalar = _scalar(path, style=_quote_style_of(items))
        if at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += eol
        lines.insert(at, prefix + scalar + eol)
        new = _Item(line=at, value=path, style=_unquoted(scalar)[1], prefix=prefix)
        items = [*items[:index], new, *(_shifted(item, 1) for item in items[index:])]
    edited = "".join(lines)
    after = _scan(edited)
    if after is None or after.entries != expected or after.rest != plain.rest:
        return None
    if list(after.rest) != list(plain.rest):
        return None
    return edited


def _shifted(item: _Item, by: int) -> _Item:
    return _Item(line=item.line + by, value=item.value, style=item.style, prefix=item.prefix)


def _insert_position(key_line: int, items: list[_Item], index: int, path: str) -> tuple[int, str]:
    """Where `_insert_line` puts a new item, and its dash prefix (the same rules, on lines)."""
    if index >= len(items):
        return items[-1].line + 1, items[-1].prefix
    next_item = items[index]
    if index == 0:
        above, shared_above = key_line + 1, 0
    else:
        above = items[index - 1].line + 1
        shared_above = _common_prefix(path, items[index - 1].value)
    below_comments = shared_above < _common_prefix(path, next_item.value)
    return (next_item.line if below_comments else above), next_item.prefix


def _quote_style_of(items: Sequence[_Item]) -> str | None:
    styles = {item.style for item in items}
    return styles.pop() if len(styles) == 1 else None


def listed_resources(kustomization_text: str) -> list[str]:
    """The ``resources`` entries, in file order (empty when the key is absent or empty)."""
    plain = _scan(kustomization_text)
    if plain is not None:
        return plain.entries
    return list(_parse(kustomization_text).entries or [])


def _normalized(path: str) -> str:
    """Kustomize treats ``./a.yaml`` and ``a.yaml`` as one resource; so must duplicate checks."""
    if "://" in path:
        return path
    return posixpath.normpath(path)


def _relative_path_problem(path: Any) -> str | None:
    if not isinstance(path, str) or not path.strip():
        return "is empty"
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        return "must be relative to the kustomization folder, not absolute"
    if ".." in re.split(r"[\\/]", path):
        return "must not climb out of the kustomization folder with '..'"
    return None


def _checked_paths(paths: Sequence[str]) -> list[str]:
    if isinstance(paths, str):
        raise TypeError("paths must be a list of paths, not a single string")
    unique: dict[str, str] = {}
    for path in paths:
        problem = _relative_path_problem(path)
        if problem:
            raise ValueError(f"resource path {path!r} {problem}")
        unique.setdefault(_normalized(path), path)
    return list(unique.values())


# An edit is a list of operations applied in order to the resources list.
_Insert = tuple[int, str]


def _plan_additions(existing: list[str], new: list[str]) -> list[_Insert]:
    """Insert at the sorted position when the list is sorted, else append (never reorder)."""
    current = list(existing)
    is_sorted = all(a <= b for a, b in pairwise(current))
    plan: list[_Insert] = []
    for path in new:
        index = bisect_left(current, path) if is_sorted else len(current)
        current.insert(index, path)
        plan.append((index, path))
    return plan


def add_resources(kustomization_text: str, paths: list[str]) -> str:
    """Add each path to ``resources`` unless already listed, keeping the rest of the file as is.

    Returns the same text when nothing is missing, so a re-run makes no commit.
    """
    wanted = _checked_paths(paths)
    existing = listed_resources(kustomization_text)
    present = {_normalized(entry) for entry in existing}
    missing = [path for path in wanted if _normalized(path) not in present]
    if not missing:
        return kustomization_text
    plan = _plan_additions(existing, missing)
    expected = list(existing)
    for index, path in plan:
        expected.insert(index, path)
    fast = _fast_edit(kustomization_text, inserts=plan, deletes=[], expected=expected)
    if fast is not None:
        return fast
    try:
        text = kustomization_text
        for index, path in plan:
            text = _insert_line(text, index, path)
        if _same_apart_from_resources(kustomization_text, text, expected):
            return text
    except _NeedsRewrite:
        pass
    return _rewrite(kustomization_text, inserts=plan, deletes=[], expected=expected)


def remove_resources(kustomization_text: str, paths: list[str]) -> str:
    """Remove each listed path from ``resources`` (offboarding); unchanged text if none listed."""
    unwanted = {_normalized(path) for path in _checked_paths(paths)}
    existing = listed_resources(kustomization_text)
    doomed = [i for i, entry in enumerate(existing) if _normalized(entry) in unwanted]
    if not doomed:
        return kustomization_text
    expected = [entry for i, entry in enumerate(existing) if i not in doomed]
    fast = _fast_edit(kustomization_text, inserts=[], deletes=doomed, expected=expected)
    if fast is not None:
        return fast
    try:
        if not expected:
            raise _NeedsRewrite  # an emptied block list must become `resources: []`
        text = kustomization_text
        for index in reversed(doomed):
            text = _delete_line(text, index)
        if _same_apart_from_resources(kustomization_text, text, expected):
            return text
    except _NeedsRewrite:
        pass
    return _rewrite(kustomization_text, inserts=[], deletes=doomed, expected=expected)


# ----- line-wise editing


@dataclass(frozen=True)
class _SeqStyle:
    """How block sequences are indented: the dash's offset and the text after it."""

    offset: int = 2  # the seed's `resources:\n  - a`
    after_dash: int = 1

    @property
    def sequence(self) -> int:
        return self.offset + 1 + self.after_dash


def _lines(text: str) -> tuple[list[str], str]:
    return text.splitlines(keepends=True), "\r\n" if "\r\n" in text else "\n"


def _dash_prefix(lines: list[str], item: Node) -> str:
    """The ``  - `` before an item, copied so new items line up with their neighbours."""
    line = lines[item.start_mark.line]
    prefix: str = line[: item.start_mark.column]
    if not re.fullmatch(r" *- +", prefix):
        raise _NeedsRewrite
    return prefix


def _end_line(node: Node) -> int:
    end = node.end_mark
    if end.column == 0 and end.line > node.start_mark.line:
        return int(end.line) - 1
    return int(end.line)


def _quote_style(items: Sequence[Node]) -> str | None:
    styles = {item.style if isinstance(item, ScalarNode) else None for item in items}
    if len(styles) == 1:
        style = styles.pop()
        return style if style in ('"', "'") else None
    return None


def _scalar(path: str, *, style: str | None) -> str:
    """A path as YAML text, produced by the emitter (quoted only when YAML needs it)."""
    value: str = _yaml11_safe(path)
    if style == '"':
        value = DoubleQuotedScalarString(path)
    elif style == "'":
        value = SingleQuotedScalarString(path)
    buffer = io.StringIO()
    _rt_yaml().dump([value], buffer)
    dumped = buffer.getvalue()
    if not dumped.startswith("- ") or dumped.count("\n") != 1:
        raise _NeedsRewrite
    return dumped[2:-1]


def _common_prefix(a: str, b: str) -> int:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return size


def _detect_style(root: MappingNode | None, lines: list[str]) -> tuple[int, _SeqStyle]:
    """Mapping indent and sequence style used elsewhere in the file (defaults: the seed's)."""
    mapping: int | None = None
    style: _SeqStyle | None = None
    stack: list[Node] = [root] if root is not None else []
    while stack and (mapping is None or style is None):
        node = stack.pop(0)
        if not isinstance(node, MappingNode) or node.flow_style:
            continue
        for key, value in node.value:
            base = key.start_mark.column
            if isinstance(value, MappingNode) and not value.flow_style and value.value:
                if mapping is None and value.start_mark.line > key.start_mark.line:
                    mapping = value.value[0][0].start_mark.column - base
                stack.append(value)
            elif isinstance(value, SequenceNode) and not value.flow_style and value.value:
                first = value.value[0]
                if style is None:
                    try:
                        prefix = _dash_prefix(lines, first)
                    except _NeedsRewrite:
                        prefix = ""
                    if prefix and first.start_mark.line > key.start_mark.line:
                        dash = prefix.index("-")
                        style = _SeqStyle(offset=dash - base, after_dash=len(prefix) - dash - 1)
                stack.extend(item for item in value.value if isinstance(item, MappingNode))
    if style is not None and (style.offset < 0 or style.after_dash < 1):
        style = None
    return (mapping if mapping and mapping > 0 else 2), style or _SeqStyle()


def _insert_line(text: str, index: int, path: str) -> str:
    parsed = _parse(text)
    lines, eol = _lines(text)
    value = parsed.value
    if parsed.key is None or (isinstance(value, ScalarNode) and value.value == ""):
        # No `resources` yet, or a bare `resources:`: write a block list with the file's style.
        _, style = _detect_style(parsed.root, lines)
        if parsed.root is not None and parsed.root.flow_style:
            raise _NeedsRewrite
        item = " " * style.offset + "-" + " " * style.after_dash + _scalar(path, style=None) + eol
        if parsed.key is None:
            column = parsed.root.value[0][0].start_mark.column if parsed.root else 0
            if lines and not lines[-1].endswith(("\n", "\r")):
                lines[-1] += eol
            lines.append(" " * column + "resources:" + eol)
            lines.append(" " * column + item)
        else:
            column = parsed.key.start_mark.column
            at = parsed.key.start_mark.line
            if not lines[at].endswith(("\n", "\r")):
                lines[at] += eol
            lines.insert(at + 1, " " * column + item)
        return "".join(lines)
    if not isinstance(value, SequenceNode) or value.flow_style or not value.value:
        raise _NeedsRewrite
    items = value.value
    if index >= len(items):
        prefix, at = _dash_prefix(lines, items[-1]), _end_line(items[-1]) + 1
    else:
        # Before item `index`: either right under the previous item (above any comment lines
        # that precede the next one) or right above the next item (under those comments).
        # Stay with the neighbour sharing the longer prefix, so a new `databases/...` lands
        # under a `# databases` comment and a new `a.yaml` stays above it.
        next_item = items[index]
        prefix = _dash_prefix(lines, next_item)
        if index == 0:
            above, shared_above = parsed.key.start_mark.line + 1, 0
        else:
            above = _end_line(items[index - 1]) + 1
            shared_above = _common_prefix(path, str(items[index - 1].value))
        below_comments = shared_above < _common_prefix(path, str(next_item.value))
        at = next_item.start_mark.line if below_comments else above
    new_line = prefix + _scalar(path, style=_quote_style(items)) + eol
    if at > len(lines):
        raise _NeedsRewrite
    if at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += eol
    lines.insert(at, new_line)
    return "".join(lines)


def _delete_line(text: str, index: int) -> str:
    parsed = _parse(text)
    value = parsed.value
    if not isinstance(value, SequenceNode) or value.flow_style or index >= len(value.value):
        raise _NeedsRewrite
    item = value.value[index]
    lines, _ = _lines(text)
    _dash_prefix(lines, item)  # only whole `- item` lines are removed
    first, last = item.start_mark.line, _end_line(item)
    del lines[first : last + 1]
    return "".join(lines)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _same_apart_from_resources(before: str, after: str, expected: list[str]) -> bool:
    """Safety net for the line-wise edit: the result parses to exactly what was intended."""
    try:
        old, new = _parse(before), _parse(after)
    except ValueError:
        return False
    if new.entries != expected:
        return False
    old_rest = {k: v for k, v in (old.data or {}).items() if k != "resources"}
    new_rest = {k: v for k, v in (new.data or {}).items() if k != "resources"}
    return bool(list(old_rest) == list(new_rest) and _plain(old_rest) == _plain(new_rest))


def _rewrite(text: str, *, inserts: list[_Insert], deletes: list[int], expected: list[str]) -> str:
    """Round-trip dump for shapes the line-wise edit cannot handle, in the file's indentation."""
    parsed = _parse(text)
    lines, _ = _lines(text)
    mapping, style = _detect_style(parsed.root, lines)
    yaml = _rt_yaml()
    yaml.indent(mapping=mapping, sequence=style.sequence, offset=style.offset)
    yaml.explicit_start = text.lstrip().startswith("---")
    data = parsed.data if parsed.data is not None else CommentedMap()
    seq = data.get("resources")
    if not isinstance(seq, CommentedSeq):
        seq = CommentedSeq()
        data["resources"] = seq
    if not seq:
        seq.fa.set_block_style()
    for index in sorted(deletes, reverse=True):
        del seq[index]
    for index, path in inserts:
        seq.insert(index, _yaml11_safe(path))
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    result = buffer.getvalue()
    if listed_resources(result) != expected:  # pragma: no cover - ruamel bug guard
        raise ValueError(f"could not edit {KUSTOMIZATION_FILE} safely; please edit it by hand")
    return result


def validate_kustomization(text: str) -> list[str]:
    """Problems with a kustomization file (well-formed mapping, unique relative resources)."""
    plain = _scan(text)
    try:
        data = (
            {**plain.rest, "resources": plain.entries}
            if plain is not None
            else YAML(typ="safe", pure=True).load(text)
        )
    except YAMLError as exc:
        return [f"not valid YAML: {_one_line(exc)}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return [f"(document): expected a mapping, got {_describe(data)}"]
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
        return [*errors, f"resources: expected a list of paths, got {_describe(resources)}"]
    seen: dict[str, int] = {}
    for index, entry in enumerate(resources):
        where = f"resources[{index}]"
        if not isinstance(entry, str):
            errors.append(f"{where}: expected a path, got {_describe(entry)}")
            continue
        problem = _relative_path_problem(entry)
        if problem:
            errors.append(f"{where}: {entry!r} {problem}")
            continue
        key = _normalized(entry)
        if key in seen:
            errors.append(f"{where}: {entry!r} is already listed at resources[{seen[key]}]")
        else:
            seen[key] = index
    return errors


# --------------------------------------------------------------------------- one app's change


def _new_kustomization() -> str:
    yaml = _rt_yaml()
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(
        CommentedMap([("apiVersion", KUSTOMIZE_API_VERSION), ("kind", "Kustomization")]), buffer
    )
    return buffer.getvalue()


@dataclass(frozen=True, kw_only=True)
class ManifestSet:
    """The three files one onboarding commits, keyed by repo-relative path (SPEC §3.2 step 5)."""

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
        listed = {_normalized(p) for p in listed_resources(kustomization)}
        errors.extend(
            f"{self.kustomization_path}: resources: {entry!r} is not listed"
            for entry in self.resources
            if _normalized(entry) not in listed
        )
        return errors


def build_manifest_set(
    app: AppName,
    *,
    settings: ManifestSettings,
    base_kustomization: str | None,
    extra_namespace: str | None = None,
) -> ManifestSet:
    """Render both manifests and the kustomization that lists them, from the base branch's.

    ``base_kustomization`` is None when the base has no kustomization yet: one is created.
    Raises ValueError when the base's kustomization cannot be edited (not a mapping, or
    ``resources`` not a list of paths): the message says what to fix by hand.
    """
    app = _checked(app)
    base = base_kustomization if base_kustomization is not None else _new_kustomization()
    folder = settings.manifests_path.strip("/")
    files = {
        posixpath.join(folder, database_path(app)): render_database(app, settings=settings),
        posixpath.join(folder, secret_path(app)): render_infisical_secret(
            app, settings=settings, extra_namespace=extra_namespace
        ),
        posixpath.join(folder, KUSTOMIZATION_FILE): add_resources(
            base, [database_path(app), secret_path(app)]
        ),
    }
    return ManifestSet(app=app, manifests_path=folder, files=files)


def on_base(app: AppName, *, files_on_base: frozenset[str], kustomization: str | None) -> bool:
    """Whether the app is already on the base branch: nothing to commit, no branch, no PR.

    True when both manifests exist (paths relative to the manifests folder) and both are
    listed in ``resources`` (SPEC §3.2 step 5). Raises ValueError for a malformed kustomization.
    """
    if kustomization is None:
        return False
    needed = {database_path(app), secret_path(app)}
    return needed <= listed_set(kustomization) and all(p in files_on_base for p in needed)


@functools.lru_cache(maxsize=8)
def listed_set(kustomization_text: str) -> frozenset[str]:
    """The normalized ``resources`` entries, parsed once per text: status and diagnostics ask
    about every app against the same kustomization."""
    return frozenset(_normalized(path) for path in listed_resources(kustomization_text))
