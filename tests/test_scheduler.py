"""Scheduled diagnostics and leader election: one replica runs the passes, another
takes over within a lease period when it dies, and the alerts stay single across the switch."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import cast

import psycopg
import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from kubernetes.client import ApiClient, Configuration
from prometheus_client import REGISTRY
from psycopg.conninfo import conninfo_to_dict

from bot.adapters.kubernetes.api import KubeApi
from bot.adapters.kubernetes.lease import KubernetesLease
from bot.adapters.kubernetes.source import KubeSource
from bot.adapters.postgres.alerts import PostgresAlertStore
from bot.adapters.postgres.leader import PostgresLeaderLock
from bot.adapters.postgres.migrations import BotSchema
from bot.config import load_settings
from bot.core.reply import Alert
from bot.pgcluster import free_port
from bot.scheduler import DiagnosticsScheduler, trigger_for
from bot.wiring import core_settings
from bot.wiring.kubernetes import connect_cluster
from handlers.alerts import AlertLifecycle
from handlers.context import Services
from tests.fixtures.bot import BotEnv
from tests.fixtures.kubernetes import (
    FakeKubernetes,
    database,
    infisical_secret,
    pg_cluster,
    scheduled_backup,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Channel:
    name = "chat"

    def __init__(self) -> None:
        self.posts: list[Alert] = []

    def send_alert(self, alert: Alert) -> str | None:
        self.posts.append(alert)
        return alert.thread or f"post-{len(self.posts)}"


def lease(fake: FakeKubernetes, identity: str, clock: Clock) -> KubernetesLease:
    return KubernetesLease(
        KubeApi(ApiClient(Configuration(host=fake.url)), where=fake.url),
        namespace="databases",
        name="pgdb-bot-dev",
        identity=identity,
        duration_seconds=30,
        clock=clock,
    )


def test_trigger_for_a_duration_or_a_cron() -> None:
    assert isinstance(trigger_for("5m"), IntervalTrigger)
    assert trigger_for("90").interval == timedelta(seconds=90)
    cron = trigger_for("*/5 * * * 1-5")
    assert isinstance(cron, CronTrigger)
    assert "*/5" in str(cron)


def test_a_lease_is_held_renewed_and_taken_over_once_expired(fake_kube: FakeKubernetes) -> None:
    clock = Clock()
    a, b = lease(fake_kube, "pod-a", clock), lease(fake_kube, "pod-b", clock)

    assert a.try_lead() and not b.try_lead()
    clock.tick(20)
    assert a.try_lead() and not b.try_lead()  # renewed: still a's
    stored = fake_kube.get("Lease", "pgdb-bot-dev")
    assert stored is not None and stored["spec"]["holderIdentity"] == "pod-a"

    clock.tick(29)  # a died 29 s ago: its lease still runs
    assert not b.try_lead()
    clock.tick(2)
    assert b.try_lead() and b.leading
    assert not a.try_lead() and not a.leading
    taken = fake_kube.get("Lease", "pgdb-bot-dev")
    assert taken is not None
    assert (taken["spec"]["holderIdentity"], taken["spec"]["leaseTransitions"]) == ("pod-b", 1)
    assert [c.method for c in fake_kube.requests() if c.method != "GET"][:1] == ["POST"]
    assert {c.method for c in fake_kube.requests()} <= {"GET", "POST", "PUT"}


def test_a_released_lease_is_taken_at_once(fake_kube: FakeKubernetes) -> None:
    clock = Clock()
    a, b = lease(fake_kube, "pod-a", clock), lease(fake_kube, "pod-b", clock)
    assert a.try_lead()

    a.release()

    assert not a.leading and b.try_lead()


def test_a_leader_that_cannot_reach_the_api_server_leads_until_its_lease_ends(
    fake_kube: FakeKubernetes,
) -> None:
    clock = Clock()
    a = lease(fake_kube, "pod-a", clock)
    assert a.try_lead()
    fake_kube.fail(status=500)

    clock.tick(10)
    assert a.try_lead()  # cannot renew, but nobody can take it before it expires
    clock.tick(25)
    assert not a.try_lead()


def test_the_postgres_lock_moves_when_the_leaders_session_dies(
    state_dsn: str, pg_superuser_dsn: str
) -> None:
    a = PostgresLeaderLock(state_dsn, key="pgdb-bot scheduler test")
    b = PostgresLeaderLock(state_dsn, key="pgdb-bot scheduler test")
    try:
        assert a.try_lead() and a.try_lead()
        assert not b.try_lead()

        with psycopg.connect(pg_superuser_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'pgdb-bot leader' AND datname = %s AND pid IN"
                " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
                (conninfo_to_dict(state_dsn)["dbname"],),  # this test's leaders only
            )
        time.sleep(0.2)

        assert b.try_lead()
        assert not a.try_lead() and not a.leading
        b.release()
        assert a.try_lead()
    finally:
        a.release()
        b.release()


def test_an_unreachable_postgresql_is_not_reported_as_another_leader(
    state_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16: with PostgreSQL down the pass was skipped as "held by another replica"."""
    down = PostgresLeaderLock(
        f"postgresql://nobody@127.0.0.1:{free_port()}/postgres", key="pgdb-bot down test"
    )
    holder = PostgresLeaderLock(state_dsn, key="pgdb-bot down test")
    other = PostgresLeaderLock(state_dsn, key="pgdb-bot down test")
    services = cast(Services, object())  # a skipped pass touches no service
    lifecycle = cast(AlertLifecycle, object())
    caplog.set_level(logging.DEBUG, logger="bot.scheduler")
    try:
        assert not down.try_lead()
        assert down.problem is not None and down.problem.startswith("PostgreSQL unreachable")
        assert holder.try_lead() and holder.problem is None
        assert not other.try_lead() and other.problem is None  # asked: another replica leads
        for leadership in (down, other):
            DiagnosticsScheduler(
                services=services, lifecycle=lifecycle, leadership=leadership, schedule="5m"
            ).run_pass()
    finally:
        holder.release()
        other.release()
    skipped = [r.getMessage() for r in caplog.records if "pass skipped" in r.getMessage()]
    assert len(skipped) == 2
    assert "could not ask" in skipped[0] and "127.0.0.1" in skipped[0]
    assert "held by another replica" in skipped[1]


