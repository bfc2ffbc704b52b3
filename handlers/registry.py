"""Every command's handler, registered with its command's spec.

A command is one spec in ``handlers/commands.py`` (its syntax, who may run it) and one handler
here, which turns the parsed command into a call of its use case; a test checks that every spec
has a handler. What every command goes through (authorization, errors, metrics, audit) is the
middleware chain in ``handlers/dispatch.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.core.limits import (
    DatabaseOptions,
    allowlist_refusal,
    not_allowed,
    parse_connection_limit,
    parse_names,
    parse_statement_timeout,
)
from bot.core.names import AppName, parse_app_name, parse_namespace
from bot.core.reply import Reply, error_reply
from bot.core.text import is_number
from handlers.approvals import approval_needed, gate_create, run_approve, run_deny
from handlers.commands import COMMANDS, Command, CommandSpec, UsageError
from handlers.context import CommandContext
from handlers.create import needs_operator, run_create
from handlers.diagnose import run_diagnose
from handlers.help import run_help
from handlers.limits import run_limits
from handlers.offboard import run_offboard
from handlers.policy import namespace_policy
from handlers.repair import run_repair
from handlers.rotate import run_rotate
from handlers.silence import run_silence
from handlers.status import run_list, run_status
from handlers.update import run_update
from handlers.usage import DEFAULT_TOP, run_usage

Handler = Callable[[CommandContext, Command], Reply]


@dataclass(frozen=True)
class Route:
    """A command's spec and the handler that runs it."""

    spec: CommandSpec
    handle: Handler


def app_of(ctx: CommandContext, raw: str) -> AppName:
    """An app name from the command's text, refused when reserved, denied or the bot's own."""
    return parse_app_name(
        raw, bot_role=ctx.services.bot_role, deny=ctx.services.settings.access.deny_names
    )


def page_of(command: Command) -> int:
    page = command.options.get("page", "1")
    if not is_number(page):
        raise UsageError(f"`--page` takes a number, not `{page}`. Usage: `{command.spec.usage}`")
    return int(page)


def _help(ctx: CommandContext, command: Command) -> Reply:
    return run_help(correlation_id=ctx.correlation_id, environments=ctx.services.fleet)


def _names(command: Command, option: str) -> tuple[str, ...]:
    raw = command.options.get(option)
    if raw is None:
        return ()
    try:
        return parse_names(raw, what=option)
    except ValueError as exc:
        raise UsageError(f"{exc}. Usage: `{command.spec.usage}`") from None


def _not_allowed(ctx: CommandContext, extensions: tuple[str, ...]) -> Reply | None:
    """Extensions outside PGDB_ALLOWED_EXTENSIONS: refused with the list, nothing touched."""
    allowed = ctx.services.settings.guardrails.allowed_extensions
    refused = not_allowed(extensions, allowed)
    if not refused:
        return None
    return error_reply(
        allowlist_refusal(refused, allowed),
        title="Extension not allowed",
        correlation_id=ctx.correlation_id,
        outcome="refused",
    )


def _create(ctx: CommandContext, command: Command) -> Reply:
    extensions, schemas = _names(command, "extension"), _names(command, "schema")
    refused_extensions = _not_allowed(ctx, extensions)
    if refused_extensions is not None:
        return refused_extensions
    options = DatabaseOptions(extensions=extensions, schemas=schemas)
    raw_namespace = command.options.get("namespace")
    namespace = parse_namespace(raw_namespace) if raw_namespace is not None else None
    refused = namespace and namespace_policy(ctx.services.settings.layout).refusal(namespace)
    if refused:
        return error_reply(
            refused,
            title=f"Namespace `{namespace}` not allowed",
            correlation_id=ctx.correlation_id,
            outcome="refused",
        )
    app = app_of(ctx, command.args["app"])
    dry_run = "dry-run" in command.flags
    # A requester's create that would bring an offboarded app back is an operator's decision:
    # with approvals on, it becomes a request (else the planner refuses it).
    operator_needed = (
        not dry_run
        and ctx.services.settings.access.require_approval != "off"
        and needs_operator(ctx, app)
    )
    if operator_needed or approval_needed(ctx, dry_run=dry_run):
        if extensions or schemas:
            # an approval request carries the app and the namespace only
            return error_reply(
                "a create that waits for an operator's approval cannot carry `--extension` or "
                f"`--schema` yet: ask with `/pgdb create {app}`, then add extensions with "
                f"`/pgdb update {app} --extension …` once it is onboarded",
                title="Options not supported with approvals",
                correlation_id=ctx.correlation_id,
                outcome="refused",
            )
        waiting = gate_create(ctx, app, namespace=namespace)
        if waiting is not None:
            return waiting
    return run_create(ctx, app, extra_namespace=namespace, dry_run=dry_run, options=options)


def _limits(ctx: CommandContext, command: Command) -> Reply:
    app = app_of(ctx, command.args["app"])
    try:
        raw = command.options.get("connections")
        connections = parse_connection_limit(raw) if raw is not None else None
        raw = command.options.get("statement-timeout")
        timeout = parse_statement_timeout(raw) if raw is not None else None
    except ValueError as exc:
        raise UsageError(f"{exc}. Usage: `{command.spec.usage}`") from None
    return run_limits(
        ctx,
        app,
        connections=connections,
        statement_timeout_ms=timeout,
        confirmed="yes" in command.flags,
        dry_run="dry-run" in command.flags,
    )


def _update(ctx: CommandContext, command: Command) -> Reply:
    extensions = _names(command, "extension")
    if not extensions:
        raise UsageError(f"`--extension` is required. Usage: `{command.spec.usage}`")
    refused = _not_allowed(ctx, extensions)
    if refused is not None:
        return refused
    app = app_of(ctx, command.args["app"])
    return run_update(ctx, app, extensions=extensions, dry_run="dry-run" in command.flags)


def _usage(ctx: CommandContext, command: Command) -> Reply:
    top = command.options.get("top", str(DEFAULT_TOP))
    if not is_number(top):
        raise UsageError(f"`--top` takes a number, not `{top}`. Usage: `{command.spec.usage}`")
    return run_usage(ctx, top=int(top))


def _status(ctx: CommandContext, command: Command) -> Reply:
    raw = command.args.get("app")
    return run_status(ctx, app_of(ctx, raw) if raw else None, page=page_of(command))


def _confirmed(run: Callable[..., Reply]) -> Handler:
    """The handler of ``/pgdb <command> <app> [--yes]``."""

    def handle(ctx: CommandContext, command: Command) -> Reply:
        return run(ctx, app_of(ctx, command.args["app"]), confirmed="yes" in command.flags)

    return handle


HANDLERS: Mapping[str, Handler] = {
    "help": _help,
    "create": _create,
    "status": _status,
    "list": lambda ctx, command: run_list(ctx, page_of(command)),
    "diagnose": lambda ctx, command: run_diagnose(ctx),
    "repair": _confirmed(run_repair),
    "offboard": _confirmed(run_offboard),
    "rotate": _confirmed(run_rotate),
    "silence": lambda ctx, c: run_silence(ctx, c.args["target"], c.args["duration"]),
    "limits": _limits,
    "update": _update,
    "usage": _usage,
    "approve": lambda ctx, command: run_approve(ctx, command.args["id"]),
    "deny": lambda ctx, command: run_deny(ctx, command.args["id"], command.args.get("rest", "")),
}

ROUTES: Mapping[str, Route] = {
    name: Route(spec=spec, handle=HANDLERS[name]) for name, spec in COMMANDS.items()
}
