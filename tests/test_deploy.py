"""The shipped recipe: image, kustomize base, RBAC, and the SQL that creates the bot's account."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import psycopg
import pytest
import yaml
from psycopg import sql

from bot.core.manifests.validate import validate_infisical_secret
from bot.core.secret import generate_password
from tests.fixtures.postgres import with_params

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is missing: `make test` installs it with the dev extra"
    return found


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / "deploy")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_kustomize_builds_and_builtin_objects_validate(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(str(doc["kind"]) for doc in rendered)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "InfisicalSecret",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    for doc in rendered:
        if doc["kind"] == "InfisicalSecret":
            assert validate_infisical_secret(yaml.safe_dump(doc)) == []
        elif doc["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_the_pod_runs_unprivileged_with_probes(rendered: list[dict[str, Any]]) -> None:
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_rbac_reads_and_patches_only_what_the_bot_needs(
    rendered: list[dict[str, Any]],
) -> None:
    role = next(d for d in rendered if d["kind"] == "Role")
    verbs = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert verbs[("", "secrets")] == {"get", "list"}
    assert verbs[("secrets.infisical.com", "infisicalsecrets")] == {"get", "list", "patch"}
    assert all("delete" not in v and "*" not in v for v in verbs.values())


def test_dockerfile_lints_clean_and_runs_as_non_root() -> None:
    out = subprocess.run(
        [tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text
    assert text.count("FROM ") == 2  # build stage apart: no compilers in the final image


def test_bot_role_sql_makes_a_createrole_account_that_can_run_the_bot(
    scram_superuser_dsn: str, scram_clean_roles: None
) -> None:
    # On the session's private cluster: the script creates the fixed role `pgdb_bot` and grants
    # it every login role on the server, which must not happen on a server others use.
    database = f"pgdb_sql_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(scram_superuser_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        conn.execute("CREATE ROLE t_handmade LOGIN")
    target = with_params(scram_superuser_dsn, dbname=database)
    for _ in range(2):  # safe to run again
        subprocess.run(
            ["psql", target, "-q", "-f", str(ROOT / "deploy/sql/bot-role.sql")],
            check=True,
            capture_output=True,
        )
    with psycopg.connect(target) as conn:
        attrs = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = 'pgdb_bot'"
        ).fetchone()
        owner = conn.execute(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'pgdb_bot'"
        ).fetchone()
        admin = conn.execute(
            "SELECT admin_option FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles b ON b.oid = m.member "
            "WHERE r.rolname = 't_handmade' AND b.rolname = 'pgdb_bot'"
        ).fetchone()
        # the script's next step, by hand as its comment says (`\password pgdb_bot`)
        password = generate_password()
        verifier = conn.pgconn.encrypt_password(
            password.reveal().encode(), b"pgdb_bot", b"scram-sha-256"
        ).decode()
        conn.execute(sql.SQL("ALTER ROLE pgdb_bot PASSWORD {}").format(sql.Literal(verifier)))
    assert attrs == (False, True, True)
    assert owner == ("pgdb_bot",)
    assert admin == (True,)
    bot = with_params(target, user="pgdb_bot", password=password.reveal())
    with psycopg.connect(bot) as conn:
        conn.execute("CREATE TABLE pgdb_bot.probe (id int)")  # it owns its schema


def test_the_optional_argocd_rbac_validates() -> None:
    docs = [
        d for d in yaml.safe_load_all((ROOT / "deploy/optional/argocd-rbac.yaml").read_text()) if d
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    assert docs[0]["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["get"]}
    ]


def test_the_optional_rollout_rbac_validates_and_stays_namespaced() -> None:
    docs = [
        d for d in yaml.safe_load_all((ROOT / "deploy/optional/rollout-rbac.yaml").read_text()) if d
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    role, binding = docs
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "statefulsets"],
            "verbs": ["list", "patch"],
        }
    ]
    # granted per namespace by RoleBindings only: never a ClusterRoleBinding
    assert (
        binding["kind"] == "RoleBinding" and binding["roleRef"]["name"] == role["metadata"]["name"]
    )
