"""What local mode created, noted as it creates it, so ``pgdb-bot console --reset`` removes that
and nothing else.

The workflow records say which apps the bot worked on, not whether it created their roles (a
``create`` also adopts a role that already exists with the stored password). So local mode keeps
its own ledger, ``<state dir>/local-mode.json``: each role it created and the bot's schema when
it created it, with their object ids (a role dropped and re-created by someone else since is not
the one local mode made), per server, and whether that server is local mode's private one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.core.errors import PgdbError
from bot.core.limits import RoleLimits
from bot.core.model import DatabaseState, PasswordVerdict
from bot.core.names import AppName
from bot.core.ports import ManagedDatabase
from bot.core.secret import Secret

log = logging.getLogger(__name__)

LEDGER_FILE = "local-mode.json"


class LedgerError(PgdbError):
    """The ledger cannot be read; the message says what to do."""


@dataclass(frozen=True, kw_only=True)
class ServerRecord:
    """What local mode created on one server (a database of it, for the schema)."""

    server: str  # a libpq conninfo without password: host, port, user, dbname
    private: bool = False  # local mode's own server: everything on it goes with it
    schema: str | None = None
    schema_oid: int | None = None
    roles: Mapping[str, int] = field(default_factory=dict)  # name -> pg_roles.oid

    def describe(self) -> str:
        return describe_server(self.server)

    def as_json(self) -> dict[str, Any]:
        return {
            "private": self.private,
            "schema": self.schema,
            "schema_oid": self.schema_oid,
            "roles": dict(self.roles),
        }

    @classmethod
    def from_json(cls, server: str, data: Mapping[str, Any]) -> ServerRecord:
        return cls(
            server=server,
            private=bool(data.get("private", False)),
            schema=data.get("schema"),
            schema_oid=data.get("schema_oid"),
            roles={str(k): int(v) for k, v in dict(data.get("roles") or {}).items()},
        )

    @property
    def empty(self) -> bool:
        return self.schema is None and not self.roles


def describe_server(server: str) -> str:
    """``user@host:port/dbname`` of a conninfo or URL, its password left out."""
    try:
        parts = conninfo_to_dict(server)
    except psycopg.Error:
        return "(a connection string libpq cannot parse)"
    user = parts.get("user", "(your OS user)")
    host = parts.get("host", "(the local socket)")
    return f"{user}@{host}:{parts.get('port', 5432)}/{parts.get('dbname', user)}"


def server_key(conn: psycopg.Connection[Any]) -> str:
    """Where ``conn`` really went (libpq defaults resolved), without its password."""
    info = conn.info
    return make_conninfo(host=info.host, port=str(info.port), user=info.user, dbname=info.dbname)


def with_password_of(server: str, dsns: Iterable[str | None]) -> str:
    """``server`` with the password of the first of ``dsns`` that names the same host, port
    and user (none: libpq's own sources apply, PGPASSWORD or ~/.pgpass)."""
    wanted = conninfo_to_dict(server)
    for dsn in dsns:
        try:
            given = conninfo_to_dict(dsn) if dsn else {}
        except psycopg.ProgrammingError:
            continue
        same = all(
            str(given.get(k, "")) == str(wanted.get(k, "")) for k in ("host", "port", "user")
        )
        password = given.get("password")
        if same and password:
            return make_conninfo(server, password=str(password))
    return server


class Ledger:
    """``<state dir>/local-mode.json``, read and rewritten under an exclusive lock (two consoles
    on one state dir do not lose each other's records)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LEDGER_FILE

    def servers(self) -> list[ServerRecord]:
        if not self.path.exists():
            return []
        with self._locked() as data:
            return [ServerRecord.from_json(k, v) for k, v in data.items()]

    def record_role(self, server: str, *, name: str, oid: int) -> None:
        def add(record: ServerRecord) -> ServerRecord:
            return _replace(record, roles={**record.roles, name: oid})

        self._update(server, add)

    def record_schema(self, server: str, *, name: str, oid: int) -> None:
        self._update(server, lambda record: _replace(record, schema=name, schema_oid=oid))

    def mark_private(self, server: str) -> None:
        self._update(server, lambda record: _replace(record, private=True))

    def replace(self, records: list[ServerRecord]) -> None:
        """Keep only ``records`` (what a reset could not remove); none: the file goes."""
        kept = [r for r in records if not r.empty]
        if not kept:
            self.path.unlink(missing_ok=True)
            return
        with self._locked() as data:
            data.clear()
            data.update({r.server: r.as_json() for r in kept})

    def _update(self, server: str, change: Callable[[ServerRecord], ServerRecord]) -> None:
        with self._locked() as data:
            record = ServerRecord.from_json(server, data.get(server, {}))
            data[server] = change(record).as_json()

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            text = handle.read()
            data = self._parse(text)
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before or not text.strip():
                handle.seek(0)
                handle.truncate()
                json.dump({"servers": data}, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _parse(self, text: str) -> dict[str, Any]:
        if not text.strip():
            return {}
        try:
            servers = json.loads(text)["servers"]
            if not isinstance(servers, dict) or not all(
                isinstance(v, dict) for v in servers.values()
            ):
                raise TypeError("`servers` is not an object of objects")
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"{self.path} (local mode's record of what it created) is not as local mode "
                f"wrote it ({exc}): restore it, or delete it and remove what local mode created "
                "yourself (roles, the bot's schema)"
            ) from None
        return servers


def _replace(record: ServerRecord, **changes: Any) -> ServerRecord:
    return ServerRecord(**{**record.__dict__, **changes})


def schema_oid(conn: psycopg.Connection[Any], name: str) -> int | None:
    row = conn.execute("SELECT oid::int FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()
    return int(row[0]) if row else None


def role_oid(conn: psycopg.Connection[Any], name: str) -> int | None:
    row = conn.execute("SELECT oid::int FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    return int(row[0]) if row else None


class RecordingDatabase:
    """The managed server (``ManagedDatabase``), noting in the ledger each role it creates.

    Noted after the role exists, never before: a role that could not be created (it already
    existed) is never taken for local mode's."""

    def __init__(self, inner: ManagedDatabase, *, dsn: str, ledger: Ledger) -> None:
        self._inner = inner
        self._dsn = dsn
        self._ledger = ledger

    def __repr__(self) -> str:
        return f"RecordingDatabase({self._inner!r})"

    def observe(self) -> DatabaseState:
        return self._inner.observe()

    def check_passwords(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        return self._inner.check_passwords(candidates, state=state)

    def create_role(
        self, role: AppName, *, password: Secret, limits: RoleLimits | None = None
    ) -> None:
        self._inner.create_role(role, password=password, limits=limits)
        try:
            with psycopg.connect(self._dsn, connect_timeout=5) as conn:
                oid = role_oid(conn, str(role))
                server = server_key(conn)
            if oid is not None:
                self._ledger.record_role(server, name=str(role), oid=oid)
        except (psycopg.Error, OSError, PgdbError) as exc:
            log.warning(
                "local mode could not note that it created role %s (%s): "
                "`pgdb-bot console --reset` will leave it; drop it yourself",
                role,
                exc,
            )

    def enable_login(self, role: AppName, *, password: Secret) -> None:
        self._inner.enable_login(role, password=password)

    def set_limits(self, role: AppName, *, limits: RoleLimits) -> None:
        self._inner.set_limits(role, limits=limits)

    def set_password(self, role: AppName, *, password: Secret) -> None:
        self._inner.set_password(role, password=password)

    def disable_login(self, role: AppName) -> int:
        return self._inner.disable_login(role)
