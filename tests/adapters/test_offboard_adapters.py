"""The port methods offboarding added, on each adapter against its real or fake system:
``ManagedDatabase.disable_login`` (real PostgreSQL), ``SecretStore.delete`` (files, fake
Infisical), and ``GitHost.commit`` deleting paths (real git, fake GitHub)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bot.adapters.file_secrets import FileSecretStore
from bot.adapters.github.host import GitHubHost
from bot.adapters.infisical.session import ATTEMPTS
from bot.adapters.infisical.store import InfisicalSecretStore
from bot.adapters.local_git import LocalGitHost
from bot.adapters.postgres.roles import PostgresDatabase
from bot.core.errors import BackendUnavailable, ConflictError, PermissionProblem
from bot.core.model import StoredCredentials
from bot.core.names import AppName
from bot.core.secret import Secret, generate_password
from bot.pgcluster import PrivateCluster
from tests.fixtures.github import FakeGitHub
from tests.fixtures.gitrepo import MANIFESTS, git
from tests.fixtures.infisical import CLIENT_ID, CLIENT_SECRET, FakeInfisical, Fault
from tests.fixtures.postgres import unique_app

APP = AppName("docspell")
DB_FILE = f"{MANIFESTS}/databases/docspell.yaml"
KUSTOMIZATION = f"{MANIFESTS}/kustomization.yaml"


# --- PostgreSQL -------------------------------------------------------------------------------


def _login(
    cluster: PrivateCluster, role: str, password: Secret
) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(cluster.dsn(user=role, password=password), connect_timeout=5)


@pytest.mark.parametrize("account", ["superuser", "createrole"])
def test_disable_login_keeps_the_password_and_counts_open_sessions(
    scram_cluster: PrivateCluster,
    scram_superuser_dsn: str,
    scram_createrole_dsn: str,
    account: str,
) -> None:
    db = PostgresDatabase(scram_superuser_dsn if account == "superuser" else scram_createrole_dsn)
    app, password = unique_app(), generate_password()
    db.create_role(app, password=password)
    with _login(scram_cluster, app, password) as session:
        assert db.disable_login(app) == 1  # the open session is left alone, and counted

        assert session.execute("SELECT 1").fetchone() == (1,)
    assert not db.observe().roles[app].can_login
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        _login(scram_cluster, app, password)
    assert db.disable_login(app) == 0  # again: nothing changes
    db.enable_login(app, password=password)  # create's way back: the same password opens it
    with _login(scram_cluster, app, password) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (app,)


def test_disable_login_without_admin_option_names_the_grant(
    scram_superuser_dsn: str, scram_createrole_dsn: str
) -> None:
    app = unique_app()
    with psycopg.connect(scram_superuser_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(app)))
        version = conn.execute("SHOW server_version_num").fetchone()
    if version is None or int(str(version[0])) < 160000:
        pytest.skip("ADMIN OPTION is needed from PostgreSQL 16 on")

    with pytest.raises(PermissionProblem) as refused:
        PostgresDatabase(scram_createrole_dsn).disable_login(app)

    assert f'GRANT "{app}" TO "pgdb_scram_creator" WITH ADMIN OPTION' in str(refused.value)


def test_disable_login_of_a_missing_role_is_a_conflict(scram_superuser_dsn: str) -> None:
    with pytest.raises(ConflictError, match="no longer exists"):
        PostgresDatabase(scram_superuser_dsn).disable_login(unique_app())


# --- secret stores ---------------------------------------------------------------------------


def test_file_store_delete_removes_the_folder_and_is_idempotent(secrets_dir: Path) -> None:
    store = FileSecretStore(secrets_dir, env="dev")
    store.write(APP, username="docspell", password=generate_password(), database="docspell")
    other = AppName("paperless")
    store.write(other, username="paperless", password=generate_password(), database="paperless")

    assert store.delete(APP) is True
    assert store.read(APP) is None
    assert not (secrets_dir / "dev" / "postgresql" / "docspell").exists()
    assert store.delete(APP) is False
    assert set(store.read_all()) == {"paperless"}


def test_file_store_delete_refuses_a_folder_with_foreign_files(secrets_dir: Path) -> None:
    store = FileSecretStore(secrets_dir, env="dev")
    store.write(APP, username="docspell", password=generate_password(), database="docspell")
    (secrets_dir / "dev" / "postgresql" / "docspell" / "notes.txt").write_text("mine")

    with pytest.raises(BackendUnavailable, match=r"notes\.txt.*nothing was deleted"):
        store.delete(APP)

    kept = store.read(APP)  # refused before anything was removed: the keys are all there
    assert kept is not None and kept.complete


def _infisical_store(fake: FakeInfisical) -> InfisicalSecretStore:
    return InfisicalSecretStore(
        url=fake.url,
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        project="vixens",
        env="dev",
        sleep=lambda _: None,
    )


def test_infisical_delete_removes_keys_and_folder_and_a_rerun_finishes(
    infisical: FakeInfisical,
) -> None:
    store = _infisical_store(infisical)
    password = generate_password()
    store.write(APP, username="docspell", password=password, database="docspell")
    store.write(AppName("paperless"), username="paperless", password=password, database="paperless")
    # the server fails on the second key, every try
    infisical.inject(Fault("status", match="DELETE /api/v3/secrets/raw/password", times=ATTEMPTS))

    with pytest.raises(BackendUnavailable, match="HTTP 503") as failed:
        store.delete(APP)
    assert password.reveal() not in str(failed.value)
    assert infisical.value("vixens", "dev", "/postgresql/docspell", "username") is None

    assert store.delete(APP) is True
    assert store.read(APP) is None
    assert set(store.read_all()) == {"paperless"}
    assert store.delete(APP) is False


@pytest.mark.parametrize(
    ("added", "named"),
    [
        ("secret", "secrets SMTP_PASSWORD"),
        ("folder", "folders replica"),
        ("import", "secret imports from prod:/shared/smtp"),
    ],
)
def test_infisical_delete_refuses_a_folder_with_what_a_team_added_and_deletes_nothing(
    infisical: FakeInfisical, added: str, named: str
) -> None:
    store = _infisical_store(infisical)
    password = generate_password()
    store.write(APP, username="docspell", password=password, database="docspell")
    path = "/postgresql/docspell"
    if added == "secret":
        infisical.add_secret("vixens", "dev", path, "SMTP_PASSWORD", "team-value-1234")
    elif added == "folder":
        infisical.add_folder("vixens", "dev", f"{path}/replica")
    else:
        infisical.add_secret("vixens", "prod", "/shared/smtp", "SMTP_HOST", "smtp.example")
        infisical.add_secret_import(
            "vixens", "dev", path, source_environment="prod", source="/shared/smtp"
        )

    with pytest.raises(BackendUnavailable) as refused:
        store.delete(APP)

    message = str(refused.value)
    assert f"{path} (env dev) holds what the bot did not write ({named})" in message
    assert "nothing was deleted" in message and "then run the command again" in message
    assert password.reveal() not in message and "team-value-1234" not in message
    assert infisical.requests("DELETE") == []
    assert store.read(APP) == StoredCredentials(
        username="docspell", password=password, database="docspell"
    )
    if added == "secret":
        assert infisical.value("vixens", "dev", path, "SMTP_PASSWORD") == "team-value-1234"


def test_infisical_delete_lists_the_folder_without_reading_values(
    infisical: FakeInfisical,
) -> None:
    store = _infisical_store(infisical)
    store.write(APP, username="docspell", password=generate_password(), database="docspell")

    assert store.delete(APP) is True

    [listing] = [
        c
        for c in infisical.requests("GET /api/v3/secrets/raw")
        if c.query.get("secretPath") == "/postgresql/docspell"
    ]
    assert listing.query["viewSecretValue"] == "false"
    assert listing.query["include_imports"] == "true"
    assert infisical.requests("GET /api/v2/folders")[-1].query["path"] == "/postgresql/docspell"


# --- git hosts -------------------------------------------------------------------------------


def _with_app(repo: Path) -> str:
    """Main with docspell's Database manifest listed, as after a merged onboarding."""
    (repo / DB_FILE).parent.mkdir(parents=True, exist_ok=True)
    (repo / DB_FILE).write_text("kind: Database\n")
    kustomization = repo / KUSTOMIZATION
    kustomization.write_text(kustomization.read_text() + "  - databases/docspell.yaml\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "docspell")
    return git(repo, "rev-parse", "main").strip()


@pytest.mark.parametrize("bare", [False, True])
def test_local_commit_deletes_files_and_refuses_an_absent_one(
    gitops_repo: Path, bare_gitops_repo: Path, bare: bool
) -> None:
    base = _with_app(gitops_repo)
    if bare:
        git(gitops_repo, "push", "-q", str(bare_gitops_repo), "main")
    host = LocalGitHost(bare_gitops_repo if bare else gitops_repo)
    kustomization = git(gitops_repo, "show", f"main:{KUSTOMIZATION}").replace(
        "  - databases/docspell.yaml\n", ""
    )

    sha = host.commit(
        parent=base, files={DB_FILE: None, KUSTOMIZATION: kustomization}, message="offboard"
    )

    repo = bare_gitops_repo if bare else gitops_repo
    assert sorted(git(repo, "diff", "--name-status", base, sha).splitlines()) == [
        f"D\t{DB_FILE}",
        f"M\t{KUSTOMIZATION}",
    ]
    assert host.read_file(ref=sha, path=DB_FILE) is None
    with pytest.raises(ConflictError, match="not a file"):
        host.commit(parent=sha, files={DB_FILE: None}, message="again")


def test_github_commit_deletes_files_and_gets_422_for_an_absent_one(
    fake_github: FakeGitHub,
) -> None:
    base = fake_github.commit_on("main", {DB_FILE: "kind: Database\n"}, "docspell")
    host = GitHubHost(
        repo=fake_github.full_name,
        token=Secret(fake_github.token),
        api_url=fake_github.url,
        write_spacing=0,
    )

    sha = host.commit(parent=base, files={DB_FILE: None}, message="offboard docspell")

    assert fake_github.git("diff", "--name-status", base, sha).splitlines() == [f"D\t{DB_FILE}"]
    [tree] = [c for c in fake_github.requests("POST") if c.path.endswith("/git/trees")]
    assert tree.body is not None
    assert tree.body["tree"] == [{"path": DB_FILE, "mode": "100644", "type": "blob", "sha": None}]
    with pytest.raises(BackendUnavailable, match="422"):
        host.commit(parent=sha, files={DB_FILE: None}, message="again")


def test_github_discovers_an_update_pull_request_as_an_update(fake_github: FakeGitHub) -> None:
    """``pgdb-update/<app>`` pull requests are updates, never onboardings."""
    base = fake_github.commit_on("main", {DB_FILE: "kind: Database\n"}, "docspell")
    host = GitHubHost(
        repo=fake_github.full_name,
        token=Secret(fake_github.token),
        api_url=fake_github.url,
        write_spacing=0,
    )
    sha = host.commit(
        parent=base, files={DB_FILE: "kind: Database\nspec:\n  connectionLimit: 40\n"}, message="x"
    )
    host.set_branch(branch="pgdb-update/docspell", sha=sha)
    opened = host.open_proposal(branch="pgdb-update/docspell", title="pgdb: update", body="b")

    snapshot = host.snapshot(manifests_path=MANIFESTS)

    assert snapshot.updates["docspell"].url == opened.url
    assert "docspell" not in snapshot.proposals and "docspell" not in snapshot.offboardings
