"""End to end, through the console chat only: what a user types and what they then find in
PostgreSQL, the secret store and the GitOps repository."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
import time

import pytest

from tests.fixtures.bot import BotEnv

BASE = "apps/04-databases/postgresql-shared/base"
DANGEROUS = ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")


def role_row(env: BotEnv, role: str) -> dict[str, object] | None:
    rows = env.sql(
        "SELECT rolcanlogin, " + ", ".join(DANGEROUS) + ", "
        "(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) "
        "FROM pg_roles r WHERE rolname = %s",
        role,
    )
    if not rows:
        return None
    login, *flags, memberships = rows[0]
    return {"login": login, "dangerous": any(flags), "memberships": memberships}


def repo_state(env: BotEnv) -> tuple[str, str, str, str]:
    return (
        env.git("rev-parse", "HEAD"),
        env.git("rev-parse", "main"),
        env.git("ls-files", "-s"),
        env.git("status", "--porcelain"),
    )


def everything_the_bot_wrote(env: BotEnv, *outputs: subprocess.CompletedProcess[str]) -> str:
    """Chat output, logs, every commit and note, and the bot's own tables."""
    parts = [o.stdout + o.stderr for o in outputs]
    parts.append(env.git("log", "--all", "-p", "--format=%H %an %s%n%b"))
    parts.append(env.git("notes", "--ref", "pgdb-checks", "list"))
    for table in ("audit_log", "workflows"):
        parts.append(repr(env.sql(f"SELECT * FROM pgdb_bot.{table}", in_state_db=True)))
    return "\n".join(parts)


def test_create_then_status_from_a_pipe(bot_env: BotEnv) -> None:
    (bot_env.repo / "scratch.txt").write_text("a user's uncommitted work\n")
    before = repo_state(bot_env)

    out = bot_env.console("/pgdb create docspell", "/pgdb status docspell")

    assert out.returncode == 0, out.stderr
    assert role_row(bot_env, "docspell") == {"login": True, "dangerous": False, "memberships": 0}
    folder = bot_env.secrets_dir / "dev" / "postgresql" / "docspell"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for key in ("username", "password", "database"):
        assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600
    assert bot_env.stored("docspell", "username") == "docspell"
    assert bot_env.stored("docspell", "database") == "docspell"
    password = bot_env.stored("docspell")
    assert password is not None and len(password) >= 32
    assert bot_env.can_login("docspell", password)
    assert not bot_env.can_login("docspell", password + "x")

    changes = bot_env.git("diff", "--name-status", "main", "pgdb/docspell").splitlines()
    assert sorted(changes) == sorted(
        [
            f"A\t{BASE}/credentials/docspell-secret.yaml",
            f"A\t{BASE}/databases/docspell.yaml",
            f"M\t{BASE}/kustomization.yaml",
        ]
    )
    assert bot_env.git("rev-list", "--count", "main..pgdb/docspell").strip() == "1"
    assert bot_env.git("rev-parse", "pgdb/docspell^") == before[1]
    assert repo_state(bot_env) == before

    stdout = out.stdout
    assert "pgdb/docspell" in stdout
    assert (
        "postgresql://docspell:<password>@postgresql-shared-rw.databases.svc:5432/docspell"
        in stdout
    )
    assert "docspell-postgresql-credentials" in stdout
    status = stdout.split("> /pgdb status docspell", 1)[1]
    for layer in (
        "credentials stored",
        "role",
        "stored password opens the role",
        "database",
        "manifests",
        "InfisicalSecret ready",
        "Database CR applied",
    ):
        assert layer in status
    assert "not configured" in status
    assert "❌" not in status
    assert password not in everything_the_bot_wrote(bot_env, out)