# --- two schedulers -------------------------------------------------------------------------


def broken_cluster(fake: FakeKubernetes) -> None:
    fake.put(pg_cluster(healthy=False))
    fake.put(scheduled_backup())
    fake.put(database("docspell", applied=False))
    fake.put(infisical_secret("docspell", ready=False))


def scheduler(
    bot_env: BotEnv, fake: FakeKubernetes, identity: str, clock: Clock, chat: Channel
) -> DiagnosticsScheduler:
    settings = load_settings(
        pg_dsn=bot_env.dsn,
        gitops_repo=bot_env.repo,
        secrets_dir=bot_env.secrets_dir,
        kubeconfig=fake.kubeconfig,
        grace="1s",
    )
    source = KubeSource(in_cluster=False, kubeconfig=fake.kubeconfig, origin="test")
    services = dataclasses.replace(
        bot_env.services(),
        settings=core_settings(settings),
        cluster=connect_cluster(source, settings),
    )
    store = PostgresAlertStore(BotSchema(bot_env.dsn))
    return DiagnosticsScheduler(
        services=services,
        lifecycle=AlertLifecycle(store=store, sinks=[chat], repeat=timedelta(hours=24)),
        leadership=lease(fake, identity, clock),
        schedule="5m",
    )


def _metric(name: str, **labels: str) -> float | None:
    """A sample of the process's Prometheus registry, as `/metrics` exposes it."""
    value = REGISTRY.get_sample_value(name, labels)
    return None if value is None else float(value)


def _passes() -> float:
    outcomes = ("ok", "unobserved", "failed")
    return sum(_metric("pgdb_diagnostics_passes_total", outcome=o) or 0.0 for o in outcomes)


def test_one_of_two_schedulers_runs_and_the_other_takes_over_without_resending(
    bot_env: BotEnv, fake_kube: FakeKubernetes
) -> None:
    broken_cluster(fake_kube)
    clock, chat = Clock(), Channel()
    a = scheduler(bot_env, fake_kube, "pod-a", clock, chat)
    b = scheduler(bot_env, fake_kube, "pod-b", clock, chat)

    before = _passes()
    first = a.run_pass()
    assert _metric("pgdb_leader") == 1.0
    assert b.run_pass() is None
    assert _metric("pgdb_leader") == 0.0  # (one process here: the gauge is the last asked)
    assert first is not None
    # what an operator alerts on about the bot itself
    assert _passes() == before + 1
    stamp = _metric("pgdb_last_successful_diagnostics_timestamp_seconds")
    assert stamp is not None and abs(stamp - time.time()) < 60
    assert _metric("pgdb_findings", kind="cluster_degraded", severity="critical") == 1.0
    kinds = sorted(alert.key for alert in chat.posts)
    # one cause, one alert: the Database the degraded cluster cannot apply is named in it
    assert "cluster_degraded:" in kinds and "database_not_applied:docspell" not in kinds
    [degraded] = [alert for alert in chat.posts if alert.key == "cluster_degraded:"]
    assert "database_not_applied x1" in degraded.text
    assert "secret_unsynced:docspell" in kinds
    sent = len(chat.posts)

    clock.tick(31)  # a is gone (no renewal): b takes over within a lease period
    assert b.run_pass() is not None
    assert a.run_pass() is None
    assert len(chat.posts) == sent  # the new leader announces nothing twice
    assert (a.passes, b.passes) == (1, 1)

    fake_kube.put(pg_cluster())
    b.run_pass()
    b.run_pass()
    # the healthy cluster also archives WAL again; the Database it still has not applied is
    # its own alert now
    assert sorted((p.title, p.resolved) for p in chat.posts[sent:]) == [
        ("backup_stale", True),
        ("cluster_degraded", True),
        ("database_not_applied `docspell`", False),
    ]
    assert all(p.thread is not None for p in chat.posts[sent:] if p.resolved)


def test_the_scheduler_runs_passes_on_its_schedule_and_releases_on_stop(
    bot_env: BotEnv, fake_kube: FakeKubernetes
) -> None:
    broken_cluster(fake_kube)
    chat = Channel()
    clock = Clock()
    running = scheduler(bot_env, fake_kube, "pod-a", clock, chat)
    running.schedule = "1s"
    running.renew_seconds = 0.5
    running.start()
    try:
        deadline = time.monotonic() + 20
        while running.passes < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        running.stop()

    assert running.passes >= 2
    assert len({p.key for p in chat.posts}) == len(chat.posts)  # nothing twice
    released = fake_kube.get("Lease", "pgdb-bot-dev")
    assert released is not None and not released["spec"].get("holderIdentity")
