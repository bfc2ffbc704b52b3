"""``/pgdb offboard`` through dispatch, with real adapters: real PostgreSQL (scram, as superuser
and as a CREATEROLE-only account), a real git repository and the file secret store.

The key scenario: the app's database really exists with rows the app wrote as itself;
offboarding keeps them, the role can no longer log in, and ``create`` brings everything back.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import psycopg
import pytest

from bot.adapters.console_chat import ConsoleConversation
from bot.adapters.kubernetes.source import KubeSource
from bot.core.model import Requester
from bot.core.names import AppName
from bot.core.reply import Button, Reply, StepState
from bot.wiring.kubernetes import connect_cluster
from handlers.context import Services
from handlers.dispatch import dispatch
from handlers.findings import diagnose
from handlers.lifecycle import Lifecycle, lifecycle_of
from handlers.observe import observe
from tests.fixtures.bot import BotEnv
from tests.fixtures.gitrepo import MANIFESTS, git
from tests.fixtures.kubernetes import FakeKubernetes, database, infisical_secret, managed_secret
from tests.fixtures.postgres import with_params

BRANCH = "pgdb-offboard/docspell"
DB_FILE = f"{MANIFESTS}/databases/docspell.yaml"
SECRET_FILE = f"{MANIFESTS}/credentials/docspell-secret.yaml"
KUSTOMIZATION = f"{MANIFESTS}/kustomization.yaml"


def run(services: Services, text: str, *, user: str = "olga") -> Reply:
    return dispatch(
        services,
        text=text,
        requester=Requester(user_id=user, platform="console", is_console_owner=True),
        conversation=ConsoleConversation(io.StringIO()),
    )


def explain(reply: Reply) -> list[tuple[str, str, str]]:
    return [(s.key, s.state.value, s.detail) for s in reply.steps]


def app_sql(env: BotEnv, password: str, query: str) -> list[tuple[object, ...]]:
    """As the app itself, in its own database (what the app's pods do)."""
    dsn = with_params(env.superuser_dsn, user="docspell", password=password, dbname="docspell")
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def rows_as_superuser(env: BotEnv) -> list[tuple[object, ...]]:
    dsn = with_params(env.superuser_dsn, dbname="docspell")
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()


def onboard_with_data(env: BotEnv, services: Services) -> str:
    """``create``, the PR merged, CloudNativePG's database, rows written by the app."""
    assert run(services, "/pgdb create docspell").ok
    git(env.repo, "merge", "-q", "--no-ff", "-m", "Merge onboarding", "pgdb/docspell")
    env.sql("CREATE DATABASE docspell OWNER docspell")
    password = env.stored("docspell")
    assert password is not None
    app_sql(env, password, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
    app_sql(env, password, "INSERT INTO notes VALUES (1, 'invoice'), (2, 'receipt')")
    return password


def merge_offboarding(env: BotEnv) -> None:
    git(env.repo, "merge", "-q", "--no-ff", "-m", "Merge offboarding", BRANCH)


def findings_for(services: Services, app: str | None) -> list[tuple[str, str]]:
    found = diagnose(observe(services), services, respect_grace=False).findings
    return [(f.kind, f.message) for f in found if f.app == app]


def test_offboard_keeps_the_data_and_create_brings_it_back(bot_env: BotEnv) -> None:
    services = bot_env.services()
    password = onboard_with_data(bot_env, services)
    kustomization = bot_env.git("show", f"main:{KUSTOMIZATION}")
    assert "# pgdb-bot adds" in kustomization
    refs = bot_env.git("for-each-ref")

    confirm = run(services, "/pgdb offboard docspell")

    assert confirm.title == "Offboard `docspell`: confirm", explain(confirm)
    assert confirm.buttons == [
        Button(label="Offboard", command="/pgdb offboard docspell --yes", style="danger")
    ]
    states = {s.key: s.state for s in confirm.steps}
    assert states == {
        "manifests": StepState.PLANNED,
        "role": StepState.PLANNED,
        "secret": StepState.EXISTS,
    }
    assert any("`/pgdb offboard docspell --yes`" in line for line in confirm.lines)
    assert bot_env.git("for-each-ref") == refs  # the confirmation changed nothing
    assert bot_env.can_login("docspell", password)

    done = run(services, "/pgdb offboard docspell --yes")

    assert done.ok, explain(done)
    assert done.title == "Offboarded `docspell`"
    assert [s.state for s in done.steps] == [StepState.DONE, StepState.DONE, StepState.EXISTS]
    # one commit on main removing exactly the two files and their two entries, comments kept
    assert bot_env.git("rev-list", "--count", f"main..{BRANCH}").strip() == "1"
    assert (
        bot_env.git("rev-parse", f"{BRANCH}^").strip() == bot_env.git("rev-parse", "main").strip()
    )
    assert sorted(bot_env.git("diff", "--name-status", "main", BRANCH).splitlines()) == [
        f"D\t{SECRET_FILE}",
        f"D\t{DB_FILE}",
        f"M\t{KUSTOMIZATION}",
    ]
    expected = "".join(
        line
        for line in kustomization.splitlines(keepends=True)
        if line.strip() not in {"- databases/docspell.yaml", "- credentials/docspell-secret.yaml"}
    )
    assert bot_env.git("show", f"{BRANCH}:{KUSTOMIZATION}") == expected
    assert "ensure: absent" not in bot_env.git("log", "-p", BRANCH, "-1")
    assert not bot_env.can_login("docspell", password)
    assert bot_env.stored("docspell") == password  # kept by default
    # no onboarding proposal was made of the offboarding branch
    assert bot_env.git("branch", "--list", "pgdb/*").split() == ["pgdb/docspell"]

    merge_offboarding(bot_env)

    assert rows_as_superuser(bot_env) == [(1, "invoice"), (2, "receipt")]
    assert bot_env.sql(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'docspell'"
    ) == [("docspell",)]
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        app_sql(bot_env, password, "SELECT 1")
    status = run(services, "/pgdb status docspell")
    assert status.title == "Status of `docspell`: offboarded", status.fields
    assert any("offboarded on" in line and "by olga" in line for line in status.lines)
    assert not [f for f in status.fields if f[0].startswith("❌")], status.fields
    listing = run(services, "/pgdb list")
    assert any(line.startswith("⚪ docspell: offboarded") for line in listing.lines)
    assert findings_for(services, "docspell") == []
    assert "orphan_database" not in {k for k, _ in findings_for(services, None)}

    refs = bot_env.git("for-each-ref")
    again = run(services, "/pgdb offboard docspell --yes")
    unconfirmed = run(services, "/pgdb offboard docspell")

    for reply in (again, unconfirmed):
        assert reply.title == "`docspell` is already offboarded: nothing to do", explain(reply)
        assert reply.buttons == []
    assert bot_env.git("for-each-ref") == refs
    assert [w.kind for w in services.state.workflows() if w.app == "docspell"] == ["offboard"]

    back = run(services, "/pgdb create docspell")

    assert back.ok, explain(back)
    assert back.step("role").detail == "re-enabled LOGIN on role `docspell`"
    assert bot_env.stored("docspell") == password
    assert app_sql(bot_env, password, "SELECT id, body FROM notes ORDER BY id") == [
        (1, "invoice"),
        (2, "receipt"),
    ]
    # the manifests are proposed again, on the current main
    assert sorted(bot_env.git("diff", "--name-status", "main", "pgdb/docspell").splitlines()) == [
        f"A\t{SECRET_FILE}",
        f"A\t{DB_FILE}",
        f"M\t{KUSTOMIZATION}",
    ]
    assert run(services, "/pgdb status docspell").title != "Status of `docspell`: offboarded"


def test_with_the_setting_the_secret_goes_and_create_makes_a_new_password(
    bot_env: BotEnv,
) -> None:
    services = bot_env.services(offboard_delete_secret=True)
    old = onboard_with_data(bot_env, services)

    done = run(services, "/pgdb offboard docspell --yes")

    assert done.ok, explain(done)
    assert done.step("secret").state is StepState.DONE
    assert "PGDB_OFFBOARD_DELETE_SECRET" in done.step("secret").detail
    assert not (bot_env.secrets_dir / "dev" / "postgresql" / "docspell").exists()
    merge_offboarding(bot_env)
    assert rows_as_superuser(bot_env) == [(1, "invoice"), (2, "receipt")]
    assert not bot_env.can_login("docspell", old)
    assert findings_for(services, "docspell") == []
    # the same for a bot that no longer has the setting: the record says it was deleted
    assert findings_for(bot_env.services(), "docspell") == []

    back = run(bot_env.services(), "/pgdb create docspell")

    assert back.ok, explain(back)
    new = bot_env.stored("docspell")
    assert new is not None and new != old
    assert "generated a new password" in back.step("credentials").detail
    assert app_sql(bot_env, new, "SELECT count(*) FROM notes") == [(2,)]
    assert not bot_env.can_login("docspell", old)


def test_a_refused_alter_role_stops_the_run_and_a_rerun_finishes_it(bot_env: BotEnv) -> None:
    services = bot_env.services()
    password = onboard_with_data(bot_env, services)
    # The server refuses DDL on this connection: a real PostgreSQL error at the role step.
    read_only = with_params(bot_env.dsn, options="-c default_transaction_read_only=on")

    failed = run(bot_env.services(database_dsn=read_only), "/pgdb offboard docspell --yes")

    assert not failed.ok
    assert [s.state for s in failed.steps] == [
        StepState.DONE,
        StepState.FAILED,
        StepState.SKIPPED,
    ], explain(failed)
    assert "read-only transaction" in failed.step("role").detail
    assert any("/pgdb offboard docspell --yes" in line for line in failed.lines)
    assert bot_env.can_login("docspell", password)
    head = bot_env.git("rev-parse", BRANCH).strip()
    status = run(services, "/pgdb status docspell")
    assert status.title.startswith("Status of `docspell`: offboarding"), status.title
    assert any("stopped at step role" in detail for _, detail in status.fields)
    kinds = [k for k, _ in findings_for(services, "docspell")]
    assert kinds == ["offboard_incomplete"]

    resumed = run(services, "/pgdb offboard docspell --yes")

    assert resumed.ok, explain(resumed)
    assert [s.state for s in resumed.steps] == [
        StepState.EXISTS,
        StepState.DONE,
        StepState.EXISTS,
    ]
    assert "reused the open proposal" in resumed.step("manifests").detail
    assert bot_env.git("rev-parse", BRANCH).strip() == head
    assert not bot_env.can_login("docspell", password)
    assert findings_for(services, "docspell") == []


def test_a_base_that_moved_rebuilds_the_offboarding_commit(bot_env: BotEnv) -> None:
    services = bot_env.services()
    onboard_with_data(bot_env, services)
    assert run(services, "/pgdb offboard docspell --yes").ok
    first = bot_env.git("rev-parse", BRANCH).strip()
    assert run(services, "/pgdb create paperless").ok  # another onboarding merged meanwhile
    git(bot_env.repo, "merge", "-q", "--no-ff", "-m", "Merge paperless", "pgdb/paperless")
    # re-run of a not yet finished offboarding: the record says done, but the branch is stale
    services.state.start_workflow(app=AppName("docspell"), kind="offboard", requester="olga")

    again = run(services, "/pgdb offboard docspell --yes")

    assert again.ok, explain(again)
    assert "rebuilt on the current base" in again.step("manifests").detail
    rebuilt = bot_env.git("rev-parse", BRANCH).strip()
    assert rebuilt != first
    assert (
        bot_env.git("rev-parse", f"{BRANCH}^").strip() == bot_env.git("rev-parse", "main").strip()
    )
    kustomization = bot_env.git("show", f"{BRANCH}:{KUSTOMIZATION}")
    assert "paperless" in kustomization and "docspell" not in kustomization


def test_a_database_manifest_that_would_drop_the_database_is_refused(bot_env: BotEnv) -> None:
    services = bot_env.services()
    password = onboard_with_data(bot_env, services)
    path = bot_env.repo / DB_FILE
    path.write_text(
        path.read_text().replace("databaseReclaimPolicy: retain", "databaseReclaimPolicy: delete")
    )
    git(bot_env.repo, "commit", "-q", "-am", "someone switched to delete")
    refs = bot_env.git("for-each-ref")

    for text in ("/pgdb offboard docspell", "/pgdb offboard docspell --yes"):
        refused = run(services, text)
        assert not refused.ok
        detail = refused.step("manifests").detail
        assert "databaseReclaimPolicy: delete" in detail and "DROP database" in detail
        assert "databaseReclaimPolicy: retain" in detail  # the fix
        assert refused.buttons == []

    assert bot_env.git("for-each-ref") == refs
    assert bot_env.can_login("docspell", password)


def test_an_open_onboarding_proposal_is_named_and_an_unknown_app_refused(bot_env: BotEnv) -> None:
    services = bot_env.services()
    assert run(services, "/pgdb create docspell").ok  # proposed, not merged

    done = run(services, "/pgdb offboard docspell --yes")

    assert done.ok, explain(done)
    assert done.step("manifests").state is StepState.EXISTS  # nothing on main
    assert any("pgdb/docspell" in line and "still open" in line for line in done.lines)
    # the onboarding proposal left open would bring the manifests back once merged
    assert [k for k, _ in findings_for(services, "docspell")] == ["offboard_incomplete"]

    unknown = run(services, "/pgdb offboard nobody-here")
    assert not unknown.ok
    assert "not a known app" in unknown.lines[0]


def test_create_names_an_offboarding_proposal_still_open(bot_env: BotEnv, tmp_path: Path) -> None:
    services = bot_env.services()
    password = onboard_with_data(bot_env, services)
    assert run(services, "/pgdb offboard docspell --yes").ok

    back = run(services, "/pgdb create docspell")  # before the offboarding PR was merged

    # refused while the offboarding proposal is open; the role stays NOLOGIN
    assert not back.ok
    assert back.step("role").state is StepState.FAILED
    assert BRANCH in back.step("role").detail and "close it" in back.step("role").detail
    assert not bot_env.can_login("docspell", password)


def test_a_kustomization_patch_on_a_database_is_refused_before_anything_changes(
    bot_env: BotEnv,
) -> None:
    services = bot_env.services()
    password = onboard_with_data(bot_env, services)
    # The manifest says retain, but the kustomization patches the live object to delete.
    path = bot_env.repo / KUSTOMIZATION
    path.write_text(
        path.read_text()
        + "patches:\n"
        + "  - target:\n"
        + "      kind: Database\n"
        + "      name: docspell\n"
        + "    patch: |-\n"
        + '      [{"op": "replace", "path": "/spec/databaseReclaimPolicy", "value": "delete"}]\n'
    )
    git(bot_env.repo, "commit", "-q", "-am", "someone patched the Database")
    refs = bot_env.git("for-each-ref")

    for text in ("/pgdb offboard docspell", "/pgdb offboard docspell --yes"):
        refused = run(services, text)
        assert not refused.ok
        assert refused.title == "Offboard `docspell`: refused", explain(refused)
        detail = refused.step("manifests").detail
        assert f"`{KUSTOMIZATION}` on main patches a Database" in detail
        assert "`patches[0]` (its target is kind `Database`)" in detail
        assert "DROP database `docspell`" in detail
        assert "remove the patch from kustomization.yaml on main" in detail  # the fix
        assert "Nothing was changed." in refused.lines
        assert refused.buttons == []

    assert bot_env.git("for-each-ref") == refs
    assert bot_env.can_login("docspell", password)
    # refused before the run began: no offboarding record, nothing "incomplete" to report
    assert [w.kind for w in services.state.workflows() if w.app == "docspell"] == ["create"]
    assert findings_for(services, "docspell") == []


def test_a_strategic_merge_patch_file_of_kind_database_is_refused(bot_env: BotEnv) -> None:
    services = bot_env.services()
    onboard_with_data(bot_env, services)
    patch = bot_env.repo / MANIFESTS / "patches" / "reclaim.yaml"
    patch.parent.mkdir(parents=True)
    patch.write_text(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Database\nmetadata:\n  name: docspell\n"
        "spec:\n  databaseReclaimPolicy: delete\n"
    )
    path = bot_env.repo / KUSTOMIZATION
    path.write_text(path.read_text() + "patchesStrategicMerge:\n  - patches/reclaim.yaml\n")
    git(bot_env.repo, "add", "-A")
    git(bot_env.repo, "commit", "-q", "-m", "a strategic merge patch")

    refused = run(services, "/pgdb offboard docspell --yes")

    assert not refused.ok
    detail = refused.step("manifests").detail
    assert "`patchesStrategicMerge[0]` (`patches/reclaim.yaml`: it patches kind `Database`)" in (
        detail
    ), detail


def with_kube(env: BotEnv, kube: FakeKubernetes) -> Services:
    services = env.services(kube_timeout="2s")
    assert kube.kubeconfig is not None
    source = KubeSource(in_cluster=False, kubeconfig=kube.kubeconfig, origin="test")
    cluster = connect_cluster(source, env.settings(kube_timeout="2s"))
    return dataclasses.replace(services, cluster=cluster)


def test_a_live_database_that_would_drop_the_data_is_refused(
    bot_env: BotEnv, fake_kube: FakeKubernetes
) -> None:
    services = with_kube(bot_env, fake_kube)
    password = onboard_with_data(bot_env, services)
    # On main the manifest says retain; the live object was switched to delete by hand.
    fake_kube.put(database("docspell", reclaim="delete"))
    fake_kube.put(infisical_secret("docspell"))
    fake_kube.put(managed_secret("docspell", password))
    refs = bot_env.git("for-each-ref")

    for text in ("/pgdb offboard docspell", "/pgdb offboard docspell --yes"):
        refused = run(services, text)
        assert not refused.ok
        assert refused.title == "Offboard `docspell`: refused", explain(refused)
        detail = refused.step("manifests").detail
        assert (
            "the live Database `docspell` in namespace `databases` says "
            "`databaseReclaimPolicy: delete`"
        ) in detail
        assert "CloudNativePG would DROP database `docspell` and its data" in detail
        assert (
            "kubectl -n databases patch database docspell --type merge -p "
            """'{"spec":{"databaseReclaimPolicy":"retain"}}'"""
        ) in detail
        assert refused.buttons == []
    assert bot_env.git("for-each-ref") == refs
    assert bot_env.can_login("docspell", password)
    assert [w.kind for w in services.state.workflows() if w.app == "docspell"] == ["create"]

    fake_kube.put(database("docspell", reclaim=None))  # absent: the CRD's default, retain

    done = run(services, "/pgdb offboard docspell --yes")

    assert done.ok, explain(done)
    assert not bot_env.can_login("docspell", password)


def test_a_live_database_that_cannot_be_read_is_refused_while_its_manifest_would_go(
    bot_env: BotEnv, fake_kube: FakeKubernetes
) -> None:
    services = with_kube(bot_env, fake_kube)
    password = onboard_with_data(bot_env, services)
    fake_kube.forbidden.add("databases")

    refused = run(services, "/pgdb offboard docspell --yes")

    assert not refused.ok
    detail = refused.step("manifests").detail
    assert "the live Database of `docspell` could not be read" in detail, detail
    assert "`databaseReclaimPolicy` cannot be checked" in detail
    assert bot_env.can_login("docspell", password)


def test_offboard_waits_while_a_rotation_is_unfinished_so_the_rerun_keeps_its_password(
    bot_env: BotEnv,
) -> None:
    services = bot_env.services()
    old = onboard_with_data(bot_env, services)
    read_only = with_params(bot_env.dsn, options="-c default_transaction_read_only=on")
    stopped = run(bot_env.services(database_dsn=read_only), "/pgdb rotate docspell --yes")
    assert not stopped.ok  # stopped at ALTER ROLE, the new password already stored
    new = bot_env.stored("docspell")
    assert new is not None and new != old
    refs = bot_env.git("for-each-ref")

    for text in ("/pgdb offboard docspell", "/pgdb offboard docspell --yes"):
        refused = run(services, text)
        assert not refused.ok
        assert refused.title == "`docspell` is being rotated"
        assert "`/pgdb rotate docspell --yes` finishes it" in refused.lines[0]
        assert "Nothing was changed." in refused.lines[0]
        assert refused.buttons == []

    assert bot_env.git("for-each-ref") == refs
    assert bot_env.can_login("docspell", old)  # not set to NOLOGIN
    latest = services.state.latest_workflow(AppName("docspell"))
    assert lifecycle_of(latest) is Lifecycle.ROTATION_INCOMPLETE
    finished = run(services, "/pgdb rotate docspell --yes")
    assert finished.ok, explain(finished)
    assert bot_env.stored("docspell") == new  # not a third password
    assert bot_env.can_login("docspell", new)

    done = run(services, "/pgdb offboard docspell --yes")

    assert done.ok, explain(done)
    assert not bot_env.can_login("docspell", new)
