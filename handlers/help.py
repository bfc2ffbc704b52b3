"""``/pgdb help``."""

from __future__ import annotations

from bot.core.reply import Reply
from handlers.access import Role
from handlers.commands import COMMANDS
from handlers.context import Fleet


def run_help(*, correlation_id: str = "", environments: Fleet | None = None) -> Reply:
    reply = Reply(title="pgdb — self-service PostgreSQL databases", correlation_id=correlation_id)
    for spec in COMMANDS.values():
        if not spec.available:
            continue
        who = " (operators)" if spec.needs is Role.OPERATOR else ""
        reply.lines.append(f"`{spec.usage}` — {spec.summary}{who}")
    reply.lines.append("")
    reply.lines.append("Examples:")
    reply.lines.append("`/pgdb create docspell` — credentials, role and a pull request")
    reply.lines.append("`/pgdb create docspell --namespace docspell --dry-run` — show the plan")
    reply.lines.append("`/pgdb status docspell` — every layer of one app")
    reply.lines.append(
        "`/pgdb create photos --extension earthdistance,cube` — with extensions the platform "
        "team allows (PGDB_ALLOWED_EXTENSIONS)"
    )
    reply.lines.append("`/pgdb usage --top 10` — the ten biggest apps: connections, sizes")
    reply.lines.append(
        "`/pgdb offboard docspell` — show what offboarding would do (the data is always kept)"
    )
    if environments is not None and environments.declared:
        reply.lines.append("")
        reply.lines.append(
            f"Environments: {', '.join(environments.names)}. `create` goes to "
            f"{', '.join(environments.default)} unless `--env <e>[,<e>…]` or `--env all` says "
            "otherwise; `status`, `list` and `diagnose` show every environment; `rotate`, "
            "`repair` and `offboard` need `--env <e>` when the app is in more than one."
        )
        reply.lines.append("`/pgdb create docspell --env prod` — onboard into prod too")
    return reply
