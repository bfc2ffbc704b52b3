"""`/pgdb rotate` with real adapters: the throwaway scram-sha-256 PostgreSQL (as superuser and as
a CREATEROLE-only account), the fake Infisical and the fake Kubernetes API server on loopback
(the real clients talk to them), and a stand-in Infisical operator that syncs the managed
Secret when the InfisicalSecret's spec changes. A real fault is injected at each step; the
re-run finishes the rotation with the same password."""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from bot.adapters.console_chat import ConsoleConversation
from bot.adapters.infisical_secrets import InfisicalSecretStore
from bot.adapters.kube_source import KubeSource
from bot.adapters.kubernetes import KubernetesCluster
from bot.core.names import AppName
from bot.core.reply import Reply, StepState
from bot.core.secret import Secret
from handlers.context import CommandContext, Requester, Services
from handlers.create import run_create
from handlers.findings import diagnose
from handlers.lifecycle import Lifecycle, lifecycle_of
from handlers.observe import observe
from handlers.rotate import run_rotate
from handlers.status import run_status
from tests.fixtures.bot import BotEnv
from tests.fixtures.infisical import CLIENT_ID, CLIENT_SECRET, FakeInfisical, Fault
from tests.fixtures.kubernetes import (
    NAMESPACE,
    FakeKubernetes,
    database,
    infisical_secret,
    managed_secret,
)
from tests.fixtures.operator import FakeInfisicalOperator, infisical_source
from tests.fixtures.postgres import with_params

APP = AppName("docspell")
PATH = f"/postgresql/{APP}"
SECRET = f"{APP}-postgresql-credentials"


# --- helpers ------------------------------------------------------------------------------


def infisical_store(fake: FakeInfisical) -> InfisicalSecretStore:
    return InfisicalSecretStore(
        url=fake.url,
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        project="vixens",
        env="dev",
    )


def build(
    env: BotEnv,
    *,
    infisical: FakeInfisical | None = None,
    kube: FakeKubernetes | None = None,
    database_dsn: str | None = None,
    **settings: object,
) -> Services:
    services = env.services(database_dsn=database_dsn, **settings)
    if infisical is not None:
        services = dataclasses.replace(services, secrets=infisical_store(infisical))
    if kube is not None:
        assert kube.kubeconfig is not None
        source = KubeSource(in_cluster=False, kubeconfig=kube.kubeconfig, origin="test")
        cluster = KubernetesCluster.connect(source, settings=services.settings)
        services = dataclasses.replace(services, cluster=cluster)
    return services


@dataclass
class Chat:
    """What the command showed (every update), as text."""

    out: io.StringIO = field(default_factory=io.StringIO)

    def context(self, services: Services) -> CommandContext:
        return CommandContext(
            services=services,
            requester=Requester(user_id="olga", platform="test", is_console_owner=True),
            conversation=ConsoleConversation(self.out),
        )


def rotate(services: Services, *, confirmed: bool = True, chat: Chat | None = None) -> Reply:
    chat = chat or Chat()
    return run_rotate(chat.context(services), APP, confirmed=confirmed)


def onboard(env: BotEnv, services: Services, kube: FakeKubernetes | None = None) -> str:
    """``create``, then (with Kubernetes) the objects Argo CD and the operator would have made."""
    created = run_create(Chat().context(services), APP, extra_namespace=None, dry_run=False)
    assert created.ok, [(s.key, s.state, s.detail) for s in created.steps]
    stored = services.secrets.read(APP)
    assert stored is not None and stored.password is not None
    password = stored.password.reveal()
    if kube is not None:
        kube.put(database(APP))
        kube.put(infisical_secret(APP))
        kube.put(managed_secret(APP, password))
    return password


def stored_password(services: Services) -> str | None:
    stored = services.secrets.read(APP)
    return stored.password.reveal() if stored is not None and stored.password else None


def kube_password(kube: FakeKubernetes, namespace: str = NAMESPACE) -> str | None:
    import base64

    secret = kube.get("Secret", SECRET, namespace)
    if secret is None:
        return None
    return base64.b64decode(secret["data"]["password"]).decode()


