"""PostgreSQL adapters: the shared server the bot manages, and the bot's own state tables.

Everything that talks to PostgreSQL goes through this module, which owns the timeouts and the
translation of psycopg errors into the core's errors. Two rules hold everywhere:

* a password never reaches the server: roles get a SCRAM-SHA-256 verifier computed client-side;
* no error leaving this module carries a password, a verifier or the DSN, in its message or in
  its chain (``__cause__``/``__context__``): translated errors are raised outside the ``except``
  block that caught the psycopg error, so the original is not attached.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from bot.core.errors import BackendUnavailable, ConflictError, PermissionProblem, PgdbError
from bot.core.model import (
    AuditEntry,
    DatabaseInfo,
    DatabaseState,
    PasswordResult,
    PasswordVerdict,
    RoleInfo,
    WorkflowRecord,
    WorkflowStatus,
)
from bot.core.names import AppName
from bot.core.scram import scram_matches
from bot.core.secret import Secret

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = psycopg.Connection[TupleRow]

SYSTEM = "PostgreSQL"
DSN_VARIABLE = "PGDB_PG_DSN"
# Advisory lock classes (the first int of the two-int form): "pgdb" in ASCII, then the next one.
LOCK_CLASS_APP: Final = 0x70676462
LOCK_CLASS_MIGRATIONS: Final = LOCK_CLASS_APP + 1
_MASK = "********"
_VERIFIER_MEMO_SIZE = 100_000
_VERIFIER_THREADS = 4  # PBKDF2 comparisons side by side, at most one per core
_VERIFIER_BATCH = 8  # fewer new verifiers than this are compared in the calling thread


# --- connection targets and error text -------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A DSN parsed once: connection parameters, and how to name the server without secrets."""

    params: dict[str, str]

    @classmethod
    def parse(cls, dsn: str, *, variable: str = DSN_VARIABLE) -> _Target:
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


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL: written as ``\\x00`` (what the audit shows)."""
    return text.replace("\x00", "\\x00")


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


def _reason(exc: BaseException, hidden: Iterable[str] = ()) -> str:
    """libpq's message on one line, without the repeated "connection to server…" preamble."""
    text = " ".join(str(exc).split())
    text = _CONNECT_PREFIX.sub("", text)
    text = re.sub(r"(?i)\s*connection to server (at|on) .*? failed:\s*", "; ", text)
    return _scrub(text, hidden) or type(exc).__name__


def _primary(exc: psycopg.Error, hidden: Iterable[str] = ()) -> str:
    """The server's one-line message: never the ``LINE 1: <statement>`` context libpq appends."""
    message = exc.diag.message_primary or (str(exc).strip().splitlines() or [""])[0]
    code = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
    return _scrub(message, hidden) + code


