"""Scheduled diagnostics in ``pgdb-bot run``: APScheduler runs a pass on
``PGDB_DIAGNOSE_INTERVAL`` (a duration or a 5-field cron), on the leader only.

Leadership is a Kubernetes ``Lease`` when Kubernetes is configured, else a PostgreSQL advisory
lock (the composition root chooses: ``bot.wiring.kubernetes.build_leadership``). A separate
job renews it more often than it expires, so a follower takes over within a lease period when
the leader dies; each pass asks again right before it runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import memory
from bot.config import Settings
from bot.core.durations import parse_schedule
from bot.core.errors import PgdbError
from bot.core.ports import AlertSink, AlertStore, Leadership, ThreadReplier
from bot.metrics import FINDINGS, LAST_DIAGNOSTICS, LEADER, PASSES
from handlers.alerts import AlertLifecycle, LogAlerts, PassReport
from handlers.approvals import expire_due
from handlers.context import Services
from handlers.findings import Diagnosis, Finding, diagnose
from handlers.follow import follow_through
from handlers.observe import observe
from handlers.pr_checks import CheckRefresher

log = logging.getLogger(__name__)
LEASE_SECONDS = 30
RENEW_SECONDS = 10
# How long stop() waits for a pass in progress. The pass stops posting at once (its unsent
# alerts stay in the alert state for the next leader); only a call already on the wire is
# waited for, so the shutdown stays within the Deployment's grace period (40 s, of which the
# command runner takes up to 25 s).
STOP_WAIT_SECONDS = 10.0


def trigger_for(schedule: str) -> Any:
    """An APScheduler trigger for a duration (``5m``) or a 5-field cron (``*/5 * * * *``)."""
    parsed = parse_schedule(schedule)
    if isinstance(parsed, str):
        return CronTrigger.from_crontab(parsed, timezone=UTC)
    return IntervalTrigger(seconds=parsed, timezone=UTC)


class DiagnosticsScheduler:
    """The leader's passes: observe, diagnose, the follow-through after ``create``, then the
    alert lifecycle."""

    def __init__(
        self,
        *,
        services: Services,
        lifecycle: AlertLifecycle,
        leadership: Leadership,
        schedule: str,
        renew_seconds: float = RENEW_SECONDS,
        repliers: Sequence[ThreadReplier] = (),
        follow_deadline: timedelta = timedelta(hours=24),
    ) -> None:
        self.services = services
        self.lifecycle = lifecycle
        self.leadership = leadership
        self.schedule = schedule
        self.renew_seconds = renew_seconds
        self.repliers = list(repliers)
        self.follow_deadline = follow_deadline
        self._scheduler: BackgroundScheduler | None = None
        self.passes = 0
        self.checks: dict[str, CheckRefresher] = {}  # per environment
        self._idle = threading.Event()  # no pass in progress
        self._idle.set()

    def lead(self) -> bool:
        try:
            leads = self.leadership.try_lead()
        except Exception:  # never let the renewal job die
            log.exception("leader election failed")
            leads = False
        LEADER.set(1 if leads else 0)
        return leads

    def run_pass(self) -> PassReport | None:
        """One pass if this replica leads; None otherwise (or when the pass cannot run)."""
        if not self.lead():
            problem = self.leadership.problem
            if problem is not None:
                log.warning(
                    "diagnostics pass skipped: leader election could not ask %s: %s",
                    self.leadership.name,
                    problem,
                )
            else:
                log.debug(
                    "diagnostics pass skipped: %s is held by another replica",
                    self.leadership.name,
                )
            return None
        fleet = self.services.environments()
        with ThreadPoolExecutor(max_workers=len(fleet.names), thread_name_prefix="pass") as pool:
            passes = dict(zip(fleet.names, pool.map(self._observe_one, fleet.names), strict=True))
        findings = [f for diagnosis in passes.values() for f in diagnosis.findings]
        unread = {
            env: set(d.assessment.unread) if d.assessment else set() for env, d in passes.items()
        }
        at = max(d.observed_at for d in passes.values())
        try:
            report = self.lifecycle.process(findings, at=at, unknown_in=unread)
        except PgdbError as exc:
            log.warning("diagnostics pass: alert state unavailable, nothing announced: %s", exc)
            PASSES.labels("failed").inc()
            return None
        self.passes += 1
        _export(findings, unread=set().union(*unread.values()))
        log.info(
            "diagnostics pass: %d finding(s), %d alert message(s) sent, %d silenced",
            sum(len(d.alerting) for d in passes.values()),
            len(report.sent),
            len(report.silenced),
        )
        del passes, findings
        memory.trim()  # the pass held the whole fleet a moment: hand the freed pages back
        return report

    def _observe_one(self, env: str) -> Diagnosis:
        """One environment's part of the pass: observe, diagnose, the PR checks, the
        follow-through after ``create``, the approvals that expired."""
        services = self.services.environments()[env]
        obs = observe(services)
        diagnosis = diagnose(obs, services)
        self.checks.setdefault(env, CheckRefresher()).refresh(obs, services, diagnosis)
        try:  # a follow-through problem must not keep the alerts from going out
            follow_through(
                obs,
                services,
                diagnosis.verdicts,
                repliers=self.repliers,
                ops=self.lifecycle.sinks,
                deadline=self.follow_deadline,
            )
        except Exception:
            log.exception("follow-through failed in this pass")
        try:
            expire_due(services)
        except Exception:
            log.exception("expiring the approval requests failed in this pass")
        return diagnosis

    def start(self) -> None:
        # APScheduler logs every run at INFO: the pass logs its own line instead
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        now = datetime.now(UTC)
        scheduler.add_job(
            self.lead,
            IntervalTrigger(seconds=self.renew_seconds, timezone=UTC),
            id="leadership",
            next_run_time=now,
        )
        trigger = trigger_for(self.schedule)
        first = now + timedelta(seconds=2) if isinstance(trigger, IntervalTrigger) else None
        scheduler.add_job(
            self._guarded_pass,
            trigger,
            id="diagnostics",
            **({"next_run_time": first} if first else {}),
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "scheduled diagnostics every %s; leader election by %s",
            self.schedule,
            self.leadership.name,
        )

    def _guarded_pass(self) -> None:
        self._idle.clear()
        try:
            self.run_pass()
        except Exception:
            log.exception("diagnostics pass failed")
        finally:
            self._idle.set()

    def stop(self, *, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
        """No new pass, no new alert message; a pass in progress is waited for at most
        ``wait_seconds`` (what it has not sent stays unsent, for the next leader)."""
        self.lifecycle.stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if not self._idle.wait(wait_seconds):
            log.warning(
                "a diagnostics pass is still running after %.0fs: not waiting", wait_seconds
            )
        try:
            self.leadership.release()
        except Exception:
            log.exception("releasing leadership failed")


def build_scheduler(
    settings: Settings,
    services: Services,
    sinks: Sequence[AlertSink],
    *,
    leadership: Leadership,
    store: AlertStore | None = None,
) -> DiagnosticsScheduler:
    """The scheduler of ``pgdb-bot run``: alerts to every chat platform, or to the log;
    ``leadership`` from the composition root (``bot.wiring.kubernetes.build_leadership``)."""
    alerts = store or services.alerts
    assert alerts is not None, "build_services gives the alert store"
    lifecycle = AlertLifecycle(
        store=alerts,
        sinks=list(sinks) or [LogAlerts()],
        repeat=timedelta(seconds=settings.alert_repeat_seconds),
        environment=settings.env,
        name_environments=services.fleet is not None,
    )
    return DiagnosticsScheduler(
        services=services,
        lifecycle=lifecycle,
        leadership=leadership,
        schedule=settings.diagnose_interval,
        repliers=[
            cast(ThreadReplier, s) for s in sinks if callable(getattr(s, "reply_in_thread", None))
        ],
        follow_deadline=timedelta(seconds=settings.follow_deadline_seconds),
    )


def _export(findings: Sequence[Finding], *, unread: set[str]) -> None:
    """What an operator alerts on about the bot itself: when a pass last completed, passes by
    outcome, and the findings of the last pass by kind and severity."""
    FINDINGS.clear()
    counts: dict[tuple[str, str], int] = {}
    for f in findings:
        key = (f.kind, f.severity.value)
        counts[key] = counts.get(key, 0) + 1
    for (kind, severity), count in counts.items():
        FINDINGS.labels(kind, severity).set(count)
    PASSES.labels("unobserved" if unread else "ok").inc()
    # the pass completed (an unreachable system is announced by it): the bot is not stuck
    LAST_DIAGNOSTICS.set_to_current_time()
