"""The pure rules of offboarding: what the removal commit holds and what makes it unsafe."""

from __future__ import annotations

from bot.core.manifests.layout import ManifestSettings
from bot.core.manifests.offboarding import (
    database_patches,
    orphaned_copies,
    reclaim_problem,
    removal,
)
from bot.core.manifests.onboarding import build_manifest_set
from bot.core.manifests.render import render_database
from bot.core.names import AppName

APP = AppName("docspell")
FOLDER = "apps/04-databases/postgresql-shared/base"
BASE = (
    "apiVersion: kustomize.config.k8s.io/v1beta1\n"
    "kind: Kustomization\n"
    "# apps below\n"
    "resources:\n"
    "  - cluster.yaml\n"
)


def settings() -> ManifestSettings:
    return ManifestSettings(manifests_path=FOLDER)


def test_the_rendered_database_is_safe_and_delete_or_broken_yaml_is_not() -> None:
    rendered = render_database(APP, settings=settings())
    assert reclaim_problem(rendered) is None
    assert reclaim_problem(rendered.replace("databaseReclaimPolicy: retain\n", "")) is None
    dropping = rendered.replace("retain", "delete")
    assert reclaim_problem(dropping) == "it says `databaseReclaimPolicy: delete`"
    assert "not valid YAML" in (reclaim_problem("spec: [unclosed") or "")


def test_removal_deletes_both_files_and_unlists_them_keeping_the_rest() -> None:
    files = build_manifest_set(APP, settings=settings(), base_kustomization=BASE).files
    kustomization = files[f"{FOLDER}/kustomization.yaml"]

    changes = removal(
        APP,
        folder=FOLDER,
        files_on_base=frozenset({"databases/docspell.yaml", "credentials/docspell-secret.yaml"}),
        kustomization=kustomization,
    )

    assert changes == {
        f"{FOLDER}/databases/docspell.yaml": None,
        f"{FOLDER}/credentials/docspell-secret.yaml": None,
        f"{FOLDER}/kustomization.yaml": BASE,
    }
    assert removal(APP, folder=FOLDER, files_on_base=frozenset(), kustomization=BASE) == {}


def test_branch_names_with_and_without_environments() -> None:
    from handlers.settings import Layout

    single = Layout()
    assert single.offboard_branch(APP) == "pgdb-offboard/docspell"
    assert single.onboard_branch(APP) == "pgdb/docspell"
    prod = Layout(environment="prod", branch_scope="prod", owns_unscoped=False)
    assert prod.onboard_branch(APP) == "pgdb/prod--docspell"
    assert prod.offboard_branch(APP) == "pgdb-offboard/prod--docspell"
    assert prod.app_of_branch("prod--docspell") == "docspell"
    assert prod.app_of_branch("dev--docspell") is None
    assert prod.app_of_branch("docspell") is None  # the old unscoped branches are dev's
    dev = Layout(environment="dev", branch_scope="dev", owns_unscoped=True)
    assert dev.app_of_branch("docspell") == "docspell"
    assert dev.app_of_branch("dev--docspell") == "docspell"


def test_copies_in_other_namespaces_are_named() -> None:
    files = build_manifest_set(
        APP, settings=settings(), base_kustomization=BASE, extra_namespace="docs"
    ).files
    text = files[f"{FOLDER}/credentials/docspell-secret.yaml"]
    assert orphaned_copies(text, namespace="databases") == [
        ("docs", "docspell-postgresql-credentials")
    ]
    plain = build_manifest_set(APP, settings=settings(), base_kustomization=BASE).files
    assert (
        orphaned_copies(plain[f"{FOLDER}/credentials/docspell-secret.yaml"], namespace="databases")
        == []
    )


PATCHED = BASE + (
    "patches:\n"
    "  - target: {kind: Database, name: paperless}\n"  # any Database, whatever its name
    "    path: reclaim.json\n"
    "  - target: {kind: Cluster}\n"  # another kind: fine
    "    path: cluster.yaml\n"
    "  - path: databases/docspell-extra.yaml\n"  # a file under databases/
    "  - path: smp.yaml\n"  # no target: the file's own kind decides
    "  - path: configmap.yaml\n"
    "  - patch: |\n"
    "      kind: Database\n"
    "      metadata: {name: docspell}\n"
    "  - target: {labelSelector: team=docs}\n"  # no kind nor name: selects everything
    "    path: labels.yaml\n"
    "patchesStrategicMerge:\n"
    "  - missing.yaml\n"
    "patchesJson6902:\n"
    "  - target: {version: v1, kind: 'Data.*', name: other}\n"  # kustomize targets are regexes
    "    path: reclaim.json\n"
    "  - target: {name: docspell}\n"
    "    path: reclaim.json\n"
    "  - target: {kind: Deployment, name: docspell}\n"
    "    path: reclaim.json\n"
)
FILES = {
    "smp.yaml": "kind: Database\nmetadata: {name: docspell}\nspec: {databaseReclaimPolicy: delete}\n",
    "configmap.yaml": "kind: ConfigMap\nmetadata: {name: settings}\n",
}


def test_every_patch_that_may_change_a_database_is_named() -> None:
    assert database_patches(PATCHED, APP, read=FILES.get) == [
        "`patches[0]` (its target is kind `Database`)",
        "`patches[2]` (`databases/docspell-extra.yaml` is under databases/)",
        "`patches[3]` (`smp.yaml`: it patches kind `Database`)",
        "`patches[5]` (it patches kind `Database`)",
        "`patches[6]` (its target has no kind nor name, so it selects the Database too)",
        "`patchesStrategicMerge[0]` (`missing.yaml` cannot be read, so what it patches cannot"
        " be checked)",
        "`patchesJson6902[0]` (its target is kind `Data.*`)",
        "`patchesJson6902[1]` (its target is named `docspell`, like the Database)",
    ]


def test_a_kustomization_without_database_patches_is_safe() -> None:
    files = build_manifest_set(APP, settings=settings(), base_kustomization=BASE).files
    assert database_patches(files[f"{FOLDER}/kustomization.yaml"], APP, read=FILES.get) == []
    other = BASE + "patches:\n  - target: {kind: Cluster}\n    path: cluster.yaml\n"
    assert database_patches(other, APP, read=FILES.get) == []
    assert database_patches("", APP, read=FILES.get) == []
    for unsure in ("patches: [unclosed", "patches: !custom []\n"):
        assert database_patches(unsure, APP, read=FILES.get) == [
            "kustomization.yaml is not valid YAML, so its patches cannot be checked"
        ]