def _unreachable(target: _Target, exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable(
        SYSTEM,
        f"cannot connect to {target.describe()}: {_reason(exc, [target.password])} "
        f"— check {DSN_VARIABLE} and that the server is running",
    )


def _failed(
    target: _Target, what: str, exc: psycopg.Error, *, statement_timeout: float, hidden: list[str]
) -> BackendUnavailable:
    """A psycopg error during a statement, as a sentence for the user."""
    hidden = [*hidden, target.password]
    if isinstance(exc, pgerrors.QueryCanceled):
        return BackendUnavailable(
            SYSTEM,
            f"{what} on {target.host}:{target.port} took longer than {statement_timeout:g}s "
            "and was cancelled; the server may be overloaded or a lock is held — try again",
        )
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return BackendUnavailable(
            SYSTEM,
            f"lost the connection to {target.describe()} while {what}: {_reason(exc, hidden)}",
        )
    return BackendUnavailable(
        SYSTEM, f"{what} failed on {target.host}:{target.port}: {_primary(exc, hidden)}"
    )


def _run(
    params: Mapping[str, Any],
    target: _Target,
    what: str,
    body: Callable[[Connection], T],
    *,
    statement_timeout: float,
    hidden: list[str] | None = None,
    autocommit: bool = True,
) -> T:
    """Run ``body`` on a fresh connection; psycopg errors leave as chain-free ``PgdbError``."""
    failure: PgdbError
    try:
        conn = psycopg.connect(**params, autocommit=autocommit)
    except psycopg.Error as exc:
        failure = _unreachable(target, exc)
    else:
        try:
            with conn:
                return body(conn)
        except psycopg.Error as exc:
            failure = _failed(
                target, what, exc, statement_timeout=statement_timeout, hidden=hidden or []
            )
    raise failure


# --- password verifiers ----------------------------------------------------------------------

_MD5 = re.compile(r"^md5[0-9a-f]{32}$")


def verifier_matches(verifier: str, *, role: str, password: Secret) -> bool | None:
    """Whether ``password`` produces ``verifier`` (SCRAM-SHA-256 or md5); None if unrecognised."""
    scram = scram_matches(verifier, password)
    if scram is not None:
        return scram
    if _MD5.match(verifier):
        # md5 is what PostgreSQL stores for password_encryption=md5; we only compare with it.
        digest = hashlib.md5((password.reveal() + role).encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest("md5" + digest, verifier)
    return None


# --- the managed server ----------------------------------------------------------------------

_OBSERVE_ACCESS = """
SELECT current_user::text,
       r.rolsuper,
       r.rolcreaterole,
       current_setting('server_version_num')::int,
       has_table_privilege('pg_catalog.pg_authid', 'SELECT')
  FROM pg_catalog.pg_roles r
 WHERE r.rolname = current_user
"""

# One catalog query for every role, membership and database. {password} is rolpassword from
# pg_authid when that is readable, else NULL; {can_alter} depends on the server version.
_OBSERVE_CATALOG = """
SELECT 'role'::text AS kind,
       r.rolname::text AS name,
       r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication,
       r.rolbypassrls,
       COALESCE(mem.member_of, ARRAY[]::text[]) AS member_of,
       {password} AS verifier,
       {can_alter} AS bot_can_alter,
       NULL::text AS owner,
       -- infinity has no Python datetime: no expiry; -infinity: expired since ever
       CASE WHEN isfinite(r.rolvaliduntil) THEN r.rolvaliduntil
            WHEN r.rolvaliduntil < 'epoch' THEN 'epoch'::timestamptz END,
       r.rolconnlimit
  FROM {roles} r
  -- memberships grouped once: a subquery per role scanned pg_auth_members once per role,
  -- 1.6 s instead of 0.06 s at 5,000 roles that all grant themselves to one admin role
  LEFT JOIN (SELECT m.member,
                    array_agg(DISTINCT g.rolname::text ORDER BY g.rolname::text) AS member_of
               FROM pg_catalog.pg_auth_members m
               JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
              GROUP BY m.member) mem ON mem.member = r.oid
UNION ALL
SELECT 'database', d.datname::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       pg_catalog.pg_get_userbyid(d.datdba)::text, NULL, NULL
  FROM pg_catalog.pg_database d
"""


class PostgresDatabase:
    """The shared PostgreSQL server through the bot's admin account (``ManagedDatabase``).

    Each call opens its own short connection: the bot acts rarely, and this survives
    failovers and restarts without any reconnection logic.
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5,
        login_concurrency: int = 4,
        login_timeout: float = 5,
        login_recheck_seconds: float = 3600,
        statement_timeout: float = 30,
    ) -> None:
        if login_concurrency < 1:
            raise ValueError("login_concurrency must be at least 1")
        self._target = _Target.parse(dsn)
        self._statement_timeout = statement_timeout
        self._params = self._target.connect_params(
            connect_timeout=connect_timeout,
            settings={"statement_timeout": f"{int(statement_timeout * 1000)}"},
            application_name="pgdb-bot",
        )
        # A login probe reuses how the admin DSN reaches the server (host, port, TLS...), not
        # who it connects as: credentials, database, passfile and service are replaced.
        self._probe_params: dict[str, Any] = {
            k: v
            for k, v in self._target.params.items()
            if k not in {"user", "password", "passfile", "dbname", "service", "options"}
        }
        self._probe_params["connect_timeout"] = str(_libpq_seconds(login_timeout))
        self._probe_params["application_name"] = "pgdb-bot password check"
        self._login_concurrency = login_concurrency
        # Bounds probes across concurrent calls too (status and diagnostics may overlap).
        self._login_slots = threading.BoundedSemaphore(login_concurrency)
        self._login_recheck_seconds = login_recheck_seconds
        # (role, keyed hash of the password) -> (verdict, monotonic expiry). The hash is keyed
        # with a per-process random key so the cache holds nothing useful to guess against.
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[tuple[str, bytes], tuple[PasswordVerdict, float]] = {}
        self._verifier_memo: dict[tuple[str, bytes], PasswordVerdict | None] = {}
        self._lock = threading.Lock()
        self._filling = threading.Lock()  # one verifier-memo filler at a time
        self.login_probes: int = 0

    def __repr__(self) -> str:
        return f"PostgresDatabase({self._target.describe()})"

    # -- observe --------------------------------------------------------------------------

    def observe(self) -> DatabaseState:
        return _run(
            self._params,
            self._target,
            "reading the catalogs",
            self._observe,
            statement_timeout=self._statement_timeout,
        )

    def _observe(self, conn: Connection) -> DatabaseState:
        access = conn.execute(_OBSERVE_ACCESS).fetchone()
        if access is None:  # current_user always has a pg_roles row; keep mypy honest
            raise BackendUnavailable(SYSTEM, "the bot's own role is missing from pg_roles")
        bot_role, bot_super, bot_createrole, version, authid_readable = access
        # pg_authid cannot even be mentioned in a query without SELECT on it, hence the check.
        roles = sql.SQL("pg_catalog.pg_authid" if authid_readable else "pg_catalog.pg_roles")
        password = sql.SQL("r.rolpassword" if authid_readable else "NULL::text")
        if bot_super:
            can_alter = sql.SQL("true")
        elif not bot_createrole:
            can_alter = sql.SQL("false")
        elif version >= 160000:
            # PostgreSQL 16+: CREATEROLE reaches only roles the bot holds ADMIN OPTION on.
            can_alter = sql.SQL(
                "(NOT r.rolsuper AND pg_catalog.pg_has_role(current_user, r.oid, "
                "'MEMBER WITH ADMIN OPTION'))"
            )
        else:
            # Before 16, CREATEROLE alters any role but superuser, replication or bypassrls ones.
            can_alter = sql.SQL("(NOT (r.rolsuper OR r.rolreplication OR r.rolbypassrls))")
        query = sql.SQL(_OBSERVE_CATALOG).format(
            roles=roles, password=password, can_alter=can_alter
        )
        roles_by_name: dict[str, RoleInfo] = {}
        databases: dict[str, DatabaseInfo] = {}
        for row in conn.execute(query):
            kind, name, login, superuser, createdb, createrole, repl, bypass, member_of = row[:9]
            verifier, bot_can_alter, owner, valid_until, connection_limit = row[9:]
            if kind == "database":
                databases[name] = DatabaseInfo(name=name, owner=owner)
                continue
            roles_by_name[name] = RoleInfo(
                name=name,
                can_login=login,
                superuser=superuser,
                createdb=createdb,
                createrole=createrole,
                replication=repl,
                bypassrls=bypass,
                member_of=tuple(member_of),
                # readable catalog: "" means the role has no password; unreadable: None
                verifier=(verifier or "") if authid_readable else None,
                bot_can_alter=bot_can_alter,
                valid_until=valid_until,
                connection_limit=connection_limit,
            )
        return DatabaseState(
            roles=roles_by_name,
            databases=databases,
            bot_role=bot_role,
            bot_is_superuser=bot_super,
            server_version=version,
        )

    # -- create / enable ------------------------------------------------------------------

    def create_role(self, role: AppName, *, password: Secret) -> None:
        def body(conn: Connection) -> PgdbError | None:
            verifier = _scram_verifier(conn, role, password)
            statement = sql.SQL(
                "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOREPLICATION NOBYPASSRLS INHERIT PASSWORD {verifier}"
            ).format(role=sql.Identifier(role), verifier=sql.Literal(verifier))
            try:
                conn.execute(statement)
            except pgerrors.DuplicateObject:
                return ConflictError(
                    f"role `{role}` was created by someone else while this command ran; "
                    "run the command again: it will check the existing role instead"
                )
            except pgerrors.InsufficientPrivilege:
                return self._permission_problem(conn, role, creating=True)
            return None

        self._ddl("creating the role", role, password, body)

    def enable_login(self, role: AppName, *, password: Secret) -> None:
        self._alter_login(
            "enabling login", role, password, if_dropped="run the command again: it will create it"
        )

    def set_password(self, role: AppName, *, password: Secret) -> None:
        # The same statement: a new verifier, LOGIN kept. Open sessions are not affected.
        self._alter_login(
            "setting the password of",
            role,
            password,
            if_dropped=f"`/pgdb repair {role} --yes` creates it with the stored password",
        )

    def _alter_login(self, what: str, role: AppName, password: Secret, *, if_dropped: str) -> None:
        def body(conn: Connection) -> PgdbError | None:
            verifier = _scram_verifier(conn, role, password)
            statement = sql.SQL("ALTER ROLE {role} WITH LOGIN PASSWORD {verifier}").format(
                role=sql.Identifier(role), verifier=sql.Literal(verifier)
            )
            try:
                conn.execute(statement)
            except pgerrors.UndefinedObject:
                return ConflictError(
                    f"role `{role}` no longer exists (dropped while this command ran); {if_dropped}"
                )
            except pgerrors.InsufficientPrivilege:
                return self._permission_problem(conn, role, creating=False)
            return None

        self._ddl(what, role, password, body)

    def disable_login(self, role: AppName) -> int:
        sessions = 0

        def body(conn: Connection) -> PgdbError | None:
            nonlocal sessions
            statement = sql.SQL("ALTER ROLE {role} WITH NOLOGIN").format(role=sql.Identifier(role))
            try:
                conn.execute(statement)
            except pgerrors.UndefinedObject:
                return ConflictError(
                    f"role `{role}` no longer exists (dropped while this command ran); "
                    "run the command again: there is nothing left to disable"
                )
            except pgerrors.InsufficientPrivilege:
                return self._permission_problem(conn, role, creating=False)
            # NOLOGIN stops new logins only; pg_stat_activity lists every backend's role.
            row = conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = %s", (role,)
            ).fetchone()
            sessions = int(row[0]) if row else 0
            return None

        self._ddl("disabling login", role, None, body)
        return sessions

    def _ddl(
        self,
        what: str,
        role: str,
        password: Secret | None,
        body: Callable[[Connection], PgdbError | None],
    ) -> None:
        problem = _run(
            self._params,
            self._target,
            f"{what} `{role}`",
            body,
            statement_timeout=self._statement_timeout,
            hidden=[password.reveal()] if password is not None else [],
        )
        # The role's password changed (or the role is new): earlier login results are stale.
        with self._lock:
            for key in [k for k in self._cache if k[0] == role]:
                del self._cache[key]
        if problem is not None:
            raise problem

    def _permission_problem(self, conn: Connection, role: str, *, creating: bool) -> PgdbError:
        """Why the bot's account may not create or alter ``role``, and the grant that fixes it."""
        try:
            row = conn.execute(
                "SELECT current_user::text, me.rolcreaterole,"
                " current_setting('server_version_num')::int, target.rolsuper,"
                " target.rolreplication OR target.rolbypassrls"
                " FROM pg_catalog.pg_roles me"
                " LEFT JOIN pg_catalog.pg_roles target ON target.rolname = %s"
                " WHERE me.rolname = current_user",
                (role,),
            ).fetchone()
        except psycopg.Error:
            row = None
        if row is None:
            return PermissionProblem(
                f"PostgreSQL refused to {'create' if creating else 'alter'} role `{role}`: "
                "the bot's account needs CREATEROLE (and, on PostgreSQL 16+, ADMIN OPTION on "
                "roles it did not create)"
            )
        bot, createrole, version, target_super, target_special = row
        if not createrole:
            return PermissionProblem(
                f"the bot's account `{bot}` needs CREATEROLE to manage role `{role}`: "
                f'run `ALTER ROLE "{bot}" CREATEROLE;` as a superuser'
            )
        if target_super:
            return PermissionProblem(
                f"role `{role}` is a superuser and only a superuser may alter it; the bot's "
                f"account `{bot}` is not one. An app role should not be a superuser: "
                f'a superuser can run `ALTER ROLE "{role}" NOSUPERUSER;`'
            )
        if version >= 160000 and not creating:
            return PermissionProblem(
                f"on PostgreSQL 16+ the bot's account `{bot}` may alter only roles it has "
                f"ADMIN OPTION on, and role `{role}` was created by someone else: run "
                f'`GRANT "{role}" TO "{bot}" WITH ADMIN OPTION;` as a superuser'
            )
        if target_special and not creating:
            return PermissionProblem(
                f"role `{role}` has REPLICATION or BYPASSRLS, so before PostgreSQL 16 only a "
                f"superuser may alter it; the bot's account `{bot}` is not one"
            )
        return PermissionProblem(
            f"PostgreSQL refused to let the bot's account `{bot}` "
            f"{'create' if creating else 'alter'} role `{role}` (permission denied); "
            "check the account's CREATEROLE and role grants"
        )

    # -- passwords ------------------------------------------------------------------------

    def check_passwords(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        verdicts: dict[str, PasswordVerdict] = {}
        probes: dict[str, Secret] = {}
        now = time.monotonic()
        self._compare_new_verifiers(candidates, state=state)
        for role, password in candidates.items():
            info = state.roles.get(role)
            if info is None:
                verdicts[role] = PasswordVerdict(
                    result=PasswordResult.UNKNOWN,
                    method="verifier" if state.bot_is_superuser else "login",
                    detail=f"role `{role}` does not exist",
                )
                continue
            if not password.reveal():
                verdicts[role] = PasswordVerdict(
                    result=PasswordResult.MISMATCH,
                    method="verifier" if info.verifier is not None else "login",
                    detail="the stored password is empty",
                )
                continue
            if info.verifier is not None:
                verdict = self._by_verifier(info, password)
                if verdict is not None:
                    verdicts[role] = verdict
                    continue
            if not info.can_login:
                verdicts[role] = PasswordVerdict(
                    result=PasswordResult.UNKNOWN,
                    method="login",
                    detail=f"role `{role}` cannot log in (NOLOGIN), so a login cannot test "
                    "its password",
                )
                continue
            cached = self._cached(role, password, now)
            if cached is not None:
                verdicts[role] = cached
            else:
                probes[role] = password
        if probes:
            verdicts.update(self._probe_all(probes, state=state))
        return verdicts

    def _compare_new_verifiers(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> None:
        """Fill the verifier memo for the pairs it lacks, one thread per core.

        A first pass over N apps is N PBKDF2 runs (4,096 SHA-256 rounds each, about 1.5 ms);
        hashlib releases the GIL while it runs, so cores work side by side. Only the memo in
        memory is filled: nothing faster to guess against is ever written anywhere.
        """
        workers = min(os.cpu_count() or 1, _VERIFIER_THREADS)
        if workers < 2:
            return
        # One filler at a time: commands arriving meanwhile (ten `/pgdb status` at once after
        # a restart) wait for it and find the memo filled, instead of each running the same
        # N PBKDF2 side by side.
        with self._filling:
            self._fill_memo(candidates, state=state, workers=workers)

    def _fill_memo(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState, workers: int
    ) -> None:
        missing: list[tuple[RoleInfo, Secret]] = []
        with self._lock:
            for role, password in candidates.items():
                info = state.roles.get(role)
                if info is None or not info.verifier or not password.reveal():
                    continue
                if (info.verifier, self._cache_slot(role, password)[1]) not in self._verifier_memo:
                    missing.append((info, password))
        if len(missing) < _VERIFIER_BATCH:
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgdb-verifier") as pool:
            for _ in pool.map(lambda pair: self._by_verifier(*pair), missing):
                pass

    def _by_verifier(self, info: RoleInfo, password: Secret) -> PasswordVerdict | None:
        """Compare against the verifier; the (slow, PBKDF2) result is remembered for the same
        verifier and password, so a diagnostics pass only pays for what changed."""
        assert info.verifier is not None
        key = (info.verifier, self._cache_slot(info.name, password)[1])
        with self._lock:
            known = self._verifier_memo.get(key)
        if known is None:
            known = self._compare_verifier(info, password)
            with self._lock:
                if len(self._verifier_memo) >= _VERIFIER_MEMO_SIZE:
                    self._verifier_memo.clear()
                self._verifier_memo[key] = known
        return known

    @staticmethod
    def _compare_verifier(info: RoleInfo, password: Secret) -> PasswordVerdict | None:
        assert info.verifier is not None
        if info.verifier == "":
            return PasswordVerdict(
                result=PasswordResult.MISMATCH,
                method="verifier",
                detail=f"role `{info.name}` has no password",
            )
        matches = verifier_matches(info.verifier, role=info.name, password=password)
        if matches is None:
            return None  # a format we do not know: a real login decides
        if matches:
            return PasswordVerdict(result=PasswordResult.MATCH, method="verifier")
        return PasswordVerdict(
            result=PasswordResult.MISMATCH,
            method="verifier",
            detail=f"the stored password does not match role `{info.name}`'s verifier",
        )

    def _cache_slot(self, role: str, password: Secret) -> tuple[str, bytes]:
        return role, hmac.digest(self._cache_key, password.reveal().encode(), "sha256")

    def _cached(self, role: str, password: Secret, now: float) -> PasswordVerdict | None:
        with self._lock:
            for key in [k for k, (_, expiry) in self._cache.items() if expiry <= now]:
                del self._cache[key]
            hit = self._cache.get(self._cache_slot(role, password))
        return hit[0] if hit is not None else None

    def _probe_all(
        self, probes: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        def probe(item: tuple[str, Secret]) -> tuple[str, PasswordVerdict]:
            role, password = item
            dbname = role if role in state.databases else "postgres"
            with self._login_slots:
                verdict = self._probe(role, password, dbname=dbname)
            if verdict.result is not PasswordResult.UNKNOWN:
                # Only definite answers are kept: an outage must not hide for an hour.
                expiry = time.monotonic() + self._login_recheck_seconds
                with self._lock:
                    self._cache[self._cache_slot(role, password)] = (verdict, expiry)
            return role, verdict

        workers = min(self._login_concurrency, len(probes))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgdb-login") as pool:
            return dict(pool.map(probe, probes.items()))

    def _probe(self, role: str, password: Secret, *, dbname: str) -> PasswordVerdict:
        """One real login as ``role``: the only proof when the verifier cannot be read."""
        with self._lock:
            self.login_probes += 1
        where = f"{self._target.host}:{self._target.port}/{dbname}"
        params = {**self._probe_params, "user": role, "dbname": dbname}
        message = ""
        try:
            conn = psycopg.connect(**params, password=password.reveal(), autocommit=True)
        except psycopg.Error as exc:
            message = _reason(exc, [password.reveal()])
        else:
            with conn:
                used_password = conn.pgconn.used_password
            if used_password:
                return PasswordVerdict(result=PasswordResult.MATCH, method="login")
            return PasswordVerdict(
                result=PasswordResult.UNKNOWN,
                method="login",
                detail=f"the server let `{role}` in without asking for a password (trust in "
                "pg_hba.conf), so a login cannot test the stored password",
            )
        lowered = message.lower()
        if "password authentication failed" in lowered:
            return PasswordVerdict(
                result=PasswordResult.MISMATCH,
                method="login",
                detail=f"the stored password does not open role `{role}` (login refused)",
            )
        if "no pg_hba.conf entry" in lowered:
            detail = f"pg_hba.conf does not let `{role}` connect to {where} from the bot"
        elif "not permitted to log in" in lowered:
            detail = f"role `{role}` cannot log in (NOLOGIN)"
        else:
            detail = f"could not log in as `{role}` to {where} to test its password: {message}"
        return PasswordVerdict(result=PasswordResult.UNKNOWN, method="login", detail=detail)


def _scram_verifier(conn: Connection, role: str, password: Secret) -> str:
    """libpq's ``PQencryptPasswordConn``: the server only ever sees this verifier."""
    raw = conn.pgconn.encrypt_password(password.reveal().encode(), role.encode(), b"scram-sha-256")
    return raw.decode("ascii")


# --- the bot's own state ---------------------------------------------------------------------

# (version, statements). Append only: a released migration never changes. {schema} is the
# bot's schema, quoted.
MIGRATIONS: Final[list[tuple[int, str]]] = [
    (
        1,
        """
        CREATE TABLE {schema}.audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            username text NOT NULL,
            platform text NOT NULL,
            command text NOT NULL,
            app text,
            result text NOT NULL,
            detail text NOT NULL DEFAULT '',
            correlation_id text NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_log_at ON {schema}.audit_log (at);
        CREATE TABLE {schema}.workflows (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            app text NOT NULL,
            kind text NOT NULL,
            requester text NOT NULL,
            status text NOT NULL,
            step text NOT NULL DEFAULT '',
            detail text NOT NULL DEFAULT '',
            proposal_url text,
            message_link text,
            started_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX workflows_app_latest ON {schema}.workflows (app, id DESC);
        CREATE TABLE {schema}.alert_state (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL,
            app text,
            fingerprint text NOT NULL,
            first_seen timestamptz NOT NULL DEFAULT now(),
            last_sent timestamptz,
            resolved_at timestamptz,
            thread_ref text
        );
        CREATE INDEX alert_state_kind_app ON {schema}.alert_state (kind, app);
        CREATE INDEX alert_state_fingerprint ON {schema}.alert_state (fingerprint);
        """,
    ),
    (
        2,
        """
        ALTER TABLE {schema}.alert_state
            ADD COLUMN severity text NOT NULL DEFAULT 'warning',
            ADD COLUMN message text NOT NULL DEFAULT '',
            ADD COLUMN last_seen timestamptz,
            ADD COLUMN absent_passes int NOT NULL DEFAULT 0,
            ADD COLUMN flaps int NOT NULL DEFAULT 0,
            ADD COLUMN threads jsonb NOT NULL DEFAULT '{{}}'::jsonb;
        CREATE UNIQUE INDEX alert_state_one_open ON {schema}.alert_state (fingerprint)
            WHERE resolved_at IS NULL;
        CREATE TABLE {schema}.silences (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            target text NOT NULL,
            until timestamptz NOT NULL,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX silences_target ON {schema}.silences (target, until);
        """,
    ),
    (
        3,
        """
        ALTER TABLE {schema}.workflows
            ADD COLUMN followed_up_at timestamptz,
            ADD COLUMN follow_result text;
        """,
    ),
    (
        4,
        """
        CREATE TABLE {schema}.approvals (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            app text NOT NULL,
            namespace text,
            requester text NOT NULL,
            platform text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            requested_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            message_link text,
            threads jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            decided_by text,
            decided_at timestamptz,
            reason text NOT NULL DEFAULT ''
        );
        CREATE UNIQUE INDEX approvals_one_pending ON {schema}.approvals (app)
            WHERE status = 'pending';
        CREATE INDEX approvals_app_latest ON {schema}.approvals (app, id DESC);
        """,
    ),
    (
        5,
        """
        ALTER TABLE {schema}.workflows ADD COLUMN password_fingerprint text;
        """,
    ),
    (
        6,
        # Requests already seen (issue 16): a signed Slack request, a Mattermost button's nonce,
        # kept until it could no longer be presented (its validity window), for every replica.
        """
        CREATE TABLE {schema}.seen_requests (
            key text PRIMARY KEY,
            platform text NOT NULL,
            seen_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX seen_requests_expires ON {schema}.seen_requests (expires_at);
        """,
    ),
    (
        8,
        # Alerts grouped per (environment, kind) (issue 17): every alert row carries its
        # environment; NULL is a row written before, which belongs to PGDB_ENV's environment
        # (SPEC §12), so an upgrade never announces it again.
        """
        ALTER TABLE {schema}.alert_state ADD COLUMN env text;
        DROP INDEX {schema}.alert_state_one_open;
        CREATE UNIQUE INDEX alert_state_one_open_env
            ON {schema}.alert_state (coalesce(env, ''), fingerprint) WHERE resolved_at IS NULL;
        """,
    ),
]


class PostgresBotState:
    """Audit log, workflow records and cross-replica locks in the bot's own schema (``BotState``).

    The schema is created and migrated on first use; ``migrate()`` may also run at start-up.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "pgdb_bot",
        connect_timeout: float = 5,
        statement_timeout: float = 30,
    ) -> None:
        self._target = _Target.parse(dsn)
        self._schema = schema
        self._statement_timeout = statement_timeout
        self._params = self._target.connect_params(
            connect_timeout=connect_timeout,
            settings={
                "statement_timeout": f"{int(statement_timeout * 1000)}",
                "TimeZone": "UTC",
            },
            application_name="pgdb-bot",
        )
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresBotState({self._target.describe()}, schema={self._schema!r})"

    def _table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self._schema, name)

    def _run(self, what: str, body: Callable[[Connection], T], *, migrate: bool = True) -> T:
        if migrate:
            self._ensure_migrated()
        return _run(
            self._params, self._target, what, body, statement_timeout=self._statement_timeout
        )

    # -- migrations -----------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the missing migrations under a transaction-scoped advisory lock.

        Two replicas starting at once serialise on the lock; the second finds nothing to do.
        Returns the versions applied by this call.
        """

        def body(conn: Connection) -> list[int]:
            schema = sql.Identifier(self._schema)
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (LOCK_CLASS_MIGRATIONS, self._schema),
                )
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (version int PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(self._table("schema_migrations"))
                )
                done = {
                    v
                    for (v,) in conn.execute(
                        sql.SQL("SELECT version FROM {}").format(self._table("schema_migrations"))
                    )
                }
                applied: list[int] = []
                for version, statements in MIGRATIONS:
                    if version in done:
                        continue
                    conn.execute(sql.SQL(statements).format(schema=schema))
                    conn.execute(
                        sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(
                            self._table("schema_migrations")
                        ),
                        (version,),
                    )
                    applied.append(version)
            return applied

        with self._migrate_lock:
            applied = self._run("migrating the bot's schema", body, migrate=False)
            self._migrated = True
        if applied:
            log.info("applied migrations %s to schema %s", applied, self._schema)
        return applied

    def _ensure_migrated(self) -> None:
        if not self._migrated:
            self.migrate()

    def ping(self) -> None:
        """Raise BackendUnavailable unless the server answers (readiness)."""
        self._run("ping", lambda conn: conn.execute("SELECT 1").fetchone(), migrate=False)

    # -- audit ----------------------------------------------------------------------------

    def record_audit(self, entry: AuditEntry) -> None:
        def body(conn: Connection) -> None:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (at, username, platform, command, app, result, detail,"
                    " correlation_id) VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s, %s, %s)"
                ).format(self._table("audit_log")),
                (
                    entry.at,
                    _storable(entry.user),
                    _storable(entry.platform),
                    _storable(entry.command),
                    _storable(entry.app) if entry.app is not None else None,
                    _storable(entry.result),
                    _storable(entry.detail),
                    _storable(entry.correlation_id),
                ),
            )

        self._run("recording the audit entry", body)

    def audit_entries(self, *, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first."""

        def body(conn: Connection) -> list[AuditEntry]:
            rows = conn.execute(
                sql.SQL(
                    "SELECT at, username, platform, command, app, result, detail, correlation_id"
                    " FROM {} ORDER BY id DESC LIMIT %s"
                ).format(self._table("audit_log")),
                (limit,),
            )
            return [
                AuditEntry(
                    at=at,
                    user=user,
                    platform=platform,
                    command=command,
                    app=app,
                    result=result,
                    detail=detail,
                    correlation_id=correlation_id,
                )
                for at, user, platform, command, app, result, detail, correlation_id in rows
            ]

        return self._run("reading the audit log", body)

    # -- workflows ------------------------------------------------------------------------

    def start_workflow(self, *, app: AppName, kind: str, requester: str) -> int:
        def body(conn: Connection) -> int:
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {} (app, kind, requester, status) VALUES (%s, %s, %s, %s)"
                    " RETURNING id"
                ).format(self._table("workflows")),
                (app, kind, requester, WorkflowStatus.RUNNING.value),
            ).fetchone()
            assert row is not None
            return int(row[0])

        return self._run("recording the workflow", body)

    def update_workflow(
        self,
        workflow_id: int,
        *,
        step: str,
        status: WorkflowStatus,
        detail: str = "",
        proposal_url: str | None = None,
    ) -> None:
        """Move a workflow on; ``proposal_url=None`` keeps the one already recorded."""

        def body(conn: Connection) -> int:
            cur = conn.execute(
                sql.SQL(
                    "UPDATE {} SET step = %s, status = %s, detail = %s,"
                    " proposal_url = coalesce(%s, proposal_url), updated_at = now()"
                    " WHERE id = %s"
                ).format(self._table("workflows")),
                (step, status.value, detail, proposal_url, workflow_id),
            )
            return cur.rowcount

        self._require_workflow(workflow_id, self._run("updating the workflow", body))

    def set_message_link(self, workflow_id: int, *, link: str) -> None:
        """Where the workflow's chat message is, so "already in progress" can point at it."""

        def body(conn: Connection) -> int:
            return conn.execute(
                sql.SQL("UPDATE {} SET message_link = %s WHERE id = %s").format(
                    self._table("workflows")
                ),
                (link, workflow_id),
            ).rowcount

        self._require_workflow(workflow_id, self._run("updating the workflow", body))

    def set_password_fingerprint(self, workflow_id: int, *, fingerprint: str) -> None:
        """Which password a workflow wrote, as a salted verifier (never the password itself), in
        a column of its own: no status, diagnostics or record listing reads it."""

        def body(conn: Connection) -> int:
            return conn.execute(
                sql.SQL("UPDATE {} SET password_fingerprint = %s WHERE id = %s").format(
                    self._table("workflows")
                ),
                (fingerprint, workflow_id),
            ).rowcount

        self._require_workflow(workflow_id, self._run("recording the password fingerprint", body))

    def password_fingerprint(self, workflow_id: int) -> str | None:
        def body(conn: Connection) -> str | None:
            row = conn.execute(
                sql.SQL("SELECT password_fingerprint FROM {} WHERE id = %s").format(
                    self._table("workflows")
                ),
                (workflow_id,),
            ).fetchone()
            return None if row is None else row[0]

        return self._run("reading the password fingerprint", body)

    @staticmethod
    def _require_workflow(workflow_id: int, rowcount: int) -> None:
        if rowcount == 0:
            raise ConflictError(f"workflow {workflow_id} is not recorded (was the schema reset?)")

    def workflows(self) -> list[WorkflowRecord]:
        """The latest workflow record of each app, by app name."""

        def body(conn: Connection) -> list[WorkflowRecord]:
            rows = conn.execute(sql.SQL(_LATEST_WORKFLOWS).format(table=self._table("workflows")))
            return [_workflow(row[:-2], first_at=row[-2], first_requester=row[-1]) for row in rows]

        return self._run("reading the workflows", body)

    def latest_workflow(self, app: AppName) -> WorkflowRecord | None:
        def body(conn: Connection) -> list[WorkflowRecord]:
            rows = conn.execute(
                sql.SQL(
                    f"SELECT {_WORKFLOW_COLUMNS} FROM {{}} WHERE app = %s ORDER BY id DESC LIMIT 1"
                ).format(self._table("workflows")),
                (str(app),),
            )
            return [_workflow(row) for row in rows]

        found = self._run("reading the workflow", body)
        return found[0] if found else None

    def pending_follow_ups(self) -> list[WorkflowRecord]:
        """Each app's latest workflow when it is a done ``create`` with a chat message and no
        follow-through yet."""

        def body(conn: Connection) -> list[WorkflowRecord]:
            rows = conn.execute(
                sql.SQL(
                    f"SELECT {_WORKFLOW_COLUMNS} FROM ("
                    "SELECT DISTINCT ON (app) * FROM {} ORDER BY app, id DESC) latest"
                    " WHERE kind = 'create' AND status = %s AND message_link IS NOT NULL"
                    " AND followed_up_at IS NULL ORDER BY id"
                ).format(self._table("workflows")),
                (WorkflowStatus.DONE.value,),
            )
            return [_workflow(row) for row in rows]

        return self._run("reading the pending follow-ups", body)

    def mark_followed_up(self, workflow_id: int, *, result: str) -> bool:
        """Compare-and-set: only the replica whose update finds no follow-up recorded wins."""

        def body(conn: Connection) -> int:
            return conn.execute(
                sql.SQL(
                    "UPDATE {} SET followed_up_at = now(), follow_result = %s"
                    " WHERE id = %s AND followed_up_at IS NULL"
                ).format(self._table("workflows")),
                (result, workflow_id),
            ).rowcount

        return self._run("recording the follow-up", body) == 1

    def clear_follow_up(self, workflow_id: int, *, result: str) -> None:
        def body(conn: Connection) -> None:
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET followed_up_at = NULL, follow_result = NULL"
                    " WHERE id = %s AND follow_result = %s"
                ).format(self._table("workflows")),
                (workflow_id, result),
            )

        self._run("clearing the follow-up", body)

    # -- replays --------------------------------------------------------------------------

    def first_sight(self, key: str, *, platform: str, until: datetime) -> bool:
        """One statement: the key is inserted unless present (two replicas racing on it
        serialise on the primary key), and up to 100 expired keys are removed on the way."""

        def body(conn: Connection) -> bool:
            row = conn.execute(
                sql.SQL(
                    "WITH gone AS (DELETE FROM {table} WHERE key IN (SELECT key FROM {table}"
                    " WHERE expires_at < now() LIMIT 100))"
                    " INSERT INTO {table} (key, platform, expires_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT (key) DO NOTHING RETURNING 1"
                ).format(table=self._table("seen_requests")),
                (key, platform, until),
            ).fetchone()
            return row is not None

        return self._run("checking for a replayed request", body)

    # -- locks ----------------------------------------------------------------------------

    @contextmanager
    def app_lock(self, app: AppName) -> Iterator[bool]:
        """A session advisory lock on a dedicated connection, held for the ``with`` block.

        If the bot dies, its connection closes and PostgreSQL releases the lock by itself.
        """
        self._ensure_migrated()
        failure: PgdbError | None = None
        try:
            conn = psycopg.connect(**self._params, autocommit=True)
        except psycopg.Error as exc:
            failure = _unreachable(self._target, exc)
        if failure is not None:
            raise failure
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS_APP, str(app))
            ).fetchone()
        except psycopg.Error as exc:
            conn.close()
            failure = _failed(
                self._target,
                f"locking `{app}`",
                exc,
                statement_timeout=self._statement_timeout,
                hidden=[],
            )
        if failure is not None:
            raise failure
        acquired = bool(row and row[0])
        try:
            yield acquired
        finally:
            try:
                if acquired and not conn.closed:
                    conn.execute(
                        "SELECT pg_advisory_unlock(%s, hashtext(%s))",
                        (LOCK_CLASS_APP, str(app)),
                    )
            except psycopg.Error as exc:
                # Closing the session below releases the lock anyway.
                log.warning("could not unlock %s: %s", app, _reason(exc))
            finally:
                conn.close()


