"""The alert lifecycle: one alert when a finding appears, a reminder at most every
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
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.core.errors import PgdbError
from bot.core.model import AlertRecord, NewAlert, Silence
from bot.core.ports import AlertSink, AlertStore
from bot.core.reply import Alert
from handlers.findings import Finding, Severity

log = logging.getLogger(__name__)

RESOLVE_AFTER = 2  # passes in a row without the finding before "resolved"
MAX_FLAP_DOUBLINGS = 4
DEFAULT_ENVIRONMENT = "dev"  # PGDB_ENV's default: the single environment without a config file
# Messages per pass (each to every sink): 10 at Slack's pace is 10 s, well within a pass and
# within the Deployment's grace period; the findings beyond it are named in one summary.
MAX_MESSAGES_PER_PASS = 10
NAMES_IN_MESSAGE = 30  # apps named in a group's message; all of them in its thread
NAMES_IN_SUMMARY = 10  # per kind
DETAIL_CHARS = 9_000  # a group's thread reply: within Slack's ~12,000 characters of blocks
DIAGNOSE = "/pgdb diagnose"
# A systemic finding -> the kinds it causes for every app: while it lasts they are one alert.
SYSTEMIC_CAUSES: dict[str, frozenset[str]] = {
    "kustomization_broken": frozenset(
        {
            "database_missing",
            "database_not_applied",
            "secret_unsynced",
            "kube_secret_missing",
            "kube_secret_stale",
        }
    ),
    "cluster_degraded": frozenset({"database_not_applied"}),  # no primary applies nothing
}

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
    # revision 2
    "database_owner_wrong",
    "credentials_mismatch",
    "login_refused",
    "offboard_pending",
    "offboard_incomplete",
    "kustomization_broken",
    # guardrails: limits, usage, extensions
    "extension_not_applied",
    "connections_near_limit",
    "database_large",
    "cluster_storage_low",
    "limits_drift",
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
    "database_owner_wrong": frozenset({"PostgreSQL"}),
    "credentials_mismatch": frozenset({"secret store"}),
    "login_refused": frozenset({"PostgreSQL"}),
    "offboard_pending": frozenset({"git"}),
    "offboard_incomplete": frozenset({"git", "bot state", "PostgreSQL"}),
    "kustomization_broken": frozenset({"git"}),
    "extension_not_applied": frozenset({"Kubernetes"}),
    "connections_near_limit": frozenset({"PostgreSQL"}),
    "database_large": frozenset({"PostgreSQL"}),
    "cluster_storage_low": frozenset({"PostgreSQL", "Kubernetes"}),
    "limits_drift": frozenset({"PostgreSQL", "bot state"}),
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
    """Turns each pass's findings into alerts through every sink (chat platforms, or the log).

    Per pass, at most one message per (environment, kind) names the findings new in it (the
    details go in its thread), at most ``max_messages`` messages in all (the rest in one
    summary), each sink paced to its platform's rate (``alert_interval`` seconds between two
    posts: Slack takes about one message per second per channel). ``stop()`` ends a pass at
    the next message: whatever was not sent stays unsent in the store, for the next leader.
    """

    def __init__(
        self,
        *,
        store: AlertStore,
        sinks: Sequence[AlertSink],
        repeat: timedelta,
        environment: str = DEFAULT_ENVIRONMENT,
        name_environments: bool = False,
        max_messages: int = MAX_MESSAGES_PER_PASS,
        intervals: Mapping[str, float] | None = None,
    ) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.repeat = repeat
        self.environment = environment
        self.name_environments = name_environments
        self.max_messages = max(2, max_messages)
        self._intervals = {
            s.name: float(getattr(s, "alert_interval", 0.0)) for s in self.sinks
        } | dict(intervals or {})
        self._last_post: dict[str, float] = {}
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Send nothing more (shutdown): a pass in progress ends at its next message."""
        self._stopping.set()

    def process(
        self,
        findings: Iterable[Finding],
        *,
        at: datetime,
        unknown_systems: Iterable[str] = (),
        unknown_in: Mapping[str, Iterable[str]] | None = None,
    ) -> PassReport:
        """``unknown_systems``: not observed this pass in any environment; ``unknown_in``:
        per environment (with several, one environment's unreachable server keeps only its
        own alerts open)."""
        report = PassReport()
        unknown = set(unknown_systems)
        unknown_env = {env: set(systems) for env, systems in (unknown_in or {}).items()}
        current: dict[_Key, Finding] = {}
        for f in findings:
            if f.severity is not Severity.INFO:
                current[(self._env_of(f), fingerprint(f.kind, f.app))] = f
        folded = _folded(current)
        silences = self.store.silences(at=at)
        open_alerts = {
            (a.env or self.environment, a.fingerprint): a for a in self.store.open_alerts()
        }

        seen: list[tuple[int, str, str]] = []
        appeared: list[tuple[_Key, Finding, bool]] = []
        unsent: list[_Pending] = []
        reminders: list[_Pending] = []
        for key, finding in current.items():
            silenced = is_silenced(silences, kind=finding.kind, app=finding.app)
            if silenced:
                report.silenced.append(key[1])
            alert = open_alerts.get(key)
            if alert is None:
                if key not in folded:
                    appeared.append((key, finding, silenced))
                continue
            seen.append((alert.id, finding.severity.value, finding.message))
            if silenced or key in folded:
                continue
            if alert.last_sent is None:
                unsent.append(_Pending(alert=alert, finding=finding, env=key[0]))
            elif at - alert.last_sent >= self.repeat:
                reminders.append(_Pending(alert=alert, finding=finding, env=key[0]))
        self.store.seen_many(seen, at=at)

        again = self._appeared(appeared, at=at, unsent=unsent)

        absent: list[tuple[int, int]] = []
        resolving: list[AlertRecord] = []
        for key, alert in open_alerts.items():
            if key in current:
                continue
            sources = _SOURCES.get(alert.kind)
            unread = unknown | unknown_env.get(key[0], set())
            if unread and (sources is None or sources & unread):
                continue  # not observed this pass: neither present nor gone
            passes = alert.absent_passes + 1
            if passes < _required_absence(alert.flaps):
                absent.append((alert.id, passes))
                continue
            if alert.last_sent is None or is_silenced(silences, kind=alert.kind, app=alert.app):
                self.store.resolve_many([alert.id], at=at)  # never announced, or muted: quietly
                continue
            absent.append((alert.id, passes))  # kept if its "resolved" waits for a later pass
            resolving.append(alert)
        self.store.absent_many(absent)

        budget = _Budget(self.max_messages)
        self._announce(unsent, folded=folded, current=current, at=at, budget=budget, report=report)
        self._resolve(resolving, at=at, budget=budget, report=report)
        self._again(again, budget=budget, report=report)
        self._remind(reminders, at=at, budget=budget, report=report)
        return report

    # -- steps ------------------------------------------------------------------------------

    def _env_of(self, finding: Finding) -> str:
        env = getattr(finding, "env", None)
        return env if isinstance(env, str) and env else self.environment

    def _title(self, env: str, subject: str) -> str:
        return f"[{env}] {subject}" if self.name_environments else subject

    def _appeared(
        self, appeared: list[tuple[_Key, Finding, bool]], *, at: datetime, unsent: list[_Pending]
    ) -> list[_Pending]:
        """Open the new alerts (one statement); one that was resolved within
        ``PGDB_ALERT_REPEAT`` is reopened instead (the "again" returned, for its thread)."""
        if not appeared:
            return []
        recent = {
            (a.env or self.environment, a.fingerprint): a
            for a in self.store.recently_resolved(since=at - self.repeat)
        }
        again: list[_Pending] = []
        fresh: list[NewAlert] = []
        silenced_keys: set[_Key] = set()
        for key, finding, silenced in appeared:
            previous = recent.get(key)
            if previous is None:
                fresh.append(
                    NewAlert(
                        fingerprint=key[1],
                        kind=finding.kind,
                        app=finding.app,
                        severity=finding.severity.value,
                        message=finding.message,
                        env=key[0],
                    )
                )
                if silenced:
                    silenced_keys.add(key)
                continue
            reopened = self.store.reopen(previous.id, at=at)
            if reopened is None:
                continue  # another replica reopened it
            self.store.seen(
                reopened.id, at=at, severity=finding.severity.value, message=finding.message
            )
            if not silenced and reopened.last_sent is not None:
                again.append(_Pending(alert=reopened, finding=finding, env=key[0]))
        findings = {key: finding for key, finding, _ in appeared}
        for created in self.store.open_many(fresh, at=at):
            key = (created.env or self.environment, created.fingerprint)
            if key not in silenced_keys:
                unsent.append(_Pending(alert=created, finding=findings[key], env=key[0]))
        return again

    def _announce(
        self,
        unsent: list[_Pending],
        *,
        folded: Mapping[_Key, _Key],
        current: Mapping[_Key, Finding],
        at: datetime,
        budget: _Budget,
        report: PassReport,
    ) -> None:
        """One message per (environment, kind) naming its new findings, details in its thread;
        the groups beyond the budget in one summary."""
        groups = _grouped(unsent)
        for index, (group_key, members) in enumerate(groups):
            later = len(groups) - index - 1
            cost = 1 if len(members) == 1 else 2
            if not budget.allows(cost + (1 if later else 0)):
                self._summary([p for _, rest in groups[index:] for p in rest], at=at, report=report)
                budget.take(1)
                return
            budget.take(cost)
            if self._stopping.is_set():
                return
            claimed = self._claim(members, at=at)
            if not claimed:
                continue
            env, kind = group_key
            causes = {(env, p.alert.fingerprint) for p in claimed}
            consequences = [k for k, cause in folded.items() if cause in causes]
            message = self._new_message(
                env, kind, claimed, consequences=consequences, current=current
            )
            refs = self._deliver(message, threads={}, report=report)
            if refs is None:
                self.store.unclaim_many([(p.alert.id, p.alert.last_sent) for p in claimed], at=at)
                continue
            self.store.set_threads_many([p.alert.id for p in claimed], refs)
            if len(claimed) > 1:
                self._deliver(_details(message, claimed), threads=refs, report=report)

    def _summary(self, rest: list[_Pending], *, at: datetime, report: PassReport) -> None:
        """The findings beyond this pass's budget, named in one message (their thread)."""
        if self._stopping.is_set():
            return
        claimed = self._claim(rest, at=at)
        if not claimed:
            return
        by_kind: dict[str, list[str]] = {}
        for p in claimed:
            by_kind.setdefault(p.alert.kind, []).append(p.alert.app or p.alert.kind)
        message = Alert(
            key="summary:",
            severity=_worst(p.alert.severity for p in claimed),
            title=f"and {len(claimed)} more finding(s): {DIAGNOSE}",
            text="\n".join(
                f"{kind} x{len(apps)}: " + _names(apps, limit=NAMES_IN_SUMMARY)
                for kind, apps in sorted(by_kind.items(), key=lambda item: -len(item[1]))
            ),
        )
        refs = self._deliver(message, threads={}, report=report)
        if refs is None:
            self.store.unclaim_many([(p.alert.id, p.alert.last_sent) for p in claimed], at=at)
            return
        self.store.set_threads_many([p.alert.id for p in claimed], refs)

    def _resolve(
        self, resolving: list[AlertRecord], *, at: datetime, budget: _Budget, report: PassReport
    ) -> None:
        """One "resolved" per group of alerts announced by the same message, in its thread;
        those beyond the budget stay open until a later pass."""
        groups: dict[tuple[str, str, frozenset[tuple[str, str]]], list[AlertRecord]] = {}
        for alert in resolving:
            env = alert.env or self.environment
            groups.setdefault((env, alert.kind, frozenset(alert.threads.items())), []).append(alert)
        for (env, kind, threads), alerts in groups.items():
            if self._stopping.is_set() or not budget.allows(1):
                return
            budget.take(1)
            closed = self.store.resolve_many([a.id for a in alerts], at=at)
            done = [a for a in alerts if a.id in closed]
            if not done:
                continue
            first = min(a.first_seen for a in done)
            lasted = at - first
            if len(done) == 1:
                [alert] = done
                title = _subject(alert.kind, alert.app)
                key = alert.fingerprint
            else:
                title = f"{kind}: {len(done)} findings"
                key = f"{kind}:"
            names = "" if len(done) == 1 else _names([a.app or a.kind for a in done]) + "\n"
            message = Alert(
                key=key,
                severity=_worst(a.severity for a in done),
                title=self._title(env, title),
                text=f"{names}No longer found (first seen {first:%Y-%m-%d %H:%M} UTC, "
                f"lasted {_lasted(lasted)}).",
                resolved=True,
            )
            # "resolved" needs no claim: resolve_many() above already was the compare-and-set
            self._deliver(message, threads=dict(threads), report=report)

    def _again(self, again: list[_Pending], *, budget: _Budget, report: PassReport) -> None:
        for (env, kind), members in _grouped(again):
            if self._stopping.is_set() or not budget.allows(1):
                return
            budget.take(1)
            message = self._follow_up(env, kind, members, lead="Back again after it was resolved.")
            self._deliver(message, threads=_common_threads(members), report=report)

    def _remind(
        self, reminders: list[_Pending], *, at: datetime, budget: _Budget, report: PassReport
    ) -> None:
        """One reminder per (environment, kind); those beyond the budget wait for a later pass."""
        for (env, kind), members in _grouped(reminders):
            if self._stopping.is_set() or not budget.allows(1):
                return
            budget.take(1)
            claimed = self._claim(members, at=at)
            if not claimed:
                continue
            first = min(p.alert.first_seen for p in claimed)
            message = self._follow_up(
                env, kind, claimed, lead=f"Still open since {first:%Y-%m-%d %H:%M} UTC."
            )
            if self._deliver(message, threads=_common_threads(claimed), report=report) is None:
                self.store.unclaim_many([(p.alert.id, p.alert.last_sent) for p in claimed], at=at)

    # -- messages ---------------------------------------------------------------------------

    def _new_message(
        self,
        env: str,
        kind: str,
        members: list[_Pending],
        *,
        consequences: list[_Key],
        current: Mapping[_Key, Finding],
    ) -> Alert:
        worst = _worst(p.finding.severity.value for p in members)
        caused = ""
        if consequences:
            counts = Counter(current[k].kind for k in consequences)
            caused = (
                f"\nLikely also behind {len(consequences)} other finding(s), not announced "
                "apart: "
                + ", ".join(f"{k} x{n}" for k, n in counts.most_common())
                + f" (`{DIAGNOSE}`)."
            )
        if len(members) == 1:
            [only] = members
            return Alert(
                key=only.alert.fingerprint,
                severity=worst,
                title=self._title(env, _subject(kind, only.finding.app)),
                text=_text(only.finding) + caused,
            )
        return Alert(
            key=f"{kind}:",
            severity=worst,
            title=self._title(env, f"{kind}: {len(members)} new findings"),
            text=_names([p.finding.app or kind for p in members])
            + f"\nFix: each one's remedy is in the thread (or `{DIAGNOSE}`)."
            + caused,
        )

    def _follow_up(self, env: str, kind: str, members: list[_Pending], *, lead: str) -> Alert:
        if len(members) == 1:
            [only] = members
            return Alert(
                key=only.alert.fingerprint,
                severity=only.finding.severity.value,
                title=self._title(env, _subject(kind, only.finding.app)),
                text=f"{lead}\n" + _text(only.finding),
            )
        return Alert(
            key=f"{kind}:",
            severity=_worst(p.finding.severity.value for p in members),
            title=self._title(env, f"{kind}: {len(members)} findings"),
            text=f"{lead}\n"
            + _names([p.finding.app or kind for p in members])
            + f"\nEach one: `{DIAGNOSE}`.",
        )

    # -- delivery ---------------------------------------------------------------------------

    def _claim(self, members: list[_Pending], *, at: datetime) -> list[_Pending]:
        """Claim, then send: never twice, even with two leaders for a moment."""
        won = self.store.claim_many([(p.alert.id, p.alert.last_sent) for p in members], at=at)
        return [p for p in members if p.alert.id in won]

    def _deliver(
        self, message: Alert, *, threads: Mapping[str, str], report: PassReport
    ) -> dict[str, str] | None:
        """Post to every sink (in its thread, when given), paced; each sink's reference of the
        posted message. None when no sink took it (or when stopping): the caller undoes."""
        refs: dict[str, str] = {}
        delivered = False
        for sink in self.sinks:
            if not self._pace(sink.name):
                break
            thread = threads.get(sink.name)
            try:
                ref = sink.send_alert(replace(message, thread=thread))
            except Exception as exc:  # one platform down must not stop the others
                reason = str(exc) if isinstance(exc, PgdbError) else type(exc).__name__
                log.warning("alert %s not sent to %s: %s", message.key, sink.name, reason)
                report.failed.append(f"{sink.name}: {message.key}")
                continue
            finally:
                self._last_post[sink.name] = time.monotonic()
            delivered = True
            if ref:
                refs[sink.name] = ref
        if not delivered:
            return None
        report.sent.append(message)
        return refs

    def _pace(self, sink: str) -> bool:
        """Wait for the sink's next slot; False when stopping (nothing more is sent)."""
        interval = self._intervals.get(sink, 0.0)
        last = self._last_post.get(sink)
        if interval > 0 and last is not None:
            due = last + interval - time.monotonic()
            if due > 0 and self._stopping.wait(due):
                return False
        return not self._stopping.is_set()


