"""The two manifests the bot writes for one app (SPEC §4): the CNPG ``Database`` and the
``InfisicalSecret``, and the in-place edit that delivers an existing app's Secret to one more
namespace. Text out, through ruamel.yaml's emitter only (:mod:`.yaml_text`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, Final

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from bot.core.manifests.layout import ManifestSettings, checked, require_dns_label, secret_name
from bot.core.manifests.yaml_text import commented, emit, one_line, round_trip_yaml
from bot.core.names import AppName

DATABASE_API_VERSION: Final = "postgresql.cnpg.io/v1"
INFISICAL_API_VERSION: Final = "secrets.infisical.com/v1alpha1"


def render_database(app: AppName, *, settings: ManifestSettings) -> str:
    """The CNPG Database of SPEC §4; ``retain`` so deleting the CR never drops the data."""
    app = checked(app)
    return emit(
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
    yaml = round_trip_yaml()
    yaml.explicit_start = text.lstrip().startswith("---")
    yaml.indent(mapping=2, sequence=4, offset=2)
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise ValueError(f"the InfisicalSecret manifest is not YAML: {one_line(exc)}") from exc
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
