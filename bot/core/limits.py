"""What a shared cluster allows one app: its role's limits, and the extensions and
schemas its Database may ask for. Values parsed once, at the edge, like app names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.durations import parse_duration
from bot.core.sizes import format_timeout

NO_LIMIT = -1  # PostgreSQL's "no connection limit" (rolconnlimit, datconnlimit)
_MAX_CONNECTIONS = 10_000
_EXTENSION = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RESERVED_SCHEMAS = frozenset({"public", "information_schema"})


@dataclass(frozen=True, kw_only=True)
class RoleLimits:
    """A role's ``CONNECTION LIMIT`` (-1: none) and ``statement_timeout`` in ms (0: none)."""

    connection_limit: int = NO_LIMIT
    statement_timeout_ms: int = 0

    def describe(self) -> str:
        connections = (
            "no connection limit"
            if self.connection_limit == NO_LIMIT
            else f"connection limit {self.connection_limit}"
        )
        return f"{connections}, statement timeout {format_timeout(self.statement_timeout_ms)}"

    def differences(self, other: RoleLimits) -> list[str]:
        """What ``other`` (what is) says differently from these (what was declared)."""
        found = []
        if other.connection_limit != self.connection_limit:
            found.append(
                f"connection limit {_limit(other.connection_limit)} "
                f"(declared {_limit(self.connection_limit)})"
            )
        if other.statement_timeout_ms != self.statement_timeout_ms:
            found.append(
                f"statement timeout {format_timeout(other.statement_timeout_ms)} "
                f"(declared {format_timeout(self.statement_timeout_ms)})"
            )
        return found


def _limit(value: int) -> str:
    return "none" if value == NO_LIMIT else str(value)


@dataclass(frozen=True, kw_only=True)
class DatabaseOptions:
    """What the Database manifest declares besides its name and owner (CNPG's
    ``connectionLimit``, ``extensions``, ``schemas``); None/empty: left out."""

    connection_limit: int | None = None
    extensions: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()


def parse_connection_limit(raw: str) -> int:
    """``--connections N``: a whole number from 1 to 10,000, or -1 for no limit."""
    text = raw.strip()
    if text == "-1":
        return NO_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= _MAX_CONNECTIONS:
        raise ValueError(
            f"`{raw}` is not a connection limit: use a whole number from 1 to "
            f"{_MAX_CONNECTIONS:,} (or -1 for none), e.g. `--connections 20`"
        )
    return int(text)


def parse_statement_timeout(raw: str) -> int:
    """``--statement-timeout 30s`` (``500ms``, ``5m``, ``1h``; ``0`` for none) in ms."""
    text = raw.strip().lower()
    try:
        if text.endswith("ms") and text[:-2].isascii() and text[:-2].isdigit():
            milliseconds = int(text[:-2])
        else:
            milliseconds = round(parse_duration(text, zero_allowed=True) * 1000)
    except ValueError:
        milliseconds = -1
    if milliseconds < 0 or milliseconds > 2_147_483_647:
        raise ValueError(
            f"`{raw}` is not a statement timeout: use e.g. 30s, 500ms, 5m, or 0 for none"
        )
    return milliseconds


def timeout_argument(milliseconds: int) -> str:
    """A statement timeout as ``--statement-timeout`` takes it back (``0``, ``30s``, ``5m``)."""
    if milliseconds <= 0:
        return "0"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def limits_command(app: str, limits: RoleLimits, *, confirmed: bool = False) -> str:
    """The ``/pgdb limits`` command that sets ``limits`` on ``app``."""
    return (
        f"/pgdb limits {app} --connections {limits.connection_limit} "
        f"--statement-timeout {timeout_argument(limits.statement_timeout_ms)}"
        + (" --yes" if confirmed else "")
    )


def parse_names(raw: str, *, what: str) -> tuple[str, ...]:
    """``a,b`` into unique, validated extension (``what="extension"``) or schema names."""
    names: list[str] = []
    for item in raw.split(","):
        name = item.strip()
        if not name:
            continue
        shown = name if len(name) <= 64 else name[:61] + "..."
        if what == "extension":
            if not _EXTENSION.fullmatch(name):
                raise ValueError(
                    f"`{shown}` is not an extension name: lowercase letters, digits, `_` and "
                    "`-`, e.g. `--extension vector,pg_trgm`"
                )
        elif not _SCHEMA.fullmatch(name) or name in _RESERVED_SCHEMAS or name.startswith("pg_"):
            raise ValueError(
                f"`{shown}` cannot be an app's schema: lowercase letters, digits and `_`, not "
                "`public`, `information_schema` or `pg_*`, e.g. `--schema app,reporting`"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"`--{what}` needs at least one name, e.g. `--{what} a,b`")
    return tuple(names)


def not_allowed(extensions: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The extensions of ``extensions`` the allowlist (PGDB_ALLOWED_EXTENSIONS) does not name."""
    permitted = set(allowed)
    return [e for e in extensions if e not in permitted]


def allowlist_refusal(refused: list[str], allowed: tuple[str, ...]) -> str:
    """The message for extensions outside the allowlist: which, and the list."""
    listed = ", ".join(f"`{e}`" for e in allowed) if allowed else "none"
    return (
        f"extension(s) {', '.join(f'`{e}`' for e in refused)} not allowed on this cluster: "
        f"PGDB_ALLOWED_EXTENSIONS allows {listed}. Ask the platform team to add "
        "it to PGDB_ALLOWED_EXTENSIONS (they check the image has it)."
    )
