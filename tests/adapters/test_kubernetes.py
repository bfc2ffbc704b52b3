"""The Kubernetes adapter with the real kubernetes client against the fake API server: how it
chooses its configuration, what it reads, the one write it makes, and how it fails."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from bot.adapters.kubernetes.cluster import KubernetesCluster
from bot.adapters.kubernetes.parse import toggled_resync
from bot.adapters.kubernetes.source import KubeSource, select_source
from bot.adapters.no_cluster import NoCluster
from bot.config import Settings, load_settings
from bot.core.errors import BackendUnavailable, ConfigError
from bot.core.names import AppName
from bot.core.secret import Secret
from bot.wiring.kubernetes import build_cluster, connect_cluster, kube_source
from handlers.findings import diagnose
from handlers.observe import observe
from tests.fakes.services import MemoryWorld, memory_services
from tests.fixtures.kubernetes import (
    CLUSTER,
    NAMESPACE,
    FakeKubernetes,
    application,
    backup,
    database,
    infisical_secret,
    managed_secret,
    pg_cluster,
    scheduled_backup,
    seed_app,
)

PASSWORD = "s3cret-0123456789-abcdefghijklmnopqrstuv"


@pytest.fixture(autouse=True)
def _no_pgdb_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PGDB_") or name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def connect(fake: FakeKubernetes, **settings: Any) -> KubernetesCluster:
    settings.setdefault("kube_timeout", "2s")
    config = load_settings(kubeconfig=fake.kubeconfig, **settings)
    source = kube_source(config)
    assert source is not None
    return connect_cluster(source, config)


# --- choosing the configuration (PGDB_KUBERNETES=auto|on|off) ------------------------------


def test_auto_without_any_configuration_means_not_configured(tmp_path: Path) -> None:
    settings = Settings()

    assert select_source(mode=settings.kubernetes, environ={}, home=tmp_path) is None
    assert (
        isinstance(build_cluster(settings), NoCluster)
        or Path.home().joinpath(".kube", "config").exists()
    )


def test_on_without_any_configuration_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PGDB_KUBERNETES=on but no Kubernetes configuration"):
        select_source(mode="on", environ={}, home=tmp_path)


def test_off_wins_over_everything(fake_kube: FakeKubernetes, tmp_path: Path) -> None:
    settings = Settings(kubernetes="off", kubeconfig=fake_kube.kubeconfig)

    assert (
        select_source(
            mode="off",
            kubeconfig=fake_kube.kubeconfig,
            environ={"KUBECONFIG": str(fake_kube.kubeconfig)},
        )
        is None
    )
    assert isinstance(build_cluster(settings), NoCluster)


def test_the_sources_in_order(fake_kube: FakeKubernetes, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    assert fake_kube.kubeconfig is not None
    (home / ".kube" / "config").write_text(fake_kube.kubeconfig.read_text())
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBECONFIG": "/nowhere:" + str(token)}

    explicit = select_source(
        mode="auto", kubeconfig=fake_kube.kubeconfig, environ=in_cluster, token_file=token
    )
    pod = select_source(mode="auto", environ=in_cluster, token_file=token, home=home)
    env = select_source(mode="auto", environ={"KUBECONFIG": "/nowhere:" + str(token)}, home=home)
    default = select_source(mode="auto", context="fake", environ={}, home=home)

    assert explicit == KubeSource(
        in_cluster=False, kubeconfig=fake_kube.kubeconfig, origin="PGDB_KUBECONFIG"
    )
    assert pod is not None and pod.in_cluster
    assert env is not None and env.kubeconfig == token and env.origin == "KUBECONFIG"
    assert default is not None and default.kubeconfig == home / ".kube" / "config"
    assert default.context == "fake"


def test_a_kubeconfig_that_does_not_exist_or_does_not_load_names_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"PGDB_KUBECONFIG: .* is not a file"):
        kube_source(Settings(kubeconfig=tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(ConfigError, match="PGDB_KUBECONFIG: cannot load"):
        build_cluster(Settings(kubeconfig=broken))


def test_an_unknown_mode_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="PGDB_KUBERNETES: 'maybe' must be auto, on or off"):
        load_settings(kubernetes="maybe")


# --- reading --------------------------------------------------------------------------------


def test_one_pass_reads_every_kind_once_and_parses_the_operators_statuses(
    fake_kube: FakeKubernetes,
) -> None:
    fake_kube.put(pg_cluster(healthy=False))
    seed_app(fake_kube, "docspell", PASSWORD)
    fake_kube.put(database("wiki", applied=False))
    fake_kube.put(infisical_secret("wiki", ready=False))
    fake_kube.put(backup("b1"))
    fake_kube.put(scheduled_backup())
    fake_kube.put(application(sync="OutOfSync", health="Progressing"))
    fake_kube.put(
        {"kind": "Secret", "metadata": {"name": f"{CLUSTER}-superuser"}, "data": {"password": ""}}
    )
    cluster = connect(fake_kube, argocd_app="postgresql-shared")

    snap = cluster.observe()

    assert snap.calls == 7
    paths = [c.path for c in fake_kube.requests()]
    assert paths == [
        f"/apis/postgresql.cnpg.io/v1/namespaces/{NAMESPACE}/clusters/{CLUSTER}",
        f"/apis/postgresql.cnpg.io/v1/namespaces/{NAMESPACE}/databases",
        f"/apis/secrets.infisical.com/v1alpha1/namespaces/{NAMESPACE}/infisicalsecrets",
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
        f"/apis/postgresql.cnpg.io/v1/namespaces/{NAMESPACE}/backups",
        f"/apis/postgresql.cnpg.io/v1/namespaces/{NAMESPACE}/scheduledbackups",
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/postgresql-shared",
    ]
    assert snap.cluster is not None and not snap.cluster.healthy
    assert snap.cluster.phase == "Failing over"
    assert (snap.cluster.ready_instances, snap.cluster.instances) == (2, 3)
    assert snap.cluster.target_primary == f"{CLUSTER}-2"
    assert "app2" in snap.cluster.cannot_reconcile
    wiki = snap.databases["wiki"]
    assert wiki.applied is False and 'role "wiki" does not exist' in wiki.message
    assert wiki.observed_generation is None
    assert snap.databases["docspell"].applied is True
    ready = snap.infisical_secrets["wiki-postgresql-credentials"].ready
    assert ready is not None and not ready.true and ready.since is not None
    docspell = snap.infisical_secrets["docspell-postgresql-credentials"]
    assert docspell.secrets_path == "/postgresql/docspell"
    assert docspell.managed_secrets == ("docspell-postgresql-credentials",)
    assert set(snap.secrets) == {"docspell-postgresql-credentials"}  # CNPG's are not kept
    assert snap.secrets["docspell-postgresql-credentials"].password == Secret(PASSWORD)
    assert snap.last_backup is not None
    assert snap.scheduled_backups[0].schedule == "0 0 0 * * *"
    assert snap.argocd is not None and (snap.argocd.sync, snap.argocd.health) == (
        "OutOfSync",
        "Progressing",
    )
    assert snap.errors == {}


def test_the_reclaim_policy_of_each_database_is_read(fake_kube: FakeKubernetes) -> None:
    fake_kube.put(database("docspell"))
    fake_kube.put(database("wiki", reclaim="delete"))
    fake_kube.put(database("paperless", reclaim=None))  # absent: the CRD's default, retain

    databases = connect(fake_kube).observe().databases

    assert databases["docspell"].reclaim_policy == "retain"
    assert not databases["docspell"].drops_on_delete
    assert databases["wiki"].reclaim_policy == "delete"
    assert databases["wiki"].drops_on_delete
    assert databases["paperless"].reclaim_policy is None
    assert not databases["paperless"].drops_on_delete


def test_a_missing_cluster_or_application_is_none_not_an_error(fake_kube: FakeKubernetes) -> None:
    snap = connect(fake_kube, argocd_app="nowhere").observe()

    assert snap.cluster is None
    assert snap.argocd is None
    assert snap.errors == {}


def test_a_kind_forbidden_or_not_installed_is_named_and_the_others_are_read(
    fake_kube: FakeKubernetes,
) -> None:
    seed_app(fake_kube, "docspell", PASSWORD)
    fake_kube.forbidden.add("secrets")
    fake_kube.not_installed.add("applications")

    snap = connect(fake_kube, argocd_app="postgresql-shared").observe()

    assert set(snap.errors) == {"Secret", "Application"}
    assert "HTTP 403" in snap.errors["Secret"]
    assert "may not list secrets in namespace databases" in snap.errors["Secret"]
    assert "is its operator (CRD) installed" in snap.errors["Application"]
    assert "docspell" in snap.databases


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "refused the bot's credentials"),
        (500, "overloaded or failing: try again"),
        (503, "overloaded or failing: try again"),
    ],
)
def test_errors_become_one_sentence_with_what_to_fix(
    fake_kube: FakeKubernetes, status: int, words: str
) -> None:
    fake_kube.fail(status=status)

    with pytest.raises(BackendUnavailable) as caught:
        connect(fake_kube).observe()

    assert str(caught.value).startswith("Kubernetes: reading Cluster postgresql-shared failed")
    assert words in str(caught.value)
    # raised outside the except block: no client exception (and its body) chained
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_transient_5xx_on_a_read_is_retried_a_bounded_number_of_times(
    fake_kube: FakeKubernetes,
) -> None:
    fake_kube.put(pg_cluster())
    fake_kube.fail(status=503, count=2, match="/clusters/")

    snap = connect(fake_kube).observe()

    assert snap.cluster is not None
    assert len([c for c in fake_kube.requests() if "/clusters/" in c.path]) == 3

    fake_kube.fail(status=503, count=10, match="/clusters/")
    with pytest.raises(BackendUnavailable, match="HTTP 503"):
        connect(fake_kube).observe()


@pytest.mark.parametrize("kind", ["clusters", "databases", "secrets", "scheduledbackups"])
def test_every_call_has_a_timeout(fake_kube: FakeKubernetes, kind: str) -> None:
    fake_kube.fail(hang=30, match=f"/{kind}")

    with pytest.raises(BackendUnavailable, match="did not answer within 1s"):
        connect(fake_kube, kube_timeout="1s").observe()


def test_an_unreachable_api_server_says_where_and_what_to_check(
    fake_kube: FakeKubernetes, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "dead"
    assert fake_kube.kubeconfig is not None
    text = fake_kube.kubeconfig.read_text()
    kubeconfig.write_text(text.replace(fake_kube.url, "http://127.0.0.1:9"))
    config = load_settings(kubeconfig=kubeconfig, kube_timeout="2s")
    cluster = build_cluster(config)

    with pytest.raises(BackendUnavailable) as caught:
        cluster.observe()

    assert "cannot reach the API server" in str(caught.value)
    assert "http://127.0.0.1:9" in str(caught.value)
    assert "PGDB_KUBECONFIG" in str(caught.value)


def test_passwords_never_reach_the_logs(
    fake_kube: FakeKubernetes, caplog: pytest.LogCaptureFixture
) -> None:
    seed_app(fake_kube, "docspell", PASSWORD)
    caplog.set_level(logging.DEBUG)
    cluster = connect(fake_kube)

    snap = cluster.observe()
    cluster.resync_infisical_secret("docspell-postgresql-credentials")

    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(snap)


# --- the one write: a forced Infisical resync -----------------------------------------------


def test_a_resync_is_a_spec_change_the_operator_sees_as_a_new_generation(
    fake_kube: FakeKubernetes,
) -> None:
    fake_kube.put(infisical_secret("docspell", ready=False))
    cluster = connect(fake_kube)
    name = "docspell-postgresql-credentials"

    first = cluster.resync_infisical_secret(name)

    stored = fake_kube.get("InfisicalSecret", name)
    assert stored is not None
    assert stored["spec"]["resyncInterval"] == 61
    assert stored["metadata"]["generation"] == 2
    assert stored["status"]["conditions"]  # the status subresource is untouched
    assert (first.field, first.before, first.after) == ("spec.resyncInterval", "60", "61")
    assert (first.generation_before, first.generation_after) == (1, 2)
    patch = fake_kube.requests("PATCH")[-1]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body["metadata"]["resourceVersion"]
    assert "annotations" not in patch.body["metadata"]

    second = cluster.resync_infisical_secret(name)
    assert (second.before, second.after, second.generation_after) == ("61", "60", 3)

    # Argo CD self-heal puts the manifest's value back: the next resync still changes the spec
    fake_kube.put(infisical_secret("docspell", resync=60))
    third = cluster.resync_infisical_secret(name)
    assert third.after == "61" and third.generation_after == third.generation_before + 1


def test_a_resync_that_races_another_writer_reads_again(fake_kube: FakeKubernetes) -> None:
    fake_kube.put(infisical_secret("docspell"))
    fake_kube.fail(status=409, count=1, method="PATCH")

    result = connect(fake_kube).resync_infisical_secret("docspell-postgresql-credentials")

    assert result.after == "61"
    assert [c.method for c in fake_kube.requests()] == ["GET", "PATCH", "GET", "PATCH"]


def test_a_resync_of_an_absent_infisical_secret_says_it_does_not_exist(
    fake_kube: FakeKubernetes,
) -> None:
    with pytest.raises(BackendUnavailable, match=r"HTTP 404: .*not found — it does not exist"):
        connect(fake_kube).resync_infisical_secret("nobody-postgresql-credentials")


def test_the_toggle_handles_both_spec_forms() -> None:
    assert toggled_resync({"syncConfig": {"resyncInterval": "1m"}}, base=60)[1:] == (
        "1m",
        "61s",
        {"syncConfig": {"resyncInterval": "61s"}},
    )
    assert toggled_resync({"syncConfig": {"resyncInterval": "61s"}}, base=60)[2] == "60s"
    assert toggled_resync({}, base=60)[1:] == (None, 60, {"resyncInterval": 60})
    assert toggled_resync({"resyncInterval": 120}, base=60)[2] == 60


# --- the fake speaks the wire the way kubernetes 37 expects ---------------------------------


def test_the_fake_server_matches_the_clients_wire_details(fake_kube: FakeKubernetes) -> None:
    config = Configuration(host=fake_kube.url)
    api = CustomObjectsApi(ApiClient(config))
    body = database("fresh", applied=None)
    body["apiVersion"] = "postgresql.cnpg.io/v1"
    body["status"] = {"applied": True}

    created: Any = api.create_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", NAMESPACE, "databases", body
    )

    post = fake_kube.requests("POST")[0]
    assert post.content_type is None  # kubernetes 37 sends custom-object creates without it
    assert created["metadata"]["generation"] == 1 and "status" not in created
    listing: Any = api.list_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", NAMESPACE, "databases"
    )
    assert listing["kind"] == "DatabaseList" and listing["apiVersion"] == "postgresql.cnpg.io/v1"
    assert listing["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as duplicate:
        api.create_namespaced_custom_object(
            "postgresql.cnpg.io", "v1", NAMESPACE, "databases", body
        )
    assert duplicate.value.status == 409
    status: Any = api.patch_namespaced_custom_object_status(
        "postgresql.cnpg.io", "v1", NAMESPACE, "databases", "fresh", {"status": {"applied": True}}
    )
    assert status["status"] == {"applied": True} and status["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as stale:
        api.patch_namespaced_custom_object(
            "postgresql.cnpg.io",
            "v1",
            NAMESPACE,
            "databases",
            "fresh",
            {"metadata": {"resourceVersion": "1"}, "spec": {"owner": "x"}},
            _content_type="application/merge-patch+json",
        )
    assert stale.value.status == 409
    with pytest.raises(ApiException) as missing:
        api.get_namespaced_custom_object("postgresql.cnpg.io", "v1", NAMESPACE, "databases", "no")
    assert missing.value.status == 404 and '"kind": "Status"' in str(missing.value.body)
    secret = managed_secret("fresh", PASSWORD)
    assert fake_kube.put(secret)["metadata"]["resourceVersion"]


def test_the_adapter_loads_no_typed_api_or_model_class() -> None:
    """The typed API classes import ~250 model modules (~20 MiB for the process's life): every
    call goes through the client's generic one instead (issue 17's footprint)."""
    code = (
        "import sys, bot.adapters.kubernetes.cluster, bot.adapters.kubernetes.lease\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes.client.')"
        " and m.split('.')[2] in ('models', 'api')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],  # this checkout's bot package
    ).stdout
    assert loaded.strip() == "['kubernetes.client.models']"  # the package only: lazy


# --- guardrails: what the Database CRs and the Cluster say about guardrails ------------------

NOT_AVAILABLE = (
    'while creating extension "vector": ERROR: extension "vector" is not available (SQLSTATE 0A000)'
)


def test_extensions_their_status_the_connection_limit_and_the_storage_are_read(
    fake_kube: FakeKubernetes,
) -> None:
    fake_kube.put(pg_cluster(storage="20Gi"))
    fake_kube.put(
        database("photos", connection_limit=20, extensions={"cube": None, "vector": NOT_AVAILABLE})
    )
    fake_kube.put(database("docspell"))

    snap = connect(fake_kube).observe()

    photos = snap.databases["photos"]
    assert photos.connection_limit == 20
    assert photos.extensions == ("cube", "vector")
    assert [(s.name, s.applied, s.message) for s in photos.extension_status] == [
        ("cube", True, ""),
        ("vector", False, NOT_AVAILABLE),
    ]
    assert snap.databases["docspell"].extensions == ()
    assert snap.databases["docspell"].connection_limit is None
    assert snap.cluster is not None
    assert (snap.cluster.storage_size, snap.cluster.storage_bytes) == ("20Gi", 20 * 1024**3)


def test_an_extension_the_image_lacks_is_extension_not_applied_with_cnpgs_message(
    fake_kube: FakeKubernetes,
) -> None:
    world = MemoryWorld()
    world.secrets.put("photos", PASSWORD)
    world.database.add_role("photos", password=PASSWORD, connection_limit=20)
    world.database.add_database("photos", owner="photos", size_bytes=17 * 1024**3)
    fake_kube.put(pg_cluster(storage="20Gi"))
    seed_app(fake_kube, "photos", PASSWORD, extensions={"cube": None, "vector": NOT_AVAILABLE})
    services = memory_services(world, cluster=connect(fake_kube))

    found = {f.kind: f for f in diagnose(observe(services), services).findings}

    missing = found["extension_not_applied"]
    assert missing.app == AppName("photos") and missing.severity.value == "warning"
    assert "`vector`" in missing.message and NOT_AVAILABLE in missing.message
    assert "`cube`" not in missing.message
    assert "kubectl get database -n databases photos" in missing.remedy
    # 17 GiB of the Cluster's 20Gi: above 80 %, one critical finding for the whole cluster
    storage = found["cluster_storage_low"]
    assert storage.app is None and storage.severity.value == "critical"
    assert "of its 20Gi storage" in storage.message
