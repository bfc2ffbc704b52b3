"""Follow-through after ``create``: the leader's diagnostics pass watches each
onboarded app until every layer is ok — manifests on the base branch, ``Database`` applied, the
Secret synced with the stored password, that password opening the role — then says "`<app>` is
ready" in the thread of the command's message; past ``PGDB_FOLLOW_DEADLINE`` it says, once,
which layer is stuck there, and sends the same to the ops channel.

Reads come from the pass's one observation and diagnosis (no extra call per app); the only
writes are the compare-and-set on the workflow record and the messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.core.errors import PgdbError
from bot.core.model import PasswordVerdict, WorkflowRecord
from bot.core.names import AppName
from bot.core.ports import AlertSink, ThreadReplier
from bot.core.reply import Alert
from handlers.assessment import assess
from handlers.checks import FINE, Check, CheckOutcome
from handlers.context import Services
from handlers.observe import Observation

log = logging.getLogger(__name__)

READY = "ready"
STUCK = "stuck"


@dataclass(frozen=True, kw_only=True)
class FollowUp:
    workflow: WorkflowRecord
    result: str  # READY or STUCK
    text: str
    stuck_at: Check | None = None


def decide(
    obs: Observation,
    services: Services,
    workflow: WorkflowRecord,
    verdict: PasswordVerdict | None,
    *,
    deadline: timedelta,
) -> FollowUp | None:
    """What to tell the requester now, or None to keep watching."""
    app = AppName(workflow.app)
    verdicts: dict[str, PasswordVerdict] = {app: verdict} if verdict is not None else {}
    checks = list(assess(obs, services, only=app, verdicts=verdicts).apps[app].checks)
    # The layers in the order an onboarding goes through them: an unmerged PR is the cause
    # when the database is missing, not the other way round.
    ordered = sorted(checks, key=lambda c: c.name != "manifests")
    first = next((c for c in ordered if c.outcome not in FINE), None)
    if first is None:
        return FollowUp(
            workflow=workflow,
            result=READY,
            text=f"`{app}` is ready: every layer checks out "
            f"({', '.join(c.name for c in checks if c.outcome is CheckOutcome.OK)}).",
        )
    if obs.at - workflow.started_at < deadline:
        return None
    return FollowUp(
        workflow=workflow,
        result=STUCK,
        text=f"`{app}` is not ready after {_human(deadline)}: stuck at {first.name}: "
        f"{first.detail} [{first.source}]. `/pgdb status {app}` shows every layer.",
        stuck_at=first,
    )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def follow_through(
    obs: Observation,
    services: Services,
    verdicts: Mapping[str, PasswordVerdict],
    *,
    repliers: Sequence[ThreadReplier],
    ops: Sequence[AlertSink] = (),
    deadline: timedelta,
) -> list[FollowUp]:
    """Post the follow-ups due in this pass; the ones posted (or given up on)."""
    if not repliers:
        return []  # the console has no thread: follow-through is for chat platforms only
    try:
        pending = services.state.pending_follow_ups()
    except PgdbError as exc:
        log.warning("follow-through skipped: bot state unavailable: %s", exc)
        return []
    done: list[FollowUp] = []
    for workflow in pending:
        follow = decide(obs, services, workflow, verdicts.get(workflow.app), deadline=deadline)
        if follow is None or workflow.message_link is None:
            continue
        try:
            if not services.state.mark_followed_up(workflow.id, result=follow.result):
                continue  # another replica posted it
        except PgdbError as exc:
            log.warning("follow-through of %s not recorded: %s", workflow.app, exc)
            continue
        if not _post(workflow.message_link, follow.text, repliers):
            try:  # retried next pass
                services.state.clear_follow_up(workflow.id, result=follow.result)
            except PgdbError as exc:
                log.warning("follow-through of %s could not be undone: %s", workflow.app, exc)
            continue
        done.append(follow)
        log.info("follow-through: %s %s", workflow.app, follow.result)
        if follow.result == STUCK:
            _tell_ops(follow, ops)
    return done


def _post(link: str, text: str, repliers: Sequence[ThreadReplier]) -> bool:
    """True when posted, or when no platform owns the link (nothing to retry)."""
    for replier in repliers:
        try:
            if replier.reply_in_thread(link, text):
                return True
        except PgdbError as exc:
            log.warning("follow-through reply on %s failed: %s", replier.name, exc)
            return False
    log.warning("follow-through: no configured chat platform owns %s; not posted", link)
    return True


def _tell_ops(follow: FollowUp, ops: Sequence[AlertSink]) -> None:
    app = follow.workflow.app
    alert = Alert(
        key=f"follow_stuck:{app}",
        severity="warning",
        title=f"`{app}` is stuck after create",
        text=follow.text + f" (requested by {follow.workflow.requester})",
    )
    for sink in ops:
        try:
            sink.send_alert(alert)
        except PgdbError as exc:
            log.warning("follow-through alert on %s failed: %s", sink.name, exc)
