"""Parse ``/pgdb …`` text once into a typed Command, or a usage error."""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass, field

from handlers.access import Role


class UsageError(ValueError):
    """Bad command text; the message is the short usage to show."""


class Spread(enum.Enum):
    """Which environments a command acts on when several are declared; each
    command but ``NONE`` takes ``--env``."""

    NONE = "none"  # once (help, silence; approve and deny follow their request)
    EACH = "each"  # every named environment, else the default ones (create)
    ALL = "all"  # every named one, else all those the app is in (status, list, diagnose)
    ONE = "one"  # exactly one: named, or the only one the app is in (rotate, repair…)


@dataclass(frozen=True, kw_only=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    needs: Role
    positional: tuple[str, ...] = ()  # names of required positional args
    optional_positional: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # --name VALUE
    flags: tuple[str, ...] = ()  # --name
    rest: bool = False  # trailing free text (e.g. a reason)
    available: bool = True
    environments: Spread = Spread.NONE


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec(
            name="help",
            usage="/pgdb help",
            summary="usage, with examples",
            needs=Role.REQUESTER,
        ),
        CommandSpec(
            name="create",
            usage="/pgdb create <app> [--namespace <ns>] [--extension e1,e2] [--schema s1,s2] "
            "[--dry-run]",
            summary="onboard an app: credentials, role (with the cluster's connection limit), "
            "pull request with the manifests; extensions from the allowed list",
            needs=Role.REQUESTER,
            positional=("app",),
            options=("namespace", "extension", "schema"),
            flags=("dry-run",),
            environments=Spread.EACH,
        ),
        CommandSpec(
            name="status",
            usage="/pgdb status [<app>] [--page <n>]",
            summary="every layer of one app, or the fleet: counts, then the apps that need "
            "attention first",
            needs=Role.REQUESTER,
            optional_positional=("app",),
            options=("page",),
            environments=Spread.ALL,
        ),
        CommandSpec(
            name="list",
            usage="/pgdb list [--page <n>]",
            summary="known apps and their overall state",
            needs=Role.REQUESTER,
            options=("page",),
            environments=Spread.ALL,
        ),
        CommandSpec(
            name="diagnose",
            usage="/pgdb diagnose",
            summary="run the diagnostics now and show the findings",
            needs=Role.OPERATOR,
            environments=Spread.ALL,
        ),
        CommandSpec(
            name="repair",
            usage="/pgdb repair <app> [--yes]",
            summary="fix what the diagnostics found for an app (asks for confirmation)",
            needs=Role.OPERATOR,
            positional=("app",),
            flags=("yes",),
            environments=Spread.ONE,
        ),
        CommandSpec(
            name="silence",
            usage="/pgdb silence <app or kind> <duration|off>",
            summary="mute matching alerts for a while",
            needs=Role.OPERATOR,
            positional=("target", "duration"),
        ),
        CommandSpec(
            name="rotate",
            usage="/pgdb rotate <app> [--yes]",
            summary="new password applied everywhere (asks for confirmation)",
            needs=Role.OPERATOR,
            positional=("app",),
            flags=("yes",),
            environments=Spread.ONE,
        ),
        CommandSpec(
            name="offboard",
            usage="/pgdb offboard <app> [--yes]",
            summary="reversible removal: manifests removed by a pull request, role NOLOGIN; "
            "the database and its data are kept (asks for confirmation)",
            needs=Role.OPERATOR,
            positional=("app",),
            flags=("yes",),
            environments=Spread.ONE,
        ),
        CommandSpec(
            name="limits",
            usage="/pgdb limits <app> [--connections <n>] [--statement-timeout <30s|0>] "
            "[--yes] [--dry-run]",
            summary="an app's connection limit and statement timeout: the role at once, the "
            "manifest by a pull request (asks for confirmation)",
            needs=Role.OPERATOR,
            positional=("app",),
            options=("connections", "statement-timeout"),
            flags=("yes", "dry-run"),
            environments=Spread.ONE,
        ),
        CommandSpec(
            name="update",
            usage="/pgdb update <app> --extension <e1,e2> [--dry-run]",
            summary="add allowed extensions to an app: a pull request changing its Database "
            "manifest only (the app's requester, or operators)",
            needs=Role.REQUESTER,
            positional=("app",),
            options=("extension",),
            flags=("dry-run",),
            environments=Spread.ONE,
        ),
        CommandSpec(
            name="usage",
            usage="/pgdb usage [--top <n>]",
            summary="connections, database sizes and extensions of every app, biggest first",
            needs=Role.REQUESTER,
            options=("top",),
            environments=Spread.ALL,
        ),
        CommandSpec(
            name="approve",
            usage="/pgdb approve <id>",
            summary="approve a pending request (then it runs)",
            needs=Role.OPERATOR,
            positional=("id",),
        ),
        CommandSpec(
            name="deny",
            usage="/pgdb deny <id> [reason]",
            summary="deny a pending request; the requester hears the reason",
            needs=Role.OPERATOR,
            positional=("id",),
            rest=True,
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class Command:
    name: str
    args: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    text: str = ""

    @property
    def spec(self) -> CommandSpec:
        return COMMANDS[self.name]


def parse(text: str) -> Command:
    """``/pgdb create docspell --dry-run`` (or without ``/pgdb``) into a Command."""
    words = text.split()
    if words and words[0].lower() in {"/pgdb", "pgdb"}:
        words = words[1:]
    head = COMMANDS.get(words[0].lower()) if words else None
    try:
        words = shlex.split(" ".join(words))
    except ValueError as exc:
        # Free text (a reason) is taken as typed: an apostrophe is not a quote there.
        if head is None or not head.rest:
            raise UsageError(f"could not read the command ({exc}): check the quotes") from None
    if not words:
        return Command(name="help", text=text)
    name, *rest = words
    name = name.lower()
    spec = COMMANDS.get(name)
    if spec is None:
        raise UsageError(f"unknown command `{name}`. Try `/pgdb help`.")
    positional: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    index = 0
    while index < len(rest):
        word = rest[index]
        if word.startswith("--") and not (spec.rest and len(positional) >= len(spec.positional)):
            key, _, inline = word[2:].partition("=")
            if key in flags or key in options:
                raise UsageError(f"`--{key}` is given twice. Usage: `{spec.usage}`")
            if key in spec.flags and not inline:
                flags.add(key)
            elif key in spec.options or (key == "env" and spec.environments is not Spread.NONE):
                if inline:
                    options[key] = inline
                elif index + 1 < len(rest) and not rest[index + 1].startswith("--"):
                    index += 1
                    options[key] = rest[index]
                else:
                    raise UsageError(f"`--{key}` needs a value. Usage: `{spec.usage}`")
            else:
                raise UsageError(f"unknown option `{word}`. Usage: `{spec.usage}`")
        else:
            positional.append(word)
        index += 1
    names = spec.positional + spec.optional_positional
    if len(positional) < len(spec.positional):
        missing = spec.positional[len(positional)]
        raise UsageError(f"missing <{missing}>. Usage: `{spec.usage}`")
    if len(positional) > len(names) and not spec.rest:
        raise UsageError(f"too many arguments. Usage: `{spec.usage}`")
    args = dict(zip(names, positional, strict=False))
    if spec.rest and len(positional) > len(names):
        args["rest"] = " ".join(positional[len(names) :])
    return Command(name=name, args=args, options=options, flags=frozenset(flags), text=text.strip())
