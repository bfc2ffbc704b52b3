"""The Kubernetes findings and status checks, from objects the real client read off the fake
API server (seeded with the operators' own status strings), for apps whose other layers are
healthy. Each test describes what the cluster holds and what an operator would read."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.console_chat import ConsoleConversation
from bot.adapters.kubernetes.cluster import KubernetesCluster
from bot.adapters.kubernetes.source import KubeSource
from bot.config import Settings
from bot.core.model import (
    Requester,
)
from bot.core.names import AppName
from bot.wiring.kubernetes import connect_cluster
from handlers.context import CommandContext, Services
from handlers.diagnose import exit_code
from handlers.findings import Diagnosis, Finding, Severity, diagnose
from handlers.observe import Observation
from handlers.repair import run_repair
from handlers.status import CheckOutcome, app_checks, run_status
from tests.fakes.faults import FakeClock
from tests.fakes.git_host import MANIFESTS
from tests.fakes.services import MemoryWorld, memory_services, memory_settings
from tests.fixtures.kubernetes import (
    FakeKubernetes,
    ago,
    application,
    backup,
    database,
    infisical_secret,
    managed_secret,
    pg_cluster,
    scheduled_backup,
    seed_app,
)

APP = "docspell"
BOT = "pgdb_bot"


def password(app: str = APP) -> str:
    return f"pw-of-{app}-0123456789abcdefghijklmnop"


# --- the world outside Kubernetes: healthy, in memory ----------------------------------------


def on_base(*apps: str) -> dict[str, str | None]:
    """The apps' manifests on the base branch, listed in the kustomization."""
    files: dict[str, str | None] = {}
    for app in apps:
        files[f"{MANIFESTS}/databases/{app}.yaml"] = f"# Database {app}\n"
        files[f"{MANIFESTS}/credentials/{app}-secret.yaml"] = f"# InfisicalSecret {app}\n"
    resources = "".join(f"  - databases/{a}.yaml\n  - credentials/{a}-secret.yaml\n" for a in apps)
    files[f"{MANIFESTS}/kustomization.yaml"] = "kind: Kustomization\nresources:\n" + resources
    return files


@pytest.fixture(autouse=True)
def _no_pgdb_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PGDB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def cluster_for(fake: FakeKubernetes, settings: Settings) -> KubernetesCluster:
    source = KubeSource(in_cluster=False, kubeconfig=fake.kubeconfig, origin="test")
    return connect_cluster(source, settings)


def services(
    fake: FakeKubernetes,
    *apps: str,
    stored: Mapping[str, str] | None = None,
    merged: tuple[str, ...] | None = None,
    without_database: tuple[str, ...] = (),
    without_role: tuple[str, ...] = (),
    **settings: Any,
) -> Services:
    """``apps`` onboarded everywhere but in Kubernetes, which the fake holds."""
    settings.setdefault("kube_timeout", "2s")
    config = memory_settings(kubeconfig=fake.kubeconfig, **settings)
    passwords = {a: password(a) for a in apps} if stored is None else dict(stored)
    # the fake API server's objects are dated from the real clock
    world = MemoryWorld(clock=FakeClock(datetime.now(UTC)))
    for app, stored_password in passwords.items():
        world.secrets.put(app, stored_password)
    for app in apps:
        if app not in without_role:
            # with the limits create gives a role: no limits_drift note
            world.database.add_role(
                app, password=passwords.get(app, password(app)), connection_limit=20
            )
        if app not in without_database:
            world.database.add_database(app, owner=app)
    world.git.push(on_base(*(apps if merged is None else merged)))
    return memory_services(world, settings=config, cluster=cluster_for(fake, config))


def observe_now(svc: Services) -> Observation:
    from handlers.observe import observe

    return observe(svc)


def run(svc: Services, **kwargs: Any) -> Diagnosis:
    return diagnose(observe_now(svc), svc, **kwargs)


def kinds(diagnosis: Diagnosis) -> list[tuple[str, str | None]]:
    return sorted((f.kind, f.app) for f in diagnosis.findings)


def only(diagnosis: Diagnosis, kind: str, app: str | None = APP) -> Finding:
    matching = [f for f in diagnosis.findings if f.kind == kind and f.app == app]
    assert len(matching) == 1, kinds(diagnosis)
    return matching[0]


@pytest.fixture
def kube(fake_kube: FakeKubernetes) -> FakeKubernetes:
    """A healthy cluster, backed up two hours ago, on schedule."""
    fake_kube.put(pg_cluster())
    fake_kube.put(scheduled_backup(created=ago(days=30)))
    fake_kube.put(backup("daily-1", stopped=ago(hours=2)))
    return fake_kube


