"""The PostgreSQL adapters against real servers: the shared test server (trust or passwords),
as a superuser and as a CREATEROLE-only account, and a private scram-sha-256 cluster where
passwords really are checked and every statement is logged."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bot.adapters.postgres.migrations import MIGRATIONS, BotSchema
from bot.adapters.postgres.passwords import verifier_matches
from bot.adapters.postgres.roles import PostgresDatabase
from bot.adapters.postgres.state import PostgresBotState
from bot.core.errors import BackendUnavailable, ConflictError, PermissionProblem
from bot.core.model import AuditEntry, PasswordResult, WorkflowStatus
from bot.core.names import AppName
from bot.core.secret import Secret, generate_password
from bot.pgcluster import PrivateCluster, PrivateClusterError, free_port
from tests.fixtures.postgres import dsn_user, login_dsn, unique_app, with_params

pytestmark = pytest.mark.timeout(120)


def run_sql(dsn: str, statement: sql.Composed | str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def fetch(dsn: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return list(conn.execute(query, params or None))


def ident(statement: str, *names: str) -> sql.Composed:
    return sql.SQL(statement).format(*(sql.Identifier(n) for n in names))


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def assert_never_shows(exc: BaseException, *secrets: str) -> None:
    """Nothing a log line or traceback print would show carries the secrets."""
    assert exc.__cause__ is None
    assert exc.__context__ is None
    for link in chain(exc):
        for value in secrets:
            assert value not in str(link)
            assert value not in repr(link)
            assert all(value not in str(arg) for arg in link.args)


def login(cluster: PrivateCluster, role: str, password: Secret) -> str:
    with psycopg.connect(cluster.dsn(user=role, password=password), connect_timeout=5) as conn:
        assert conn.pgconn.used_password
        row = conn.execute("SELECT current_user").fetchone()
        assert row is not None
        return str(row[0])


# --- observe ---------------------------------------------------------------------------------


def test_observe_sees_a_created_role_with_login_and_nothing_dangerous(
    admin_dsn: str, admin_is_superuser: bool, pg_superuser_dsn: str, app_name: AppName
) -> None:
    db = PostgresDatabase(admin_dsn)
    db.create_role(app_name, password=generate_password())

    state = db.observe()

    role = state.roles[app_name]
    assert role.can_login
    assert role.dangerous_attributes == ()
    assert role.member_of == ()
    assert role.bot_can_alter
    assert state.bot_role == dsn_user(admin_dsn)
    assert state.bot_is_superuser is admin_is_superuser
    assert state.server_version >= 140000
    if admin_is_superuser:
        assert role.verifier is not None
        assert role.verifier.startswith("SCRAM-SHA-256$")
    else:
        assert role.verifier is None  # pg_authid is not readable without superuser
    # ...and the catalogs agree, as a superuser reads them.
    [catalog] = fetch(
        pg_superuser_dsn,
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
        " rolbypassrls, rolinherit, left(rolpassword, 14) FROM pg_authid WHERE rolname = %s",
        (app_name,),
    )
    assert catalog == (True, False, False, False, False, False, True, "SCRAM-SHA-256$")


def test_observe_sees_memberships_attributes_and_databases_with_owners(
    admin_dsn: str, admin_is_superuser: bool, pg_superuser_dsn: str, app_name: AppName
) -> None:
    run_sql(pg_superuser_dsn, ident("CREATE ROLE {} LOGIN CREATEDB", app_name))
    run_sql(pg_superuser_dsn, ident("GRANT pg_read_all_data TO {}", app_name))
    run_sql(pg_superuser_dsn, ident("CREATE DATABASE {} OWNER {}", app_name, app_name))
    unsafe = unique_app()
    run_sql(pg_superuser_dsn, ident("CREATE ROLE {} NOLOGIN SUPERUSER", unsafe))

    state = PostgresDatabase(admin_dsn).observe()

    role = state.roles[app_name]
    assert role.member_of == ("pg_read_all_data",)
    assert role.privileged_memberships == ("pg_read_all_data",)
    assert role.dangerous_attributes == ("createdb",)
    assert state.databases[app_name].owner == app_name
    assert state.databases["postgres"].owner == "postgres"
    assert not state.roles[unsafe].can_login
    assert state.roles[unsafe].superuser
    # Only a superuser may alter a superuser role.
    assert state.roles[unsafe].bot_can_alter is admin_is_superuser
    assert state.roles[app_name].bot_can_alter


# --- create_role and enable_login --------------------------------------------------------------


def test_created_role_opens_with_its_password_only_and_the_password_never_reaches_the_log(
    scram_cluster: PrivateCluster, scram_createrole_dsn: str
) -> None:
    app, password = unique_app(), generate_password()
    db = PostgresDatabase(scram_createrole_dsn)

    db.create_role(app, password=password)

    assert login(scram_cluster, app, password) == app
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(scram_cluster, app, generate_password())
    log = scram_cluster.log_path.read_text(errors="replace")
    assert f'CREATE ROLE "{app}"' in log  # statements are logged...
    assert "SCRAM-SHA-256$" in log  # ...with the verifier...
    leaked = password.reveal() in log
    assert not leaked, "the plaintext password reached the server log"


def test_enable_login_reopens_an_offboarded_role_with_the_stored_password(
    scram_cluster: PrivateCluster, scram_createrole_dsn: str, scram_superuser_dsn: str
) -> None:
    app, old, stored = unique_app(), generate_password(), generate_password()
    db = PostgresDatabase(scram_createrole_dsn)
    db.create_role(app, password=old)
    run_sql(scram_superuser_dsn, ident("ALTER ROLE {} NOLOGIN", app))
    assert not db.observe().roles[app].can_login

    db.enable_login(app, password=stored)

    assert db.observe().roles[app].can_login
    assert login(scram_cluster, app, stored) == app
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(scram_cluster, app, old)
    leaked = stored.reveal() in scram_cluster.log_path.read_text(errors="replace")
    assert not leaked, "the plaintext password reached the server log"


def test_enable_login_as_admin(admin_dsn: str, pg_superuser_dsn: str, app_name: AppName) -> None:
    db = PostgresDatabase(admin_dsn)
    db.create_role(app_name, password=generate_password())
    run_sql(pg_superuser_dsn, ident("ALTER ROLE {} NOLOGIN", app_name))

    db.enable_login(app_name, password=generate_password())

    assert db.observe().roles[app_name].can_login


def test_creating_a_role_that_appeared_meanwhile_is_a_conflict_without_secrets(
    admin_dsn: str, app_name: AppName
) -> None:
    db = PostgresDatabase(admin_dsn)
    password = generate_password()
    db.create_role(app_name, password=password)

    with pytest.raises(ConflictError, match="run the command again") as info:
        db.create_role(app_name, password=password)

    assert app_name in str(info.value)
    assert_never_shows(info.value, password.reveal(), "SCRAM-SHA-256$")


def test_createrole_account_gets_the_fix_when_it_cannot_alter_a_superuser_role(
    createrole_dsn: str, pg_superuser_dsn: str, clean_roles: None
) -> None:
    role = unique_app()
    run_sql(pg_superuser_dsn, ident("CREATE ROLE {} NOLOGIN SUPERUSER", role))
    password = generate_password()

    with pytest.raises(PermissionProblem) as info:
        PostgresDatabase(createrole_dsn).enable_login(role, password=password)

    message = str(info.value)
    assert "superuser" in message
    assert f'ALTER ROLE "{role}" NOSUPERUSER' in message
    assert_never_shows(info.value, password.reveal(), "SCRAM-SHA-256$")
    [(can_login,)] = fetch(
        pg_superuser_dsn, "SELECT rolcanlogin FROM pg_roles WHERE rolname=%s", (role,)
    )
    assert can_login is False


def test_an_account_without_createrole_is_told_which_grant_is_missing(
    pg_superuser_dsn: str, clean_roles: None
) -> None:
    bot, bot_password = unique_app("bot"), generate_password()
    PostgresDatabase(pg_superuser_dsn).create_role(bot, password=bot_password)
    app, password = unique_app(), generate_password()

    with pytest.raises(PermissionProblem) as info:
        PostgresDatabase(login_dsn(pg_superuser_dsn, user=bot, password=bot_password)).create_role(
            app, password=password
        )

    assert f'ALTER ROLE "{bot}" CREATEROLE' in str(info.value)
    assert_never_shows(info.value, password.reveal(), "SCRAM-SHA-256$")
    assert fetch(pg_superuser_dsn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (app,)) == []


def test_createrole_before_16_cannot_alter_a_replication_role_and_says_so(
    createrole_dsn: str, pg_superuser_dsn: str, clean_roles: None
) -> None:
    db = PostgresDatabase(createrole_dsn)
    role = unique_app()
    run_sql(pg_superuser_dsn, ident("CREATE ROLE {} NOLOGIN REPLICATION", role))
    state = db.observe()
    if state.server_version >= 160000:
        pytest.skip("PostgreSQL 16+ decides by ADMIN OPTION, not by REPLICATION")
    assert state.roles[role].bot_can_alter is False

    with pytest.raises(PermissionProblem, match="REPLICATION"):
        db.enable_login(role, password=generate_password())


# --- check_passwords ---------------------------------------------------------------------------


def test_passwords_are_compared_with_the_verifier_when_pg_authid_is_readable(
    pg_superuser_dsn: str, clean_roles: None
) -> None:
    db = PostgresDatabase(pg_superuser_dsn)
    scram_role, md5_role, bare_role = unique_app(), unique_app(), unique_app()
    password, wrong = generate_password(), generate_password()
    db.create_role(scram_role, password=password)
    with psycopg.connect(pg_superuser_dsn, autocommit=True) as conn:
        md5 = conn.pgconn.encrypt_password(password.reveal().encode(), md5_role.encode(), b"md5")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(md5_role), sql.Literal(md5.decode())
            )
        )
        conn.execute(ident("CREATE ROLE {} LOGIN", bare_role))
    state = db.observe()

    right = db.check_passwords(
        {scram_role: password, md5_role: password, bare_role: password}, state=state
    )
    bad = db.check_passwords({scram_role: wrong, md5_role: wrong}, state=state)

    assert right[scram_role].result is PasswordResult.MATCH
    assert right[scram_role].method == "verifier"
    assert right[md5_role].result is PasswordResult.MATCH
    assert right[bare_role].result is PasswordResult.MISMATCH
    assert "no password" in right[bare_role].detail
    assert bad[scram_role].result is PasswordResult.MISMATCH
    assert bad[md5_role].result is PasswordResult.MISMATCH
    assert db.login_probes == 0
    for verdict in [*right.values(), *bad.values()]:
        assert password.reveal() not in verdict.detail
        assert wrong.reveal() not in verdict.detail


@pytest.mark.parametrize(
    "text",
    [
        "plain-ascii_Password",
        "pässwörd-mit-ümlaut",
        "non\u00a0ascii\u2003spaces",  # mapped to ASCII spaces
        "soft\u00adhyphen",  # mapped to nothing
        "\u2168-roman-nine",  # NFKC: "IX"
        "\u200b\u200b",  # zero-width spaces: mapped to spaces
        "\u00ad",  # maps to nothing at all: used as is
        "bell\u0007é",  # a prohibited control character: used as is
        "\u05d0\u05d1\u05d2",  # right-to-left only: fine
        "\u05d0abc",  # mixed directions: used as is
    ],
)
def test_scram_comparison_agrees_with_libpq_for_any_password(
    pg_superuser_dsn: str, text: str
) -> None:
    with psycopg.connect(pg_superuser_dsn) as conn:
        verifier = conn.pgconn.encrypt_password(
            text.encode(), b"someone", b"scram-sha-256"
        ).decode()

    assert verifier_matches(verifier, role="someone", password=Secret(text)) is True
    assert verifier_matches(verifier, role="someone", password=Secret(text + "x")) is False


def test_passwords_are_checked_by_a_real_login_when_pg_authid_is_unreadable_and_cached(
    scram_createrole_dsn: str,
) -> None:
    db = PostgresDatabase(scram_createrole_dsn, login_concurrency=2)
    apps = [unique_app() for _ in range(3)]
    passwords: dict[str, Secret] = {app: generate_password() for app in apps}
    for app in apps:
        db.create_role(app, password=passwords[app])
    state = db.observe()
    assert all(state.roles[app].verifier is None for app in passwords)

    first = db.check_passwords(passwords, state=state)
    assert {v.result for v in first.values()} == {PasswordResult.MATCH}
    assert {v.method for v in first.values()} == {"login"}
    assert db.login_probes == 3

    again = db.check_passwords(passwords, state=state)
    assert again == first
    assert db.login_probes == 3  # an hour has not passed and the secrets did not change

    app = apps[0]
    wrong = generate_password()
    verdict = db.check_passwords({app: wrong}, state=state)[app]
    assert verdict.result is PasswordResult.MISMATCH
    assert wrong.reveal() not in verdict.detail
    assert db.login_probes == 4  # a different secret is probed...
    assert db.check_passwords({app: wrong}, state=state)[app].result is PasswordResult.MISMATCH
    assert db.login_probes == 4  # ...once


def test_a_password_set_by_the_bot_is_probed_afresh(scram_createrole_dsn: str) -> None:
    db = PostgresDatabase(scram_createrole_dsn)
    app, first, second = unique_app(), generate_password(), generate_password()
    db.create_role(app, password=first)
    state = db.observe()
    assert db.check_passwords({app: first}, state=state)[app].result is PasswordResult.MATCH

    db.enable_login(app, password=second)

    assert db.check_passwords({app: first}, state=state)[app].result is PasswordResult.MISMATCH
    assert db.check_passwords({app: second}, state=state)[app].result is PasswordResult.MATCH
    assert db.login_probes == 3


def test_login_results_expire_after_the_recheck_interval(scram_createrole_dsn: str) -> None:
    db = PostgresDatabase(scram_createrole_dsn, login_recheck_seconds=0)
    app, password = unique_app(), generate_password()
    db.create_role(app, password=password)
    state = db.observe()

    for _ in range(2):
        assert db.check_passwords({app: password}, state=state)[app].result is (
            PasswordResult.MATCH
        )

    assert db.login_probes == 2


def test_a_login_proves_nothing_when_the_server_trusts_everyone(
    createrole_dsn: str, app_name: AppName, clean_roles: None
) -> None:
    try:
        with psycopg.connect(with_params(createrole_dsn, password="not-the-password")):
            pass
    except psycopg.OperationalError:
        pytest.skip("the test server checks passwords; this test needs one that trusts logins")
    db = PostgresDatabase(createrole_dsn)
    db.create_role(app_name, password=generate_password())

    verdict = db.check_passwords({app_name: generate_password()}, state=db.observe())[app_name]

    assert verdict.result is PasswordResult.UNKNOWN
    assert "without asking for a password" in verdict.detail


def test_nologin_and_missing_roles_are_unknown_without_a_probe(
    scram_createrole_dsn: str, scram_superuser_dsn: str
) -> None:
    db = PostgresDatabase(scram_createrole_dsn)
    offboarded, missing = unique_app(), unique_app()
    db.create_role(offboarded, password=generate_password())
    run_sql(scram_superuser_dsn, ident("ALTER ROLE {} NOLOGIN", offboarded))

    verdicts = db.check_passwords(
        {offboarded: generate_password(), missing: generate_password()}, state=db.observe()
    )

    assert verdicts[offboarded].result is PasswordResult.UNKNOWN
    assert "NOLOGIN" in verdicts[offboarded].detail
    assert verdicts[missing].result is PasswordResult.UNKNOWN
    assert "does not exist" in verdicts[missing].detail
    assert db.login_probes == 0


def test_an_unreachable_server_makes_a_login_check_unknown_and_it_is_retried(
    scram_createrole_dsn: str,
) -> None:
    app, password = unique_app(), generate_password()
    PostgresDatabase(scram_createrole_dsn).create_role(app, password=password)
    state = PostgresDatabase(scram_createrole_dsn).observe()
    port = free_port()
    down = PostgresDatabase(f"postgresql://nobody@127.0.0.1:{port}/postgres", login_timeout=2)

    for _ in range(2):
        verdict = down.check_passwords({app: password}, state=state)[app]
        assert verdict.result is PasswordResult.UNKNOWN
        assert f"127.0.0.1:{port}" in verdict.detail
        assert "refused" in verdict.detail.lower()
        assert password.reveal() not in verdict.detail

    assert down.login_probes == 2  # failures are not cached


# --- unreachable server ------------------------------------------------------------------------


def test_a_closed_port_gives_a_clear_message_without_the_password() -> None:
    port = free_port()
    admin_password, app_password = "Sup3r-s3cret-admin-pw", generate_password()
    db = PostgresDatabase(
        f"postgresql://botadmin:{admin_password}@127.0.0.1:{port}/appdb", connect_timeout=2
    )

    with pytest.raises(BackendUnavailable) as observed:
        db.observe()
    with pytest.raises(BackendUnavailable) as created:
        db.create_role(unique_app(), password=app_password)
    with pytest.raises(BackendUnavailable) as state:
        PostgresBotState(
            BotSchema(f"postgresql://botadmin:{admin_password}@127.0.0.1:{port}/x")
        ).workflows()

    message = str(observed.value)
    assert message.startswith("PostgreSQL: cannot connect to ")
    assert f"127.0.0.1:{port}/appdb as botadmin" in message
    assert "refused" in message.lower()
    assert "PGDB_PG_DSN" in message
    for err in (observed.value, created.value, state.value):
        assert_never_shows(err, admin_password, app_password.reveal())


def test_a_malformed_dsn_is_reported_without_echoing_it() -> None:
    with pytest.raises(BackendUnavailable, match="PGDB_PG_DSN is not a valid") as info:
        PostgresDatabase("host=db password=hunter2-secret oops")

    assert_never_shows(info.value, "hunter2-secret")


def test_a_wrong_admin_password_is_reported_without_it(scram_cluster: PrivateCluster) -> None:
    wrong = "not-the-admin-password-42"
    with pytest.raises(BackendUnavailable, match="password authentication failed") as info:
        PostgresDatabase(scram_cluster.dsn(password=wrong)).observe()

    assert_never_shows(info.value, wrong)


# --- the bot's own state -----------------------------------------------------------------------


def test_migrations_apply_once_and_again_is_a_no_op(state_dsn: str) -> None:
    schema = BotSchema(state_dsn)

    assert schema.migrate() == [v for v, _ in MIGRATIONS]
    assert BotSchema(state_dsn).migrate() == []

    assert fetch(state_dsn, "SELECT version FROM pgdb_bot.schema_migrations") == [
        (v,) for v, _ in MIGRATIONS
    ]
    tables = {
        t
        for (t,) in fetch(
            state_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'pgdb_bot'"
        )
    }
    assert tables == {
        "schema_migrations",
        "audit_log",
        "workflows",
        "alert_state",
        "silences",
        "approvals",
        "seen_requests",
        "declared_limits",
    }


def test_a_request_is_seen_once_across_replicas_and_forgotten_after_its_window(
    state_dsn: str,
) -> None:
    replica_a, replica_b = (
        PostgresBotState(BotSchema(state_dsn)),
        PostgresBotState(BotSchema(state_dsn)),
    )
    soon = datetime.now(UTC) + timedelta(minutes=5)
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def present(replica: PostgresBotState) -> None:
        barrier.wait()
        results.append(replica.first_sight("slack:abc", platform="slack", until=soon))

    threads = [threading.Thread(target=present, args=(r,)) for r in (replica_a, replica_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == [False, True]  # two replicas at once: one runs it
    assert replica_a.first_sight("slack:abc", platform="slack", until=soon) is False
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert replica_a.first_sight("slack:old", platform="slack", until=past) is True
    assert replica_b.first_sight("slack:new", platform="slack", until=soon) is True
    keys = {k for (k,) in fetch(state_dsn, "SELECT key FROM pgdb_bot.seen_requests")}
    assert keys == {"slack:abc", "slack:new"}  # the expired one went on the way
    with pytest.raises(BackendUnavailable):  # cannot say: the caller refuses
        PostgresBotState(
            BotSchema(f"postgresql://nobody@127.0.0.1:{free_port()}/postgres", connect_timeout=2)
        ).first_sight("slack:x", platform="slack", until=soon)


def test_an_audit_entry_with_a_nul_byte_is_stored_escaped(state_dsn: str) -> None:
    state = PostgresBotState(BotSchema(state_dsn))
    state.record_audit(
        AuditEntry(
            user="U\x00", platform="slack", command="/pgdb deny 1 x\x00", app=None, result="failed"
        )
    )
    [entry] = state.audit_entries()
    assert (entry.user, entry.command) == ("U\\x00", "/pgdb deny 1 x\\x00")


def test_two_replicas_migrating_at_once_both_succeed(state_dsn: str) -> None:
    barrier = threading.Barrier(2)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def replica() -> None:
        schema = BotSchema(state_dsn)
        barrier.wait()
        try:
            applied.append(schema.migrate())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert sorted(applied) == [[], [v for v, _ in MIGRATIONS]]


def test_audit_entries_round_trip_newest_first(state_dsn: str) -> None:
    state = PostgresBotState(BotSchema(state_dsn))  # no explicit migrate(): the first call does it
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    state.record_audit(
        AuditEntry(
            user="U1",
            platform="slack",
            command="create docspell",
            app="docspell",
            result="ok",
            detail="role created",
            correlation_id="c-1",
            at=when,
        )
    )
    state.record_audit(
        AuditEntry(user="alice", platform="console", command="status", app=None, result="denied")
    )

    newest, oldest = state.audit_entries()

    assert (newest.user, newest.platform, newest.command, newest.app, newest.result) == (
        "alice",
        "console",
        "status",
        None,
        "denied",
    )
    assert newest.at is not None
    assert abs(newest.at - datetime.now(UTC)) < timedelta(minutes=1)
    assert oldest == AuditEntry(
        user="U1",
        platform="slack",
        command="create docspell",
        app="docspell",
        result="ok",
        detail="role created",
        correlation_id="c-1",
        at=when,
    )
    assert state.audit_entries(limit=1) == [newest]


def test_workflows_returns_the_latest_record_of_each_app(state_dsn: str) -> None:
    state = PostgresBotState(BotSchema(state_dsn))
    first = state.start_workflow(app=AppName("docspell"), kind="create", requester="U1")
    state.update_workflow(first, step="role", status=WorkflowStatus.FAILED, detail="boom")
    second = state.start_workflow(app=AppName("docspell"), kind="create", requester="U2")
    state.update_workflow(
        second,
        step="manifests",
        status=WorkflowStatus.RUNNING,
        proposal_url="https://git.example/pr/7",
    )
    state.update_workflow(second, step="done", status=WorkflowStatus.DONE)
    state.set_message_link(second, link="https://chat.example/p/1")
    other = state.start_workflow(app=AppName("nextcloud"), kind="create", requester="U3")

    records = {w.app: w for w in state.workflows()}

    assert set(records) == {"docspell", "nextcloud"}
    latest = records["docspell"]
    assert (latest.id, latest.requester, latest.status, latest.step) == (
        second,
        "U2",
        WorkflowStatus.DONE,
        "done",
    )
    assert latest.proposal_url == "https://git.example/pr/7"  # kept when not given again
    assert latest.message_link == "https://chat.example/p/1"
    assert latest.started_at <= latest.updated_at
    assert latest.started_at.utcoffset() == timedelta(0)
    assert records["nextcloud"].id == other
    assert records["nextcloud"].status is WorkflowStatus.RUNNING
    with pytest.raises(ConflictError):
        state.update_workflow(999_999, step="x", status=WorkflowStatus.DONE)


def test_follow_up_is_marked_by_one_replica_only(state_dsn: str) -> None:
    replica_a, replica_b = (
        PostgresBotState(BotSchema(state_dsn)),
        PostgresBotState(BotSchema(state_dsn)),
    )
    app = AppName("docspell")
    done = replica_a.start_workflow(app=app, kind="create", requester="U1")
    replica_a.update_workflow(done, step="done", status=WorkflowStatus.DONE)
    no_link = replica_a.start_workflow(app=AppName("nextcloud"), kind="create", requester="U2")
    replica_a.update_workflow(no_link, step="done", status=WorkflowStatus.DONE)
    running = replica_a.start_workflow(app=AppName("gitea"), kind="create", requester="U3")
    replica_a.set_message_link(running, link="mattermost:c:p2")
    assert replica_a.pending_follow_ups() == []  # no message link yet
    replica_a.set_message_link(done, link="mattermost:c:p1")

    assert [w.id for w in replica_b.pending_follow_ups()] == [done]
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def mark(replica: PostgresBotState) -> None:
        barrier.wait()
        results.append(replica.mark_followed_up(done, result="ready"))

    threads = [threading.Thread(target=mark, args=(r,)) for r in (replica_a, replica_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == [False, True]
    assert replica_a.pending_follow_ups() == []
    assert replica_b.mark_followed_up(done, result="stuck") is False
    # a message that could not be posted is retried: the mark is undone
    replica_b.clear_follow_up(done, result="ready")
    assert [w.id for w in replica_a.pending_follow_ups()] == [done]
    # a newer workflow of the app replaces the old one
    again = replica_a.start_workflow(app=app, kind="create", requester="U1")
    assert replica_a.pending_follow_ups() == []
    replica_a.update_workflow(again, step="done", status=WorkflowStatus.DONE)
    replica_a.set_message_link(again, link="mattermost:c:p3")
    assert [w.id for w in replica_a.pending_follow_ups()] == [again]


def test_app_lock_excludes_a_second_holder_and_is_released_on_exit(state_dsn: str) -> None:
    replica_a, replica_b = (
        PostgresBotState(BotSchema(state_dsn)),
        PostgresBotState(BotSchema(state_dsn)),
    )
    docspell, other = AppName("docspell"), AppName("nextcloud")

    with replica_a.app_lock(docspell) as held:
        assert held is True
        with replica_b.app_lock(docspell) as second:
            assert second is False
        with replica_b.app_lock(other) as unrelated:
            assert unrelated is True

    with replica_b.app_lock(docspell) as after:
        assert after is True
    with pytest.raises(RuntimeError), replica_a.app_lock(docspell):
        raise RuntimeError("the workflow failed")
    with replica_b.app_lock(docspell) as after_failure:
        assert after_failure is True


def test_a_blocked_statement_times_out_with_a_clear_message(state_dsn: str) -> None:
    schema = BotSchema(state_dsn, statement_timeout=1)
    schema.migrate()
    state = PostgresBotState(schema)
    with psycopg.connect(state_dsn) as blocker:
        blocker.execute("LOCK TABLE pgdb_bot.audit_log IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(BackendUnavailable, match="longer than 1s") as info:
            state.record_audit(
                AuditEntry(user="U1", platform="slack", command="help", app=None, result="ok")
            )
    assert_never_shows(info.value)


# --- the private cluster -----------------------------------------------------------------------


@pytest.mark.server
def test_private_cluster_starts_stops_and_keeps_its_data() -> None:
    directory = Path(tempfile.mkdtemp(prefix="pgdb-trust-"))
    directory.chmod(0o755)
    try:
        cluster = PrivateCluster(directory)
        with cluster:
            assert cluster.is_running()
            run_sql(cluster.dsn(), "CREATE TABLE kept (x int)")
            assert fetch(cluster.dsn(), "SHOW listen_addresses") == [("127.0.0.1",)]
        assert not cluster.is_running()
        # Reused later, on another port and with other settings: same data, new settings.
        again = PrivateCluster(directory, settings={"work_mem": "7MB"})
        with again:
            assert fetch(again.dsn(), "SELECT count(*) FROM kept") == [(0,)]
            assert fetch(again.dsn(), "SHOW work_mem") == [("7MB",)]
        assert not again.is_running()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.server
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another OS user")
def test_private_cluster_refuses_a_directory_the_postgres_user_cannot_reach() -> None:
    private = Path(tempfile.mkdtemp(prefix="pgdb-private-"))  # mode 0700, owned by root
    try:
        with pytest.raises(PrivateClusterError, match="cannot reach"):
            PrivateCluster(private / "cluster").start()
    finally:
        shutil.rmtree(private, ignore_errors=True)