def test_second_create_changes_nothing(bot_env: BotEnv) -> None:
    first = bot_env.console("/pgdb create docspell")
    password = bot_env.stored("docspell")
    branch = bot_env.git("rev-parse", "pgdb/docspell")
    verifier = bot_env.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'docspell'")

    second = bot_env.console("/pgdb create docspell")

    assert first.returncode == second.returncode == 0
    assert bot_env.stored("docspell") == password
    assert bot_env.git("rev-parse", "pgdb/docspell") == branch
    assert bot_env.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'docspell'") == verifier
    assert second.stdout.count("already there") >= 3


# one console session tries them all (a bot process per name cost a minute of CPU)
BAD_NAMES = [
    "Docspell",
    "postgres",
    "template0",
    "template1",
    "app",
    "streaming-replica",
    "pg-admin",
    "cnpg-pooler",
    "cnpgthing",
    "a--b",
    "-docspell",
    "docspell-",
    "d",
    "9lives",
    "x" * 41,
    "doc_spell",
    "docspell;drop",
    "'; DROP ROLE postgres; --",
    "forbidden",
]


def test_bad_names_are_refused_and_nothing_is_created(bot_env: BotEnv) -> None:
    roles_before = bot_env.sql("SELECT rolname FROM pg_roles ORDER BY 1")
    commands = [
        f"/pgdb create {name!r}" if " " in name else f"/pgdb create {name}" for name in BAD_NAMES
    ]

    replies = bot_env.replies(*commands, PGDB_DENY_NAMES="forbidden,other")

    for name, reply in zip(BAD_NAMES, replies, strict=True):
        assert "Invalid app name" in reply or "Usage" in reply, (name, reply)
        assert "choose another app name" in reply or "valid app name" in reply, (name, reply)
    assert bot_env.sql("SELECT rolname FROM pg_roles ORDER BY 1") == roles_before
    assert not (bot_env.secrets_dir / "dev" / "postgresql").exists() or not any(
        (bot_env.secrets_dir / "dev" / "postgresql").iterdir()
    )
    assert bot_env.git("for-each-ref", "refs/heads/pgdb/") == ""


def test_dry_run_changes_nothing(bot_env: BotEnv) -> None:
    out = bot_env.console("/pgdb create docspell --dry-run")

    assert "would do" in out.stdout and "nothing was changed" in out.stdout
    assert role_row(bot_env, "docspell") is None
    assert bot_env.stored("docspell") is None
    assert bot_env.git("for-each-ref", "refs/heads/pgdb/") == ""


def test_concurrent_creates_make_one_role_one_password_one_commit(bot_env: BotEnv) -> None:
    results: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        results.append(bot_env.console("/pgdb create docspell"))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(r.returncode == 0 for r in results)
    password = bot_env.stored("docspell")
    assert password is not None and bot_env.can_login("docspell", password)
    assert bot_env.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'docspell'") == [(1,)]
    assert bot_env.git("rev-list", "--count", "main..pgdb/docspell").strip() == "1"
    for r in results:
        assert "Onboarded `docspell`" in r.stdout or "already in progress" in r.stdout


def test_an_app_onboarded_by_hand_is_adopted_without_change(bot_env: BotEnv) -> None:
    bot_env.sql("CREATE ROLE docspell LOGIN PASSWORD 'hand-made-password-0123456789abcdef'")
    folder = bot_env.secrets_dir / "dev" / "postgresql" / "docspell"
    folder.mkdir(parents=True)
    for key, value in {
        "username": "docspell",
        "password": "hand-made-password-0123456789abcdef",
        "database": "docspell",
    }.items():
        (folder / key).write_text(value)
    verifier = bot_env.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'docspell'")

    out = bot_env.console("/pgdb create docspell")

    assert out.returncode == 0
    assert "Onboarded `docspell`" in out.stdout
    assert "the stored password opens it" in out.stdout
    assert bot_env.stored("docspell") == "hand-made-password-0123456789abcdef"
    assert bot_env.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'docspell'") == verifier
    assert bot_env.git("rev-list", "--count", "main..pgdb/docspell").strip() == "1"


