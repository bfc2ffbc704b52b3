"""Two environments from one bot (PGDB_CONFIG), driven through the console.

dev is the shared test server, prod the session's private scram cluster: two real PostgreSQL
servers. One GitOps repository with a folder per environment, one file store with a folder
per environment, one state database for the bot.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bot.adapters.local_git import init_demo_repo
from tests.fixtures.bot import BotEnv, fresh_bot_env, request_id
from tests.fixtures.kubernetes import FakeKubernetes, kubernetes_server, pg_cluster
from tests.fixtures.postgres import (
    dropping_new_objects_on_private_cluster,
    fresh_database,
    unique_app,
    with_params,
)

DEV_PATH = "apps/04-databases/postgresql-shared/base"
PROD_PATH = "apps/04-databases/postgresql-shared-prod/base"
CLOSED_PORT_DSN = "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2"


@dataclass
class TwoEnvironments:
    bot: BotEnv
    dev_dsn: str
    prod_dsn: str
    state_dsn: str
    config: Path

    def write_config(self, *, prod_dsn: str | None = None, **prod: str) -> None:
        keys = "".join(f", {k}: {v}" for k, v in prod.items())
        self.config.write_text(
            "environments:\n"
            f"  dev: {{pg_dsn: '{self.dev_dsn}', gitops_path: {DEV_PATH}}}\n"
            f"  prod: {{pg_dsn: '{prod_dsn or self.prod_dsn}', gitops_path: {PROD_PATH},"
            f" secrets_env: prod, require_approval: all{keys}}}\n"
            "default_environments: [dev]\n"
            f"state_dsn: '{self.state_dsn}'\n"
        )

    def console(self, *commands: str, as_user: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.bot.console(*commands, as_user=as_user, **self._env(), **env)

    def diagnose(self, **env: str) -> subprocess.CompletedProcess[str]:
        return self.bot.diagnose("--json", **self._env(), **env)

    def _env(self) -> dict[str, str]:
        return {"PGDB_CONFIG": str(self.config), "PGDB_OPERATORS": "alice,bob", "PGDB_GRACE": "0"}

    def stored(self, env: str, app: str) -> str | None:
        path = self.bot.secrets_dir / env / "postgresql" / app / "password"
        return path.read_text() if path.exists() else None

    def roles(self, dsn: str, app: str) -> list[tuple[object, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = %s", (app,)
            ).fetchall()

    def changed_paths(self, branch: str) -> set[str]:
        diff = self.bot.git("diff", "--name-only", f"main...{branch}")
        return {line for line in diff.splitlines() if line}


@pytest.fixture
def two_envs(
    pg_superuser_dsn: str, scram_superuser_dsn: str, tmp_path: Path
) -> Iterator[TwoEnvironments]:
    repo = tmp_path / "gitops"
    init_demo_repo(repo, manifests_path=DEV_PATH)
    prod_folder = repo / PROD_PATH
    prod_folder.mkdir(parents=True)
    kustomization = (repo / DEV_PATH / "kustomization.yaml").read_text()
    (prod_folder / "kustomization.yaml").write_text(kustomization)
    for args in (("add", "-A"), ("commit", "-qm", "prod folder")):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    state_db = fresh_database(pg_superuser_dsn, owner="postgres")
    bot = fresh_bot_env(tmp_path, dsn=pg_superuser_dsn, superuser_dsn=pg_superuser_dsn, repo=repo)
    envs = TwoEnvironments(
        bot=bot,
        dev_dsn=pg_superuser_dsn,
        prod_dsn=scram_superuser_dsn,
        state_dsn=with_params(pg_superuser_dsn, dbname=state_db),
        config=tmp_path / "environments.yaml",
    )
    envs.write_config()
    with dropping_new_objects_on_private_cluster(scram_superuser_dsn):
        yield envs


def test_create_in_dev_then_prod_with_approval_and_a_prod_finding(
    two_envs: TwoEnvironments,
) -> None:
    app = unique_app("env")

    # `create A` goes to the default environment, dev, alone
    created = two_envs.console(f"/pgdb create {app}", as_user="alice")
    assert created.returncode == 0, created.stderr
    assert f"[dev] Onboarded `{app}`" in created.stdout, created.stdout + created.stderr[-3000:]
    assert two_envs.roles(two_envs.dev_dsn, app) == [(app,)]
    assert two_envs.roles(two_envs.prod_dsn, app) == []
    dev_password = two_envs.stored("dev", app)
    assert dev_password is not None and two_envs.stored("prod", app) is None
    branches = two_envs.bot.git("branch", "--list", "pgdb/*").split()
    assert branches == [f"pgdb/dev--{app}"]
    dev_change = two_envs.changed_paths(f"pgdb/dev--{app}")
    assert f"{DEV_PATH}/databases/{app}.yaml" in dev_change
    assert all(p.startswith(DEV_PATH + "/") for p in two_envs.changed_paths(f"pgdb/dev--{app}"))

    # prod requires another operator's approval: nothing happens there until then
    asked = two_envs.console(f"/pgdb create {app} --env prod", as_user="alice")
    assert asked.returncode == 0, asked.stderr
    assert "[prod]" in asked.stdout and "approval" in asked.stdout, asked.stdout
    request = request_id(asked.stdout)
    assert two_envs.roles(two_envs.prod_dsn, app) == []
    assert two_envs.stored("prod", app) is None
    own = two_envs.console(f"/pgdb approve {request}", as_user="alice")
    assert two_envs.roles(two_envs.prod_dsn, app) == [], own.stdout

    approved = two_envs.console(f"/pgdb approve {request}", as_user="bob")
    assert approved.returncode == 0, approved.stderr
    assert f"Onboarded `{app}`" in approved.stdout, approved.stdout
    assert two_envs.roles(two_envs.prod_dsn, app) == [(app,)]
    prod_password = two_envs.stored("prod", app)
    assert prod_password is not None and prod_password != dev_password
    prod_branch = f"pgdb/prod--{app}"
    assert prod_branch in two_envs.bot.git("branch", "--list", "pgdb/*")
    assert all(p.startswith(PROD_PATH + "/") for p in two_envs.changed_paths(prod_branch))
    assert two_envs.changed_paths(prod_branch)
    # the dev branch was not touched by the prod onboarding
    assert all(p.startswith(DEV_PATH + "/") for p in two_envs.changed_paths(f"pgdb/dev--{app}"))

    # an app in two environments: commands acting on one must be told which
    ambiguous = two_envs.console(f"/pgdb rotate {app} --yes", as_user="alice")
    assert f"`{app}` is in dev, prod: say which with --env" in ambiguous.stdout
    status = two_envs.console(f"/pgdb status {app}", as_user="alice")
    assert f"[dev] Status of `{app}`" in status.stdout
    assert f"[prod] Status of `{app}`" in status.stdout

    # a role dropped on prod is prod's finding, and only prod's
    with psycopg.connect(two_envs.prod_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(app)))
    diagnosis = two_envs.diagnose()
    document = json.loads(diagnosis.stdout)
    mine = [f for f in document["findings"] if f["app"] == app]
    assert diagnosis.returncode == 1
    assert [(f["kind"], f["env"]) for f in mine] == [("role_missing", "prod")], mine
    assert "--env prod" in mine[0]["remedy"]
    assert {"app": app, "env": "dev"} in document["apps"]
    assert {"app": app, "env": "prod"} in document["apps"]


def test_an_unreachable_environment_never_blocks_the_others(two_envs: TwoEnvironments) -> None:
    two_envs.write_config(prod_dsn=CLOSED_PORT_DSN)
    app = unique_app("env")

    created = two_envs.console(f"/pgdb create {app}", "/pgdb status", as_user="alice")

    assert created.returncode == 0, created.stderr
    assert f"[dev] Onboarded `{app}`" in created.stdout, created.stdout + created.stderr[-3000:]
    assert two_envs.roles(two_envs.dev_dsn, app) == [(app,)]
    assert "[prod]" in created.stdout  # the fleet status has a prod section, saying what failed
    diagnosis = two_envs.diagnose()
    assert diagnosis.returncode == 1, diagnosis.stderr
    findings = json.loads(diagnosis.stdout)["findings"]
    unreachable = [f for f in findings if f["kind"] == "system_unreachable"]
    assert unreachable and {f["env"] for f in unreachable} == {"prod"}, unreachable
    assert "environments.prod.pg_dsn" in unreachable[0]["remedy"]
    assert not [f for f in findings if f["app"] == app]  # dev's new app is fine


@pytest.mark.parametrize(
    ("prod_extra", "same_server", "expected"),
    [
        (f"gitops_path: {DEV_PATH}", False, "use the same gitops_path"),
        ("secrets_env: dev", True, "same PostgreSQL server"),
        ("colour: blue", False, "environments.prod.colour: unknown key"),
        ("require_approval: sometimes", False, "environments.prod.require_approval"),
    ],
)
def test_a_refused_configuration_names_the_key(
    two_envs: TwoEnvironments, prod_extra: str, same_server: bool, expected: str
) -> None:
    prod_dsn = two_envs.dev_dsn if same_server else two_envs.prod_dsn
    two_envs.config.write_text(
        "environments:\n"
        f"  dev: {{pg_dsn: '{two_envs.dev_dsn}', gitops_path: {DEV_PATH}}}\n"
        f"  prod: {{pg_dsn: '{prod_dsn}', {prod_extra}}}\n"
        f"state_dsn: '{two_envs.state_dsn}'\n"
    )

    refused = two_envs.diagnose()

    assert refused.returncode == 2
    assert "PGDB_CONFIG" in refused.stderr and expected in refused.stderr, refused.stderr


def test_what_was_recorded_before_the_file_belongs_to_pgdb_env(two_envs: TwoEnvironments) -> None:
    app = unique_app("old")
    # one environment, as before: records in the state database, branch pgdb/<app>
    before = two_envs.bot.console(
        f"/pgdb create {app}", PGDB_PG_DSN=two_envs.state_dsn, PGDB_ENV="dev"
    )
    assert before.returncode == 0, before.stderr
    assert f"Onboarded `{app}`" in before.stdout
    assert two_envs.bot.git("branch", "--list", "pgdb/*").split() == [f"pgdb/{app}"]

    status = two_envs.console(f"/pgdb status {app}", "/pgdb list", as_user="alice")

    assert f"[dev] Status of `{app}`" in status.stdout, status.stdout
    assert f"[prod] Status of `{app}`" not in status.stdout  # only dev knows it
    assert f"pgdb/{app}" in status.stdout  # its proposal is dev's
    again = two_envs.console(f"/pgdb create {app}", as_user="alice")
    assert "reused the open proposal" in again.stdout, again.stdout
    # no second branch: the open one opened before the file is dev's
    assert two_envs.bot.git("branch", "--list", "pgdb/*").split() == [f"pgdb/{app}"]


def _two_contexts(path: Path, *, dev: str, prod: str) -> Path:
    """A kubeconfig with a context per environment, each its own API server."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": name, "cluster": {"server": url}}
                    for name, url in (("dev", dev), ("prod", prod))
                ],
                "users": [{"name": "pgdb-bot", "user": {"token": "fake-token"}}],
                "contexts": [
                    {"name": name, "context": {"cluster": name, "user": "pgdb-bot"}}
                    for name in ("dev", "prod")
                ],
                "current-context": "dev",
            }
        )
    )
    return path


