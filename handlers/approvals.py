"""Approvals (``PGDB_REQUIRE_APPROVAL``): a ``create`` that waits for an operator.

``requesters``: a create by a non-operator waits; ``all``: every create waits, and an operator
never approves their own (four eyes). The request is stored in PostgreSQL, announced in the ops
channel with Approve and Deny, decided by ``/pgdb approve|deny <id>`` (the buttons run the same
commands), then run; the requester hears the decision in the thread of their command. Requests
expire after ``PGDB_APPROVAL_TTL``; an approved request stays valid for re-runs of a create that
stopped midway for as long again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from bot.core.errors import PgdbError
from bot.core.model import ApprovalRequest, ApprovalStatus, AuditEntry, Requester, WorkflowStatus
from bot.core.names import AppName, parse_app_name
from bot.core.ports import ApprovalStore
from bot.core.reply import Alert, Button, Reply, StepState, error_reply
from bot.core.text import is_number
from handlers.access import Role, role_of
from handlers.commands import UsageError
from handlers.context import CommandContext, Services
from handlers.create import in_progress, run_create
from handlers.lifecycle import CREATE
from handlers.policy import namespace_policy
from handlers.rotate import refuse_during_rotation

log = logging.getLogger(__name__)

BOT = "pgdb-bot"  # who decides an expiry


def approval_needed(ctx: CommandContext, *, dry_run: bool) -> bool:
    """Whether this ``create`` waits for an operator (a dry run changes nothing: never)."""
    settings = ctx.services.settings
    if dry_run or settings.access.require_approval == "off":
        return False
    if settings.access.require_approval == "all":
        return True
    role = role_of(
        ctx.requester,
        requesters=settings.access.requesters,
        operators=settings.access.operators,
        groups=ctx.services.groups,
    )
    return role < Role.OPERATOR


def _store(services: Services) -> ApprovalStore:
    if services.approvals is None:
        raise PgdbError(
            "approvals need the bot's state in PostgreSQL (PGDB_PG_DSN); "
            "set PGDB_REQUIRE_APPROVAL=off to run without them"
        )
    return services.approvals


def _ttl(services: Services) -> timedelta:
    return timedelta(seconds=services.settings.access.approval_ttl.seconds)


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def gate_create(ctx: CommandContext, app: AppName, *, namespace: str | None) -> Reply | None:
    """None when the create may run now (an approval granted within PGDB_APPROVAL_TTL, for a
    re-run); else the reply of a new (or the already) pending request."""
    services = ctx.services
    store = _store(services)
    blocked = refuse_during_rotation(
        app, services.state.latest_workflow(app), command=f"/pgdb create {app}"
    )
    if blocked is not None:
        return error_reply(
            blocked, title=f"`{app}` is being rotated", correlation_id=ctx.correlation_id
        )
    now = services.clock()
    latest = store.latest_for(app)
    if latest is not None and _resumes(ctx, latest, namespace=namespace, now=now):
        return None
    if latest is not None and latest.status is ApprovalStatus.PENDING:
        if latest.expires_at > now:
            return Reply(
                title=f"`{app}` already waits for approval (request #{latest.id})",
                ok=False,
                private=True,
                outcome="pending",
                lines=[
                    f"{latest.requester} asked for `{latest.command}` at "
                    f"{_when(latest.requested_at)}; an operator decides with "
                    f"`/pgdb approve {latest.id}` or `/pgdb deny {latest.id} [reason]`. "
                    f"It expires at {_when(latest.expires_at)}."
                ],
                correlation_id=ctx.correlation_id,
            )
        expire(services, latest, at=now)
    # Under the app's lock, so two creates of one app at once make one request.
    with services.state.app_lock(app) as acquired:
        if not acquired:  # a workflow of this app runs now: say which
            return in_progress(ctx, app)
        again = store.latest_for(app)
        if again is not None and again.status is ApprovalStatus.PENDING:
            return error_reply(
                f"another `create {app}` was requested a moment ago (request #{again.id}): "
                "`/pgdb status` shows it",
                title=f"`{app}` is already requested",
                correlation_id=ctx.correlation_id,
                outcome="pending",
            )
        return _request(ctx, store, app, namespace=namespace, now=now)


def _resumes(
    ctx: CommandContext, approved: ApprovalRequest, *, namespace: str | None, now: datetime
) -> bool:
    """Whether this create re-runs an approved one that stopped: same requester, same
    request, within PGDB_APPROVAL_TTL, and nothing but that unfinished create ran since the
    decision (a create stopped before writing anything leaves no record). Anything else
    (another person, a finished create, an offboarding since) asks again."""
    if approved.status is not ApprovalStatus.APPROVED or approved.namespace != namespace:
        return False
    if not same_person(approved.requester, ctx.requester):
        return False
    decided = approved.decided_at or approved.requested_at
    if now - decided >= _ttl(ctx.services):
        return False
    latest = ctx.services.state.latest_workflow(AppName(approved.app))
    if latest is None or latest.started_at < decided:
        return True  # the approved run stopped before writing anything, and nothing ran since
    return (
        latest.kind == CREATE
        and latest.status is not WorkflowStatus.DONE
        and latest.requester == approved.requester
    )


def _request(
    ctx: CommandContext,
    store: ApprovalStore,
    app: AppName,
    *,
    namespace: str | None,
    now: datetime,
) -> Reply:
    services, who = ctx.services, ctx.requester.user_id
    reply = Reply(
        title=f"`{app}` waits for an operator's approval",
        outcome="pending",
        correlation_id=ctx.correlation_id,
    )
    # Shown first, so the request remembers the message whose thread hears the decision.
    ctx.conversation.show(reply)
    link = ctx.conversation.message_link
    link = link if isinstance(link, str) and link else None
    request = store.request(
        app=app,
        namespace=namespace,
        requester=who,
        platform=ctx.requester.platform,
        expires_at=now + _ttl(services),
        message_link=link,
    )
    threads = services.announcer.announce(
        Alert(
            key=f"approval:{app}",
            severity="info",
            title=f"Request #{request.id}: {who} asks for `{request.command}`",
            text=(
                f"Approve: `/pgdb approve {request.id}` · Deny: `/pgdb deny {request.id} "
                f"[reason]` (operators{', not the requester' if _four_eyes(services) else ''}). "
                f"Expires at {_when(request.expires_at)}."
            ),
            buttons=(
                Button(label="Approve", command=f"/pgdb approve {request.id}", style="primary"),
                Button(label="Deny", command=f"/pgdb deny {request.id}", style="danger"),
            ),
        )
    )
    if threads:
        store.set_threads(request.id, threads)
    reply.title = f"Request #{request.id}: `{app}` waits for an operator's approval"
    reply.lines.append(
        f"Nothing is created until an operator approves (`/pgdb approve {request.id}`) or "
        f"denies (`/pgdb deny {request.id} [reason]`) it; you will hear the decision here. "
        f"The request expires at {_when(request.expires_at)}."
    )
    if not threads:
        reply.lines.append(
            "The ops channel could not be told (no chat platform took the message): "
            f"ask an operator to run `/pgdb approve {request.id}`."
        )
    return reply


def same_person(user_id: str, requester: Requester) -> bool:
    """One person across surfaces: the console's ``--as <id>`` and a platform user with the
    same id are the same person (user ids are what PGDB_OPERATORS lists, whatever the
    platform), so four eyes compare the id alone."""
    return user_id.strip().casefold() == requester.user_id.strip().casefold()


def _four_eyes(services: Services) -> bool:
    return services.settings.access.require_approval == "all"


def _request_id(raw: str, *, command: str) -> int:
    text = raw.removeprefix("#")
    if not is_number(text):
        raise UsageError(
            f"`{raw}` is not a request id (a number, e.g. `/pgdb {command} 12`): "
            "`/pgdb status` lists the pending requests"
        )
    return int(text)


def _pending(ctx: CommandContext, raw: str, *, command: str) -> ApprovalRequest | Reply:
    """The pending request ``raw`` names, or the reply saying why it cannot be decided."""
    services = ctx.services
    store = _store(services)
    request = store.get(_request_id(raw, command=command))
    cid = ctx.correlation_id
    if request is None:
        return error_reply(
            f"there is no request #{raw.removeprefix('#')}: `/pgdb status` lists the pending "
            "requests",
            title="No such request",
            correlation_id=cid,
        )
    if request.status is ApprovalStatus.PENDING and request.expires_at <= services.clock():
        request = expire(services, request, at=services.clock()) or request
    if request.status is not ApprovalStatus.PENDING:
        by = f" by {request.decided_by}" if request.decided_by not in (None, BOT) else ""
        at = f" at {_when(request.decided_at)}" if request.decided_at else ""
        again = (
            f" {request.requester} can ask again with `{request.command}`."
            if request.status is ApprovalStatus.EXPIRED
            else ""
        )
        return error_reply(
            f"request #{request.id} (`{request.command}`) was already "
            f"{request.status.value}{by}{at}.{again}",
            title=f"Request #{request.id} is {request.status.value}",
            correlation_id=cid,
        )
    if same_person(request.requester, ctx.requester):
        return error_reply(
            f"request #{request.id} is yours (asked as {request.requester} on "
            f"{request.platform}): another operator decides it (four eyes).",
            title="Not allowed",
            correlation_id=cid,
            outcome="refused",
        )
    return request


def run_approve(ctx: CommandContext, raw_id: str) -> Reply:
    services = ctx.services
    found = _pending(ctx, raw_id, command="approve")
    if isinstance(found, Reply):
        return found
    approver = ctx.requester.user_id
    # Checked again before deciding: PGDB_DENY_NAMES may have changed since the request.
    app = parse_app_name(
        found.app, bot_role=services.bot_role, deny=services.settings.access.deny_names
    )
    # So may PGDB_SECRET_NAMESPACES: a request never delivers where the rule refuses today.
    refused = found.namespace and namespace_policy(services.settings.layout).refusal(
        found.namespace
    )
    if refused:
        return error_reply(
            f"request #{found.id} (`{found.command}`) cannot be approved: {refused}",
            title=f"Namespace `{found.namespace}` not allowed",
            correlation_id=ctx.correlation_id,
            outcome="refused",
        )
    request = _store(services).decide(
        found.id, status=ApprovalStatus.APPROVED, by=approver, at=services.clock()
    )
    if request is None:
        return error_reply(
            f"request #{found.id} was decided by someone else a moment ago: "
            "`/pgdb status` shows the app",
            title=f"Request #{found.id} already decided",
            correlation_id=ctx.correlation_id,
        )
    _note_ops(services, request, f"Request #{request.id} approved by {approver}")
    # The create runs as the requester asked it; its progress shows here, and its
    # follow-through goes to the requester's thread.
    as_requester = CommandContext(
        services=services,
        requester=Requester(user_id=request.requester, platform=request.platform),
        conversation=ctx.conversation,
        correlation_id=ctx.correlation_id,
    )
    reply = run_create(
        as_requester,
        app,
        extra_namespace=request.namespace,
        dry_run=False,
        thread_link=request.message_link,
        approved=True,  # an operator decided: what needs one (bringing an app back) may run
    )
    reply.lines.insert(0, f"Approved by {approver}: request #{request.id} by {request.requester}.")
    services.announcer.tell(request.message_link, _outcome(request, approver, reply))
    return reply


def _outcome(request: ApprovalRequest, approver: str, reply: Reply) -> str:
    text = f"Request #{request.id} was approved by {approver}. {reply.title}."
    for label, value in reply.fields:
        if label in ("Pull request", "Branch to merge", "Manifests", "Password"):
            text += f"\n{label}: {value}"
    failed = [s for s in reply.steps if s.state is StepState.FAILED]
    if failed:
        text += f"\nStopped at “{failed[0].label}”: {failed[0].detail}. Run `{request.command}`"
        text += " again to resume: the approval still holds."
    return text


def run_deny(ctx: CommandContext, raw_id: str, reason: str) -> Reply:
    services = ctx.services
    found = _pending(ctx, raw_id, command="deny")
    if isinstance(found, Reply):
        return found
    denier = ctx.requester.user_id
    reason = " ".join(reason.split())[:300]
    request = _store(services).decide(
        found.id, status=ApprovalStatus.DENIED, by=denier, reason=reason, at=services.clock()
    )
    if request is None:
        return error_reply(
            f"request #{found.id} was decided by someone else a moment ago",
            title=f"Request #{found.id} already decided",
            correlation_id=ctx.correlation_id,
        )
    because = f": {reason}" if reason else ""
    _note_ops(services, request, f"Request #{request.id} denied by {denier}{because}")
    told = services.announcer.tell(
        request.message_link,
        f"Request #{request.id} (`{request.command}`) was denied by {denier}{because}. "
        "Nothing was created.",
    )
    return Reply(
        title=f"Request #{request.id} denied: `{request.app}` is not created",
        correlation_id=ctx.correlation_id,
        lines=[
            f"{request.requester} asked for `{request.command}`{because or ''}."
            + (" They were told in their thread." if told else "")
        ],
    )


def expire(services: Services, request: ApprovalRequest, *, at: datetime) -> ApprovalRequest | None:
    """Expire one pending request (whoever gets there first: the pass, or a decision)."""
    expired = _store(services).decide(request.id, status=ApprovalStatus.EXPIRED, by=BOT, at=at)
    if expired is None:
        return None
    try:
        services.state.record_audit(
            AuditEntry(
                user=BOT,
                platform="scheduler",
                command=f"expire request #{expired.id} ({expired.command})",
                app=expired.app,
                result="expired",
                detail=f"requested by {expired.requester} at {_when(expired.requested_at)}",
            )
        )
    except PgdbError as exc:
        log.warning("audit log unavailable, expiry of #%d not recorded: %s", expired.id, exc)
    _note_ops(services, expired, f"Request #{expired.id} expired: nobody decided it in time")
    services.announcer.tell(
        expired.message_link,
        f"Request #{expired.id} (`{expired.command}`) expired: no operator decided it within "
        f"{services.settings.access.approval_ttl}. Nothing was created; ask again with "
        f"`{expired.command}`.",
    )
    return expired


def expire_due(services: Services) -> list[ApprovalRequest]:
    """Expire every pending request past ``PGDB_APPROVAL_TTL`` (the leader's pass)."""
    if services.approvals is None:
        return []
    now = services.clock()
    return [
        expired
        for request in services.approvals.pending()
        if request.expires_at <= now and (expired := expire(services, request, at=now))
    ]


# A decision that comes right after the announcement (a button clicked at once, a script) may
# read the request before the announcement's threads are recorded: it waits this long for them.
THREADS_WAIT_SECONDS = 3.0


def _note_ops(services: Services, request: ApprovalRequest, text: str) -> None:
    """The decision, in the thread of the request's ops announcement (where it has one)."""
    threads = request.threads or _recorded_threads(services, request)
    if not threads:
        return
    services.announcer.announce(
        Alert(key=f"approval:{request.app}", severity="info", title=text, text="", resolved=True),
        threads=threads,
    )


def _recorded_threads(services: Services, request: ApprovalRequest) -> Mapping[str, str]:
    """The announcement's threads once recorded, for a request announced a moment ago; none
    for an older one (it was never announced: no chat platform, or the post failed)."""
    if not services.announcer.sinks:
        return {}
    young = services.clock() - request.requested_at < timedelta(seconds=THREADS_WAIT_SECONDS * 2)
    end = time.monotonic() + THREADS_WAIT_SECONDS
    while young and time.monotonic() < end:
        time.sleep(0.1)
        found = _store(services).get(request.id)
        if found is not None and found.threads:
            return found.threads
    return {}
