"""One truth per app, through the console only: what ``status``, ``diagnose``, ``repair`` and the
dry runs say about an app agree, and a missing answer is never taken for an empty one.

Each test reproduces a case seen when the product was tried (issue "One truth per app") and
checks what a user sees and what the systems then hold.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

from tests.fixtures.bot import BotEnv

BASE = "apps/04-databases/postgresql-shared/base"


def findings(out: subprocess.CompletedProcess[str]) -> list[tuple[str, str | None]]:
    document = json.loads(out.stdout)
    return [(f["kind"], f["app"]) for f in document["findings"]]


def line_with(text: str, *needles: str) -> str:
    """The one output line holding every needle (fails with the whole text otherwise)."""
    for line in text.splitlines():
        if all(n in line for n in needles):
            return line
    raise AssertionError(f"no line with {needles!r} in:\n{text}")


def merge(env: BotEnv, branch: str) -> None:
    env.git("merge", "--no-ff", "-q", "-m", f"merge {branch}", branch)


def test_a_missing_or_mistyped_store_is_one_unreachable_finding_not_a_loss_per_app(
    bot_env: BotEnv,
) -> None:
    assert bot_env.console("/pgdb create docspell", "/pgdb create sfa").returncode == 0

    for broken in ({"PGDB_SECRETS_DIR": "/nonexistent"}, {"PGDB_ENV": "prod"}):
        out = bot_env.diagnose("--json", **broken)

        assert out.returncode == 1, out.stderr
        kinds = findings(out)
        assert kinds.count(("system_unreachable", None)) == 1, kinds
        assert not [k for k in kinds if k[0] in ("secret_missing", "password_drift")], kinds
        assert "/pgdb rotate" not in out.stdout  # nothing proposed on a missing answer
        status = bot_env.console("/pgdb status", "/pgdb status docspell", **broken).stdout
        assert "❌" in line_with(status, "Secret store")
        assert "❔" in line_with(status, "credentials stored")


def test_grace_runs_from_the_first_appearance_and_a_no_op_create_does_not_restart_it(
    bot_env: BotEnv,
) -> None:
    grace = {"PGDB_GRACE": "2s"}
    assert bot_env.console("/pgdb create docspell", **grace).returncode == 0
    time.sleep(2.5)
    bot_env.sql('ALTER ROLE "docspell" NOLOGIN')
    assert ("login_refused", "docspell") in findings(bot_env.diagnose("--json", **grace))

    again = bot_env.console("/pgdb create docspell", as_user="dev1", **grace)

    assert "re-enabled LOGIN" not in again.stdout
    assert ("login_refused", "docspell") in findings(bot_env.diagnose("--json", **grace))
    assert bot_env.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'docspell'") == [(False,)]
    # 0 turns the grace period off
    assert bot_env.diagnose("--json", PGDB_GRACE="0").returncode == 1


def test_status_and_diagnose_agree_on_removed_manifests_and_a_foreign_owner(
    bot_env: BotEnv,
) -> None:
    assert bot_env.console("/pgdb create docspell").returncode == 0
    merge(bot_env, "pgdb/docspell")
    bot_env.git("revert", "-m", "1", "--no-edit", "HEAD")  # removed from main after merging
    bot_env.sql('CREATE DATABASE "docspell" OWNER "docspell"')
    bot_env.sql('ALTER DATABASE "docspell" OWNER TO postgres')

    out = bot_env.console("/pgdb status docspell", "/pgdb repair docspell", PGDB_GRACE="0")
    kinds = findings(bot_env.diagnose("--json", PGDB_GRACE="0"))

    assert ("manifest_missing", "docspell") in kinds
    assert ("database_owner_wrong", "docspell") in kinds
    assert "⚠️" in line_with(out.stdout, "manifests:")
    assert "❌" in line_with(out.stdout, "database:", "owned by `postgres`")
    assert "nothing to repair" not in out.stdout
    refused = line_with(out.stdout, "Not repaired here: database_owner_wrong")
    assert 'ALTER DATABASE "docspell" OWNER TO "docspell"' in refused


def test_an_expired_or_capped_role_is_login_refused_never_a_green_password(
    bot_env: BotEnv,
) -> None:
    assert bot_env.console("/pgdb create docspell", "/pgdb create sfa").returncode == 0
    bot_env.sql("ALTER ROLE \"docspell\" VALID UNTIL '2001-01-01'")
    bot_env.sql('ALTER ROLE "sfa" CONNECTION LIMIT 0')

    out = bot_env.console("/pgdb status docspell", "/pgdb status sfa").stdout
    kinds = findings(bot_env.diagnose("--json"))

    assert ("login_refused", "docspell") in kinds and ("login_refused", "sfa") in kinds
    assert "password_drift" not in {k for k, _ in kinds}
    assert "❌" in line_with(out, "role can log in", "expired")
    assert "❌" in line_with(out, "role can log in", "CONNECTION LIMIT 0")
    assert "✅ stored password opens the role" not in out


def test_stored_values_are_checked_and_database_is_optional(bot_env: BotEnv) -> None:
    assert bot_env.console("/pgdb create docspell", "/pgdb create sfa").returncode == 0
    folder = bot_env.secrets_dir / "dev" / "postgresql"
    (folder / "docspell" / "username").write_text("wronguser")
    (folder / "sfa" / "database").unlink()

    out = bot_env.console("/pgdb status docspell", "/pgdb create docspell").stdout
    kinds = findings(bot_env.diagnose("--json"))

    assert ("credentials_mismatch", "docspell") in kinds
    assert not [k for k in kinds if k[1] == "sfa"], kinds  # `database` defaults to username
    assert "❌" in line_with(out, "credentials stored", "wronguser")
    assert "Stopped at step “Credentials in the secret store”" in out
    assert (folder / "docspell" / "username").read_text() == "wronguser"  # untouched


def test_offboarding_an_unknown_app_is_refused_and_leaves_no_phantom(bot_env: BotEnv) -> None:
    out = bot_env.console("/pgdb offboard ghost --yes", "/pgdb list")

    assert "not a known app" in out.stdout
    assert "ghost" not in out.stdout.split("/pgdb list", 1)[-1].replace("not a known", "")
    assert bot_env.sql(
        "SELECT count(*) FROM pgdb_bot.workflows WHERE app = 'ghost'", in_state_db=True
    ) == [(0,)]


def test_one_repair_restores_a_deleted_role_and_its_deleted_secret(bot_env: BotEnv) -> None:
    # (a neighbour keeps the store from looking lost: an empty store is no answer at all)
    assert bot_env.console("/pgdb create docspell", "/pgdb create sfa").returncode == 0
    folder = bot_env.secrets_dir / "dev" / "postgresql" / "docspell"
    for key in folder.iterdir():
        key.unlink()
    folder.rmdir()
    bot_env.sql('DROP ROLE "docspell"')

    out = bot_env.console("/pgdb repair docspell --yes", PGDB_GRACE="0")

    assert "Repair `docspell`: done" in out.stdout, out.stdout
    password = bot_env.stored("docspell")
    assert password is not None and bot_env.can_login("docspell", password)
    kinds = findings(bot_env.diagnose("--json", PGDB_GRACE="0"))
    assert not [k for k in kinds if k[1] == "docspell" and k[0] != "manifest_missing"], kinds


def test_a_dry_run_names_where_the_real_run_stops_and_what_it_reuses(bot_env: BotEnv) -> None:
    assert bot_env.console("/pgdb create docspell").returncode == 0
    reuse = bot_env.console("/pgdb create docspell --dry-run").stdout
    assert "reuse the open proposal" in reuse
    assert "would commit" not in reuse
    ns = bot_env.console("/pgdb create sfa --namespace sfa-ns --dry-run").stdout
    assert "sfa-ns" in ns
    (bot_env.secrets_dir / "dev" / "postgresql" / "docspell" / "password").write_text("x" * 40)

    dry = bot_env.console("/pgdb create docspell --dry-run").stdout
    real = bot_env.console("/pgdb create docspell").stdout

    assert "The real run would stop at step “PostgreSQL role”" in dry
    assert "Stopped at step “PostgreSQL role”" in real
    assert "does not open it" in dry and "does not open it" in real


def test_parallel_creates_of_different_apps_keep_every_status_check(bot_env: BotEnv) -> None:
    apps = [f"par{i}" for i in range(6)]
    outputs: dict[str, str] = {}

    def create(app: str) -> None:
        outputs[app] = bot_env.console(f"/pgdb create {app}").stdout

    threads = [threading.Thread(target=create, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    status = bot_env.console(*(f"/pgdb status {a}" for a in apps)).stdout
    for app in apps:
        assert f"Onboarded `{app}`" in outputs[app], outputs[app]
        line = line_with(status, "manifests:", f"pgdb/{app}")
        assert "no checks yet" not in line
        assert "pgdb/secret success" in line and "pgdb/manifests success" in line


def test_a_leftover_offboarding_branch_and_a_broken_kustomization_are_findings(
    bot_env: BotEnv,
) -> None:
    assert bot_env.console("/pgdb create docspell").returncode == 0
    merge(bot_env, "pgdb/docspell")
    assert bot_env.console("/pgdb create sfa").returncode == 0
    merge(bot_env, "pgdb/sfa")
    bot_env.git("checkout", "-q", "-b", "pgdb-offboard/docspell")  # an offboarding left open
    bot_env.git("rm", "-q", f"{BASE}/databases/docspell.yaml")
    bot_env.git("commit", "-q", "-m", "pgdb: offboard docspell")
    bot_env.git("checkout", "-q", "main")
    bot_env.git("rm", "-q", f"{BASE}/credentials/sfa-secret.yaml")
    bot_env.git("commit", "-q", "-m", "sfa secret removed by hand, still listed")

    kinds = findings(bot_env.diagnose("--json", PGDB_GRACE="0"))
    out = bot_env.console("/pgdb status", "/pgdb status docspell", PGDB_GRACE="0").stdout

    assert ("offboard_pending", "docspell") in kinds
    assert ("kustomization_broken", "sfa") in kinds
    assert "❌" in line_with(out, "GitOps", "missing file")
    assert "⚠️" in line_with(out, "manifests:", "pgdb-offboard/docspell")


def test_a_kustomization_that_is_not_yaml_is_a_finding_not_an_internal_error(
    bot_env: BotEnv,
) -> None:
    assert bot_env.console("/pgdb create docspell").returncode == 0
    merge(bot_env, "pgdb/docspell")
    (bot_env.repo / BASE / "kustomization.yaml").write_text(
        "resources: [databases/docspell.yaml\n  - : :\n"
    )
    bot_env.git("commit", "-qam", "a hand edit that broke the YAML")

    kinds = findings(bot_env.diagnose("--json", PGDB_GRACE="0"))
    out = bot_env.console(
        "/pgdb status", "/pgdb status docspell", "/pgdb list", "/pgdb diagnose", PGDB_GRACE="0"
    ).stdout

    assert ("kustomization_broken", None) in kinds
    assert "internal error" not in out
    assert "❌" in line_with(out, "GitOps", "kustomization.yaml cannot be read")
    assert "not valid YAML" in out and "fix kustomization.yaml by hand on branch main" in out
    assert "❔" in line_with(out, "manifests:", "cannot be read")
    assert "manifest_missing" not in out  # no repair offered for what cannot be read


def test_smaller_cases_read_as_a_user_expects(bot_env: BotEnv) -> None:
    out = bot_env.console(
        "/pgdb create docspell --namespace docspell",
        "/pgdb silence nosuchkind 5m",
        "/pgdb status nobody",
        "/pgdb diagnose",
    ).stdout
    assert "use `--namespace <ns>` to deliver it there" not in out
    assert "delivered to namespace docspell" in out
    assert "neither a known app nor a finding kind" in out
    unknown = out.split("/pgdb status nobody", 1)[-1].split("> /pgdb diagnose", 1)[0]
    assert "not a known app" in unknown and "❌" not in unknown
    rows = bot_env.sql(
        "SELECT result FROM pgdb_bot.audit_log WHERE command LIKE '%diagnose%'", in_state_db=True
    )
    assert rows == [("ok",)]


def test_a_killed_workflow_is_shown_as_interrupted_not_running(bot_env: BotEnv) -> None:
    assert bot_env.console("/pgdb create docspell").returncode == 0
    bot_env.sql(
        "UPDATE pgdb_bot.workflows SET status = 'running', step = 'role', "
        "updated_at = now() - interval '1 hour' WHERE app = 'docspell'",
        in_state_db=True,
    )
    out = bot_env.console("/pgdb status docspell").stdout
    assert "was interrupted at step “role”" in out


def test_a_hand_written_manifest_missing_from_the_kustomization_keeps_its_comments(
    bot_env: BotEnv,
) -> None:
    hand = bot_env.repo / BASE / "databases" / "legacy.yaml"
    hand.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# written by hand before the bot, keep this comment\n"
        "apiVersion: postgresql.cnpg.io/v1\nkind: Database\n"
        "metadata:\n  name: legacy\n  namespace: databases\n"
        "spec:\n  cluster:\n    name: postgresql-shared\n  name: legacy\n  owner: legacy\n"
        "  ensure: present\n  databaseReclaimPolicy: retain\n"
    )
    hand.write_text(text)
    bot_env.git("add", str(hand))
    bot_env.git("commit", "-q", "-m", "legacy by hand")

    out = bot_env.console("/pgdb create legacy")

    assert "Onboarded `legacy`" in out.stdout, out.stdout
    assert bot_env.git("show", f"pgdb/legacy:{BASE}/databases/legacy.yaml") == text
    changed = bot_env.git("diff", "--name-only", "main", "pgdb/legacy").split()
    assert f"{BASE}/databases/legacy.yaml" not in changed


def test_repair_waits_for_credentials_an_operator_must_decide(bot_env: BotEnv) -> None:
    assert bot_env.console("/pgdb create docspell", "/pgdb create sfa").returncode == 0
    bot_env.git("branch", "-q", "-D", "pgdb/docspell")  # no proposal left: manifests missing
    folder = bot_env.secrets_dir / "dev" / "postgresql" / "docspell"
    for key in folder.iterdir():
        key.unlink()
    folder.rmdir()  # the role is there, its password is not

    out = bot_env.console("/pgdb repair docspell --yes", PGDB_GRACE="0").stdout

    assert "Not repaired here: secret_missing" in out and "/pgdb rotate docspell" in out
    assert "waits for the stored credentials" in line_with(out, "Propose the manifests again")
    assert "pgdb/docspell" not in bot_env.git("branch", "--format=%(refname:short)").split()
