"""Alerts grouped per (environment, kind) through the real Slack and Mattermost adapters, on
the fakes (which enforce the platforms' size limits) and the alert state in PostgreSQL
(issue 17): the posts each fake received are counted."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.adapters.mattermost.api import MattermostApi
from bot.adapters.mattermost.platform import MattermostPlatform
from bot.adapters.postgres.alerts import PostgresAlertStore
from bot.adapters.postgres.migrations import MIGRATIONS, BotSchema
from bot.core.ports import AlertSink
from bot.http_edge import EdgeAudit
from bot.runner import CommandRunner
from bot.wiring.chat import SlackConfig, command_intake, slack_platform
from handlers.alerts import AlertLifecycle
from handlers.context import Services
from handlers.findings import Finding, Severity
from tests.fakes.services import memory_services
from tests.fixtures.mattermost import BOT_TOKEN, FakeMattermost
from tests.fixtures.slack import FakeSlack, Message

SLACK_OPS = "C0OPS"
MM_OPS = "opschannel000000000000000a"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PASS = timedelta(minutes=5)
REPEAT = timedelta(hours=24)
FAST = {"slack": 0.0, "mattermost": 0.0}  # the counting tests do not wait for the pace
SLACK_MAX_TEXT = 40_000
MATTERMOST_MAX_RUNES = 16_383

KINDS = (
    ("secret_unsynced", Severity.CRITICAL),
    ("role_missing", Severity.CRITICAL),
    ("password_drift", Severity.WARNING),
    ("kube_secret_missing", Severity.CRITICAL),
    ("database_not_applied", Severity.WARNING),
    ("pr_stale", Severity.WARNING),
    ("kube_secret_stale", Severity.WARNING),
    ("manifest_missing", Severity.WARNING),
    ("role_unsafe", Severity.CRITICAL),
    ("secret_missing", Severity.CRITICAL),
    ("database_missing", Severity.CRITICAL),
    ("database_owner_wrong", Severity.CRITICAL),
)


def finding(kind: str, app: str | None, severity: Severity = Severity.CRITICAL) -> Finding:
    return Finding(
        kind=kind,
        app=app,
        severity=severity,
        message=f"{kind} for {app}: the stored secret and the cluster disagree since the last sync",
        remedy=f"/pgdb repair {app} --yes",
    )


@dataclass
class Chat:
    slack: FakeSlack
    mattermost: FakeMattermost
    sinks: list[AlertSink]

    def slack_posts(self) -> list[Message]:
        return sorted(self.slack.channel_messages(SLACK_OPS), key=lambda m: m.ts)

    def mattermost_posts(self) -> list[dict[str, object]]:
        return sorted(self.mattermost.posts_in(MM_OPS), key=lambda p: int(str(p["create_at"])))

    def counts(self) -> tuple[int, int]:
        return len(self.slack_posts()), len(self.mattermost_posts())

    def everything(self) -> str:
        slack = "\n".join(m.content for m in self.slack_posts())
        mattermost = "\n".join(
            str(p["message"]) + str(p.get("props")) for p in self.mattermost_posts()
        )
        return slack + "\n" + mattermost


def offline_services() -> Services:
    """Ports these tests never reach (nothing is dispatched)."""
    return memory_services()


@pytest.fixture
def chat(slack_api: FakeSlack, fake_mattermost: FakeMattermost) -> Iterator[Chat]:
    services = offline_services()
    runner = CommandRunner(workers=1)
    slack = slack_platform(
        SlackConfig(
            bot_token="xoxb-t",
            signing_secret="secret",
            app_token=None,
            api_url=slack_api.api_url,
            ops_channel=SLACK_OPS,
        ),
        services=services,
        runner=runner,
    )
    api = MattermostApi(base_url=fake_mattermost.url, bot_token=BOT_TOKEN, timeout=5.0)
    mattermost = MattermostPlatform(
        api=api,
        intake=command_intake(services),
        runner=runner,
        edge_audit=EdgeAudit(services.state),
        command_token="cmdtoken000000000000000001",
        ops_channel=MM_OPS,
        buttons=None,
    )
    yield Chat(slack=slack_api, mattermost=fake_mattermost, sinks=[slack, mattermost])
    api.close()
    runner.shutdown(deadline_seconds=5)


def lifecycle(
    store: PostgresAlertStore, chat: Chat, *, intervals: dict[str, float] | None = None
) -> AlertLifecycle:
    return AlertLifecycle(
        store=store,
        sinks=chat.sinks,
        repeat=REPEAT,
        intervals=FAST if intervals is None else intervals,
    )


def assert_within_limits(chat: Chat) -> None:
    for m in chat.slack_posts():
        assert len(m.blocks) <= 50 and len(m.text) <= SLACK_MAX_TEXT
        assert sum(len(str(b)) for b in m.blocks) <= SLACK_MAX_TEXT
    for p in chat.mattermost_posts():
        assert len(str(p["message"])) <= MATTERMOST_MAX_RUNES


def test_500_findings_of_one_kind_are_one_message_with_details_in_its_thread(
    state_dsn: str, chat: Chat
) -> None:
    store = PostgresAlertStore(BotSchema(state_dsn))
    apps = [f"app{i:04d}" for i in range(500)]
    findings = [finding("secret_unsynced", app) for app in apps]

    report = lifecycle(store, chat).process(findings, at=T0)

    slack_count, mattermost_count = chat.counts()
    assert slack_count <= 5 and mattermost_count <= 5
    assert (slack_count, mattermost_count) == (2, 2)  # the message and its details
    top, details = chat.slack_posts()
    assert top.thread_ts is None and details.thread_ts == top.ts
    assert "secret_unsynced: 500 new findings" in top.text
    assert "`app0000`" in top.content and "470 more: `/pgdb diagnose`" in top.content
    assert "/pgdb repair app0000 --yes" in details.content
    assert "more: /pgdb diagnose" in details.content  # what the thread cannot hold, counted
    mm_top, mm_details = chat.mattermost_posts()
    assert mm_details["root_id"] == mm_top["id"]
    assert_within_limits(chat)
    assert len(report.sent) == 2
    alerts = store.open_alerts()
    assert len(alerts) == 500 and all(a.last_sent == T0 for a in alerts)
    assert {a.threads["slack"] for a in alerts} == {top.ts}

    # the next passes: nothing new to say
    lifecycle(store, chat).process(findings, at=T0 + PASS)
    assert chat.counts() == (2, 2)

    # fixed at once (one systemic cause): one "resolved", in the thread that announced them
    for n in range(2, 4):
        lifecycle(store, chat).process([], at=T0 + n * PASS)
    assert chat.counts() == (3, 3)
    resolved = chat.slack_posts()[-1]
    assert resolved.thread_ts == top.ts and resolved.text.startswith("✅ Resolved")
    assert chat.mattermost_posts()[-1]["root_id"] == mm_top["id"]
    assert store.open_alerts() == []


def test_40_findings_of_many_kinds_are_at_most_10_messages_and_none_is_lost(
    state_dsn: str, chat: Chat
) -> None:
    store = PostgresAlertStore(BotSchema(state_dsn))
    findings = [
        finding(kind, f"app{i:02d}", severity)
        for i in range(40)
        for kind, severity in [KINDS[i % len(KINDS)]]
    ]

    lifecycle(store, chat).process(findings, at=T0)

    slack_count, mattermost_count = chat.counts()
    assert slack_count <= 10 and mattermost_count <= 10
    everything = chat.everything()
    summary = chat.slack_posts()[-1]
    assert "more finding(s): /pgdb diagnose" in summary.text
    for f in findings:  # every finding named: in its kind's message or in the summary
        assert f"`{f.app}`" in everything, f.app
    assert all(a.last_sent == T0 for a in store.open_alerts())
    assert_within_limits(chat)

    # nothing re-announced on the next pass; a reminder per kind after PGDB_ALERT_REPEAT,
    # still within the cap
    lifecycle(store, chat).process(findings, at=T0 + PASS)
    assert chat.counts() == (slack_count, mattermost_count)
    lifecycle(store, chat).process(findings, at=T0 + REPEAT + PASS)
    reminders = chat.slack_posts()[slack_count:]
    assert 0 < len(reminders) <= 10
    assert all("Still open" in m.text or "Still open since" in m.content for m in reminders)


def test_new_findings_of_a_kind_already_announced_are_one_more_message(
    state_dsn: str, chat: Chat
) -> None:
    store = PostgresAlertStore(BotSchema(state_dsn))
    first = [finding("role_missing", f"app{i}") for i in range(5)]
    lifecycle(store, chat).process(first, at=T0)
    later = first + [finding("role_missing", f"late{i}") for i in range(3)]

    lifecycle(store, chat).process(later, at=T0 + PASS)

    posts = chat.slack_posts()
    assert len(posts) == 4  # two messages, each with its details
    assert "role_missing: 3 new findings" in posts[2].text
    assert "`late0`" in posts[2].content and "`app0`" not in posts[2].content


def test_a_systemic_cause_is_one_alert(state_dsn: str, chat: Chat) -> None:
    store = PostgresAlertStore(BotSchema(state_dsn))
    cause = Finding(
        kind="cluster_degraded",
        app=None,
        severity=Severity.CRITICAL,
        message="Cluster `postgresql-shared`: no primary; 0/1 instances ready",
        remedy="kubectl -n databases describe cluster postgresql-shared",
    )
    consequences = [finding("database_not_applied", f"app{i}") for i in range(200)]

    lifecycle(store, chat).process([cause, *consequences], at=T0)

    [message] = chat.slack_posts()
    assert "cluster_degraded" in message.text
    assert "database_not_applied x200" in message.content
    assert chat.counts() == (1, 1)


def old_schema_with_sent_alerts(dsn: str, *, mattermost_threads: list[str]) -> None:
    """The alert state as the previous release left it: migrations 1-5 and one message per
    finding already sent (each its own thread), no environment column."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA pgdb_bot")
        conn.execute(
            "CREATE TABLE pgdb_bot.schema_migrations (version int PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, statements in MIGRATIONS:
            if version > 5:
                continue
            conn.execute(statements.format(schema="pgdb_bot"))
            conn.execute("INSERT INTO pgdb_bot.schema_migrations VALUES (%s)", (version,))
        for i, mattermost_thread in enumerate(mattermost_threads):
            conn.execute(
                "INSERT INTO pgdb_bot.alert_state (kind, app, fingerprint, severity, message,"
                " first_seen, last_seen, last_sent, threads) VALUES ('secret_unsynced', %s, %s,"
                " 'critical', 'm', %s, %s, %s, %s::jsonb)",
                (
                    f"app{i}",
                    f"secret_unsynced:app{i}",
                    T0,
                    T0,
                    T0,
                    f'{{"slack": "1700000000.{i:06d}", "mattermost": "{mattermost_thread}"}}',
                ),
            )


def test_an_upgrade_never_announces_again_what_was_already_sent(state_dsn: str, chat: Chat) -> None:
    announced = [
        chat.mattermost.user_post(MM_OPS, f"secret_unsynced `app{i}`", user_id="botuserid")
        for i in range(30)
    ]
    old_schema_with_sent_alerts(state_dsn, mattermost_threads=announced)
    store = PostgresAlertStore(BotSchema(state_dsn))
    findings = [finding("secret_unsynced", f"app{i}") for i in range(30)]

    lifecycle(store, chat).process(findings, at=T0 + PASS)
    lifecycle(store, chat).process(findings, at=T0 + 2 * PASS)

    assert chat.counts() == (0, 30)  # the 30 Mattermost posts are the old announcements
    assert len(store.open_alerts()) == 30
    assert all(a.env is None for a in store.open_alerts())  # PGDB_ENV's, as before

    # gone: each "resolved" goes to the thread of the message that announced it
    for n in range(3, 5):
        lifecycle(store, chat).process(findings[10:], at=T0 + n * PASS)
    posts = chat.slack_posts()
    assert len(posts) == 10  # ten threads, ten messages (within the cap)
    assert sorted(str(m.thread_ts) for m in posts) == [f"1700000000.{i:06d}" for i in range(10)]
    replies = [p for p in chat.mattermost_posts() if p["root_id"]]
    assert sorted(str(p["root_id"]) for p in replies) == sorted(announced[:10])


def test_posts_are_paced_and_a_stop_leaves_the_rest_for_the_next_leader(
    state_dsn: str, chat: Chat
) -> None:
    store = PostgresAlertStore(BotSchema(state_dsn))
    findings = [finding(kind, f"{kind.replace('_', '-')}-app", sev) for kind, sev in KINDS[:6]]
    paced = lifecycle(store, chat, intervals={"slack": 1.0, "mattermost": 0.0})
    done = threading.Event()

    def run() -> None:
        paced.process(findings, at=T0)
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    chat.slack.wait_for(lambda: len(chat.slack.channel_messages(SLACK_OPS)) >= 3, timeout=10)
    stopped_at = time.monotonic()
    paced.stop()
    assert done.wait(2.0), "the pass went on posting after stop()"
    assert time.monotonic() - stopped_at < 1.5
    thread.join()

    posted = [c.at for c in chat.slack.calls_to("chat.postMessage")]
    gaps = [b - a for a, b in itertools.pairwise(posted)]
    assert gaps and min(gaps) >= 0.95  # one message per second in the channel
    sent_now = len(posted)
    assert sent_now < len(findings)
    unsent = [a for a in store.open_alerts() if a.last_sent is None]
    assert len(unsent) == len(findings) - sent_now

    # the next leader sends what was left, and nothing twice
    lifecycle(store, chat).process(findings, at=T0 + PASS)
    assert len(chat.slack_posts()) == len(findings)
    assert all(a.last_sent is not None for a in store.open_alerts())
