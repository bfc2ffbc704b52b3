"""Approvals through the console (PGDB_REQUIRE_APPROVAL): request, approve, deny, expire.

Each command is a separate console session, as different people would type them; the console's
OS user is an operator, ``--as`` names anyone else.
"""

from __future__ import annotations

import json
import time

from tests.fixtures.bot import BotEnv, one_account, request_id

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py

APP = "docspell"


def _nothing_created(env: BotEnv) -> None:
    assert env.stored(APP) is None
    assert env.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", APP) == []
    assert env.git("branch", "--list", "pgdb/*").strip() == ""


def _audit(env: BotEnv) -> list[tuple[object, ...]]:
    return env.sql(
        "SELECT username, command, result FROM pgdb_bot.audit_log ORDER BY id", in_state_db=True
    )


def test_a_requesters_create_waits_for_an_operator_then_runs(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters"}

    asked = bot_env.console(f"/pgdb create {APP}", as_user="alice", **env)

    assert asked.returncode == 0, asked.stderr
    assert "waits for an operator's approval" in asked.stdout
    request = request_id(asked.stdout)
    assert f"/pgdb approve {request}" in asked.stdout
    _nothing_created(bot_env)
    # the ops channel (the log, with no chat platform) hears of it, with both commands
    assert f"/pgdb approve {request}" in asked.stderr
    assert f"/pgdb deny {request}" in asked.stderr

    again = bot_env.console(f"/pgdb create {APP}", as_user="alice", **env)
    assert f"already waits for approval (request #{request})" in again.stdout

    status = bot_env.console("/pgdb status", f"/pgdb status {APP}", as_user="alice", **env)
    assert "Waiting for approval (1):" in status.stdout
    assert f"request #{request}: `/pgdb create {APP}` by alice, expires" in status.stdout
    assert f"Status of `{APP}`: pending approval" in status.stdout
    diagnosis = bot_env.diagnose("--json", **env)
    assert [f for f in json.loads(diagnosis.stdout)["findings"] if f["app"] == APP] == []

    # requesters cannot decide
    refused = bot_env.console(f"/pgdb approve {request}", as_user="alice", **env)
    assert "is for operators" in refused.stdout
    _nothing_created(bot_env)

    approved = bot_env.console(f"/pgdb approve {request}", **env)  # the OS user: an operator

    assert approved.returncode == 0, approved.stderr
    assert f"Approved by {_me(bot_env)}: request #{request} by alice" in approved.stdout
    assert f"Onboarded `{APP}`" in approved.stdout
    password = bot_env.stored(APP)
    assert password is not None and bot_env.can_login(APP, password)
    assert f"pgdb/{APP}" in bot_env.git("branch", "--list", "pgdb/*")
    # the commit says who asked (the requester, not the approver)
    assert "Requested by alice" in bot_env.git("log", "-1", f"pgdb/{APP}")
    # deciding twice is refused with who decided
    twice = bot_env.console(f"/pgdb approve {request}", **env)
    assert f"request #{request} (`/pgdb create {APP}`) was already approved by" in twice.stdout
    # every step is audited
    commands = [(command, result) for _, command, result in _audit(bot_env)]
    assert (f"/pgdb create {APP}", "pending") in commands
    assert (f"/pgdb approve {request}", "refused") in commands
    assert (f"/pgdb approve {request}", "ok") in commands
    for stream in (asked.stdout, asked.stderr, approved.stdout, approved.stderr):
        assert password not in stream


def _me(env: BotEnv) -> str:
    import getpass

    return getpass.getuser()


def test_operators_creates_need_no_approval_under_requesters(bot_env: BotEnv) -> None:
    done = bot_env.console(f"/pgdb create {APP}", PGDB_REQUIRE_APPROVAL="requesters")
    assert f"Onboarded `{APP}`" in done.stdout


def test_under_all_an_operator_cannot_approve_their_own_request(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "all", "PGDB_OPERATORS": "bob,carol"}
    asked = bot_env.console(f"/pgdb create {APP} --namespace docspell", as_user="bob", **env)
    request = request_id(asked.stdout)

    own = bot_env.console(f"/pgdb approve {request}", as_user="bob", **env)

    assert "is yours (asked as bob on console): another operator decides it" in own.stdout
    _nothing_created(bot_env)
    approved = bot_env.console(f"/pgdb approve {request}", as_user="carol", **env)
    assert f"Onboarded `{APP}`" in approved.stdout
    # the requested namespace is kept through the approval
    branch_file = bot_env.git("show", f"pgdb/{APP}:{_secret_path(bot_env)}")
    assert "secretNamespace: docspell" in branch_file


def _secret_path(env: BotEnv) -> str:
    return f"apps/04-databases/postgresql-shared/base/credentials/{APP}-secret.yaml"


def test_a_dry_run_needs_no_approval_and_changes_nothing(bot_env: BotEnv) -> None:
    plan = bot_env.console(
        f"/pgdb create {APP} --dry-run", as_user="alice", PGDB_REQUIRE_APPROVAL="all"
    )
    assert f"Plan for `{APP}`" in plan.stdout
    assert "Request #" not in plan.stdout
    _nothing_created(bot_env)


def test_a_denied_request_creates_nothing_and_says_why(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters", "PGDB_OPERATORS": "bob"}
    request = request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)

    denied = bot_env.console(
        f"/pgdb deny {request} use the team's existing database, it's there", as_user="bob", **env
    )

    assert f"Request #{request} denied" in denied.stdout
    assert "use the team's existing database, it's there" in denied.stdout
    _nothing_created(bot_env)
    late = bot_env.console(f"/pgdb approve {request}", as_user="bob", **env)
    assert "was already denied by bob" in late.stdout
    _nothing_created(bot_env)
    # a denied request alone does not make an app
    listing = bot_env.console("/pgdb list", as_user="alice", **env)
    assert "No apps yet" in listing.stdout
    audit = _audit(bot_env)
    assert ("bob", f"/pgdb deny {request} use the team's existing database, it's there", "ok") in (
        audit
    )


def test_an_expired_request_cannot_be_approved_and_can_be_asked_again(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters", "PGDB_APPROVAL_TTL": "2s"}
    first = request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)
    time.sleep(2.5)

    late = bot_env.console(f"/pgdb approve {first}", **env)

    assert f"request #{first} (`/pgdb create {APP}`) was already expired" in late.stdout
    assert f"alice can ask again with `/pgdb create {APP}`" in late.stdout
    _nothing_created(bot_env)
    audit = _audit(bot_env)
    assert ("pgdb-bot", f"expire request #{first} (/pgdb create {APP})", "expired") in audit
    second = request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)
    assert second != first


