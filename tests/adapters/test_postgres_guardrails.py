"""Guardrails against a real PostgreSQL: the limits a role gets, as the catalogs hold them; the
app's connections counted and refused by PostgreSQL itself past its limit; a database grown
past the size warning; the declared limits kept in the bot's schema — each seen through the
same one catalog read and the one assessment as every diagnostics pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import psycopg
import pytest
from psycopg import sql

from bot.adapters.postgres.migrations import BotSchema
from bot.adapters.postgres.roles import PostgresDatabase, timeout_ms
from bot.adapters.postgres.state import PostgresBotState
from bot.core.limits import NO_LIMIT, RoleLimits
from bot.core.names import AppName
from bot.core.secret import Secret, generate_password
from handlers.findings import diagnose
from handlers.observe import observe
from tests.fakes.services import MemoryWorld, memory_services, memory_settings
from tests.fixtures.postgres import dsn_user, login_dsn, with_params

pytestmark = pytest.mark.timeout(120)


def fetch(dsn: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return list(conn.execute(query, params or None))


def catalog_limits(dsn: str, role: str) -> tuple[int, list[str]]:
    """rolconnlimit and the role-wide settings, read straight from the catalogs."""
    [(limit,)] = fetch(dsn, "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (role,))
    settings = fetch(
        dsn,
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid ="
        " s.setrole WHERE r.rolname = %s AND s.setdatabase = 0",
        (role,),
    )
    return int(str(limit)), [str(s) for (s,) in settings]


def app_database(superuser_dsn: str, app: AppName) -> None:
    """The database CloudNativePG would create for the app (named after it, owned by it)."""
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(app), sql.Identifier(app))
        )


@pytest.fixture
def sessions() -> Iterator[ExitStack]:
    """Connections opened as an app, closed before the roles and databases are dropped."""
    with ExitStack() as stack:
        yield stack


def _until_sessions(dsn: str, app: AppName, *, count: int, timeout: float = 10) -> None:
    """Until the app's sessions are down to ``count`` (a closed session may linger a moment)."""
    end = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (app,)
            ).fetchone()
            if (row[0] if row else 0) <= count or time.monotonic() > end:
                return
            time.sleep(0.05)


def open_as(stack: ExitStack, dsn: str, app: AppName, password: Secret) -> psycopg.Connection:
    conn = psycopg.connect(
        with_params(login_dsn(dsn, user=app, password=password), dbname=app),
        autocommit=True,
        connect_timeout=5,
    )
    stack.callback(conn.close)
    return conn


def test_a_created_role_has_its_limits_in_the_catalogs(
    admin_dsn: str, pg_superuser_dsn: str, app_name: AppName
) -> None:
    db = PostgresDatabase(admin_dsn)

    db.create_role(
        app_name,
        password=generate_password(),
        limits=RoleLimits(connection_limit=20, statement_timeout_ms=30_000),
    )

    assert catalog_limits(pg_superuser_dsn, app_name) == (20, ["statement_timeout=30000"])
    seen = db.observe().roles[app_name]
    assert (seen.connection_limit, seen.statement_timeout_ms) == (20, 30_000)


def test_set_limits_changes_them_and_zero_removes_the_timeout(
    admin_dsn: str, pg_superuser_dsn: str, app_name: AppName
) -> None:
    db = PostgresDatabase(admin_dsn)
    db.create_role(app_name, password=generate_password(), limits=RoleLimits(connection_limit=20))
    assert catalog_limits(pg_superuser_dsn, app_name) == (20, [])

    db.set_limits(app_name, limits=RoleLimits(connection_limit=5, statement_timeout_ms=1500))
    assert catalog_limits(pg_superuser_dsn, app_name) == (5, ["statement_timeout=1500"])

    db.set_limits(app_name, limits=RoleLimits(connection_limit=NO_LIMIT, statement_timeout_ms=0))
    assert catalog_limits(pg_superuser_dsn, app_name) == (-1, [])
    seen = db.observe().roles[app_name]
    assert (seen.connection_limit, seen.statement_timeout_ms) == (-1, 0)


def test_a_timeout_set_by_hand_in_another_unit_reads_in_milliseconds(
    admin_dsn: str, pg_superuser_dsn: str, app_name: AppName
) -> None:
    db = PostgresDatabase(admin_dsn)
    db.create_role(app_name, password=generate_password())
    with psycopg.connect(pg_superuser_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} SET statement_timeout = '2min'").format(sql.Identifier(app_name))
        )

    assert db.observe().roles[app_name].statement_timeout_ms == 120_000
    assert timeout_ms("5s") == 5000 and timeout_ms("250") == 250 and timeout_ms(None) == 0


