"""The one entry point every chat adapter calls: a command goes through one middleware chain
(shown, measured, audited, errors turned into replies, parsed, authorized) to its handler."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.core.errors import PgdbError
from bot.core.model import AuditEntry, Requester
from bot.core.names import InvalidAppName, InvalidNamespace
from bot.core.ports import Conversation
from bot.core.reply import Reply, error_reply
from bot.core.text import refuse_at_edge, storable
from handlers.access import Role, check_role
from handlers.commands import Command, UsageError, parse
from handlers.context import CommandContext, Services
from handlers.environments import chosen, run_in_environments
from handlers.registry import ROUTES

log = logging.getLogger(__name__)


@dataclass
class Request:
    """One command's text, and what the chain learns of it on the way in."""

    text: str
    command: Command | None = None  # set once parsed
    refused_at_edge: bool = False  # audited with the text cut and escaped, not parsed
    audited: bool = False  # recorded by each environment it ran in


Next = Callable[[], Reply]
Middleware = Callable[[CommandContext, Request, Next], Reply]


def audited(ctx: CommandContext, request: Request, call_next: Next) -> Reply:
    """Every outcome is in the audit log (of each environment the command ran in); a log that
    cannot be written does not fail the command (it is said in the bot's own log)."""
    reply = call_next()
    if not request.audited:  # not run in any environment: refused before
        _record(ctx, request, reply)
    return reply


def audited_here(ctx: CommandContext, request: Request, call_next: Next) -> Reply:
    """The outcome in this environment, in its audit log."""
    reply = call_next()
    request.audited = True
    _record(ctx, request, reply)
    return reply


def _record(ctx: CommandContext, request: Request, reply: Reply) -> None:
    command = request.command
    refused = storable(request.text) if request.refused_at_edge else None
    entry = AuditEntry(
        user=ctx.requester.user_id,
        platform=ctx.requester.platform,
        command=command.text if command else refused or "(unparsable)",
        app=command.args.get("app") if command else None,
        result=_result(reply),
        detail=reply.title[:200],
        correlation_id=ctx.correlation_id,
    )
    try:
        ctx.services.state.record_audit(entry)
    except PgdbError as exc:
        log.warning("audit log unavailable, command %s not recorded: %s", entry.command, exc)


def measured(ctx: CommandContext, request: Request, call_next: Next) -> Reply:
    """Counted for /metrics and logged with the correlation id."""
    reply = call_next()
    command = request.command
    name = command.name if command else "unparsable"
    ctx.services.metrics.command_handled(name, result=_result(reply))
    log.info(
        "command %s: %s",
        name,
        _result(reply),
        extra={
            "correlation_id": ctx.correlation_id,
            "user": ctx.requester.user_id,
            "platform": ctx.requester.platform,
            "app": command.args.get("app") if command else None,
        },
    )
    return reply


def shown(ctx: CommandContext, request: Request, call_next: Next) -> Reply:
    """The final reply replaces the progress message."""
    reply = call_next()
    reply.correlation_id = ctx.correlation_id
    reply.final = True
    ctx.conversation.show(reply)
    return reply


def errors_as_replies(ctx: CommandContext, request: Request, call_next: Next) -> Reply:
    """Bad input says what was wrong and what to type; an unexpected error gives the
    correlation id to hand to an operator (the traceback is in the log, never in chat)."""
    cid = ctx.correlation_id
    try:
        return call_next()
    except UsageError as exc:
        return error_reply(str(exc), title="Usage", correlation_id=cid, outcome="usage")
    except InvalidAppName as exc:
        return error_reply(str(exc), title="Invalid app name", correlation_id=cid, outcome="usage")
    except InvalidNamespace as exc:
        return error_reply(str(exc), title="Invalid namespace", correlation_id=cid, outcome="usage")
    except PgdbError as exc:
        return error_reply(str(exc), correlation_id=cid)
    except Exception as exc:
        log.exception("command failed [%s]", cid)
        return error_reply(
            f"internal error {type(exc).__name__}; give this id to an operator: {cid}",
            correlation_id=cid,
        )


def parsed(ctx: CommandContext, request: Request, call_next: Next) -> Reply:
    """Text the platforms refuse first (the console here) never reaches the parser."""
    refusal = refuse_at_edge(request.text)
    if refusal is not None:
        request.refused_at_edge = True
        return error_reply(
            refusal.message,
            title="Refused",
            correlation_id=ctx.correlation_id,
            outcome=refusal.outcome,
        )
    request.command = parse(request.text)
    return call_next()


def authorized(ctx: CommandContext, request: Request, call_next: Next) -> Reply:
    """Only requesters (or operators, for operators' commands) get further."""
    assert request.command is not None
    spec = request.command.spec
    access = ctx.services.settings.access
    check = check_role(
        ctx.requester,
        spec.needs,
        requesters=access.requesters,
        operators=access.operators,
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
    return call_next()


# Outermost first: the audit sees the reply the user saw.
MIDDLEWARE: Sequence[Middleware] = (
    audited,
    measured,
    shown,
    errors_as_replies,
    parsed,
)
# Then, in each environment the command acts on (the only one without a
# configuration file), with that environment's services and policy.
IN_EACH_ENVIRONMENT: Sequence[Middleware] = (
    audited_here,
    errors_as_replies,
    authorized,
)


def dispatch(
    services: Services, *, text: str, requester: Requester, conversation: Conversation
) -> Reply:
    """Run one ``/pgdb`` command and show its reply; every outcome is audited."""
    ctx = CommandContext(services=services, requester=requester, conversation=conversation)
    request = Request(text=text)

    def in_environments() -> Reply:
        command = request.command
        assert command is not None
        names = chosen(ctx.services, command)

        def run(env_ctx: CommandContext) -> Reply:
            def handler() -> Reply:
                return ROUTES[command.name].handle(env_ctx, command)

            return _through(IN_EACH_ENVIRONMENT, env_ctx, request, handler)

        return run_in_environments(ctx, names, run)

    return _through(MIDDLEWARE, ctx, request, in_environments)


def _through(
    chain: Sequence[Middleware], ctx: CommandContext, request: Request, last: Next
) -> Reply:
    if not chain:
        return last()
    first, rest = chain[0], chain[1:]
    return first(ctx, request, lambda: _through(rest, ctx, request, last))


def _result(reply: Reply) -> str:
    return reply.outcome or ("ok" if reply.ok else "failed")
