"""App names: validated once, at the edge, then carried as a typed value."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
RESERVED_NAMES = frozenset({"postgres", "template0", "template1", "app", "streaming_replica"})
RESERVED_PREFIXES = ("pg_", "pg-", "cnpg")
# The branches the bot proposes changes on, one per change and app (app names have no "--").
ONBOARD_BRANCH_PREFIX = "pgdb/"
OFFBOARD_BRANCH_PREFIX = "pgdb-offboard/"
# With several environments each branch names its environment first: ``pgdb/prod--docspell``.
# Neither names contain "--", so the two parts never mix up.
ENV_SEPARATOR = "--"


def branch_suffix(app: str, *, scope: str | None) -> str:
    """What follows a branch prefix: the app, or ``<env>--<app>`` when branches are scoped by
    environment (a configuration file declares environments)."""
    return f"{scope}{ENV_SEPARATOR}{app}" if scope else app


def app_of_suffix(suffix: str, *, scope: str | None, owns_unscoped: bool) -> str | None:
    """The app a branch suffix belongs to in this environment, or None when it is another
    environment's. Unscoped suffixes (``pgdb/<app>``) belong to the environment that existed
    before environments were declared (``owns_unscoped``)."""
    env, sep, app = suffix.partition(ENV_SEPARATOR)
    if not sep:
        return suffix if (scope is None or owns_unscoped) else None
    return app if scope is not None and env == scope and app else None


# a later change to an app whose manifests are on the base branch (limits, extensions; §11)
UPDATE_BRANCH_PREFIX = "pgdb-update/"


class InvalidAppName(ValueError):
    """The name cannot be an app; the message says why and what to type instead."""


class AppName(str):
    """A validated app name. Build it with :func:`parse_app_name`, never directly from input."""

    __slots__ = ()


def parse_app_name(raw: str, *, bot_role: str = "", deny: Iterable[str] = ()) -> AppName:
    """Validate ``raw`` against the pattern and the reserved names, or raise InvalidAppName."""
    name = raw.strip()
    hint = "use lowercase letters, digits and single dashes, 2-40 characters, e.g. `docspell`"
    if not name:
        raise InvalidAppName(f"an app name is required: {hint}")
    shown = name if len(name) <= 60 else name[:57] + "..."
    if not _PATTERN.fullmatch(name) or "--" in name:
        raise InvalidAppName(f"`{shown}` is not a valid app name: {hint}")
    lowered = name.lower()
    # Dashes count as underscores here: `streaming-replica` is as confusing as the real one.
    if lowered.replace("-", "_") in RESERVED_NAMES or lowered.startswith(RESERVED_PREFIXES):
        raise InvalidAppName(
            f"`{name}` is reserved by PostgreSQL or CloudNativePG: choose another app name"
        )
    if bot_role and lowered == bot_role.lower():
        raise InvalidAppName(f"`{name}` is the bot's own role: choose another app name")
    if lowered in {d.strip().lower() for d in deny if d.strip()}:
        raise InvalidAppName(
            f"`{name}` is on this bot's deny list (PGDB_DENY_NAMES): choose another app name"
        )
    return AppName(name)


def is_system_role(role: str, *, bot_role: str) -> bool:
    """Roles that are never apps and never orphans."""
    return (
        role in {"postgres", "streaming_replica"}
        or role.startswith(("pg_", "cnpg_"))
        or role == bot_role
    )


_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class InvalidNamespace(ValueError):
    """Not a Kubernetes namespace name; the message says what one looks like."""


def parse_namespace(raw: str) -> str:
    """A Kubernetes namespace (an RFC 1123 label), validated at the edge like app names."""
    name = raw.strip()
    if not _NAMESPACE.fullmatch(name):
        shown = name if len(name) <= 70 else name[:67] + "..."
        raise InvalidNamespace(
            f"`{shown}` is not a Kubernetes namespace: use lowercase letters, digits and "
            "dashes, at most 63 characters, e.g. `--namespace docspell`"
        )
    return name
