"""The alert lifecycle on the real alert state in PostgreSQL (and, through
test_alerts_memory.py, on the in-memory one): each finding announced once, reminders at most every PGDB_ALERT_REPEAT, one "resolved" in the alert's thread; nothing
twice across a restart or with two leaders at once; flapping and silences do not spam."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.postgres.alerts import PostgresAlertStore
from bot.adapters.postgres.migrations import BotSchema
from bot.core.ports import AlertStore
from bot.core.reply import Alert
from handlers.alerts import AlertLifecycle, LogAlerts, PassReport
from handlers.commands import UsageError
from handlers.findings import Finding, Severity
from handlers.silence import run_silence
from tests.fakes.services import MemoryWorld, command_context, memory_services

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PASS = timedelta(minutes=5)
REPEAT = timedelta(hours=24)


def finding(kind: str = "secret_unsynced", app: str | None = "docspell") -> Finding:
    return Finding(
        kind=kind,
        app=app,
        severity=Severity.CRITICAL,
        message=f"{kind} of {app}",
        remedy=f"/pgdb repair {app} --yes",
    )


@dataclass
class Channel:
    """An ops channel with threads: what each platform's send_alert does, recorded."""

    name: str = "chat"
    posts: list[Alert] = field(default_factory=list)
    down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send_alert(self, alert: Alert) -> str | None:
        if self.down:
            raise ConnectionError("chat is down")
        with self._lock:
            self.posts.append(alert)
            return alert.thread or f"{self.name}-{len(self.posts)}"

    def titles(self) -> list[str]:
        return [a.title for a in self.posts]

    def kinds_of_message(self) -> list[str]:
        """new, reminder, again or resolved, as a reader of the channel tells them apart."""
        out = []
        for a in self.posts:
            if a.resolved:
                out.append("resolved")
            elif a.text.startswith("Still open since"):
                out.append("reminder")
            elif a.text.startswith("Back again"):
                out.append("again")
            else:
                out.append("new")
        return out


@pytest.fixture
def open_store(state_dsn: str) -> Callable[[], AlertStore]:
    """A new handle on the alert state each call: a new process on the same database
    (test_alerts_memory.py replays these tests on the in-memory store)."""
    return lambda: PostgresAlertStore(BotSchema(state_dsn))


@pytest.fixture
def store(open_store: Callable[[], AlertStore]) -> AlertStore:
    return open_store()


def lifecycle(store: AlertStore, *sinks: Channel) -> AlertLifecycle:
    return AlertLifecycle(store=store, sinks=list(sinks), repeat=REPEAT)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def tick(self, delta: timedelta = PASS) -> datetime:
        self.now += delta
        return self.now


def test_one_alert_then_reminders_then_one_resolved_in_its_thread(
    store: AlertStore,
) -> None:
    chat = Channel()
    alerts = lifecycle(store, chat)
    clock = Clock()

    alerts.process([finding()], at=clock.now)
    for _ in range(10):
        alerts.process([finding()], at=clock.tick())

    assert chat.titles() == ["secret_unsynced `docspell`"]
    first = chat.posts[0]
    assert first.thread is None and first.severity == "critical"
    assert "Fix: /pgdb repair docspell --yes" in first.text

    alerts.process([finding()], at=clock.tick(REPEAT))
    assert chat.posts[-1].text.startswith("Still open since 2026-03-01 08:00 UTC.")
    assert chat.posts[-1].thread == "chat-1"

    alerts.process([], at=clock.tick())
    assert len(chat.posts) == 2  # one pass without it is not enough
    alerts.process([], at=clock.tick())
    alerts.process([], at=clock.tick())

    assert len(chat.posts) == 3
    resolved = chat.posts[-1]
    assert resolved.resolved and resolved.thread == "chat-1"
    assert resolved.title == "secret_unsynced `docspell`"
    assert resolved.text.startswith("No longer found (first seen 2026-03-01 08:00 UTC, lasted 1d")
    assert store.open_alerts() == []