# --- all clear ------------------------------------------------------------------------------


def test_a_fully_synced_app_has_no_finding_and_every_check_is_ok(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, password())
    svc = services(kube, APP)

    diagnosis = run(svc)

    assert diagnosis.findings == []
    assert exit_code(diagnosis) == 0
    checks = {c.name: c for c in app_checks(observe_now(svc), svc, AppName(APP), None)}
    for name in ("InfisicalSecret ready", "Kubernetes Secret carries the stored password"):
        assert checks[name].outcome is CheckOutcome.OK, checks[name]
    assert checks["Database CR applied"].outcome is CheckOutcome.OK
    assert checks["Argo CD Application synced and healthy"].outcome is (CheckOutcome.NOT_CONFIGURED)


# --- secret_unsynced ------------------------------------------------------------------------


def test_an_infisical_secret_that_cannot_sync_is_critical_with_the_operators_message(
    kube: FakeKubernetes,
) -> None:
    seed_app(kube, APP, password())
    kube.put(infisical_secret(APP, ready=False, since=ago(hours=1)))

    finding = only(run(services(kube, APP)), "secret_unsynced")

    assert finding.severity is Severity.CRITICAL
    assert "Failed to sync secrets" in finding.message
    assert "status-code=401" in finding.message
    assert "argocd/infisical-universal-auth" in finding.remedy
    assert finding.remedy.endswith(f"/pgdb repair {APP} --yes")


@pytest.mark.parametrize("fresh", ["condition", "resource"])
def test_a_sync_failure_younger_than_the_grace_period_is_not_reported(
    kube: FakeKubernetes, fresh: str
) -> None:
    seed_app(kube, APP, password())
    if fresh == "condition":
        kube.put(infisical_secret(APP, ready=False, since=ago(minutes=2)))
    else:
        kube.put(infisical_secret(APP, ready=False, created=ago(minutes=2), since=ago(minutes=2)))
    svc = services(kube, APP)

    assert "secret_unsynced" not in [f.kind for f in run(svc).findings]
    # repair ignores the grace period
    assert "secret_unsynced" in [f.kind for f in run(svc, respect_grace=False).findings]
    assert "secret_unsynced" in [f.kind for f in run(services(kube, APP, grace="1m")).findings]


def test_an_infisical_secret_without_status_or_missing_is_a_warning(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, password())
    kube.put(infisical_secret(APP, ready=None, created=ago(hours=1)))
    seed_app(kube, "wiki", password("wiki"))
    kube.delete("InfisicalSecret", "wiki-postgresql-credentials")

    diagnosis = run(services(kube, APP, "wiki", argocd_app="postgresql-shared"))

    no_status = only(diagnosis, "secret_unsynced")
    assert no_status.severity is Severity.WARNING
    assert "has no status" in no_status.message
    missing = only(diagnosis, "secret_unsynced", "wiki")
    assert "Argo CD has not applied it" in missing.message
    assert missing.remedy == "argocd app sync postgresql-shared"


def test_nothing_is_expected_in_the_cluster_before_the_manifests_are_merged(
    kube: FakeKubernetes,
) -> None:
    svc = services(kube, APP, merged=())

    diagnosis = run(svc)

    assert [k for k in kinds(diagnosis) if k[1] == APP and k[0] != "manifest_missing"] == []
    checks = {c.name: c for c in app_checks(observe_now(svc), svc, AppName(APP), None)}
    assert checks["Database CR applied"].outcome is CheckOutcome.PENDING
    assert checks["InfisicalSecret ready"].outcome is CheckOutcome.PENDING


# --- kube_secret_missing / kube_secret_stale -----------------------------------------------


def test_a_missing_managed_secret_is_critical_once_the_grace_period_is_over(
    kube: FakeKubernetes,
) -> None:
    seed_app(kube, APP, password())
    kube.delete("Secret", f"{APP}-postgresql-credentials")
    kube.put(database("fresh"))
    kube.put(infisical_secret("fresh", created=ago(minutes=1)))

    diagnosis = run(services(kube, APP, "fresh"))

    finding = only(diagnosis, "kube_secret_missing")
    assert finding.severity is Severity.CRITICAL
    assert finding.remedy == f"/pgdb repair {APP} --yes"
    assert ("kube_secret_missing", "fresh") not in kinds(diagnosis)


