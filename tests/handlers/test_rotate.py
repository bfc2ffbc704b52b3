"""`/pgdb rotate` with real adapters: the throwaway scram-sha-256 PostgreSQL (as superuser and as
a CREATEROLE-only account), the fake Infisical and the fake Kubernetes API server on loopback
(the real clients talk to them), and a stand-in Infisical operator that syncs the managed
Secret when the InfisicalSecret's spec changes. A real fault is injected at each step; the
re-run finishes the rotation with the same password (after a timeout of the sync wait, the old
password is put back and the re-run rotates with a fresh one)."""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta

import psycopg
import pytest

from bot.adapters.console_chat import ConsoleConversation
from bot.adapters.infisical.store import InfisicalSecretStore
from bot.adapters.kubernetes.source import KubeSource
from bot.core.model import Requester
from bot.core.names import AppName
from bot.core.reply import Reply, StepState
from bot.core.scram import scram_matches
from bot.core.secret import Secret
from bot.wiring.kubernetes import connect_cluster
from handlers.context import CommandContext, Services, utcnow
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
        cluster = connect_cluster(source, env.settings(**settings))
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

STEP_FAULTS = ["password", "resync", "role", "rollout"]  # sync-wait: its own tests below


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
    if step in ("resync", "role"):
        # the store has the new password, the role the old one: diagnostics say how to finish
        time.sleep(1.1)  # past PGDB_GRACE
        findings = diagnose(observe(services), services).findings
        drift = next(f for f in findings if f.kind == "password_drift" and f.app == APP)
        assert drift.remedy == f"/pgdb rotate {APP} --yes"
        assert f"/pgdb rotate {APP} --yes` finishes it" in drift.message
        status = run_status(Chat().context(services), APP)
        assert any("stopped at step" in line and "--yes" in line for line in status.lines)
        assert bot_env.can_login(APP, old)  # the role still has the old one
    infisical._faults.clear()
    fake_kube.heal()

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
    rotation_kinds = {"password_drift", "kube_secret_stale", "secret_missing", "secret_unsynced"}
    findings = diagnose(observe(services), services).findings
    assert not [f for f in findings if f.app == APP and f.kind in rotation_kinds]
    records = bot_env.sql("SELECT detail FROM pgdb_bot.workflows", in_state_db=True)
    assert not leaks(new, chat.out.getvalue(), caplog.text, repr(records))


# --- the review's findings: a drifted password, a skewed clock, a stuck sync -----------------


def fingerprint_of(services: Services) -> str | None:
    record = services.state.latest_workflow(APP)
    assert record is not None and record.kind == "rotate"
    return services.state.password_fingerprint(record.id)


def test_a_rerun_at_the_store_write_never_applies_a_password_that_had_drifted_before(
    bot_env: BotEnv, infisical: FakeInfisical, caplog: pytest.LogCaptureFixture
) -> None:
    """The stored password not opening the role does not prove the rotation wrote it: it had
    drifted already (the `password_drift` remedy is `/pgdb rotate`)."""
    services = build(bot_env, infisical=infisical)
    drifted = onboard(bot_env, services)
    by_hand = "changed-by-hand-long-enough-0123456789"
    bot_env.sql(f"ALTER ROLE \"{APP}\" PASSWORD '{by_hand}'")
    assert not bot_env.can_login(APP, drifted)
    infisical.inject(Fault("status", match="PATCH /api/v3/secrets/raw/password", times=99))
    chat = Chat()
    caplog.set_level(logging.DEBUG)

    failed = rotate(services, chat=chat)

    assert not failed.ok and failed.step("password").state is StepState.FAILED
    assert stored_password(services) == drifted  # the write failed
    fingerprint = fingerprint_of(services)
    assert fingerprint is not None and fingerprint.startswith("SCRAM-SHA-256$4096:")
    assert scram_matches(fingerprint, Secret(drifted)) is False
    infisical._faults.clear()

    plan = rotate(services, confirmed=False)
    assert "would store a new password" in plan.step("password").detail
    finished = rotate(services, chat=chat)

    assert finished.ok, [(s.key, s.state, s.detail) for s in finished.steps]
    assert finished.step("password").state is StepState.DONE
    new = stored_password(services)
    assert new is not None and new != drifted
    assert infisical.version("vixens", "dev", PATH, "password") == 2  # stored once
    assert bot_env.can_login(APP, new)
    assert not bot_env.can_login(APP, drifted) and not bot_env.can_login(APP, by_hand)
    final = fingerprint_of(services)
    assert final is not None and scram_matches(final, Secret(new)) is True
    # the fingerprint is never shown: not in the record's detail, the status or the replies
    records = bot_env.sql("SELECT detail FROM pgdb_bot.workflows", in_state_db=True)
    status = run_status(Chat().context(services), APP)
    shown = "\n".join([chat.out.getvalue(), repr(records), repr(status), caplog.text])
    assert final not in shown and fingerprint not in shown
    assert not leaks(new, shown, final)


