"""The alert lifecycle (SPEC §6.2): one alert when a finding appears, a reminder at most every
``PGDB_ALERT_REPEAT`` while it persists, one "resolved" in the alert's thread when it is gone.

State lives in the ``AlertStore`` (PostgreSQL), so a restart or a new leader sends nothing
twice. Against flapping: a finding counts as gone only after it has been absent from
``RESOLVE_AFTER`` passes in a row, twice as many each time it came back after a "resolved"
(up to 32); one that comes back within ``PGDB_ALERT_REPEAT`` of its "resolved" reopens its alert
with one line in the same thread, never a new alert. Findings of a system that could not be
observed in this pass are unknown, not gone. Silenced findings are not announced (nor their
"resolved"); an alert that appeared during a silence is announced when the silence ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.core.errors import PgdbError
from bot.core.model import AlertRecord, Silence
from bot.core.ports import AlertSink, AlertStore
from bot.core.reply import Alert
from handlers.findings import Finding, Severity

log = logging.getLogger(__name__)

RESOLVE_AFTER = 2  # passes in a row without the finding before "resolved"
MAX_FLAP_DOUBLINGS = 4

FINDING_KINDS = (
    "role_missing",
    "password_drift",
    "secret_missing",
    "secret_unsynced",
    "kube_secret_missing",
    "kube_secret_stale",
    "database_missing",
    "database_not_applied",
    "manifest_missing",
    "role_unsafe",
    "orphan_role",
    "orphan_database",
    "cluster_degraded",
    "backup_stale",
    "pr_stale",
    "system_unreachable",
)

# The systems each kind is derived from: when one of them could not be observed, an open
# alert of that kind is unknown in this pass (neither present nor gone).
_SOURCES: dict[str, frozenset[str]] = {
    "role_missing": frozenset({"PostgreSQL", "secret store"}),
    "password_drift": frozenset({"PostgreSQL", "secret store"}),
    "secret_missing": frozenset({"secret store", "PostgreSQL"}),
    "role_unsafe": frozenset({"PostgreSQL"}),
    "orphan_role": frozenset({"PostgreSQL", "secret store", "git", "bot state"}),
    "orphan_database": frozenset({"PostgreSQL", "secret store", "git", "bot state"}),
    "manifest_missing": frozenset({"git", "secret store", "PostgreSQL"}),
    "pr_stale": frozenset({"git"}),
    "secret_unsynced": frozenset({"Kubernetes", "git"}),
    "kube_secret_missing": frozenset({"Kubernetes"}),
    "kube_secret_stale": frozenset({"Kubernetes", "secret store"}),
    "database_missing": frozenset({"Kubernetes", "git", "PostgreSQL"}),
    "database_not_applied": frozenset({"Kubernetes", "PostgreSQL"}),
    "cluster_degraded": frozenset({"Kubernetes"}),
    "backup_stale": frozenset({"Kubernetes"}),
}


def fingerprint(kind: str, app: str | None) -> str:
    return f"{kind}:{app or ''}"


def is_silenced(silences: Iterable[Silence], *, kind: str, app: str | None) -> bool:
    return any(s.target == kind or (app is not None and s.target == app) for s in silences)


def _required_absence(flaps: int) -> int:
    return int(RESOLVE_AFTER * 2 ** min(flaps, MAX_FLAP_DOUBLINGS))


@dataclass(kw_only=True)
class PassReport:
    """What one pass announced, for the log and the tests."""

    sent: list[Alert] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    silenced: list[str] = field(default_factory=list)


def _subject(kind: str, app: str | None) -> str:
    return f"{kind} `{app}`" if app else kind


def _text(finding: Finding) -> str:
    return f"{finding.message}\nFix: {finding.remedy}"


class AlertLifecycle:
    """Turns each pass's findings into alerts through every sink (chat platforms, or the log)."""

    def __init__(self, *, store: AlertStore, sinks: Sequence[AlertSink], repeat: timedelta) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.repeat = repeat

    def process(
        self, findings: Iterable[Finding], *, at: datetime, unknown_systems: Iterable[str] = ()
    ) -> PassReport:
        report = PassReport()
        unknown = set(unknown_systems)
        current = {
            fingerprint(f.kind, f.app): f for f in findings if f.severity is not Severity.INFO
        }
        silences = self.store.silences(at=at)
        open_alerts = {a.fingerprint: a for a in self.store.open_alerts()}
        for key, finding in current.items():
            silenced = is_silenced(silences, kind=finding.kind, app=finding.app)
            if silenced:
                report.silenced.append(key)
            alert = open_alerts.get(key)
            if alert is None:
                self._appeared(finding, at=at, silenced=silenced, report=report)
                continue
            self.store.seen(
                alert.id, at=at, severity=finding.severity.value, message=finding.message
            )
            if silenced:
                continue
            if alert.last_sent is None:
                self._send(alert, self._new(finding), at=at, report=report)
            elif at - alert.last_sent >= self.repeat:
                reminder = Alert(
                    key=key,
                    severity=finding.severity.value,
                    title=_subject(finding.kind, finding.app),
                    text=f"Still open since {alert.first_seen:%Y-%m-%d %H:%M} UTC.\n"
                    + _text(finding),
                )
                self._send(alert, reminder, at=at, report=report)
        for key, alert in open_alerts.items():
            if key in current:
                continue
            sources = _SOURCES.get(alert.kind)
            if unknown and (sources is None or sources & unknown):
                continue  # not observed this pass: neither present nor gone
            passes = alert.absent_passes + 1
            if passes < _required_absence(alert.flaps):
                self.store.absent(alert.id, passes=passes)
                continue
            self._resolve(alert, at=at, silences=silences, report=report)
        return report

    # -- steps ------------------------------------------------------------------------------

    def _new(self, finding: Finding) -> Alert:
        return Alert(
            key=fingerprint(finding.kind, finding.app),
            severity=finding.severity.value,
            title=_subject(finding.kind, finding.app),
            text=_text(finding),
        )

    def _appeared(
        self, finding: Finding, *, at: datetime, silenced: bool, report: PassReport
    ) -> None:
        key = fingerprint(finding.kind, finding.app)
        previous = self.store.last_resolved(key, since=at - self.repeat)
        if previous is not None:
            reopened = self.store.reopen(previous.id, at=at)
            if reopened is None:
                return  # another replica reopened it
            self.store.seen(
                reopened.id, at=at, severity=finding.severity.value, message=finding.message
            )
            if not silenced and reopened.last_sent is not None:
                again = Alert(
                    key=key,
                    severity=finding.severity.value,
                    title=_subject(finding.kind, finding.app),
                    text="Back again after it was resolved.\n" + _text(finding),
                )
                self._send(reopened, again, at=at, report=report)
            return
        created = self.store.open_alert(
            fingerprint=key,
            kind=finding.kind,
            app=finding.app,
            severity=finding.severity.value,
            message=finding.message,
            at=at,
        )
        if created is not None and not silenced:
            self._send(created, self._new(finding), at=at, report=report)

    def _resolve(
        self,
        alert: AlertRecord,
        *,
        at: datetime,
        silences: Sequence[Silence],
        report: PassReport,
    ) -> None:
        if not self.store.resolve(alert.id, at=at):
            return
        if alert.last_sent is None or is_silenced(silences, kind=alert.kind, app=alert.app):
            return  # never announced, or muted: close it quietly
        lasted = at - alert.first_seen
        resolved = Alert(
            key=alert.fingerprint,
            severity=alert.severity,
            title=_subject(alert.kind, alert.app),
            text=f"No longer found (first seen {alert.first_seen:%Y-%m-%d %H:%M} UTC, "
            f"lasted {_lasted(lasted)}).",
            resolved=True,
        )
        # "resolved" needs no claim: resolve() above already was the compare-and-set
        self._deliver(alert, resolved, report=report)

    def _send(
        self, alert: AlertRecord, message: Alert, *, at: datetime, report: PassReport
    ) -> None:
        """Claim, then send: never twice, even with two leaders for a moment. If no platform
        took it, the claim is undone and the next pass tries again."""
        if not self.store.claim_send(alert.id, previous=alert.last_sent, at=at):
            return
        delivered = self._deliver(alert, message, report=report)
        if not delivered:
            self.store.unclaim(alert.id, previous=alert.last_sent, at=at)

    def _deliver(self, alert: AlertRecord, message: Alert, *, report: PassReport) -> bool:
        threads: dict[str, str] = {}
        delivered = False
        for sink in self.sinks:
            thread = alert.threads.get(sink.name)
            try:
                ref = sink.send_alert(replace(message, thread=thread))
            except Exception as exc:  # one platform down must not stop the others
                reason = str(exc) if isinstance(exc, PgdbError) else type(exc).__name__
                log.warning("alert %s not sent to %s: %s", message.key, sink.name, reason)
                report.failed.append(f"{sink.name}: {message.key}")
                continue
            delivered = True
            if ref and thread is None:
                threads[sink.name] = ref
        if threads:
            self.store.set_threads(alert.id, threads)
        if delivered:
            report.sent.append(message)
        return delivered


def _lasted(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class LogAlerts:
    """The sink when no chat platform is configured: alerts go to the log (SPEC §7)."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("pgdb_bot.alerts")

    def send_alert(self, alert: Alert) -> str | None:
        level = logging.INFO if alert.resolved else logging.WARNING
        state = "resolved" if alert.resolved else alert.severity
        self._log.log(
            level,
            "alert %s [%s] %s: %s",
            alert.key,
            state + (", in thread" if alert.thread and not alert.resolved else ""),
            alert.title,
            alert.text.replace("\n", " — "),
            extra={"alert": alert.key, "severity": alert.severity},
        )
        return alert.thread or f"log:{alert.key}"
