"""How the bot reaches a PostgreSQL server: the DSN parsed once, the connection parameters with
their timeouts, and the one translation of psycopg errors into the core's errors.

Every module of this package connects through here, so two rules hold everywhere:

* a password never reaches the server in a statement: roles get a SCRAM-SHA-256 verifier
  computed client-side (``roles``);
* no error leaving the package carries a password, a verifier or the DSN, in its message or in
  its chain (``__cause__``/``__context__``): translated errors are raised outside the ``except``
  block that caught the psycopg error, so the original is not attached.

The advisory-lock classes of every module are here too, so the key space is read in one place.
"""

from __future__ import annotations

import getpass
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from bot.core.errors import BackendUnavailable, PgdbError

T = TypeVar("T")
Connection = psycopg.Connection[TupleRow]

SYSTEM = "PostgreSQL"
DSN_VARIABLE = "PGDB_PG_DSN"
# Advisory lock classes (the first int of the two-int form): "pgdb" in ASCII, then the next ones.
LOCK_CLASS_APP: Final = 0x70676462  # one app's workflows (``state``)
LOCK_CLASS_MIGRATIONS: Final = LOCK_CLASS_APP + 1  # the bot's schema (``migrations``)
LOCK_CLASS_LEADER: Final = LOCK_CLASS_APP + 2  # the diagnostics schedule (``leader``)
_MASK = "********"


@dataclass(frozen=True)
class Target:
    """A DSN parsed once: connection parameters, and how to name the server without secrets."""

    params: dict[str, str]

    @classmethod
    def parse(cls, dsn: str, *, variable: str = DSN_VARIABLE) -> Target:
        failure: PgdbError
        try:
            return cls({k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None})
        except psycopg.Error:
            # libpq's parse errors quote pieces of the string, which may be the password.
            failure = BackendUnavailable(
                SYSTEM,
                f"{variable} is not a valid PostgreSQL connection string "
                "(expected postgresql://user:password@host:port/dbname or key=value pairs)",
            )
        raise failure

    @property
    def host(self) -> str:
        return (
            self.params.get("host")
            or self.params.get("hostaddr")
            or os.environ.get("PGHOST")
            or "local socket"
        )

    @property
    def port(self) -> str:
        return self.params.get("port") or os.environ.get("PGPORT") or "5432"

    @property
    def user(self) -> str:
        return self.params.get("user") or os.environ.get("PGUSER") or getpass.getuser()

    @property
    def dbname(self) -> str:
        return self.params.get("dbname") or os.environ.get("PGDATABASE") or self.user

    @property
    def password(self) -> str:
        return self.params.get("password", "")

    def describe(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname} as {self.user}"

    def connect_params(
        self, *, connect_timeout: float, settings: Mapping[str, str], application_name: str
    ) -> dict[str, Any]:
        """Parameters for ``psycopg.connect``: timeouts and session settings added to the DSN's."""
        params: dict[str, Any] = dict(self.params)
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        params["options"] = f"{params.get('options', '')} {options}".strip()
        params["connect_timeout"] = str(_libpq_seconds(connect_timeout))
        params.setdefault("application_name", application_name)
        return params

    def login_params(self, *, connect_timeout: float, application_name: str) -> dict[str, Any]:
        """How the DSN reaches the server (host, port, TLS...), not who it connects as:
        credentials, database, passfile, service and options are left for the caller."""
        params: dict[str, Any] = {
            k: v
            for k, v in self.params.items()
            if k not in {"user", "password", "passfile", "dbname", "service", "options"}
        }
        params["connect_timeout"] = str(_libpq_seconds(connect_timeout))
        params["application_name"] = application_name
        return params


def _libpq_seconds(seconds: float) -> int:
    """libpq takes whole seconds and treats anything below 2 as 2."""
    return max(2, math.ceil(seconds))


def _scrub(text: str, hidden: Iterable[str]) -> str:
    for value in hidden:
        if value:
            text = text.replace(value, _MASK)
    return text