def test_a_secret_with_another_password_is_stale(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, "an-older-password-0123456789abcdef")
    seed_app(kube, "wiki", password("wiki"))
    kube.put(managed_secret("wiki", password("wiki"), keys=("username", "database")))

    diagnosis = run(services(kube, APP, "wiki"))

    stale = only(diagnosis, "kube_secret_stale")
    assert stale.severity is Severity.CRITICAL
    assert "another password" in stale.message
    assert "an-older-password" not in stale.message
    assert "no `password` key" in only(diagnosis, "kube_secret_stale", "wiki").message


def test_the_password_comparison_is_unknown_when_the_secret_store_is_not_read(
    kube: FakeKubernetes,
) -> None:
    seed_app(kube, APP, password())
    svc = services(kube, APP, stored={"other": "x" * 32})

    checks = {c.name: c for c in app_checks(observe_now(svc), svc, AppName(APP), None)}

    check = checks["Kubernetes Secret carries the stored password"]
    assert check.outcome is CheckOutcome.NOT_CHECKED  # the credentials check says why
    assert "holds no password" in check.detail

    # a store that answers with no app at all while the app is known elsewhere is not trusted
    svc = services(kube, APP, stored={})
    checks = {c.name: c for c in app_checks(observe_now(svc), svc, AppName(APP), None)}
    assert checks["credentials stored"].outcome is CheckOutcome.UNKNOWN
    assert checks["Kubernetes Secret carries the stored password"].outcome is CheckOutcome.UNKNOWN


# --- database_not_applied / database_missing ------------------------------------------------


@pytest.mark.parametrize("existing", [False, True])
def test_a_database_whose_owner_role_does_not_exist_says_so_and_repair_fixes_it(
    kube: FakeKubernetes, existing: bool
) -> None:
    seed_app(kube, APP, password())
    kube.put(database(APP, applied=False, existing=existing))

    diagnosis = run(services(kube, APP, without_role=(APP,)))

    finding = only(diagnosis, "database_not_applied")
    assert finding.severity is Severity.CRITICAL
    assert f'role "{APP}" does not exist' in finding.message
    assert "SQLSTATE 42704" in finding.message
    assert finding.remedy == f"/pgdb repair {APP} --yes"
    assert ("role_missing", APP) in kinds(diagnosis)

    # the role exists now: CloudNativePG retries every 30 s, nothing for repair to do
    later = only(run(services(kube, APP)), "database_not_applied")
    assert later.severity is Severity.WARNING and "exists now" in later.message
    assert later.remedy == f"kubectl -n databases describe database {APP}"


def test_a_database_cr_without_status_names_the_likely_cause(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, password())
    kube.put(database(APP, applied=None, cluster="another-cluster"))
    kube.put(database("fresh", applied=None, created=ago(minutes=3)))
    kube.put(infisical_secret("fresh", created=ago(minutes=3)))

    diagnosis = run(services(kube, APP, "fresh"))

    finding = only(diagnosis, "database_not_applied")
    assert finding.severity is Severity.WARNING
    assert "another-cluster" in finding.message
    assert finding.remedy == f"kubectl -n databases describe database {APP}"
    assert ("database_not_applied", "fresh") not in kinds(diagnosis)


def test_a_missing_database_cr_or_a_dropped_database_is_database_missing(
    kube: FakeKubernetes,
) -> None:
    seed_app(kube, APP, password())
    kube.delete("Database", APP)
    seed_app(kube, "wiki", password("wiki"))

    diagnosis = run(services(kube, APP, "wiki", without_database=("wiki",)))

    absent = only(diagnosis, "database_missing")
    assert absent.severity is Severity.WARNING
    assert "Argo CD has not applied it" in absent.message
    dropped = only(diagnosis, "database_missing", "wiki")
    assert dropped.severity is Severity.CRITICAL
    assert "connectionLimit" in dropped.remedy


# --- cluster_degraded / backup_stale --------------------------------------------------------


def test_a_cluster_failing_over_is_degraded(fake_kube: FakeKubernetes) -> None:
    fake_kube.put(pg_cluster(healthy=False))
    fake_kube.put(scheduled_backup(created=ago(days=30)))
    fake_kube.put(backup("daily-1", stopped=ago(hours=2)))

    diagnosis = run(services(fake_kube))

    finding = only(diagnosis, "cluster_degraded", None)
    assert finding.severity is Severity.CRITICAL
    assert "Failing over" in finding.message and "2/3 instances ready" in finding.message
    assert finding.remedy == "kubectl -n databases describe cluster postgresql-shared"
    archiving = only(diagnosis, "backup_stale", None)
    assert "<archiver error text>" in archiving.message