def deployment(
    name: str, *, namespace: str = NAMESPACE, how: str = "env", secret: str = SECRET
) -> dict[str, object]:
    """A Deployment whose pods read ``secret`` through env, envFrom or a volume (or none)."""
    container: dict[str, object] = {"name": "app", "image": "example/app:1"}
    pod: dict[str, object] = {"containers": [container]}
    if how == "env":
        container["env"] = [
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
            }
        ]
    elif how == "envFrom":
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    elif how == "volume":
        pod["volumes"] = [{"name": "db", "secret": {"secretName": secret}}]
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": name}}, "spec": pod}},
    }


def restarted_at(kube: FakeKubernetes, name: str, namespace: str = NAMESPACE) -> str | None:
    obj = kube.get("Deployment", name, namespace) or kube.get("StatefulSet", name, namespace)
    assert obj is not None
    annotations = obj["spec"]["template"].get("metadata", {}).get("annotations") or {}
    value = annotations.get("kubectl.kubernetes.io/restartedAt")
    return value if isinstance(value, str) else None


def leaks(password: str, *texts: str) -> list[str]:
    return [t[:80] for t in texts if password in t]


@pytest.fixture
def operator_for() -> Iterator[list[FakeInfisicalOperator]]:
    started: list[FakeInfisicalOperator] = []
    yield started
    for operator in started:
        operator.stop()


# --- confirmation, refusals, takeover -------------------------------------------------------


def test_without_yes_nothing_changes_and_a_button_confirms(bot_env: BotEnv) -> None:
    services = build(bot_env)
    old = onboard(bot_env, services)

    plan = rotate(services, confirmed=False)

    assert plan.ok and plan.title == f"Rotate `{APP}`: confirm"
    assert [b.command for b in plan.buttons] == [f"/pgdb rotate {APP} --yes"]
    assert plan.buttons[0].label == "Rotate" and plan.buttons[0].style == "danger"
    assert plan.step("password").state is StepState.PLANNED
    assert plan.step("resync").state is StepState.SKIPPED  # no Kubernetes here
    assert any("Open connections keep working" in line for line in plan.lines)
    assert stored_password(services) == old
    assert [w.kind for w in services.state.workflows()] == ["create"]

    done = rotate(services)

    assert done.ok, [(s.key, s.state, s.detail) for s in done.steps]
    assert done.title == f"Rotated `{APP}`"
    new = stored_password(services)
    assert new is not None and new != old and len(new) >= 32
    assert bot_env.can_login(APP, new)
    assert not bot_env.can_login(APP, old)
    assert "the old password no longer does" in done.step("verify").detail
    [record] = services.state.workflows()
    assert record.kind == "rotate" and lifecycle_of(record) is Lifecycle.ACTIVE


def test_a_missing_role_is_refused_before_anything_changes(bot_env: BotEnv) -> None:
    services = build(bot_env)
    old = onboard(bot_env, services)
    bot_env.sql(f'DROP ROLE "{APP}"')

    refused = rotate(services)

    assert not refused.ok
    assert f"`/pgdb repair {APP} --yes`" in refused.lines[0]
    assert stored_password(services) == old
    assert [w.kind for w in services.state.workflows()] == ["create"]


def test_a_role_with_no_stored_password_is_taken_over(bot_env: BotEnv) -> None:
    services = build(bot_env)
    bot_env.sql(f"CREATE ROLE \"{APP}\" LOGIN PASSWORD 'made-by-hand-long-enough-0123456789'")
    bot = services.bot_role

    first = rotate(services)

    if not first.ok:  # a CREATEROLE account on PostgreSQL 16+: the grant is named
        assert f'GRANT "{APP}" TO "{bot}" WITH ADMIN OPTION;' in first.lines[0]
        assert stored_password(services) is None
        bot_env.sql(f'GRANT "{APP}" TO "{bot}" WITH ADMIN OPTION')
        first = rotate(services)

    assert first.ok, [(s.key, s.state, s.detail) for s in first.steps]
    assert "take it over" in first.step("password").detail
    new = stored_password(services)
    assert new is not None and bot_env.can_login(APP, new)
    assert not bot_env.can_login(APP, "made-by-hand-long-enough-0123456789")
    assert bot_env.stored(APP, "username") == APP and bot_env.stored(APP, "database") == APP


# --- everywhere: Infisical, the Secret, the workloads --------------------------------------


