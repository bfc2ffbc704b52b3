"""The shared PostgreSQL server the bot manages, through its admin account (``ManagedDatabase``):
one catalog read of every role, membership and database, and the role changes the workflows
make (create, enable or disable login, set a password).

When PostgreSQL refuses a change, the error names the grant that would allow it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.rows import dict_row

from bot.adapters.postgres.connection import SYSTEM, Connection, Server
from bot.adapters.postgres.passwords import PasswordChecker
from bot.core.errors import BackendUnavailable, ConflictError, PermissionProblem, PgdbError
from bot.core.limits import RoleLimits
from bot.core.model import DatabaseInfo, DatabaseState, PasswordVerdict, RoleInfo
from bot.core.names import AppName
from bot.core.secret import Secret

_OBSERVE_ACCESS = """
SELECT current_user::text,
       r.rolsuper,
       r.rolcreaterole,
       current_setting('server_version_num')::int,
       has_table_privilege('pg_catalog.pg_authid', 'SELECT')
  FROM pg_catalog.pg_roles r
 WHERE r.rolname = current_user
"""

# One catalog query for every role, membership and database, its columns named as ``RoleInfo``'s
# fields. {password} is rolpassword from pg_authid when that is readable, else NULL;
# {can_alter} depends on the server version. The usage figures ride along: each
# role's statement_timeout setting (pg_db_role_setting, role-wide rows) and its open sessions
# (pg_stat_activity: a role's row is listed whatever the bot's privileges), each database's size
# (pg_database_size needs CONNECT on it or pg_read_all_stats; NULL when the bot has neither).
# Sizes are asked for only for the databases not in %(sized_recently)s: pg_database_size walks
# every file of a database, about 0.3 s a pass over 500 of them (``PostgresDatabase`` keeps the
# figures a few minutes); ``measured`` says which rows carry a fresh one.
_OBSERVE_CATALOG = """
SELECT 'role'::text AS kind,
       r.rolname::text AS name,
       r.rolcanlogin AS can_login,
       r.rolsuper AS superuser,
       r.rolcreatedb AS createdb,
       r.rolcreaterole AS createrole,
       r.rolreplication AS replication,
       r.rolbypassrls AS bypassrls,
       COALESCE(mem.member_of, ARRAY[]::text[]) AS member_of,
       {password} AS verifier,
       {can_alter} AS bot_can_alter,
       NULL::text AS owner,
       -- infinity has no Python datetime: no expiry; -infinity: expired since ever
       CASE WHEN isfinite(r.rolvaliduntil) THEN r.rolvaliduntil
            WHEN r.rolvaliduntil < 'epoch' THEN 'epoch'::timestamptz END AS valid_until,
       r.rolconnlimit AS connection_limit,
       st.timeout AS statement_timeout,
       COALESCE(act.sessions, 0) AS connections,
       NULL::bigint AS size,
       NULL::boolean AS measured
  FROM {roles} r
  -- memberships grouped once: a subquery per role scanned pg_auth_members once per role,
  -- 1.6 s instead of 0.06 s at 5,000 roles that all grant themselves to one admin role
  LEFT JOIN (SELECT m.member,
                    array_agg(DISTINCT g.rolname::text ORDER BY g.rolname::text) AS member_of
               FROM pg_catalog.pg_auth_members m
               JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
              GROUP BY m.member) mem ON mem.member = r.oid
  LEFT JOIN (SELECT s.setrole, max(substr(c, 19)) AS timeout
               FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c
              WHERE s.setdatabase = 0 AND c LIKE 'statement\\_timeout=%%'
              GROUP BY s.setrole) st ON st.setrole = r.oid
  LEFT JOIN (SELECT a.usesysid, count(*) AS sessions
               FROM pg_catalog.pg_stat_activity a
              WHERE a.usesysid IS NOT NULL
                AND a.backend_type IS DISTINCT FROM 'background worker'
              GROUP BY a.usesysid) act ON act.usesysid = r.oid
