"""Commands across environments: which environments a command acts on, running it
in each (in parallel: one unreachable environment never holds up the others), and one reply
with a section per environment.

With one environment (no configuration file) a command runs once, as it always did.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from bot.core.ports import Conversation
from bot.core.reply import Button, Reply, Step
from handlers.checks import name_environment
from handlers.commands import Command, Spread, UsageError
from handlers.context import CommandContext, Fleet, Services
from handlers.observe import known_apps, observe

ALL = "all"


def chosen(services: Services, command: Command) -> tuple[str, ...]:
    """The environments ``command`` acts on, or a UsageError that says how to name them."""
    fleet = services.environments()
    spread = command.spec.environments
    raw = command.options.get("env")
    if not fleet.declared:
        if raw is not None and raw not in {services.env, ALL}:
            raise UsageError(
                f"this bot serves one environment, `{services.env}`: leave out --env "
                "(environments are declared in PGDB_CONFIG)"
            )
        return (services.env,)
    named = _named(fleet, raw) if raw is not None else None
    app = command.args.get("app")
    if spread is Spread.EACH:
        return named or fleet.default
    if spread is Spread.ALL:
        if named:
            return named
        found = environments_of(fleet, app) if app else ()
        return found or fleet.names
    if spread is Spread.ONE:
        if named is not None:
            if len(named) != 1:
                raise UsageError(
                    f"`/pgdb {command.name}` acts on one environment at a time: "
                    f"--env {' or --env '.join(named)}"
                )
            return named
        found = environments_of(fleet, app) if app else ()
        if len(found) > 1:
            raise UsageError(
                f"`{app}` is in {', '.join(found)}: say which with --env, e.g. "
                f"`/pgdb {command.name} {app} --env {found[-1]}`"
            )
        return found or fleet.default[:1]
    request_id = command.args.get("id")
    if request_id is not None and request_id.isdigit():  # approve, deny: the request's own
        for name, env in fleet.environments.items():
            if env.approvals is not None and env.approvals.get(int(request_id)) is not None:
                return (name,)
    return (services.env,)


def _named(fleet: Fleet, raw: str) -> tuple[str, ...]:
    if raw.strip() == ALL:
        return fleet.names
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in fleet.environments]
    if unknown or not names:
        raise UsageError(
            f"unknown environment `{','.join(unknown) or raw}`: the environments are "
            f"{', '.join(fleet.names)} (or `all`)"
        )
    return names


def environments_of(fleet: Fleet, app: str) -> tuple[str, ...]:
    """The environments that know ``app``, observed in parallel."""

    def knows(env: Services) -> bool:
        return app in known_apps(observe(env), env)

    with ThreadPoolExecutor(max_workers=len(fleet.environments)) as pool:
        found = dict(zip(fleet.names, pool.map(knows, fleet.environments.values()), strict=True))
    return tuple(name for name in fleet.names if found[name])


def run_in_environments(
    ctx: CommandContext,
    names: Sequence[str],
    run: Callable[[CommandContext], Reply],
) -> Reply:
    """``run`` in each environment (in parallel) with that environment's services; one reply
    with a section each. With one environment undeclared, ``run`` as it is."""
    fleet = ctx.services.environments()
    if not fleet.declared:
        return run(ctx)
    sections = _Sections(ctx.conversation, names)

    def in_environment(name: str) -> Reply:
        env_ctx = dataclasses.replace(
            ctx,
            # the platform's group resolver is the one that asked (the same in every env)
            services=dataclasses.replace(fleet[name], fleet=fleet, groups=ctx.services.groups),
            conversation=sections.conversation(name),
        )
        reply = run(env_ctx)
        sections.done(name, reply)
        return reply

    if len(names) == 1:
        return sections.merged({names[0]: in_environment(names[0])})
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="env") as pool:
        replies = dict(zip(names, pool.map(in_environment, names), strict=True))
    return sections.merged(replies)


class _Sections:
    """The one message a command shows, with a section per environment updated as each
    environment's run goes on."""

    def __init__(self, conversation: Conversation, names: Sequence[str]) -> None:
        self._conversation = conversation
        self._names = list(names)
        self._latest: dict[str, Reply] = {}
        self._lock = threading.Lock()

    def conversation(self, name: str) -> Conversation:
        return _Section(self, name)

    def show(self, name: str, reply: Reply) -> None:
        with self._lock:
            self._latest[name] = reply
            merged = self.merged(dict(self._latest))
            merged.final = False
            merged.urgent = reply.urgent
            self._conversation.show(merged)

    def done(self, name: str, reply: Reply) -> None:
        with self._lock:
            self._latest[name] = reply

    @property
    def message_link(self) -> str | None:
        return self._conversation.message_link

    def merged(self, replies: dict[str, Reply]) -> Reply:
        """One reply: each environment's title, steps, fields and lines under its name."""
        order = [n for n in self._names if n in replies]
        if len(order) == 1:
            return _named_reply(order[0], replies[order[0]])
        parts = [_named_reply(name, replies[name]) for name in order]
        first = parts[0]
        merged = Reply(
            title=" · ".join(p.title for p in parts),
            ok=all(p.ok for p in parts),
            private=all(p.private for p in parts),
            correlation_id=first.correlation_id,
            outcome=next((p.outcome for p in parts if p.outcome and not p.ok), first.outcome),
            more_hint=" · ".join(p.more_hint for p in parts if p.more_hint),
        )
        codes = []
        for name, part in zip(order, parts, strict=True):
            merged.steps.extend(
                Step(key=f"{name}:{s.key}", label=s.label, state=s.state, detail=s.detail)
                for s in part.steps
            )
            merged.fields.extend(part.fields)
            merged.lines.extend([f"*{part.title}*", *part.lines] if len(parts) > 1 else part.lines)
            merged.buttons.extend(part.buttons)
            if part.code:
                codes.append(f"# {name}\n{part.code}")
        merged.code = "\n\n".join(codes) or None
        return merged


class _Section:
    """One environment's view of the shared message."""

    def __init__(self, sections: _Sections, name: str) -> None:
        self._sections = sections
        self._name = name

    def show(self, reply: Reply) -> None:
        self._sections.show(self._name, reply)

    @property
    def message_link(self) -> str | None:
        return self._sections.message_link


def _named_reply(env: str, reply: Reply) -> Reply:
    """The reply said of ``env``: its title, labels and field names carry the environment,
    and every ``/pgdb`` command in it (buttons included) names it."""
    tag = f"[{env}]"
    return dataclasses.replace(
        reply,
        title=f"{tag} {reply.title}",
        steps=[
            dataclasses.replace(s, label=f"{tag} {s.label}", detail=name_environment(s.detail, env))
            for s in reply.steps
        ],
        fields=[(f"{tag} {k}", name_environment(v, env)) for k, v in reply.fields],
        lines=[name_environment(line, env) for line in reply.lines],
        buttons=[
            Button(label=b.label, command=name_environment(b.command, env), style=b.style)
            for b in reply.buttons
        ],
        more_hint=name_environment(reply.more_hint, env),
    )