def test_a_switchover_younger_than_the_grace_period_is_not_reported(
    fake_kube: FakeKubernetes,
) -> None:
    degraded = pg_cluster(healthy=False)
    for condition in degraded["status"]["conditions"]:
        condition["lastTransitionTime"] = ago(minutes=1)
    fake_kube.put(degraded)

    assert "cluster_degraded" not in [f.kind for f in run(services(fake_kube)).findings]

    fake_kube.set_status(
        "Cluster", "postgresql-shared", {**degraded["status"], "readyInstances": 0}
    )
    assert "cluster_degraded" in [f.kind for f in run(services(fake_kube)).findings]


def test_a_missing_cluster_is_degraded(fake_kube: FakeKubernetes) -> None:
    finding = only(run(services(fake_kube, backup_max_age="off")), "cluster_degraded", None)

    assert "not found in namespace databases" in finding.message


def test_backups_older_than_the_configured_age_are_stale(kube: FakeKubernetes) -> None:
    kube.set_status("Cluster", "postgresql-shared", {**pg_cluster()["status"]})
    kube.put(backup("daily-1", stopped=ago(hours=30)))
    status = pg_cluster()["status"]
    status.pop("lastSuccessfulBackup")
    kube.set_status("Cluster", "postgresql-shared", status)
    kube.put(backup("daily-2", phase="failed"))

    stale = only(run(services(kube)), "backup_stale", None)

    assert stale.severity is Severity.WARNING
    assert "PGDB_BACKUP_MAX_AGE=26h" in stale.message
    assert "connection refused" in stale.message
    assert "backup_stale" not in [f.kind for f in run(services(kube, backup_max_age="2d")).findings]
    assert "backup_stale" not in [
        f.kind for f in run(services(kube, backup_max_age="off")).findings
    ]


def test_a_cluster_without_any_backup_is_only_informed(fake_kube: FakeKubernetes) -> None:
    status = pg_cluster()["status"]
    status.pop("lastSuccessfulBackup")
    fake_kube.put({**pg_cluster(), "status": status})

    diagnosis = run(services(fake_kube))

    assert only(diagnosis, "backup_stale", None).severity is Severity.INFO
    assert exit_code(diagnosis) == 0


# --- system_unreachable ---------------------------------------------------------------------


def test_an_api_server_answering_503_is_system_unreachable(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, password())
    kube.fail(status=503)

    diagnosis = run(services(kube, APP))

    finding = only(diagnosis, "system_unreachable", None)
    assert finding.severity is Severity.CRITICAL
    assert "HTTP 503" in finding.message and "try again" in finding.message
    assert "PGDB_KUBECONFIG" in finding.remedy
    assert exit_code(diagnosis) == 1


def test_a_hanging_api_server_is_cut_by_the_timeout(kube: FakeKubernetes) -> None:
    kube.fail(hang=30)
    started = datetime.now(UTC)

    finding = only(run(services(kube, kube_timeout="1s")), "system_unreachable", None)

    assert (datetime.now(UTC) - started).total_seconds() < 10
    assert "did not answer within 1s" in finding.message


def test_a_forbidden_kind_is_named_and_the_other_kinds_still_count(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, password())
    kube.put(database(APP, applied=False))
    kube.forbidden.add("backups")

    diagnosis = run(services(kube, APP))

    rbac = only(diagnosis, "system_unreachable", None)
    assert rbac.severity is Severity.WARNING
    assert "Backup" in rbac.message and "HTTP 403" in rbac.message
    assert "deploy/base/rbac.yaml" in rbac.message
    assert ("database_not_applied", APP) in kinds(diagnosis)


# --- status ---------------------------------------------------------------------------------


def status_text(svc: Services, app: str | None = APP) -> str:
    ctx = CommandContext(
        services=svc,
        requester=Requester(user_id="alice", platform="test"),
        conversation=ConsoleConversation(io.StringIO()),
    )
    reply = run_status(ctx, AppName(app) if app else None)
    return "\n".join([reply.title, *(f"{k}: {v}" for k, v in reply.fields), *reply.lines])


def test_status_shows_each_kubernetes_layer_with_its_own_words(kube: FakeKubernetes) -> None:
    kube.put(database(APP, applied=False))
    kube.put(infisical_secret(APP, ready=False))
    kube.put(application(sync="OutOfSync", health="Degraded"))
    svc = services(kube, APP, argocd_app="postgresql-shared")

    text = status_text(svc)

    assert "❌ InfisicalSecret ready: ReadyToSyncSecrets False: Failed to sync secrets" in text
    assert "❌ Kubernetes Secret carries the stored password: Secret `docspell-postgresql" in text
    # a warning finding shows as ⚠️ (the role exists now: CloudNativePG retries), a critical one ❌
    assert f'⚠️ Database CR applied: not applied: while creating database "{APP}"' in text
    assert (
        "⚠️ Argo CD Application synced and healthy: Argo CD Application `postgresql-shared`: "
        in text
    )
    assert "[Kubernetes]" in text and "[Argo CD]" in text