def test_each_environment_reads_its_own_kubernetes_context(
    two_envs: TwoEnvironments, tmp_path: Path
) -> None:
    with (
        kubernetes_server(FakeKubernetes()) as dev_kube,
        kubernetes_server(FakeKubernetes()) as prod_kube,
    ):
        dev_kube.put(pg_cluster(healthy=True))
        prod_kube.put(pg_cluster(healthy=False))
        kubeconfig = _two_contexts(tmp_path / "kubeconfig", dev=dev_kube.url, prod=prod_kube.url)
        two_envs.write_config(kube_context="prod")
        text = two_envs.config.read_text().replace(
            f"gitops_path: {DEV_PATH}}}", f"gitops_path: {DEV_PATH}, kube_context: dev}}"
        )
        two_envs.config.write_text(text)

        diagnosis = two_envs.diagnose(PGDB_KUBECONFIG=str(kubeconfig))

        assert diagnosis.returncode == 1, diagnosis.stderr
        findings = json.loads(diagnosis.stdout)["findings"]
        degraded = [f for f in findings if f["kind"] == "cluster_degraded"]
        assert [f["env"] for f in degraded] == ["prod"], findings
        assert dev_kube.requests("GET") and prod_kube.requests("GET")


def test_one_create_for_dev_and_prod_runs_dev_and_waits_for_prod(
    two_envs: TwoEnvironments,
) -> None:
    app = unique_app("both")

    both = two_envs.console(f"/pgdb create {app} --env dev,prod", as_user="alice")

    assert both.returncode == 0, both.stderr
    assert f"[dev] Onboarded `{app}`" in both.stdout, both.stdout
    assert "[prod]" in both.stdout and "approval" in both.stdout
    assert f"/pgdb approve {request_id(both.stdout)}" in both.stdout
    assert two_envs.roles(two_envs.dev_dsn, app) == [(app,)]
    assert two_envs.roles(two_envs.prod_dsn, app) == []
    assert two_envs.stored("prod", app) is None
    unknown = two_envs.console(f"/pgdb create {app} --env qa", as_user="alice")
    assert "unknown environment `qa`: the environments are dev, prod" in unknown.stdout
