"""``/pgdb usage [--top N]`` (requesters): what each app takes of the shared cluster —
connections against its limit, its database's size, its extensions — biggest first, from the
same one observation as ``status`` (one catalog read, one Kubernetes read)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.limits import NO_LIMIT
from bot.core.reply import Reply, error_reply
from bot.core.sizes import format_size
from handlers.checks import WARNING_ICON
from handlers.context import CommandContext
from handlers.observe import known_apps, observe
from handlers.usage_checks import near_limit

DEFAULT_TOP = 20
MAX_TOP = 50  # one chat message (the renderers cut longer ones, with the hint to see more)


@dataclass(frozen=True, kw_only=True)
class Row:
    app: str
    connections: int | None
    limit: int | None
    size: int | None
    extensions: tuple[str, ...] | None  # None: not known (no Kubernetes, no Database CR)

    def line(self, *, warn_bytes: int) -> str:
        if self.connections is None:
            connections = "no role"
        elif self.limit is None or self.limit == NO_LIMIT:
            connections = f"{self.connections} connections (no limit)"
        else:
            connections = f"{self.connections}/{self.limit} connections"
        size = format_size(self.size) if self.size is not None else "no database"
        parts = [connections, size]
        if self.extensions:
            parts.append("extensions " + ", ".join(self.extensions))
        attention = (
            self.connections is not None
            and self.limit is not None
            and near_limit(self.connections, self.limit)
        ) or (self.size is not None and self.size > warn_bytes)
        return f"{WARNING_ICON + ' ' if attention else ''}{self.app}: {' · '.join(parts)}"


def run_usage(ctx: CommandContext, *, top: int = DEFAULT_TOP) -> Reply:
    services = ctx.services
    if top < 1:
        return error_reply(
            f"`--top` takes a number from 1 to {MAX_TOP}, not {top}. Usage: `/pgdb usage "
            "[--top <n>]`",
            title="Bad argument",
            correlation_id=ctx.correlation_id,
            outcome="usage",
        )
    obs = observe(services)
    state = obs.database.value
    if state is None:
        return error_reply(
            f"PostgreSQL could not be read: {obs.database.error}. Usage figures come from its "
            "catalogs; try again once it answers.",
            title="Usage unknown",
            correlation_id=ctx.correlation_id,
        )
    snap = obs.cluster.value
    rows: list[Row] = []
    for app in known_apps(obs, services):
        role = state.roles.get(app)
        database = state.databases.get(app)
        resource = snap.database_for(app) if snap is not None else None
        rows.append(
            Row(
                app=app,
                connections=role.connections if role is not None else None,
                limit=role.connection_limit if role is not None else None,
                size=database.size_bytes if database is not None else None,
                extensions=resource.extensions if resource is not None else None,
            )
        )
    rows.sort(key=lambda r: (-(r.size or -1), -(r.connections or 0), r.app))
    shown_count = min(top, MAX_TOP)
    total = sum(d.size_bytes or 0 for d in state.databases.values())
    title = f"Usage: {len(rows)} app(s), all databases {format_size(total)}"
    storage = snap.cluster.storage_bytes if snap is not None and snap.cluster else None
    if storage and snap is not None and snap.cluster is not None:
        title += f" of {snap.cluster.storage_size} ({total * 100 // storage} %)"
    reply = Reply(title=title, correlation_id=ctx.correlation_id)
    warn = services.settings.guardrails.database_size_warn
    reply.lines.extend(r.line(warn_bytes=warn.bytes) for r in rows[:shown_count])
    if not rows:
        reply.lines.append("No apps yet. Onboard one with `/pgdb create <app>`.")
    if len(rows) > shown_count:
        more = min(len(rows), MAX_TOP) if shown_count < MAX_TOP else None
        reply.lines.append(
            f"{len(rows) - shown_count} smaller app(s) not shown"
            + (f": `/pgdb usage --top {more}`" if more else "")
            + "; `/pgdb status <app>` shows one app's figures."
        )
        if more:
            reply.more_hint = f"/pgdb usage --top {more}"
    reply.lines.append(
        f"{WARNING_ICON} marks an app at 80 % of its connection limit or above "
        f"PGDB_DATABASE_SIZE_WARN ({warn}); biggest databases first."
    )
    return reply