# -- grouping ---------------------------------------------------------------------------------

_Key = tuple[str, str]  # (environment, fingerprint)


@dataclass(frozen=True, kw_only=True)
class _Pending:
    """An open alert with its finding of this pass."""

    alert: AlertRecord
    finding: Finding
    env: str


class _Budget:
    """Messages left in this pass (each one goes to every sink)."""

    def __init__(self, messages: int) -> None:
        self.left = messages

    def allows(self, cost: int) -> bool:
        return self.left >= cost

    def take(self, cost: int) -> None:
        self.left -= cost


_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _worst(severities: Iterable[str]) -> str:
    return min(severities, key=lambda s: _SEVERITY_ORDER.get(s, 3), default="warning")


def _grouped(pending: list[_Pending]) -> list[tuple[tuple[str, str], list[_Pending]]]:
    """Per (environment, kind), the most severe and then the largest groups first."""
    groups: dict[tuple[str, str], list[_Pending]] = {}
    for p in pending:
        groups.setdefault((p.env, p.finding.kind), []).append(p)
    for members in groups.values():
        members.sort(key=lambda p: p.finding.app or "")
    return sorted(
        groups.items(),
        key=lambda item: (
            _SEVERITY_ORDER[_worst(p.finding.severity.value for p in item[1])],
            -len(item[1]),
            item[0],
        ),
    )


