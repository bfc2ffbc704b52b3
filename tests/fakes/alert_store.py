"""``AlertStore`` in memory: the alert lifecycle's rows and the silences, with the
compare-and-set answers of ``PostgresAlertStore`` (one open alert per environment and
fingerprint; a claim, a resolve or a reopen wins once)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.model import AlertRecord, NewAlert, Silence
from tests.fakes.faults import Faults


class MemoryAlertStore(Faults):
    """``alerts`` holds every row by id (resolved ones too); ``silence_rows`` every silence."""

    system = "bot state"

    def __init__(self) -> None:
        super().__init__()
        self.alerts: dict[int, AlertRecord] = {}
        self.silence_rows: list[Silence] = []

    # --- the port ------------------------------------------------------------------------------

    def open_alerts(self) -> list[AlertRecord]:
        self._enter("open_alerts")
        with self._lock:
            return [a for _, a in sorted(self.alerts.items()) if a.resolved_at is None]

    def recently_resolved(self, *, since: datetime) -> list[AlertRecord]:
        self._enter("recently_resolved")
        newest: dict[tuple[str, str], AlertRecord] = {}
        with self._lock:
            for alert in self.alerts.values():
                if alert.resolved_at is None or alert.resolved_at < since:
                    continue
                key = (alert.env or "", alert.fingerprint)
                seen = newest.get(key)
                if seen is None or _resolved(seen) < alert.resolved_at:
                    newest[key] = alert
        return [newest[key] for key in sorted(newest)]

    def open_many(self, alerts: Sequence[NewAlert], *, at: datetime) -> list[AlertRecord]:
        self._enter("open_many")
        opened = []
        with self._lock:
            for new in alerts:
                created = self._insert(
                    fingerprint=new.fingerprint,
                    kind=new.kind,
                    app=new.app,
                    severity=new.severity,
                    message=new.message,
                    env=new.env,
                    at=at,
                )
                if created is not None:
                    opened.append(created)
        return opened

    def seen_many(self, seen: Sequence[tuple[int, str, str]], *, at: datetime) -> None:
        self._enter("seen_many")
        with self._lock:
            for alert_id, severity, message in seen:
                self._update(
                    alert_id, last_seen=at, absent_passes=0, severity=severity, message=message
                )

    def absent_many(self, absent: Sequence[tuple[int, int]]) -> None:
        self._enter("absent_many")
        with self._lock:
            for alert_id, passes in absent:
                self._update(alert_id, absent_passes=passes)

    def claim_many(
        self, claims: Sequence[tuple[int, datetime | None]], *, at: datetime
    ) -> set[int]:
        self._enter("claim_many")
        with self._lock:
            return {i for i, previous in claims if self._claim(i, previous=previous, at=at)}

    def unclaim_many(self, claims: Sequence[tuple[int, datetime | None]], *, at: datetime) -> None:
        self._enter("unclaim_many")
        with self._lock:
            for alert_id, previous in claims:
                self._unclaim(alert_id, previous=previous, at=at)

    def set_threads_many(self, alert_ids: Collection[int], threads: Mapping[str, str]) -> None:
        self._enter("set_threads_many")
        with self._lock:
            for alert_id in alert_ids:
                self._add_threads(alert_id, threads)

    def resolve_many(self, alert_ids: Collection[int], *, at: datetime) -> set[int]:
        self._enter("resolve_many")
        with self._lock:
            return {i for i in alert_ids if self._resolve(i, at=at)}

    def last_resolved(self, fingerprint: str, *, since: datetime) -> AlertRecord | None:
        self._enter("last_resolved")
        with self._lock:
            found = [
                a
                for a in self.alerts.values()
                if a.fingerprint == fingerprint
                and a.resolved_at is not None
                and a.resolved_at >= since
            ]
        return max(found, key=_resolved) if found else None

    def open_alert(
        self,
        *,
        fingerprint: str,
        kind: str,
        app: str | None,
        severity: str,
        message: str,
        at: datetime,
        env: str | None = None,
    ) -> AlertRecord | None:
        self._enter("open_alert")
        with self._lock:
            return self._insert(
                fingerprint=fingerprint,
                kind=kind,
                app=app,
                severity=severity,
                message=message,
                env=env,
                at=at,
            )

    def reopen(self, alert_id: int, *, at: datetime) -> AlertRecord | None:
        self._enter("reopen")
        with self._lock:
            alert = self.alerts.get(alert_id)
            if alert is None or alert.resolved_at is None or self._open_one(alert) is not None:
                return None
            alert = replace(
                alert, resolved_at=None, last_seen=at, absent_passes=0, flaps=alert.flaps + 1
            )
            self.alerts[alert_id] = alert
            return alert

    def seen(self, alert_id: int, *, at: datetime, severity: str, message: str) -> None:
        self._enter("seen")
        with self._lock:
            self._update(
                alert_id, last_seen=at, absent_passes=0, severity=severity, message=message
            )

    def absent(self, alert_id: int, *, passes: int) -> None:
        self._enter("absent")
        with self._lock:
            self._update(alert_id, absent_passes=passes)

    def claim_send(self, alert_id: int, *, previous: datetime | None, at: datetime) -> bool:
        self._enter("claim_send")
        with self._lock:
            return self._claim(alert_id, previous=previous, at=at)

    def unclaim(self, alert_id: int, *, previous: datetime | None, at: datetime) -> None:
        self._enter("unclaim")
        with self._lock:
            self._unclaim(alert_id, previous=previous, at=at)

    def set_threads(self, alert_id: int, threads: Mapping[str, str]) -> None:
        self._enter("set_threads")
        with self._lock:
            self._add_threads(alert_id, threads)

    def resolve(self, alert_id: int, *, at: datetime) -> bool:
        self._enter("resolve")
        with self._lock:
            return self._resolve(alert_id, at=at)

    def add_silence(self, *, target: str, until: datetime, created_by: str) -> None:
        self._enter("add_silence")
        with self._lock:
            self.silence_rows.append(Silence(target=target, until=until, created_by=created_by))

    def lift_silences(self, target: str) -> int:
        self._enter("lift_silences")
        with self._lock:
            kept = [s for s in self.silence_rows if s.target != target]
            lifted = len(self.silence_rows) - len(kept)
            self.silence_rows = kept
            return lifted

    def silences(self, *, at: datetime) -> list[Silence]:
        """Per target, the silence that lasts longest, among those still in force."""
        self._enter("silences")
        longest: dict[str, Silence] = {}
        with self._lock:
            for silence in self.silence_rows:
                if silence.until <= at:
                    continue
                seen = longest.get(silence.target)
                if seen is None or seen.until < silence.until:
                    longest[silence.target] = silence
        return [longest[target] for target in sorted(longest)]

    # --- helpers (called under the lock) -----------------------------------------------------

    def _open_one(self, like: AlertRecord) -> AlertRecord | None:
        """The open alert of ``like``'s environment and fingerprint (the unique index)."""
        return next(
            (
                a
                for a in self.alerts.values()
                if a.resolved_at is None
                and a.fingerprint == like.fingerprint
                and (a.env or "") == (like.env or "")
            ),
            None,
        )

    def _insert(
        self,
        *,
        fingerprint: str,
        kind: str,
        app: str | None,
        severity: str,
        message: str,
        env: str | None,
        at: datetime,
    ) -> AlertRecord | None:
        alert = AlertRecord(
            id=max(self.alerts, default=0) + 1,
            fingerprint=fingerprint,
            kind=kind,
            app=app,
            severity=severity,
            message=message,
            first_seen=at,
            last_seen=at,
            env=env,
        )
        if self._open_one(alert) is not None:
            return None  # another replica opened it: it announces it
        self.alerts[alert.id] = alert
        return alert

    def _update(self, alert_id: int, **changes: Any) -> None:
        alert = self.alerts.get(alert_id)
        if alert is not None:
            self.alerts[alert_id] = replace(alert, **changes)

    def _claim(self, alert_id: int, *, previous: datetime | None, at: datetime) -> bool:
        alert = self.alerts.get(alert_id)
        if alert is None or alert.last_sent != previous:
            return False
        self.alerts[alert_id] = replace(alert, last_sent=at)
        return True

    def _unclaim(self, alert_id: int, *, previous: datetime | None, at: datetime) -> None:
        alert = self.alerts.get(alert_id)
        if alert is not None and alert.last_sent == at:
            self.alerts[alert_id] = replace(alert, last_sent=previous)

    def _add_threads(self, alert_id: int, threads: Mapping[str, str]) -> None:
        alert = self.alerts.get(alert_id)
        if alert is not None:
            self.alerts[alert_id] = replace(alert, threads={**alert.threads, **threads})

    def _resolve(self, alert_id: int, *, at: datetime) -> bool:
        alert = self.alerts.get(alert_id)
        if alert is None or alert.resolved_at is not None:
            return False
        self.alerts[alert_id] = replace(alert, resolved_at=at)
        return True


def _resolved(alert: AlertRecord) -> datetime:
    assert alert.resolved_at is not None
    return alert.resolved_at


if TYPE_CHECKING:
    from bot.core.ports import AlertStore

    _conforms: AlertStore = MemoryAlertStore()