def test_connections_at_80_percent_are_a_finding_and_postgresql_refuses_past_the_limit(
    admin_dsn: str, pg_superuser_dsn: str, app_name: AppName, sessions: ExitStack
) -> None:
    password = generate_password()
    db = PostgresDatabase(admin_dsn)
    db.create_role(app_name, password=password, limits=RoleLimits(connection_limit=5))
    app_database(pg_superuser_dsn, app_name)
    world = MemoryWorld()
    world.secrets.put(app_name, password)
    services = memory_services(world, database=db, bot_role=dsn_user(admin_dsn))

    for _ in range(3):
        open_as(sessions, pg_superuser_dsn, app_name, password)
    below = diagnose(observe(services), services)
    assert db.observe().roles[app_name].connections == 3
    assert "connections_near_limit" not in {f.kind for f in below.findings}

    open_as(sessions, pg_superuser_dsn, app_name, password)  # 4 of 5: 80 %
    found = {f.kind: f for f in diagnose(observe(services), services).findings}
    near = found["connections_near_limit"]
    assert near.app == app_name and near.severity.value == "warning"
    assert "4 of its 5 connections" in near.message
    assert near.remedy.startswith("check the app's connection pool")
    assert f"/pgdb limits {app_name} --connections " in near.remedy

    # With a CREATEROLE account the password check was a real login as the app: its session
    # ends asynchronously, and PostgreSQL counts it until it has.
    _until_sessions(pg_superuser_dsn, app_name, count=4)
    open_as(sessions, pg_superuser_dsn, app_name, password)  # the 5th is still allowed
    with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
        open_as(sessions, pg_superuser_dsn, app_name, password)


def test_a_database_grown_past_the_size_warning_is_database_large(
    admin_dsn: str, pg_superuser_dsn: str, app_name: AppName, sessions: ExitStack
) -> None:
    password = generate_password()
    db = PostgresDatabase(admin_dsn, size_refresh_seconds=0)  # every observation measures
    db.create_role(app_name, password=password, limits=RoleLimits(connection_limit=20))
    app_database(pg_superuser_dsn, app_name)
    world = MemoryWorld()
    world.secrets.put(app_name, password)
    empty = db.observe().databases[app_name].size_bytes
    assert empty is not None and empty > 0
    warn = empty + 1024 * 1024  # a tiny PGDB_DATABASE_SIZE_WARN: 1 MiB above the empty one
    services = memory_services(
        world,
        settings=memory_settings(database_size_warn=str(warn)),
        database=db,
        bot_role=dsn_user(admin_dsn),
    )
    assert "database_large" not in {f.kind for f in diagnose(observe(services), services).findings}

    app = open_as(sessions, pg_superuser_dsn, app_name, password)
    app.execute(
        "CREATE TABLE blobs AS SELECT repeat(md5(g::text), 40) AS b FROM generate_series(1, 3000) g"
    )

    found = {f.kind: f for f in diagnose(observe(services), services).findings}
    large = found["database_large"]
    assert large.app == app_name and large.severity.value == "warning"
    assert f"above PGDB_DATABASE_SIZE_WARN ({warn})" in large.message
    assert f"-d {app_name}" in large.remedy
    grown = db.observe().databases[app_name].size_bytes
    assert grown is not None and grown > warn


def test_a_size_is_measured_once_per_refresh_period_and_a_new_database_at_once(
    admin_dsn: str, pg_superuser_dsn: str, app_name: AppName, sessions: ExitStack
) -> None:
    """pg_database_size walks every file of a database: a pass reuses a recent figure."""
    password = generate_password()
    db = PostgresDatabase(admin_dsn)  # the default: five minutes
    db.create_role(app_name, password=password, limits=RoleLimits(connection_limit=20))
    assert app_name not in db.observe().databases
    app_database(pg_superuser_dsn, app_name)
    first = db.observe().databases[app_name].size_bytes  # new since the last look: measured
    assert first is not None and first > 0

    app = open_as(sessions, pg_superuser_dsn, app_name, password)
    app.execute(
        "CREATE TABLE blobs AS SELECT repeat(md5(g::text), 40) AS b FROM generate_series(1, 3000) g"
    )

    assert db.observe().databases[app_name].size_bytes == first  # within the period: kept
    fresh = PostgresDatabase(admin_dsn).observe().databases[app_name].size_bytes
    assert fresh is not None and fresh > first


def test_declared_limits_ride_along_with_the_workflows(state_dsn: str) -> None:
    state = PostgresBotState(BotSchema(state_dsn))
    app = AppName("docspell")
    state.start_workflow(app=app, kind="create", requester="alice")
    state.start_workflow(app=AppName("photos"), kind="create", requester="bob")

    state.declare_limits(
        app, limits=RoleLimits(connection_limit=20), source="create", declared_by="alice"
    )
    state.declare_limits(
        app,
        limits=RoleLimits(connection_limit=40, statement_timeout_ms=30_000),
        source="limits",
        declared_by="olga",
    )

    records = {w.app: w for w in state.workflows()}
    assert records["docspell"].declared == RoleLimits(
        connection_limit=40, statement_timeout_ms=30_000
    )
    assert records["photos"].declared is None
