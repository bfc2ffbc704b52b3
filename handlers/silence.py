"""``/pgdb silence <app or kind> <duration|off>``: mute matching alerts for a while.

A silence matches a finding by its app or by its kind; silenced findings are not announced,
nor is their "resolved". Silences are stored with the alert state, so every replica (and the
next leader) honours them.
"""

from __future__ import annotations

from datetime import timedelta

from bot.core.durations import format_duration, parse_duration
from bot.core.names import InvalidAppName, parse_app_name
from bot.core.reply import Reply, error_reply
from handlers.alerts import FINDING_KINDS
from handlers.commands import UsageError
from handlers.context import CommandContext
from handlers.observe import known_apps, observe

MAX_SILENCE = timedelta(days=90)
USAGE = "/pgdb silence <app or kind> <duration|off>"


def _target(ctx: CommandContext, raw: str) -> str:
    """A finding kind, or a known app: anything else would silence nothing (a typo)."""
    if raw in FINDING_KINDS:
        return raw
    refused = UsageError(
        f"`{raw}` is neither a known app nor a finding kind ({', '.join(FINDING_KINDS)}). "
        f"`/pgdb list` shows the known apps. Usage: `{USAGE}`"
    )
    try:
        app = parse_app_name(raw, bot_role=ctx.services.bot_role)
    except InvalidAppName:
        raise refused from None
    if app not in known_apps(observe(ctx.services), ctx.services):
        raise refused
    return app


def run_silence(ctx: CommandContext, raw_target: str, raw_duration: str) -> Reply:
    store = ctx.services.alerts
    if store is None:
        return error_reply(
            "silences need the bot's alert state (PostgreSQL), which is not available here",
            correlation_id=ctx.correlation_id,
        )
    target = _target(ctx, raw_target.strip())
    if raw_duration.strip().lower() in {"off", "0", "none"}:
        lifted = store.lift_silences(target)
        return Reply(
            title=f"Alerts about `{target}` are announced again"
            if lifted
            else f"`{target}` was not silenced",
            correlation_id=ctx.correlation_id,
        )
    try:
        seconds = parse_duration(raw_duration)
    except ValueError as exc:
        raise UsageError(f"{exc}. Usage: `{USAGE}`") from None
    if timedelta(seconds=seconds) > MAX_SILENCE:
        raise UsageError(f"a silence lasts at most 90d. Usage: `{USAGE}`")
    until = ctx.services.clock() + timedelta(seconds=seconds)
    store.add_silence(target=target, until=until, created_by=ctx.requester.user_id)
    what = "kind" if target in FINDING_KINDS else "app"
    return Reply(
        title=f"Silenced alerts about `{target}` for {format_duration(seconds)}",
        lines=[
            f"Until {until:%Y-%m-%d %H:%M} UTC, findings of {what} `{target}` are not announced "
            "in the ops channel (they still show in `/pgdb diagnose`).",
            f"To lift it earlier: `/pgdb silence {target} off`",
        ],
        correlation_id=ctx.correlation_id,
    )