UNION ALL
SELECT 'database', d.datname::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       pg_catalog.pg_get_userbyid(d.datdba)::text, NULL, NULL, NULL, NULL,
       -- has_database_privilege answers NULL for a database dropped since the scan began
       -- (tests and other clients drop theirs at any time): its size is then not asked for,
       -- which would fail the whole read
       CASE WHEN d.datname = ANY(%(sized_recently)s) THEN NULL
            WHEN pg_catalog.has_database_privilege(d.oid, 'CONNECT') IS NOT NULL
                 AND (pg_catalog.has_database_privilege(d.oid, 'CONNECT')
                      OR pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'))
            THEN pg_catalog.pg_database_size(d.oid) END,
       d.datname <> ALL(%(sized_recently)s)
  FROM pg_catalog.pg_database d
"""


class PostgresDatabase:
    """The shared PostgreSQL server through the bot's admin account (``ManagedDatabase``).

    Each call opens its own short connection (``Server.run``); password verdicts come from a
    ``PasswordChecker`` that reaches the server the same way.
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
        size_refresh_seconds: float = 300,
    ) -> None:
        if login_concurrency < 1:
            raise ValueError("login_concurrency must be at least 1")
        self._server = Server(
            dsn,
            application_name="pgdb-bot",
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
        self._passwords = PasswordChecker(
            self._server.target,
            login_concurrency=login_concurrency,
            login_timeout=login_timeout,
            login_recheck_seconds=login_recheck_seconds,
        )
        # database sizes change slowly and cost a walk of every file: one figure per database
        # serves the passes and `usage` of the next ``size_refresh_seconds``
        self._size_refresh_seconds = size_refresh_seconds
        self._sizes: dict[str, tuple[int | None, float]] = {}  # name: (bytes, measured at)
        self._sizes_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresDatabase({self._server.describe()})"

    @property
    def login_probes(self) -> int:
        """Real logins made to test a password so far (the benchmarks count them)."""
        return self._passwords.login_probes

    # -- observe --------------------------------------------------------------------------

    def observe(self) -> DatabaseState:
        return self._server.run("reading the catalogs", self._observe)

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
        now = time.monotonic()
        with self._sizes_lock:
            recent = {
                name: size
                for name, (size, measured_at) in self._sizes.items()
                if now - measured_at < self._size_refresh_seconds
            }
        rows = conn.cursor(row_factory=dict_row).execute(query, {"sized_recently": list(recent)})
        measured: dict[str, tuple[int | None, float]] = {}
        for row in rows:
            name = row["name"]
            if row["kind"] == "database":
                size = row["size"] if row["measured"] else recent.get(name)
                if row["measured"]:
                    measured[name] = (size, now)
                databases[name] = DatabaseInfo(name=name, owner=row["owner"], size_bytes=size)
                continue
            roles_by_name[name] = RoleInfo(
                name=name,
                can_login=row["can_login"],
                superuser=row["superuser"],
                createdb=row["createdb"],
                createrole=row["createrole"],
                replication=row["replication"],
                bypassrls=row["bypassrls"],
                member_of=tuple(row["member_of"]),
                # readable catalog: "" means the role has no password; unreadable: None
                verifier=(row["verifier"] or "") if authid_readable else None,
                bot_can_alter=row["bot_can_alter"],
                valid_until=row["valid_until"],
                connection_limit=row["connection_limit"],
                statement_timeout_ms=timeout_ms(row["statement_timeout"]),
                connections=int(row["connections"]),
            )
        with self._sizes_lock:  # kept for the databases that still exist
            self._sizes = {
                name: measured.get(name) or self._sizes[name]
                for name in databases
                if name in measured or name in self._sizes
            }
        return DatabaseState(
            roles=roles_by_name,
            databases=databases,
            bot_role=bot_role,
            bot_is_superuser=bot_super,
            server_version=version,
        )

    # -- passwords ------------------------------------------------------------------------

    def check_passwords(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        return self._passwords.check(candidates, state=state)

    # -- create / enable ------------------------------------------------------------------

    def create_role(
        self, role: AppName, *, password: Secret, limits: RoleLimits | None = None
    ) -> None:
        limits = limits or RoleLimits()
        self._change_role(
            "creating the role",
            role,
            _with_verifier(
                "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT {limit} PASSWORD {verifier}",
                role,
                password,
                limit=limits.connection_limit,
                then=_timeout_statement(role, limits) if limits.statement_timeout_ms else None,
            ),
            password=password,
            raced=pgerrors.DuplicateObject,
            conflict=f"role `{role}` was created by someone else while this command ran; "
            "run the command again: it will check the existing role instead",
            creating=True,
        )

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
        self._change_role(
            what,
            role,
            _with_verifier("ALTER ROLE {role} WITH LOGIN PASSWORD {verifier}", role, password),
            password=password,
            raced=pgerrors.UndefinedObject,
            conflict=f"role `{role}` no longer exists (dropped while this command ran); "
            f"{if_dropped}",
        )

    def set_limits(self, role: AppName, *, limits: RoleLimits) -> None:
        def statement(_: Connection) -> sql.Composed:
            return sql.Composed(
                [
                    sql.SQL("ALTER ROLE {role} WITH CONNECTION LIMIT {limit}; ").format(
                        role=sql.Identifier(role), limit=sql.Literal(limits.connection_limit)
                    ),
                    _timeout_statement(role, limits),
                ]
            )

        self._change_role(
            "setting the limits of",
            role,
            statement,
            password=None,
            raced=pgerrors.UndefinedObject,
            conflict=f"role `{role}` no longer exists (dropped while this command ran); "
            f"`/pgdb repair {role} --yes` creates it, then run the command again",
        )

    def disable_login(self, role: AppName) -> int:
        sessions = 0

        def count_sessions(conn: Connection) -> None:
            nonlocal sessions
            # NOLOGIN stops new logins only; pg_stat_activity lists every backend's role.
            row = conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = %s", (role,)
            ).fetchone()
            sessions = int(row[0]) if row else 0

        self._change_role(
            "disabling login",
            role,
            lambda _: sql.SQL("ALTER ROLE {role} WITH NOLOGIN").format(role=sql.Identifier(role)),
            password=None,
            raced=pgerrors.UndefinedObject,
            conflict=f"role `{role}` no longer exists (dropped while this command ran); "
            "run the command again: there is nothing left to disable",
            then=count_sessions,
        )
        return sessions

    def _change_role(
        self,
        what: str,
        role: AppName,
        statement: Callable[[Connection], sql.Composed],
        *,
        password: Secret | None,
        raced: type[psycopg.Error],
        conflict: str,
        creating: bool = False,
        then: Callable[[Connection], None] | None = None,
    ) -> None:
        """One statement on ``role``. ``raced`` is the error that means someone else changed
        the role meanwhile (``conflict`` says what to do); a refusal names the missing grant."""

        def body(conn: Connection) -> PgdbError | None:
            prepared = statement(conn)
            try:
                conn.execute(prepared)
            except raced:
                return ConflictError(conflict)
            except pgerrors.InsufficientPrivilege:
                return self._permission_problem(conn, role, creating=creating)
            if then is not None:
                then(conn)
            return None

        problem = self._server.run(
            f"{what} `{role}`",
            body,
            hidden=[password.reveal()] if password is not None else [],
        )
        self._passwords.forget(role)
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


def _with_verifier(
    template: str,
    role: str,
    password: Secret,
    *,
    limit: int | None = None,
    then: sql.Composed | None = None,
) -> Callable[[Connection], sql.Composed]:
    """``template`` with ``{role}``, ``{verifier}`` (and ``{limit}``), followed by ``then`` in
    the same round trip: the verifier is computed on the connection by libpq's
    ``PQencryptPasswordConn``, so the server only ever sees it, never the password."""

    def statement(conn: Connection) -> sql.Composed:
        raw = conn.pgconn.encrypt_password(
            password.reveal().encode(), role.encode(), b"scram-sha-256"
        )
        values: dict[str, sql.Composable] = {
            "role": sql.Identifier(role),
            "verifier": sql.Literal(raw.decode("ascii")),
        }
        if limit is not None:
            values["limit"] = sql.Literal(limit)
        composed = sql.SQL(template).format(**values)
        return composed if then is None else sql.Composed([composed, sql.SQL("; "), then])

    return statement


def _timeout_statement(role: str, limits: RoleLimits) -> sql.Composed:
    """The role's own ``statement_timeout`` (in ms), or its removal for 0 (none)."""
    if limits.statement_timeout_ms:
        return sql.SQL("ALTER ROLE {role} SET statement_timeout = {ms}").format(
            role=sql.Identifier(role), ms=sql.Literal(limits.statement_timeout_ms)
        )
    return sql.SQL("ALTER ROLE {role} RESET statement_timeout").format(role=sql.Identifier(role))


_GUC_TIME = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|min|h|d)?\s*$")
_GUC_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def timeout_ms(setting: str | None) -> int:
    """A ``statement_timeout`` role setting as PostgreSQL stores it (``30000``, ``30s``,
    ``5min``; the unit defaults to ms) in ms; 0 when there is none (or it cannot be read)."""
    if not setting:
        return 0
    match = _GUC_TIME.fullmatch(setting.strip("'\""))
    if match is None:
        return 0
    value = float(match.group(1)) * _GUC_MS[match.group(2) or "ms"]
    return max(0, round(value))