def test_a_restart_sends_nothing_twice(open_store: Callable[[], AlertStore]) -> None:
    chat = Channel()
    clock = Clock()
    lifecycle(open_store(), chat).process([finding()], at=clock.now)

    # a new process: new store, new lifecycle, same database
    restarted = lifecycle(open_store(), chat)
    restarted.process([finding()], at=clock.tick())
    restarted.process([finding()], at=clock.tick())
    assert len(chat.posts) == 1

    again = lifecycle(open_store(), chat)
    again.process([], at=clock.tick())
    again.process([], at=clock.tick())
    lifecycle(open_store(), chat).process([], at=clock.tick())

    assert [a.resolved for a in chat.posts] == [False, True]


def test_two_leaders_at_once_announce_each_alert_once(
    open_store: Callable[[], AlertStore],
) -> None:
    chat = Channel()
    leaders = [lifecycle(open_store(), chat) for _ in range(4)]
    findings = [finding(app=f"app{i}") for i in range(5)]
    reports: list[PassReport] = []
    start = threading.Barrier(len(leaders))

    def run(alerts: AlertLifecycle) -> None:
        start.wait()
        reports.append(alerts.process(findings, at=T0))

    threads = [threading.Thread(target=run, args=(a,)) for a in leaders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    announced = "\n".join(a.title + "\n" + a.text for a in chat.posts if not a.details)
    assert [announced.count(f"`app{i}`") for i in range(5)] == [1] * 5


def test_a_finding_flapping_every_pass_is_announced_once(store: AlertStore) -> None:
    chat = Channel()
    alerts = lifecycle(store, chat)
    clock = Clock()

    for n in range(20):
        alerts.process([finding()] if n % 2 == 0 else [], at=clock.tick())

    assert chat.kinds_of_message() == ["new"]


def test_a_slow_flap_reopens_in_the_thread_and_waits_longer_each_time(
    store: AlertStore,
) -> None:
    chat = Channel()
    alerts = lifecycle(store, chat)
    clock = Clock()

    def passes(present: bool, count: int) -> None:
        for _ in range(count):
            alerts.process([finding()] if present else [], at=clock.tick())

    passes(True, 1)
    passes(False, 2)  # resolved
    passes(True, 1)  # back: one line in the same thread
    passes(False, 3)  # needs 4 passes now
    assert chat.kinds_of_message() == ["new", "resolved", "again"]
    assert all(a.thread == "chat-1" for a in chat.posts[1:])
    passes(False, 1)
    assert chat.posts[-1].resolved
    passes(True, 1)
    passes(False, 7)  # needs 8 now
    assert len(chat.posts) == 5 and not chat.posts[-1].resolved

    # long after the last "resolved" (PGDB_ALERT_REPEAT), it is a new alert again
    passes(False, 1)
    clock.tick(REPEAT)
    passes(True, 1)
    assert chat.kinds_of_message()[-1] == "new"
    assert chat.posts[-1].thread is None


def test_findings_of_a_system_not_observed_are_not_resolved(store: AlertStore) -> None:
    chat = Channel()
    alerts = lifecycle(store, chat)
    clock = Clock()
    alerts.process([finding(), finding("role_missing")], at=clock.now)

    for _ in range(5):
        alerts.process([], at=clock.tick(), unknown_systems={"Kubernetes"})

    assert [a.title for a in chat.posts if a.resolved] == ["role_missing `docspell`"]


def test_silenced_findings_are_not_announced_until_the_silence_ends(
    store: AlertStore,
) -> None:
    chat = Channel()
    alerts = lifecycle(store, chat)
    clock = Clock()
    store.add_silence(target="docspell", until=T0 + timedelta(hours=1), created_by="olga")
    store.add_silence(target="backup_stale", until=T0 + timedelta(days=1), created_by="olga")

    report = alerts.process([finding(), finding("backup_stale", None)], at=clock.now)
    assert chat.posts == [] and sorted(report.silenced) == [
        "backup_stale:",
        "secret_unsynced:docspell",
    ]

    alerts.process([finding(), finding("backup_stale", None)], at=clock.tick(timedelta(hours=1)))
    assert chat.titles() == ["secret_unsynced `docspell`"]

    # gone while silenced: closed quietly; nothing more to say
    for _ in range(3):
        alerts.process([finding()], at=clock.tick())
    assert len(chat.posts) == 1
    assert [a.kind for a in store.open_alerts()] == ["secret_unsynced"]


def test_an_announced_alert_resolved_under_a_silence_stays_quiet(
    store: AlertStore,
) -> None:
    chat = Channel()
    alerts = lifecycle(store, chat)
    clock = Clock()
    alerts.process([finding()], at=clock.now)
    store.add_silence(target="secret_unsynced", until=T0 + timedelta(days=1), created_by="olga")

    for _ in range(3):
        alerts.process([], at=clock.tick())

    assert len(chat.posts) == 1 and store.open_alerts() == []
    assert store.lift_silences("secret_unsynced") == 1
    assert store.silences(at=clock.now) == []


def test_a_platform_down_gets_the_alert_on_a_later_pass_the_other_at_once(
    store: AlertStore,
) -> None:
    up, down = Channel(name="slack"), Channel(name="mattermost", down=True)
    clock = Clock()
    report = lifecycle(store, down).process([finding()], at=clock.now)
    assert report.sent == [] and report.failed == ["mattermost: secret_unsynced:docspell"]

    down.down = False
    lifecycle(store, up, down).process([finding()], at=clock.tick())
    lifecycle(store, up, down).process([finding()], at=clock.tick())

    assert len(up.posts) == 1 and len(down.posts) == 1
    [alert] = store.open_alerts()
    assert alert.threads == {"slack": "slack-1", "mattermost": "mattermost-1"}


def test_info_findings_are_never_alerted(store: AlertStore) -> None:
    chat = Channel()
    orphan = Finding(kind="orphan_role", app=None, severity=Severity.INFO, message="m", remedy="r")

    lifecycle(store, chat).process([orphan], at=T0)

    assert chat.posts == [] and store.open_alerts() == []


def test_without_a_chat_platform_alerts_go_to_the_log(
    store: AlertStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pgdb_bot.alerts")
    alerts = AlertLifecycle(store=store, sinks=[LogAlerts()], repeat=REPEAT)

    alerts.process([finding()], at=T0)
    alerts.process([], at=T0 + PASS)
    alerts.process([], at=T0 + 2 * PASS)

    lines = [r.getMessage() for r in caplog.records if r.name == "pgdb_bot.alerts"]
    assert len(lines) == 2
    assert lines[0].startswith("alert secret_unsynced:docspell [critical]")
    assert "Fix: /pgdb repair docspell --yes" in lines[0]
    assert lines[1].startswith("alert secret_unsynced:docspell [resolved] secret_unsynced")


# --- /pgdb silence ------------------------------------------------------------------------


def silence(store: AlertStore, target: str, duration: str) -> str:
    world = MemoryWorld()
    world.secrets.put("docspell", "pw")  # what makes it a known app to silence
    for unused in (world.database, world.state, world.git):
        unused.fail()  # every read fails the way an unreachable system does
    services = memory_services(world, alerts=store, clock=lambda: T0)
    ctx = command_context(services, platform="test")
    reply = run_silence(ctx, target, duration)
    return "\n".join([reply.title, *reply.lines])


def test_silence_command_by_app_or_kind_and_lifting_it(store: AlertStore) -> None:
    text = silence(store, "docspell", "2h")
    assert text.startswith("Silenced alerts about `docspell` for 2h")
    assert "2026-03-01 10:00 UTC" in text and "/pgdb silence docspell off" in text
    assert "Silenced alerts about `cluster_degraded` for 1d" in silence(
        store, "cluster_degraded", "1d"
    )
    [first, second] = store.silences(at=T0)
    assert (first.target, first.created_by) == ("cluster_degraded", "olga")
    assert second.until == T0 + timedelta(hours=2)

    assert "announced again" in silence(store, "docspell", "off")
    assert "was not silenced" in silence(store, "docspell", "off")


@pytest.mark.parametrize(
    ("target", "duration", "words"),
    [
        ("Not-An-App", "2h", "neither a known app nor a finding kind"),
        ("docspell", "soon", "is not a duration"),
        ("docspell", "365d", "at most 90d"),
        ("postgres", "1h", "neither a known app"),
        ("nosuchkind", "5m", "neither a known app nor a finding kind"),  # a typo, not an app
    ],
)
def test_silence_refuses_bad_arguments(
    store: AlertStore, target: str, duration: str, words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        silence(store, target, duration)
    assert store.silences(at=T0) == []