# What ``_workflow`` reads, in its order.
_WORKFLOW_COLUMNS = (
    "id, app, kind, requester, status, step, detail, proposal_url, message_link, started_at,"
    " updated_at"
)


# Each app's latest record, with when the app's first record started (its grace runs from
# there, whatever came later) and who ran its first ``create`` (the app's requester).
_LATEST_WORKFLOWS = (
    "WITH firsts AS (SELECT app, min(started_at) AS first_at FROM {table} GROUP BY app),"
    " creators AS (SELECT DISTINCT ON (app) app, requester AS first_requester FROM {table}"
    " WHERE kind = 'create' ORDER BY app, id)"
    " SELECT DISTINCT ON (w.app) "
    + ", ".join(f"w.{c.strip()}" for c in _WORKFLOW_COLUMNS.split(","))
    + ", f.first_at, c.first_requester FROM {table} w JOIN firsts f ON f.app = w.app"
    " LEFT JOIN creators c ON c.app = w.app ORDER BY w.app, w.id DESC"
)


def _workflow(
    row: tuple[Any, ...],
    *,
    first_at: datetime | None = None,
    first_requester: str | None = None,
) -> WorkflowRecord:
    (
        id_,
        app,
        kind,
        requester,
        status,
        step,
        detail,
        proposal_url,
        message_link,
        started_at,
        updated_at,
    ) = row
    started: datetime = started_at
    updated: datetime = updated_at
    return WorkflowRecord(
        id=id_,
        app=app,
        kind=kind,
        requester=requester,
        status=WorkflowStatus(status),
        step=step,
        detail=detail,
        started_at=started,
        updated_at=updated,
        proposal_url=proposal_url,
        message_link=message_link,
        app_first_at=first_at,
        app_requester=first_requester,
    )