def test_a_rerun_after_a_rollout_failure_never_restarts_a_workload_twice_despite_clock_skew(
    bot_env: BotEnv,
    infisical: FakeInfisical,
    fake_kube: FakeKubernetes,
    operator_for: list[FakeInfisicalOperator],
) -> None:
    """The bot's clock is minutes off PostgreSQL's: the stamp is the record's start both times."""
    services = build(bot_env, infisical=infisical, kube=fake_kube, rollout="on")
    onboard(bot_env, services, fake_kube)
    fake_kube.put(deployment("api"))
    fake_kube.put(deployment("worker"))
    operator_for.append(FakeInfisicalOperator(fake_kube, infisical_source(infisical)).start())
    skewed = dataclasses.replace(services, clock=lambda: utcnow() + timedelta(minutes=7))
    fake_kube.fail(status=500, match="deployments/worker", method="PATCH")

    failed = rotate(skewed)

    assert not failed.ok and failed.step("rollout").state is StepState.FAILED
    first = restarted_at(fake_kube, "api")
    assert first is not None and restarted_at(fake_kube, "worker") is None
    fake_kube.heal()

    finished = rotate(skewed)

    assert finished.ok, [(s.key, s.state, s.detail) for s in finished.steps]
    api_patches = [c for c in fake_kube.requests("PATCH") if c.path.endswith("/deployments/api")]
    assert len(api_patches) == 1  # not restarted again
    assert restarted_at(fake_kube, "api") == restarted_at(fake_kube, "worker") == first
    assert f"already restarted Deployment {NAMESPACE}/api" in finished.step("rollout").detail
    record = services.state.latest_workflow(APP)
    assert record is not None
    assert first == record.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_sync_timeout_puts_the_old_password_back_and_the_rerun_rotates_afresh(
    bot_env: BotEnv,
    infisical: FakeInfisical,
    fake_kube: FakeKubernetes,
    operator_for: list[FakeInfisicalOperator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Left in the store, the new password would reach the Secret at the operator's periodic
    resync while the role still has the old one: restarted pods would fail until a re-run."""
    settings: dict[str, str] = {"rollout": "on", "rotate_sync_timeout": "1s", "grace": "1s"}
    services = build(bot_env, infisical=infisical, kube=fake_kube, **settings)
    old = onboard(bot_env, services, fake_kube)
    operator = FakeInfisicalOperator(fake_kube, infisical_source(infisical)).start()
    operator_for.append(operator)
    operator.stuck = True
    chat = Chat()
    caplog.set_level(logging.DEBUG)

    failed = rotate(services, chat=chat)

    assert not failed.ok and failed.step("sync-wait").state is StepState.FAILED
    detail = failed.step("sync-wait").detail
    assert "PGDB_ROTATE_SYNC_TIMEOUT" in detail
    assert "The old password was put back in the secret store and a re-sync requested" in detail
    assert "a re-run generates a fresh one" in detail
    assert any("`/pgdb rotate docspell --yes` again" in line for line in failed.lines)
    assert any("fresh password" in line for line in failed.lines)
    # the store, the Secret and the role agree on the old password again
    assert stored_password(services) == old
    assert infisical.version("vixens", "dev", PATH, "password") == 3  # new, then old again
    withdrawn = fingerprint_of(services)
    assert withdrawn is not None and scram_matches(withdrawn, Secret(old)) is False
    assert bot_env.can_login(APP, old)
    operator._sync(SECRET, 0)  # what the operator's periodic resync would do now
    assert kube_password(fake_kube) == old
    time.sleep(1.1)  # past PGDB_GRACE: nothing drifts
    findings = diagnose(observe(services), services).findings
    assert not [
        f for f in findings if f.app == APP and f.kind in ("password_drift", "kube_secret_stale")
    ]
    status = run_status(Chat().context(services), APP)
    assert any("stopped at step" in line for line in status.lines)

    operator.stuck = False
    plan = rotate(services, confirmed=False)
    assert "would store a new password" in plan.step("password").detail
    finished = rotate(services, chat=chat)

    assert finished.ok, [(s.key, s.state, s.detail) for s in finished.steps]
    assert finished.title.startswith(f"Rotated `{APP}` (finished the rotation started at")
    assert finished.step("password").state is StepState.DONE
    new = stored_password(services)
    assert new is not None and new != old
    assert scram_matches(withdrawn, Secret(new)) is False  # not the withdrawn one
    assert infisical.version("vixens", "dev", PATH, "password") == 4
    assert kube_password(fake_kube) == new
    assert bot_env.can_login(APP, new) and not bot_env.can_login(APP, old)
    records = bot_env.sql("SELECT detail FROM pgdb_bot.workflows", in_state_db=True)
    assert not leaks(new, chat.out.getvalue(), caplog.text, repr(records))
    assert not leaks(old, chat.out.getvalue(), caplog.text, repr(records))


def test_a_sync_timeout_in_a_rerun_puts_back_the_password_the_secret_still_carries(
    bot_env: BotEnv,
    infisical: FakeInfisical,
    fake_kube: FakeKubernetes,
    operator_for: list[FakeInfisicalOperator],
) -> None:
    """A re-run that reused the password an earlier run stored does not know the old one: the
    unsynced Secret still carries it, and it still opens the role."""
    settings: dict[str, str] = {"rotate_sync_timeout": "1s"}
    services = build(bot_env, infisical=infisical, kube=fake_kube, **settings)
    old = onboard(bot_env, services, fake_kube)
    operator = FakeInfisicalOperator(fake_kube, infisical_source(infisical)).start()
    operator_for.append(operator)
    fake_kube.fail(status=500, match="infisicalsecrets", method="PATCH")
    assert not rotate(services).ok  # stopped at the re-sync, the new password stored
    assert stored_password(services) != old
    fake_kube.heal()
    operator.stuck = True

    again = rotate(services)

    assert not again.ok and again.step("sync-wait").state is StepState.FAILED
    assert "The old password was put back" in again.step("sync-wait").detail
    assert stored_password(services) == old and bot_env.can_login(APP, old)
    operator.stuck = False
    finished = rotate(services)
    assert finished.ok, [(s.key, s.state, s.detail) for s in finished.steps]
    new = stored_password(services)
    assert new is not None and new != old and bot_env.can_login(APP, new)


def test_a_sync_timeout_without_an_old_password_says_what_follows(
    bot_env: BotEnv,
    infisical: FakeInfisical,
    fake_kube: FakeKubernetes,
    operator_for: list[FakeInfisicalOperator],
) -> None:
    """A takeover (nothing was stored): nothing to put back; the message says what happens at
    the operator's next resync and that the re-run must happen now, with the same password."""
    services = build(bot_env, infisical=infisical, kube=fake_kube, rotate_sync_timeout="1s")
    hand = "made-by-hand-long-enough-0123456789"
    bot_env.sql(f"CREATE ROLE \"{APP}\" LOGIN PASSWORD '{hand}'")
    bot_env.sql(f'GRANT "{APP}" TO "{services.bot_role}" WITH ADMIN OPTION')
    fake_kube.put(infisical_secret(APP))
    operator = FakeInfisicalOperator(fake_kube, infisical_source(infisical)).start()
    operator_for.append(operator)
    operator.stuck = True

    failed = rotate(services)

    assert not failed.ok and failed.step("sync-wait").state is StepState.FAILED
    detail = failed.step("sync-wait").detail
    assert "at the operator's next periodic resync the Secret gets it too" in detail
    assert "Re-run now: it continues with the same new password" in detail
    assert "kubectl -n databases describe infisicalsecret" in detail
    pending = stored_password(services)
    assert pending is not None and bot_env.can_login(APP, hand)
    operator.stuck = False
    finished = rotate(services)
    assert finished.ok, [(s.key, s.state, s.detail) for s in finished.steps]
    assert stored_password(services) == pending and bot_env.can_login(APP, pending)
    assert kube_password(fake_kube) == pending


# --- clients during a rotation -------------------------------------------------------------


@dataclass
class Client:
    """A thread that talks to PostgreSQL as the app, recording (time, ok) for each attempt."""

    name: str
    events: list[tuple[float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _dsn(env: BotEnv, password: str) -> str:
    """The app's own connection: its role and password, on the server the bot manages."""
    return with_params(
        env.superuser_dsn, user=APP, password=password, dbname="postgres", connect_timeout="3"
    )


def held_connection(env: BotEnv, password: str, stop: threading.Event, client: Client) -> None:
    """One connection opened before the rotation, used every 20 ms until the end."""
    with psycopg.connect(_dsn(env, password), autocommit=True) as conn:
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
            with psycopg.connect(_dsn(env, password), autocommit=True) as conn:
                conn.execute("SELECT 1").fetchone()
            client.events.append((time.monotonic(), True))
        except psycopg.OperationalError:
            client.events.append((time.monotonic(), False))
        stop.wait(0.05)


def fixed_password_loop(env: BotEnv, password: str, stop: threading.Event, client: Client) -> None:
    """A pod that read the password at start (env from the Secret) and never restarts."""
    while not stop.is_set():
        try:
            with psycopg.connect(_dsn(env, password), autocommit=True) as conn:
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
    assert pod_span is not None and pod_span[0] <= ended + 1.0  # its next try after ALTER
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