_CONNECT_PREFIX = re.compile(
    r"^(connection failed:\s*)?(connection to server (at|on) .*? failed:\s*)?", re.IGNORECASE
)


def reason(exc: BaseException, hidden: Iterable[str] = ()) -> str:
    """libpq's message on one line, without the repeated "connection to server…" preamble,
    with every value of ``hidden`` masked."""
    text = " ".join(str(exc).split())
    text = _CONNECT_PREFIX.sub("", text)
    text = re.sub(r"(?i)\s*connection to server (at|on) .*? failed:\s*", "; ", text)
    return _scrub(text, hidden) or type(exc).__name__


def _primary(exc: psycopg.Error, hidden: Iterable[str] = ()) -> str:
    """The server's one-line message: never the ``LINE 1: <statement>`` context libpq appends."""
    message = exc.diag.message_primary or (str(exc).strip().splitlines() or [""])[0]
    code = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
    return _scrub(message, hidden) + code


class Server:
    """One PostgreSQL server as one part of the bot reaches it: the DSN's target, the session
    settings every connection gets, and ``run`` — a body on a fresh connection whose psycopg
    errors leave as chain-free ``BackendUnavailable``.

    Each call opens its own short connection: the bot acts rarely, and this survives failovers
    and restarts without any reconnection logic.
    """

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str,
        connect_timeout: float = 5,
        statement_timeout: float = 30,
        session: Mapping[str, str] | None = None,
    ) -> None:
        self.target = Target.parse(dsn)
        self.statement_timeout = statement_timeout
        self._params = self.target.connect_params(
            connect_timeout=connect_timeout,
            settings={"statement_timeout": f"{int(statement_timeout * 1000)}", **(session or {})},
            application_name=application_name,
        )

    def describe(self) -> str:
        return self.target.describe()

    def connect(self) -> Connection:
        """An autocommit connection; psycopg's error is left for the caller to translate
        (``unreachable``) or to report (``reason``)."""
        return psycopg.connect(**self._params, autocommit=True)

    def reason(self, exc: BaseException, hidden: Iterable[str] = ()) -> str:
        """``reason`` with the DSN's password masked too."""
        return reason(exc, [*hidden, self.target.password])

    def unreachable(self, exc: BaseException) -> BackendUnavailable:
        """A failed connection attempt, as a sentence for the user."""
        return BackendUnavailable(
            SYSTEM,
            f"cannot connect to {self.describe()}: {self.reason(exc)} "
            f"— check {DSN_VARIABLE} and that the server is running",
        )

    def failed(
        self, what: str, exc: psycopg.Error, *, hidden: Iterable[str] = ()
    ) -> BackendUnavailable:
        """A psycopg error during a statement, as a sentence for the user."""
        hidden = [*hidden, self.target.password]
        target = self.target
        if isinstance(exc, pgerrors.QueryCanceled):
            return BackendUnavailable(
                SYSTEM,
                f"{what} on {target.host}:{target.port} took longer than "
                f"{self.statement_timeout:g}s and was cancelled; the server may be overloaded "
                "or a lock is held — try again",
            )
        if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
            return BackendUnavailable(
                SYSTEM,
                f"lost the connection to {target.describe()} while {what}: {reason(exc, hidden)}",
            )
        return BackendUnavailable(
            SYSTEM, f"{what} failed on {target.host}:{target.port}: {_primary(exc, hidden)}"
        )

    def run(self, what: str, body: Callable[[Connection], T], *, hidden: Iterable[str] = ()) -> T:
        """Run ``body`` on a fresh connection; psycopg errors leave as chain-free ``PgdbError``."""
        failure: PgdbError
        try:
            conn = self.connect()
        except psycopg.Error as exc:
            failure = self.unreachable(exc)
        else:
            try:
                with conn:
                    return body(conn)
            except psycopg.Error as exc:
                failure = self.failed(what, exc, hidden=hidden)
        raise failure