def test_existing_role_without_stored_password_stops_for_an_operator(bot_env: BotEnv) -> None:
    bot_env.sql("CREATE ROLE docspell LOGIN PASSWORD 'someone-elses-password-0123456789'")

    out = bot_env.console("/pgdb create docspell")

    assert "no password is stored" in out.stdout and "/pgdb rotate docspell" in out.stdout
    assert bot_env.stored("docspell") is None
    assert bot_env.can_login("docspell", "someone-elses-password-0123456789")


def test_stored_password_that_does_not_open_the_role_stops(bot_env: BotEnv) -> None:
    bot_env.sql("CREATE ROLE docspell LOGIN PASSWORD 'the-real-password-0123456789abcdef'")
    folder = bot_env.secrets_dir / "dev" / "postgresql" / "docspell"
    folder.mkdir(parents=True)
    (folder / "password").write_text("a-different-password-0123456789abcd")

    out = bot_env.console("/pgdb create docspell")

    assert "does not open it" in out.stdout
    assert bot_env.can_login("docspell", "the-real-password-0123456789abcdef")
    assert bot_env.git("for-each-ref", "refs/heads/pgdb/") == ""


def test_diagnose_finds_drift_and_repair_fixes_a_dropped_role(bot_env: BotEnv) -> None:
    assert bot_env.console("/pgdb create docspell").returncode == 0
    password = bot_env.stored("docspell")
    assert password is not None
    time.sleep(1.2)  # past PGDB_GRACE=1s
    clean = bot_env.diagnose("--json", PGDB_GRACE="1s")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not [f for f in json.loads(clean.stdout)["findings"] if f["app"] == "docspell"]

    bot_env.sql("DROP ROLE docspell")
    dropped = bot_env.diagnose("--json", PGDB_GRACE="1s")
    assert dropped.returncode == 1
    report = json.loads(dropped.stdout)
    found = [f for f in report["findings"] if f["app"] == "docspell"]
    assert [f["kind"] for f in found] == ["role_missing"]
    assert found[0]["severity"] == "critical"
    assert found[0]["remedy"] == "/pgdb repair docspell --yes"
    assert set(found[0]) == {"kind", "app", "severity", "message", "remedy"}

    plan = bot_env.console("/pgdb repair docspell")
    assert "confirm" in plan.stdout and role_row(bot_env, "docspell") is None
    repaired = bot_env.console("/pgdb repair docspell --yes", PGDB_GRACE="1s")
    assert "Repair `docspell`: done" in repaired.stdout, repaired.stdout
    assert bot_env.can_login("docspell", password)
    assert bot_env.diagnose("--json", PGDB_GRACE="1s").returncode == 0

    bot_env.sql("ALTER ROLE docspell PASSWORD 'changed-behind-the-bots-back-0123'")
    drift = bot_env.diagnose("--json", PGDB_GRACE="1s")
    assert drift.returncode == 1
    kinds = [f["kind"] for f in json.loads(drift.stdout)["findings"] if f["app"] == "docspell"]
    assert kinds == ["password_drift"]
    assert password not in everything_the_bot_wrote(bot_env, clean, dropped, repaired, drift)


# the bot's account is never used here (replaced, or the configuration refused first): once
@pytest.mark.parametrize("scram_admin_dsn", ["superuser"], indirect=True)
def test_diagnose_cannot_run_without_postgres(bot_env: BotEnv) -> None:
    out = bot_env.diagnose("--json", PGDB_PG_DSN="postgresql://x:hunter2-secret@127.0.0.1:1/db")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "PGDB_PG_DSN" in out.stderr
    assert "hunter2-secret" not in out.stderr


# the bot's account is never used here (replaced, or the configuration refused first): once
@pytest.mark.parametrize("scram_admin_dsn", ["superuser"], indirect=True)
def test_invalid_configuration_names_the_variable(bot_env: BotEnv) -> None:
    out = bot_env.diagnose(PGDB_GRACE="ten minutes")
    assert out.returncode == 2
    assert "PGDB_GRACE" in out.stderr and "30s, 5m, 1h" in out.stderr