def test_an_approval_holds_for_a_rerun_of_a_create_that_stopped(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters"}
    # a role made by hand with no stored password: create stops at the credentials step
    bot_env.sql(f"CREATE ROLE {APP} LOGIN PASSWORD 'made-by-hand-0123456789'")
    request = request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)
    stopped = bot_env.console(f"/pgdb approve {request}", **env)
    assert "Stopped at step" in stopped.stdout
    # the operator stores the password the role has; alice runs create again
    folder = bot_env.secrets_dir / "dev" / "postgresql" / APP
    folder.mkdir(parents=True)
    (folder / "password").write_text("made-by-hand-0123456789")

    rerun = bot_env.console(f"/pgdb create {APP}", as_user="alice", **env)

    assert "Request #" not in rerun.stdout  # no second approval
    assert f"Onboarded `{APP}`" in rerun.stdout


def test_a_name_denied_since_the_request_is_refused_at_approval(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters"}
    request = request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)

    refused = bot_env.console(f"/pgdb approve {request}", PGDB_DENY_NAMES=APP, **env)

    assert "Invalid app name" in refused.stdout
    _nothing_created(bot_env)
    status = bot_env.console("/pgdb status", **env)
    assert f"request #{request}: `/pgdb create {APP}` by alice" in status.stdout  # still pending


def test_an_approval_is_not_a_pass_for_someone_else(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters"}
    bot_env.sql(f"CREATE ROLE {APP} LOGIN PASSWORD 'made-by-hand-0123456789'")
    request = request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)
    assert "Stopped at step" in bot_env.console(f"/pgdb approve {request}", **env).stdout

    other = bot_env.console(f"/pgdb create {APP}", as_user="mallory", **env)

    assert "waits for an operator's approval" in other.stdout  # asked again


def test_a_request_hides_neither_an_offboarding_nor_real_problems(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters", "PGDB_OPERATORS": "bob"}
    assert f"Onboarded `{APP}`" in bot_env.console(f"/pgdb create {APP}", **env).stdout
    assert "offboard" in bot_env.console(f"/pgdb offboard {APP} --yes", **env).stdout
    request = request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)

    status = bot_env.console(f"/pgdb status {APP}", as_user="alice", **env)

    assert f"Status of `{APP}`: offboarded" in status.stdout
    assert f"request #{request}: `/pgdb create {APP}` by alice" in status.stdout
    bot_env.console(f"/pgdb deny {request} not now", as_user="bob", **env)
    after = bot_env.console(f"/pgdb status {APP}", as_user="alice", **env)
    assert f"Status of `{APP}`: offboarded" in after.stdout
    diagnosis = json.loads(bot_env.diagnose("--json", **env).stdout)
    # only what is really left: the onboarding proposal, never merged, is still open
    found = [f for f in diagnosis["findings"] if f["app"] == APP]
    assert [f["kind"] for f in found] == ["offboard_incomplete"]
    assert "onboarding proposal" in found[0]["message"]


def test_a_pending_request_does_not_hide_a_drifted_password(bot_env: BotEnv) -> None:
    env = {"PGDB_REQUIRE_APPROVAL": "requesters"}
    assert f"Onboarded `{APP}`" in bot_env.console(f"/pgdb create {APP}", **env).stdout
    stored = bot_env.secrets_dir / "dev" / "postgresql" / APP / "password"
    stored.write_text("drifted-by-hand-0123456789-abcdef")
    request_id(bot_env.console(f"/pgdb create {APP}", as_user="alice", **env).stdout)

    diagnosis = json.loads(bot_env.diagnose("--json", **env).stdout)

    assert "password_drift" in [f["kind"] for f in diagnosis["findings"] if f["app"] == APP]
