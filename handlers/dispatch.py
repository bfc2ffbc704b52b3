"""The one entry point every chat adapter calls: parse, authorize, run, audit."""

from __future__ import annotations

import logging

from bot.core.errors import PgdbError
from bot.core.model import AuditEntry
from bot.core.names import (
    AppName,
    InvalidAppName,
    InvalidNamespace,
    parse_app_name,
    parse_namespace,
)
from bot.core.ports import Conversation
from bot.core.reply import Reply, error_reply
from bot.core.text import is_number, refuse_at_edge, storable
from bot.metrics import COMMANDS
from handlers.access import Role, check_role
from handlers.approvals import approval_needed, gate_create, run_approve, run_deny
from handlers.commands import Command, UsageError, parse
from handlers.context import CommandContext, Requester, Services
from handlers.create import needs_operator, run_create
from handlers.diagnose import run_diagnose
from handlers.help import run_help
from handlers.offboard import run_offboard
from handlers.policy import namespace_policy
from handlers.repair import run_repair
from handlers.rotate import run_rotate
from handlers.silence import run_silence
from handlers.status import run_list, run_status

log = logging.getLogger(__name__)


def dispatch(
    services: Services, *, text: str, requester: Requester, conversation: Conversation
) -> Reply:
    """Run one ``/pgdb`` command and show its reply; every outcome is audited."""
    ctx = CommandContext(services=services, requester=requester, conversation=conversation)
    command: Command | None = None
    refusal = refuse_at_edge(text)  # the platforms refuse these first; the console does here
    try:
        if refusal is not None:
            reply = error_reply(
                refusal.message,
                title="Refused",
                correlation_id=ctx.correlation_id,
                outcome=refusal.outcome,
            )
        else:
            command = parse(text)
            reply = _authorized(ctx, command)
    except UsageError as exc:
        reply = error_reply(
            str(exc), title="Usage", correlation_id=ctx.correlation_id, outcome="usage"
        )
    except InvalidAppName as exc:
        reply = error_reply(
            str(exc), title="Invalid app name", correlation_id=ctx.correlation_id, outcome="usage"
        )
    except InvalidNamespace as exc:
        reply = error_reply(
            str(exc), title="Invalid namespace", correlation_id=ctx.correlation_id, outcome="usage"
        )
    except PgdbError as exc:
        reply = error_reply(str(exc), correlation_id=ctx.correlation_id)
    except Exception as exc:
        log.exception("command failed [%s]", ctx.correlation_id)
        reply = error_reply(
            f"internal error {type(exc).__name__}; give this id to an operator: "
            f"{ctx.correlation_id}",
            correlation_id=ctx.correlation_id,
        )
    reply.correlation_id = ctx.correlation_id
    reply.final = True
    conversation.show(reply)
    result = reply.outcome or ("ok" if reply.ok else "failed")
    COMMANDS.labels(command.name if command else "unparsable", result).inc()
    log.info(
        "command %s: %s",
        command.name if command else "unparsable",
        result,
        extra={
            "correlation_id": ctx.correlation_id,
            "user": ctx.requester.user_id,
            "platform": ctx.requester.platform,
            "app": command.args.get("app") if command else None,
        },
    )
    _audit(ctx, command, reply, refused=storable(text) if refusal is not None else None)
    return reply


def _authorized(ctx: CommandContext, command: Command) -> Reply:
    settings = ctx.services.settings
    spec = command.spec
    check = check_role(
        ctx.requester,
        spec.needs,
        requesters=settings.requesters,
        operators=settings.operators,
        groups=ctx.services.groups,
    )
    if not check.allowed:
        who = "operators" if spec.needs is Role.OPERATOR else "requesters"
        variable = "PGDB_OPERATORS" if spec.needs is Role.OPERATOR else "PGDB_REQUESTERS"
        unchecked = f" ({'; '.join(check.unchecked)}: try again shortly)" if check.unchecked else ""
        return error_reply(
            f"`/pgdb {spec.name}` is for {who}, and {ctx.requester.user_id} is not one "
            f"({variable}){unchecked}. Ask a platform operator.",
            title="Not allowed",
            correlation_id=ctx.correlation_id,
            outcome="refused",
        )
    if not spec.available:
        return error_reply(
            f"`/pgdb {spec.name}` is not available in this version of pgdb-bot yet.",
            title="Not available",
            correlation_id=ctx.correlation_id,
        )
    return _run(ctx, command)


def _app(ctx: CommandContext, raw: str) -> AppName:
    return parse_app_name(
        raw, bot_role=ctx.services.bot_role, deny=ctx.services.settings.deny_names
    )


def _run(ctx: CommandContext, command: Command) -> Reply:
    name = command.name
    if name == "help":
        return run_help(correlation_id=ctx.correlation_id)
    if name == "create":
        raw_namespace = command.options.get("namespace")
        namespace = parse_namespace(raw_namespace) if raw_namespace is not None else None
        refused = namespace and namespace_policy(ctx.services.settings).refusal(namespace)
        if refused:
            return error_reply(
                refused,
                title=f"Namespace `{namespace}` not allowed",
                correlation_id=ctx.correlation_id,
                outcome="refused",
            )
        app = _app(ctx, command.args["app"])
        dry_run = "dry-run" in command.flags
        # A requester's create that would bring an offboarded app back is an operator's
        # decision: with approvals on, it becomes a request (else the planner refuses it).
        operator_needed = (
            not dry_run
            and ctx.services.settings.require_approval != "off"
            and needs_operator(ctx, app)
        )
        if operator_needed or approval_needed(ctx, dry_run=dry_run):
            waiting = gate_create(ctx, app, namespace=namespace)
            if waiting is not None:
                return waiting
        return run_create(ctx, app, extra_namespace=namespace, dry_run=dry_run)
    if name == "approve":
        return run_approve(ctx, command.args["id"])
    if name == "deny":
        return run_deny(ctx, command.args["id"], command.args.get("rest", ""))
    if name == "status":
        raw = command.args.get("app")
        return run_status(ctx, _app(ctx, raw) if raw else None, page=_page(command))
    if name == "list":
        return run_list(ctx, _page(command))
    if name == "diagnose":
        return run_diagnose(ctx)
    if name == "repair":
        return run_repair(ctx, _app(ctx, command.args["app"]), confirmed="yes" in command.flags)
    if name == "offboard":
        app = _app(ctx, command.args["app"])
        return run_offboard(ctx, app, confirmed="yes" in command.flags)
    if name == "rotate":
        return run_rotate(ctx, _app(ctx, command.args["app"]), confirmed="yes" in command.flags)
    if name == "silence":
        return run_silence(ctx, command.args["target"], command.args["duration"])
    raise UsageError(f"`/pgdb {name}` is not handled. Try `/pgdb help`.")


def _page(command: Command) -> int:
    page = command.options.get("page", "1")
    if not is_number(page):
        raise UsageError(f"`--page` takes a number, not `{page}`. Usage: `{command.spec.usage}`")
    return int(page)


def _audit(
    ctx: CommandContext, command: Command | None, reply: Reply, *, refused: str | None = None
) -> None:
    app = command.args.get("app") if command else None
    entry = AuditEntry(
        user=ctx.requester.user_id,
        platform=ctx.requester.platform,
        command=command.text if command else refused or "(unparsable)",
        app=app,
        result=reply.outcome or ("ok" if reply.ok else "failed"),
        detail=reply.title[:200],
        correlation_id=ctx.correlation_id,
    )
    try:
        ctx.services.state.record_audit(entry)
    except PgdbError as exc:
        log.warning("audit log unavailable, command %s not recorded: %s", entry.command, exc)