def test_the_status_overview_shows_the_cluster(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, password())
    kube.put(application())

    text = status_text(services(kube, APP, argocd_app="postgresql-shared"), None)

    assert (
        "Kubernetes: ✅ Cluster `postgresql-shared`: Cluster in healthy state, 3/3 ready, "
        "primary postgresql-shared-1; last backup 2h ago; Argo CD `postgresql-shared` "
        "Synced/Healthy"
    ) in text
    assert f"✅ {APP}: ok" in text


def test_status_of_an_unreachable_cluster_says_unknown_because(kube: FakeKubernetes) -> None:
    kube.fail(status=500)

    text = status_text(services(kube, APP))

    assert "❔ Database CR applied: unknown because Kubernetes:" in text


# --- the pass stays constant in the number of apps ------------------------------------------


@pytest.mark.parametrize("count", [10, 100, pytest.param(1000, marks=pytest.mark.slow)])
def test_one_pass_makes_the_same_calls_whatever_the_number_of_apps(
    kube: FakeKubernetes, count: int
) -> None:
    apps = [f"app{i:04d}" for i in range(count)]
    for app in apps:
        seed_app(kube, app, password(app))
    svc = services(kube, *apps, argocd_app="postgresql-shared")
    kube.put(application())
    kube.reset_calls()

    diagnosis = run(svc)

    assert diagnosis.findings == []
    requests = kube.requests()
    assert len(requests) == 7, [c.path for c in requests]
    assert {c.method for c in requests} == {"GET"}


# --- repair ---------------------------------------------------------------------------------


def repair(svc: Services, *, confirmed: bool) -> Any:
    ctx = CommandContext(
        services=svc,
        requester=Requester(user_id="alice", platform="test"),
        conversation=ConsoleConversation(io.StringIO()),
    )
    return run_repair(ctx, AppName(APP), confirmed=confirmed)


def test_repair_resyncs_a_stuck_infisical_secret_by_a_spec_change_and_can_repeat(
    kube: FakeKubernetes,
) -> None:
    seed_app(kube, APP, password())
    kube.put(infisical_secret(APP, ready=False))
    kube.delete("Secret", f"{APP}-postgresql-credentials")
    svc = services(kube, APP)
    name = f"{APP}-postgresql-credentials"

    plan = repair(svc, confirmed=False)

    assert [s.label for s in plan.steps] == ["Re-sync the InfisicalSecret (a harmless spec change)"]
    assert kube.requests("PATCH") == []
    assert f"/pgdb repair {APP} --yes" in "\n".join(plan.lines)

    done = repair(svc, confirmed=True)

    step = done.step("resync")
    assert step.state.value == "done", step
    assert "spec.resyncInterval" in step.detail and "from 60 to 61" in step.detail
    assert "generation 1 → 2" in step.detail
    stored = kube.get("InfisicalSecret", name)
    assert stored is not None and stored["metadata"]["generation"] == 2
    assert stored["spec"]["resyncInterval"] == 61

    again = repair(svc, confirmed=True)

    assert "generation 2 → 3" in again.step("resync").detail
    assert len(kube.requests("PATCH")) == 2


def test_repair_leaves_what_it_cannot_fix_to_the_named_command(kube: FakeKubernetes) -> None:
    seed_app(kube, APP, password())
    kube.delete("InfisicalSecret", f"{APP}-postgresql-credentials")
    kube.put(database(APP, applied=False, message="some other CNPG error"))
    svc = services(kube, APP, argocd_app="postgresql-shared")

    reply = repair(svc, confirmed=True)

    text = "\n".join(reply.lines)
    assert "secret_unsynced" in text and "argocd app sync postgresql-shared" in text
    assert "database_not_applied" in text and "kubectl -n databases describe database" in text
    assert kube.requests("PATCH") == []


def test_an_app_known_only_by_its_infisicalsecret_is_discovered(kube: FakeKubernetes) -> None:
    """An app is known by any source: an `InfisicalSecret` named `<app>-postgresql-credentials` makes an app known,
    so what it points at is checked (here: nothing else exists)."""
    kube.put(infisical_secret("lonely", ready=True))
    svc = services(kube, stored={"other": password("other")}, merged=())

    diagnosis = run(svc)

    assert "lonely" in diagnosis.apps
    assert ("role_missing", "lonely") in kinds(diagnosis)
