"""The two manifests the bot writes for one app: the CNPG ``Database`` and the
``InfisicalSecret``, and the in-place edit that delivers an existing app's Secret to one more
namespace. Text out, through ruamel.yaml's emitter only (:mod:`.yaml_text`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from bot.core.limits import DatabaseOptions
from bot.core.manifests.layout import ManifestSettings, checked, require_dns_label, secret_name
from bot.core.manifests.yaml_text import commented, emit, one_line, round_trip_yaml
from bot.core.names import AppName

DATABASE_API_VERSION: Final = "postgresql.cnpg.io/v1"
INFISICAL_API_VERSION: Final = "secrets.infisical.com/v1alpha1"


def render_database(
    app: AppName, *, settings: ManifestSettings, options: DatabaseOptions | None = None
) -> str:
    """The CNPG Database the bot writes; ``retain`` so deleting the CR never drops the data.
    ``options``: ``connectionLimit``, and extensions and schemas to be present
    (each schema owned by the app: else it would belong to the account CNPG connects as)."""
    app = checked(app)
    spec: dict[str, Any] = {
        "cluster": {"name": settings.cluster},
        "name": app,
        "owner": app,
        "ensure": "present",
        "databaseReclaimPolicy": "retain",
    }
    if options is not None:
        if options.connection_limit is not None:
            spec["connectionLimit"] = options.connection_limit
        if options.extensions:
            spec["extensions"] = [{"name": e, "ensure": "present"} for e in options.extensions]
        if options.schemas:
            spec["schemas"] = [
                {"name": s, "owner": app, "ensure": "present"} for s in options.schemas
            ]
    return emit(
        {
            "apiVersion": DATABASE_API_VERSION,
            "kind": "Database",
            "metadata": {"name": app, "namespace": settings.namespace},
            "spec": spec,
        }
    )


@dataclass(frozen=True, kw_only=True)
class DatabaseManifest:
    """What an existing Database manifest declares, as far as ``limits`` and ``update`` care."""

    connection_limit: int | None
    extensions: tuple[str, ...]
    schemas: tuple[str, ...] = ()


def _load_for_edit(text: str, *, kind: str) -> tuple[Any, Any, Any]:
    """(yaml, document, spec) of a manifest, for an edit that keeps the rest (comments, key
    order, document marker, indentation); spec is None when it is not a mapping."""
    yaml = round_trip_yaml()
    yaml.explicit_start = text.lstrip().startswith("---")
    yaml.indent(mapping=2, sequence=4, offset=2)
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise ValueError(f"the {kind} manifest is not YAML: {one_line(exc)}") from exc
    spec = data.get("spec") if isinstance(data, CommentedMap) else None
    return yaml, data, spec if isinstance(spec, CommentedMap) else None


def _load_database(text: str) -> tuple[Any, CommentedMap, Any]:
    """(yaml, document, spec) of a Database manifest, for an edit that keeps the rest."""
    yaml, data, spec = _load_for_edit(text, kind="Database")
    if spec is None or data.get("kind") != "Database":
        raise ValueError("the Database manifest is not a `kind: Database` with a `spec` mapping")
    return yaml, data, spec


def read_database(text: str) -> DatabaseManifest:
    """``connectionLimit`` and the extensions to be present, from a Database manifest.
    Raises ValueError when ``text`` is not one."""
    _, _, spec = _load_database(text)
    limit = spec.get("connectionLimit")
    names: list[str] = []
    for item in spec.get("extensions") or ():
        if isinstance(item, Mapping) and item.get("ensure", "present") == "present":
            name = item.get("name")
            if isinstance(name, str) and name not in names:
                names.append(name)
    schemas = [
        item["name"]
        for item in spec.get("schemas") or ()
        if isinstance(item, Mapping)
        and isinstance(item.get("name"), str)
        and item.get("ensure", "present") == "present"
    ]
    return DatabaseManifest(
        connection_limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
        extensions=tuple(names),
        schemas=tuple(dict.fromkeys(schemas)),
    )


def edit_database(
    text: str, *, connection_limit: int | None = None, extensions: tuple[str, ...] = ()
) -> str:
    """The Database manifest ``text`` with ``connectionLimit`` set (when given) and
    ``extensions`` present, edited in place: comments, key order and every other field kept,
    an extension already there (even ``ensure: absent``, which a human chose) left alone.
    Unchanged text when there is nothing to change. Raises ValueError for a non-Database."""
    yaml, data, spec = _load_database(text)
    changed = False
    if connection_limit is not None and spec.get("connectionLimit") != connection_limit:
        if "connectionLimit" in spec:
            spec["connectionLimit"] = connection_limit
        else:
            after = [k for k in ("ensure", "owner", "name") if k in spec]
            position = list(spec).index(after[0]) + 1 if after else len(spec)
            spec.insert(position, "connectionLimit", connection_limit)
        changed = True
    present = spec.get("extensions")
    if present is not None and not isinstance(present, CommentedSeq):
        raise ValueError("`spec.extensions` of the Database manifest is not a list")
    known = {i.get("name") for i in present or () if isinstance(i, Mapping)}
    missing = [e for e in extensions if e not in known]
    if missing:
        if present is None:
            present = CommentedSeq()
            spec["extensions"] = present
        for name in missing:
            present.append(commented({"name": name, "ensure": "present"}))
        changed = True
    if not changed:
        return text
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


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
    app = checked(app)
    if extra_namespace is not None:
        require_dns_label(extra_namespace, what="--namespace")
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
    return emit(
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
    require_dns_label(namespace, what="--namespace")
    yaml, data, spec = _load_for_edit(text, kind="InfisicalSecret")
    if spec is None:
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
        commented(
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
