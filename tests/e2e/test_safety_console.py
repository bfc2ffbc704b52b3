"""What ``create`` may adopt, and who may undo what, through the console
as a requester (``--as dev1``) and as an operator (the console's own user), checking the role
attributes, branches and audit rows, not only the replies."""

from __future__ import annotations

import json

from tests.fixtures.bot import BotEnv

BASE = "apps/04-databases/postgresql-shared/base"


def can_login(env: BotEnv, role: str) -> bool:
    rows = env.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", role)
    return bool(rows and rows[0][0])


def branches(env: BotEnv) -> list[str]:
    return env.git("branch", "--format=%(refname:short)").split()


def audit(env: BotEnv, user: str) -> list[tuple[object, ...]]:
    return env.sql(
        "SELECT command, result FROM pgdb_bot.audit_log WHERE username = %s ORDER BY id",
        user,
        in_state_db=True,
    )


def test_a_requester_never_undoes_an_operators_nologin_nor_an_offboarding(
    bot_env: BotEnv,
) -> None:
    for app in ("docspell", "sfa"):
        assert bot_env.console(f"/pgdb create {app}").returncode == 0
        bot_env.git("merge", "-q", "--no-ff", "-m", "m", f"pgdb/{app}")
    bot_env.sql('ALTER ROLE "docspell" NOLOGIN')  # an operator's decision, by hand
    assert bot_env.console("/pgdb offboard sfa --yes").returncode == 0

    out = bot_env.console("/pgdb create docspell", "/pgdb create sfa", as_user="dev1").stdout

    assert "re-enabled LOGIN" not in out
    assert not can_login(bot_env, "docspell") and not can_login(bot_env, "sfa")
    assert "the bot did not offboard it" in out
    assert "an operator" in out and "`sfa` was offboarded" in out
    assert ("/pgdb create sfa", "refused") in audit(bot_env, "dev1")
    # the operator too waits while the offboarding proposal is open
    operator = bot_env.console("/pgdb create sfa").stdout
    assert "close it without merging first" in operator and not can_login(bot_env, "sfa")
    bot_env.git("branch", "-q", "-D", "pgdb-offboard/sfa")
    back = bot_env.console("/pgdb create sfa").stdout
    assert "re-enabled LOGIN on role `sfa`" in back and can_login(bot_env, "sfa")


def test_create_never_takes_a_database_owned_by_another_role(bot_env: BotEnv) -> None:
    bot_env.sql('CREATE ROLE "olduser" NOLOGIN')
    bot_env.sql('CREATE DATABASE "ledger" OWNER "olduser"')

    out = bot_env.console("/pgdb create ledger --dry-run", "/pgdb create ledger").stdout

    assert "would stop at step “PostgreSQL role”" in out
    assert "owned by `olduser`" in out and "never hands existing data" in out
    assert "pgdb/ledger" not in branches(bot_env)
    assert bot_env.sql("SELECT 1 FROM pg_roles WHERE rolname = 'ledger'") == []


def test_a_privileged_role_is_never_adopted_nor_suggested(bot_env: BotEnv) -> None:
    bot_env.sql("CREATE ROLE \"boss\" LOGIN SUPERUSER CREATEDB PASSWORD 'irrelevant-pass-1'")
    folder = bot_env.secrets_dir / "dev" / "postgresql" / "boss"
    folder.mkdir(parents=True)
    for key, value in (("username", "boss"), ("password", "irrelevant-pass-1")):
        (folder / key).write_text(value)
    bot_env.sql("CREATE ROLE \"root\" LOGIN SUPERUSER PASSWORD 'x'")

    out = bot_env.console("/pgdb create boss").stdout
    document = json.loads(bot_env.diagnose("--json").stdout)

    assert "privileged (SUPERUSER" in out and "never adopts a privileged role" in out
    assert "pgdb/boss" not in branches(bot_env)
    unsafe = [f for f in document["findings"] if f["kind"] == "role_unsafe"]
    assert unsafe and unsafe[0]["severity"] == "critical"
    orphan = [f for f in document["findings"] if "`root`" in f["message"]]
    assert orphan and "/pgdb create root" not in orphan[0]["remedy"]
    bot_env.sql('DROP ROLE "root"')


def test_namespaces_a_requester_may_and_may_not_deliver_to(bot_env: BotEnv) -> None:
    assert bot_env.console("/pgdb create sfa").returncode == 0
    before = bot_env.git("rev-parse", "pgdb/sfa")

    out = bot_env.console(
        "/pgdb create sfa --namespace teamns",
        "/pgdb create newapp --namespace kube-system",
        as_user="dev2",
    ).stdout

    assert "only for an app they are creating now" in out
    assert "can never receive an app's credentials" in out
    assert bot_env.git("rev-parse", "pgdb/sfa") == before  # nothing proposed
    assert "pgdb/newapp" not in branches(bot_env)
    assert [r for _, r in audit(bot_env, "dev2")] == ["refused", "refused"]
    # a requester's own new app may go to an allowed namespace; an operator may add one
    mine = bot_env.console("/pgdb create newapp --namespace team-a", as_user="dev2").stdout
    assert "Onboarded `newapp`" in mine
    added = bot_env.console("/pgdb create sfa --namespace teamns").stdout
    assert "teamns" in added
    log = bot_env.git("log", "-1", "--format=%s%n%b", "pgdb/sfa")
    assert "teamns" in log.splitlines()[0]


def test_an_operator_adds_a_namespace_to_a_merged_app_and_keeps_the_others(
    bot_env: BotEnv,
) -> None:
    assert bot_env.console("/pgdb create sfa --namespace team-a").returncode == 0
    bot_env.git("merge", "-q", "--no-ff", "-m", "m", "pgdb/sfa")
    bot_env.git("branch", "-q", "-D", "pgdb/sfa")

    out = bot_env.console("/pgdb create sfa --namespace team-b").stdout

    assert "Onboarded `sfa`" in out, out
    manifest = bot_env.git("show", f"pgdb/sfa:{BASE}/credentials/sfa-secret.yaml")
    for namespace in ("databases", "team-a", "team-b"):
        assert f"secretNamespace: {namespace}" in manifest
    changed = bot_env.git("diff", "--name-only", "main", "pgdb/sfa").split()
    assert changed == [f"{BASE}/credentials/sfa-secret.yaml"]  # nothing else is touched