def test_authorization_and_audit(bot_env: BotEnv) -> None:
    refused = bot_env.console(
        "/pgdb create docspell", "/pgdb diagnose", as_user="mallory", PGDB_REQUESTERS="alice"
    )
    assert refused.stdout.count("Not allowed") == 2
    assert role_row(bot_env, "docspell") is None

    alice = bot_env.console(
        "/pgdb diagnose", "/pgdb status", as_user="alice", PGDB_REQUESTERS="alice"
    )
    assert alice.stdout.count("Not allowed") == 1
    assert "pgdb status" in alice.stdout

    rows = bot_env.sql(
        "SELECT username, command, result FROM pgdb_bot.audit_log ORDER BY id", in_state_db=True
    )
    assert rows == [
        ("mallory", "/pgdb create docspell", "refused"),
        ("mallory", "/pgdb diagnose", "refused"),
        ("alice", "/pgdb diagnose", "refused"),
        ("alice", "/pgdb status", "ok"),
    ]


def test_usage_errors_are_short_and_never_a_traceback(bot_env: BotEnv) -> None:
    out = bot_env.console(
        "/pgdb frobnicate", "/pgdb create", "/pgdb create a b c", "/pgdb list --page x"
    )
    assert out.returncode == 0
    assert "unknown command `frobnicate`" in out.stdout
    assert "missing <app>" in out.stdout
    assert "too many arguments" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_namespace_delivers_the_secret_to_the_apps_namespace_too(bot_env: BotEnv) -> None:
    out = bot_env.console("/pgdb create docspell --namespace docs")

    assert "Onboarded `docspell`" in out.stdout, out.stdout
    manifest = bot_env.git("show", f"pgdb/docspell:{BASE}/credentials/docspell-secret.yaml")
    assert "managedKubeSecretReferences" in manifest
    assert "managedSecretReference:" not in manifest
    assert "secretNamespace: docs" in manifest and "secretNamespace: databases" in manifest


def test_bad_namespace_is_refused_before_anything_is_written(bot_env: BotEnv) -> None:
    out = bot_env.console("/pgdb create docspell --namespace Not_A_Namespace")

    assert "Not_A_Namespace" in out.stdout
    assert bot_env.stored("docspell") is None
    assert role_row(bot_env, "docspell") is None


def test_status_overview_list_and_pages(bot_env: BotEnv) -> None:
    assert "Onboarded" in bot_env.console("/pgdb create docspell").stdout
    store = bot_env.secrets_dir / "dev" / "postgresql"
    for i in range(55):  # apps known only to the secret store: half-onboarded by hand
        (store / f"app{i:02d}").mkdir(mode=0o700)
        (store / f"app{i:02d}" / "username").write_text(f"app{i:02d}")

    out = bot_env.console(
        "/pgdb status",
        "/pgdb list",
        "/pgdb list --page 2",
        "/pgdb list --page 3",
        "/pgdb status --page 2",
    )

    overview, page1, page2, page3, status2 = out.stdout.split("\n> ")[0:5]
    assert "pgdb status: 56 app(s) — 55 problem, 1 pending" in overview
    assert "Kubernetes: ⚪ not configured" in overview
    assert "❌ app00: problem" in overview
    # the apps that need attention first; the healthiest on the next page
    assert "`/pgdb status --page 2`" in overview and "docspell" not in overview
    assert "⏳ docspell: pending" in status2
    assert "Known apps (56), page 1/2" in page1
    assert page1.count("\n  ") == 51  # 50 apps and the pointer to the next page
    assert "/pgdb list --page 2" in page1
    assert "page 2/2" in page2 and "docspell" in page2
    assert "page 3 does not exist: there are 2 page(s)" in page3


def test_help_lists_the_commands(bot_env: BotEnv) -> None:
    out = bot_env.console("/pgdb help")
    for usage in ("/pgdb create <app>", "/pgdb status [<app>]", "/pgdb list", "/pgdb diagnose"):
        assert usage in out.stdout
