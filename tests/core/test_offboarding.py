"""The pure rules of offboarding: what the removal commit holds and what makes it unsafe."""

from __future__ import annotations

from bot.core.manifests import ManifestSettings, build_manifest_set, render_database
from bot.core.names import AppName
from bot.core.offboarding import offboard_branch, orphaned_copies, reclaim_problem, removal

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
    assert offboard_branch(APP) == "pgdb-offboard/docspell"


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