def _common_threads(members: list[_Pending]) -> dict[str, str]:
    """Per sink, the thread all the alerts share (a follow-up goes there), if they share one."""
    shared: dict[str, str] = dict(members[0].alert.threads) if members else {}
    for p in members[1:]:
        shared = {k: v for k, v in shared.items() if p.alert.threads.get(k) == v}
    return shared


def _folded(current: Mapping[_Key, Finding]) -> dict[_Key, _Key]:
    """Findings explained by a systemic one of this pass -> that one's key: one alert for one
    cause (the consequences are neither announced apart nor resolved while it lasts)."""
    causes = [(key, f.kind) for key, f in current.items() if f.kind in SYSTEMIC_CAUSES]
    folded: dict[_Key, _Key] = {}
    for cause_key, cause_kind in causes:
        for key, finding in current.items():
            if key[0] == cause_key[0] and finding.kind in SYSTEMIC_CAUSES[cause_kind]:
                folded.setdefault(key, cause_key)
    return folded


def _names(names: list[str], *, limit: int = NAMES_IN_MESSAGE) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more: `{DIAGNOSE}`" if more > 0 else "")


def _details(message: Alert, members: list[_Pending]) -> Alert:
    """The thread reply of a group: one line per finding, within ``DETAIL_CHARS`` (the rest
    counted, with where to see them)."""
    lines: list[str] = []
    size = 0
    for index, p in enumerate(members):
        line = f"• {p.finding.app or p.finding.kind}: {p.finding.message} — Fix: {p.finding.remedy}"
        if size + len(line) + 1 > DETAIL_CHARS:
            lines.append(f"… and {len(members) - index} more: {DIAGNOSE}")
            break
        lines.append(line)
        size += len(line) + 1
    return replace(
        message,
        title=f"{message.title}: details",
        text="\n".join(lines),
        details=True,
    )


def _lasted(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class LogAlerts:
    """The sink when no chat platform is configured: alerts go to the log."""

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