def test_the_whole_rotation_with_infisical_kubernetes_and_rollout(
    bot_env: BotEnv,
    infisical: FakeInfisical,
    fake_kube: FakeKubernetes,
    operator_for: list[FakeInfisicalOperator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = build(bot_env, infisical=infisical, kube=fake_kube, rollout="on")
    old = onboard(bot_env, services, fake_kube)
    # delivered to the app's namespace too (create --namespace docspell)
    spec_ref = {"secretName": SECRET, "secretNamespace": APP, "creationPolicy": "Owner"}
    shared = fake_kube.get("InfisicalSecret", SECRET)
    assert shared is not None
    shared["spec"]["managedKubeSecretReferences"] = [
        shared["spec"].pop("managedSecretReference"),
        spec_ref,
    ]
    fake_kube.put(shared)
    fake_kube.put(deployment("api", namespace=APP, how="env"))
    fake_kube.put(deployment("worker", namespace=APP, how="envFrom"))
    fake_kube.put(deployment("unrelated", namespace=APP, how="env", secret="other-secret"))
    fake_kube.put(
        {**deployment("pooler", how="volume"), "kind": "StatefulSet"}
    )  # in the cluster's namespace
    operator_for.append(
        FakeInfisicalOperator(fake_kube, infisical_source(infisical), delay=0.3).start()
    )
    chat = Chat()
    caplog.set_level(logging.DEBUG)

    done = rotate(services, chat=chat)

    assert done.ok, [(s.key, s.state, s.detail) for s in done.steps]
    new = infisical.value("vixens", "dev", PATH, "password")
    assert new is not None and new != old
    assert infisical.version("vixens", "dev", PATH, "password") == 2  # written once
    assert kube_password(fake_kube) == new and kube_password(fake_kube, APP) == new
    assert "generation 1 → 2" in done.step("resync").detail
    assert done.step("sync-wait").state is StepState.DONE
    assert bot_env.can_login(APP, new) and not bot_env.can_login(APP, old)
    stamp = restarted_at(fake_kube, "api", APP)
    assert stamp is not None
    assert restarted_at(fake_kube, "worker", APP) == stamp
    assert restarted_at(fake_kube, "pooler") == stamp
    assert restarted_at(fake_kube, "unrelated", APP) is None
    assert f"Deployment {APP}/api" in done.step("rollout").detail
    records = bot_env.sql(
        "SELECT kind, status, step, detail FROM pgdb_bot.workflows", in_state_db=True
    )
    assert ("rotate", "done", "done", "") in records
    assert not leaks(new, chat.out.getvalue(), caplog.text, repr(records))


# --- a failure at each step, then a re-run -------------------------------------------------

STEP_FAULTS = ["password", "resync", "sync-wait", "role", "rollout"]


@pytest.mark.parametrize("step", STEP_FAULTS)
def test_a_failure_at_each_step_is_finished_by_a_rerun_with_the_same_password(
    bot_env: BotEnv,
    infisical: FakeInfisical,
    fake_kube: FakeKubernetes,
    operator_for: list[FakeInfisicalOperator],
    caplog: pytest.LogCaptureFixture,
    step: str,
) -> None:
    settings: dict[str, str] = {"rollout": "on", "rotate_sync_timeout": "2s", "grace": "1s"}
    services = build(bot_env, infisical=infisical, kube=fake_kube, **settings)
    old = onboard(bot_env, services, fake_kube)
    fake_kube.put(deployment("api"))
    fake_kube.put(deployment("worker"))
    operator = FakeInfisicalOperator(fake_kube, infisical_source(infisical)).start()
    operator_for.append(operator)
    faulty = services
    if step == "password":  # the secret store answers 503 to the password's write
        infisical.inject(Fault("status", match="PATCH /api/v3/secrets/raw/password", times=99))
    elif step == "resync":  # the API server fails the InfisicalSecret's patch
        fake_kube.fail(status=500, match="infisicalsecrets", method="PATCH")
    elif step == "sync-wait":  # the operator never syncs
        operator.stuck = True
    elif step == "role":  # the server refuses DDL on the bot's connection
        read_only = with_params(bot_env.dsn, options="-c default_transaction_read_only=on")
        faulty = build(
            bot_env, infisical=infisical, kube=fake_kube, database_dsn=read_only, **settings
        )
    else:  # the second workload's restart fails: the first one is restarted already
        fake_kube.fail(status=500, match="deployments/worker", method="PATCH")
    chat = Chat()
    caplog.set_level(logging.DEBUG)

    failed = rotate(faulty, chat=chat)

    assert not failed.ok
    assert failed.step(step).state is StepState.FAILED, failed.step(step)
    assert failed.step(step).detail
    assert any(f"`/pgdb rotate {APP} --yes` again" in line for line in failed.lines)
    [record] = [w for w in services.state.workflows() if w.app == APP]
    assert (record.kind, record.status.value, record.step) == ("rotate", "failed", step)
    assert lifecycle_of(record) is Lifecycle.ROTATION_INCOMPLETE
    after_failure = stored_password(services)
    assert after_failure is not None
    if step == "password":
        assert after_failure == old  # nothing new was stored
    else:
        assert after_failure != old
    if step in ("resync", "sync-wait", "role"):
        # the store has the new password, the role the old one: diagnostics say how to finish
        time.sleep(1.1)  # past PGDB_GRACE
        findings = diagnose(observe(services), services).findings
        drift = next(f for f in findings if f.kind == "password_drift" and f.app == APP)
        assert drift.remedy == f"/pgdb rotate {APP} --yes"
        assert "finishes it with that password" in drift.message
        status = run_status(Chat().context(services), APP)
        assert any("stopped at step" in line and "--yes" in line for line in status.lines)
        assert bot_env.can_login(APP, old)  # the role still has the old one
    if step == "sync-wait":
        assert "PGDB_ROTATE_SYNC_TIMEOUT" in failed.step(step).detail
        assert "same new password" in failed.step(step).detail
    infisical._faults.clear()
    fake_kube.heal()
    operator.stuck = False

    finished = rotate(services, chat=chat)

    assert finished.ok, [(s.key, s.state, s.detail) for s in finished.steps]
    assert finished.title.startswith(f"Rotated `{APP}` (finished the rotation started at")
    new = stored_password(services)
    assert new is not None and new != old
    if step != "password":
        assert new == after_failure  # the same password, never a third one
        assert finished.step("password").state is StepState.EXISTS
    assert infisical.version("vixens", "dev", PATH, "password") == 2  # one write, ever
    assert bot_env.can_login(APP, new) and not bot_env.can_login(APP, old)
    assert kube_password(fake_kube) == new
    api_patches = [c for c in fake_kube.requests("PATCH") if c.path.endswith("/deployments/api")]
    assert len(api_patches) == 1  # never restarted twice for one rotation
    assert restarted_at(fake_kube, "worker") == restarted_at(fake_kube, "api") is not None
    [record] = [w for w in services.state.workflows() if w.app == APP]
    assert (record.kind, record.status.value) == ("rotate", "done")
    assert not [f for f in diagnose(observe(services), services).findings if f.app == APP]
    records = bot_env.sql("SELECT detail FROM pgdb_bot.workflows", in_state_db=True)
    assert not leaks(new, chat.out.getvalue(), caplog.text, repr(records))


# --- clients during a rotation -------------------------------------------------------------


@dataclass
class Client:
    """A thread that talks to PostgreSQL as the app, recording (time, ok) for each attempt."""

    name: str
    events: list[tuple[float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _params(env: BotEnv, password: str) -> dict[str, object]:
    params: dict[str, object] = dict(psycopg.conninfo.conninfo_to_dict(env.superuser_dsn))
    params.update(user=APP, password=password, dbname="postgres", connect_timeout=3)
    return params


def held_connection(env: BotEnv, password: str, stop: threading.Event, client: Client) -> None:
    """One connection opened before the rotation, used every 20 ms until the end."""
    with psycopg.connect(**_params(env, password), autocommit=True) as conn:  # type: ignore[arg-type]
        while not stop.is_set():
            try:
                conn.execute("SELECT 1").fetchone()
                client.events.append((time.monotonic(), True))
            except psycopg.Error as exc:
                client.events.append((time.monotonic(), False))
                client.errors.append(type(exc).__name__)
            stop.wait(0.02)


def reconnect_loop(env: BotEnv, services: Services, stop: threading.Event, client: Client) -> None:
    """A new connection every 50 ms with the password read from the secret store each time."""
    while not stop.is_set():
        password = stored_password(services) or ""
        try:
            with psycopg.connect(**_params(env, password), autocommit=True) as conn:  # type: ignore[arg-type]
                conn.execute("SELECT 1").fetchone()
            client.events.append((time.monotonic(), True))
        except psycopg.OperationalError:
            client.events.append((time.monotonic(), False))
        stop.wait(0.05)


def fixed_password_loop(env: BotEnv, password: str, stop: threading.Event, client: Client) -> None:
    """A pod that read the password at start (env from the Secret) and never restarts."""
    while not stop.is_set():
        try:
            with psycopg.connect(**_params(env, password), autocommit=True) as conn:  # type: ignore[arg-type]
                conn.execute("SELECT 1").fetchone()
            client.events.append((time.monotonic(), True))
        except psycopg.OperationalError:
            client.events.append((time.monotonic(), False))
        stop.wait(0.05)


def failing_span(client: Client) -> tuple[float, float] | None:
    failures = [t for t, ok in client.events if not ok]
    return (failures[0], failures[-1]) if failures else None


def test_open_connections_keep_working_and_reconnecting_clients_recover_within_seconds(
    bot_env: BotEnv,
    infisical: FakeInfisical,
    fake_kube: FakeKubernetes,
    operator_for: list[FakeInfisicalOperator],
) -> None:
    """The window, measured: the operator takes 1 s to sync (a real one takes about as long)."""
    services = build(bot_env, infisical=infisical, kube=fake_kube)
    old = onboard(bot_env, services, fake_kube)
    operator_for.append(
        FakeInfisicalOperator(fake_kube, infisical_source(infisical), delay=1.0).start()
    )
    stop = threading.Event()
    held, store, pod = Client("held"), Client("store"), Client("pod env")
    threads = [
        threading.Thread(target=held_connection, args=(bot_env, old, stop, held)),
        threading.Thread(target=reconnect_loop, args=(bot_env, services, stop, store)),
        threading.Thread(target=fixed_password_loop, args=(bot_env, old, stop, pod)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # every client works before the rotation
    began = time.monotonic()
    try:
        done = rotate(services)
        ended = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)

    assert done.ok, [(s.key, s.state, s.detail) for s in done.steps]
    new = stored_password(services)
    assert new is not None and new != old
    # the held connection never failed, and it kept working through the whole rotation
    assert held.errors == [] and all(ok for _, ok in held.events)
    assert sum(1 for t, _ in held.events if began <= t <= ended) >= 10
    # the store-reading client failed only inside the rotation, and works again right after
    span = failing_span(store)
    assert span is not None  # the window exists: store written, role not altered yet
    assert began <= span[0] and span[1] <= ended + 2.0
    recovered = next(t for t, ok in store.events if ok and t > span[1])
    assert recovered - ended < 3.0
    assert all(ok for t, ok in store.events if t > ended + 2.0)
    # the pod with the old password in its environment fails from ALTER ROLE on
    pod_span = failing_span(pod)
    assert pod_span is not None and pod_span[0] <= ended
    assert not bot_env.can_login(APP, old)
    print(
        f"\nrotation window [{services.bot_role}]: rotation took {ended - began:.2f}s; "
        f"store-reading client failed for {span[1] - span[0]:.2f}s "
        f"(first failure {span[0] - began:.2f}s after the start), recovered "
        f"{recovered - ended:+.2f}s after the end; old-password client failing from "
        f"{pod_span[0] - began:.2f}s (ALTER ROLE) until its pod restarts; held connection: "
        f"{len(held.events)} queries, 0 errors"
    )


def test_create_waits_while_a_rotation_is_unfinished_so_the_rerun_keeps_its_password(
    bot_env: BotEnv,
) -> None:
    services = build(bot_env)
    old = onboard(bot_env, services)
    read_only = with_params(bot_env.dsn, options="-c default_transaction_read_only=on")
    stopped = rotate(build(bot_env, database_dsn=read_only))  # stops at ALTER ROLE
    assert not stopped.ok
    new = stored_password(services)
    assert new is not None and new != old

    created = run_create(Chat().context(services), APP, extra_namespace=None, dry_run=False)

    assert not created.ok
    assert f"`/pgdb rotate {APP} --yes` finishes it" in created.lines[0]
    assert lifecycle_of(services.state.latest_workflow(APP)) is Lifecycle.ROTATION_INCOMPLETE
    finished = rotate(services)
    assert finished.ok, [(s.key, s.state, s.detail) for s in finished.steps]
    assert stored_password(services) == new  # not a third password
    assert bot_env.can_login(APP, new) and not bot_env.can_login(APP, old)
