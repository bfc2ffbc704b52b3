"""The shipped recipe: image, kustomize base, RBAC, and the SQL that creates the bot's account."""

from __future__ import annotations

import os
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

from bot.config import Settings, load_settings
from bot.core.manifests.validate import validate_infisical_secret
from bot.core.secret import generate_password
from bot.wiring.kubernetes import build_leadership, connect_cluster, kube_source
from tests.fixtures.kubernetes import (
    Call,
    FakeKubernetes,
    application,
    backup,
    pg_cluster,
    scheduled_backup,
    seed_app,
)
from tests.fixtures.postgres import with_params

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is missing: `make test` installs it with the dev extra"
    return found


DEPLOY = ROOT / "deploy"
COMPONENTS = sorted(p.parent.name for p in (DEPLOY / "components").glob("*/kustomization.yaml"))
EXAMPLE = DEPLOY / "overlays" / "example"
NAMESPACE = "databases"  # the base's
ARGOCD = "argocd"

# What the bot reads and patches, as (API group, resource) -> verbs, for each piece of deploy/:
# the docs' RBAC table. test_the_rbac_is_what_the_kubernetes_adapter_calls derives the same
# from the calls the adapter really makes.
BASE_RIGHTS = {
    ("postgresql.cnpg.io", "clusters"): {"get"},
    ("postgresql.cnpg.io", "databases"): {"list"},
    ("postgresql.cnpg.io", "backups"): {"list"},
    ("postgresql.cnpg.io", "scheduledbackups"): {"list"},
    ("secrets.infisical.com", "infisicalsecrets"): {"list", "get", "patch"},
    ("", "secrets"): {"list", "get"},
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},
}
ARGOCD_RIGHTS = {("argoproj.io", "applications"): {"get"}}
ROLLOUT_RIGHTS = {
    ("apps", "deployments"): {"list", "patch"},
    ("apps", "statefulsets"): {"list", "patch"},
}

Rights = dict[tuple[str, str], set[str]]


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize <folder>``'s objects; fails the test with kustomize's own message."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {folder} failed: {out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def with_components(tmp_path: Path, *components: str) -> list[dict[str, Any]]:
    """The base with ``components``, as an overlay of one's own would list them."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    spec = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / "base", overlay)],
        "components": [os.path.relpath(DEPLOY / "components" / c, overlay) for c in components],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return kustomize(overlay)


def rights(rules: list[dict[str, Any]]) -> Rights:
    found: Rights = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


def granted(objects: list[dict[str, Any]]) -> dict[str, Rights]:
    """namespace -> what the bot's ServiceAccount may do there, through every RoleBinding (a
    ClusterRole grants only where a RoleBinding binds it); a ClusterRoleBinding fails."""
    by_name = {
        (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d
        for d in objects
        if d["kind"] in ("Role", "ClusterRole")
    }
    out: dict[str, Rights] = {}
    for binding in (d for d in objects if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["kind"] == "RoleBinding", "nothing cluster-wide"
        namespace = binding["metadata"]["namespace"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "pgdb-bot", "namespace": NAMESPACE}
        ]
        ref = binding["roleRef"]
        role = by_name[(ref["kind"], ref["name"], namespace if ref["kind"] == "Role" else None)]
        for key, verbs in rights(role["rules"]).items():
            out.setdefault(namespace, {}).setdefault(key, set()).update(verbs)
    return out


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(DEPLOY)


def test_the_base_builds_with_no_prometheus_operator_kind(
    rendered: list[dict[str, Any]],
) -> None:
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
        ]
    )
    # a cluster without the Prometheus Operator refuses the whole apply otherwise
    assert not [d for d in rendered if str(d["apiVersion"]).startswith("monitoring.coreos.com")]
    assert {d["metadata"]["namespace"] for d in rendered} == {NAMESPACE}
    for doc in rendered:
        if doc["kind"] == "InfisicalSecret":
            assert validate_infisical_secret(yaml.safe_dump(doc)) == []
        else:
            kubernetes_validate.validate(doc, "1.30.0", strict=True)


@pytest.fixture
def no_pgdb_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings from the test's arguments only: no PGDB_* variable, no .env file."""
    for name in [n for n in os.environ if n.startswith("PGDB_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("no_pgdb_environment")
def test_the_configmap_sets_only_variables_the_bot_reads(rendered: list[dict[str, Any]]) -> None:
    # the settings model ignores unknown variables: a misspelt key would be silently dropped
    data = next(d for d in rendered if d["kind"] == "ConfigMap")["data"]
    example = next(d for d in kustomize(EXAMPLE) if d["kind"] == "ConfigMap")["data"]
    known = {f"PGDB_{name.upper()}" for name in Settings.model_fields}
    assert set(data) | set(example) <= known, sorted(set(data) | set(example) - known)
    assert load_settings(**{k.removeprefix("PGDB_").lower(): v for k, v in example.items()})


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
    # idle is about 115 to 131 MiB with every system configured, 194 MiB after a pass over
    # 5,000 apps (the benchmarks): the request covers idle, the limit leaves room over the peak
    resources = container["resources"]
    assert 131 <= mebibytes(resources["requests"]["memory"]) <= 256
    assert mebibytes(resources["limits"]["memory"]) >= 1.5 * 194


def mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20


def test_the_base_role_is_the_documented_table(rendered: list[dict[str, Any]]) -> None:
    assert granted(rendered) == {NAMESPACE: BASE_RIGHTS}
    role = next(d for d in rendered if d["kind"] == "Role")
    assert all("*" not in rule["verbs"] + rule["resources"] for rule in role["rules"])


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_component_builds_on_the_base(tmp_path: Path, component: str) -> None:
    objects = with_components(tmp_path, component)
    base = kustomize(DEPLOY)
    added = [d for d in objects if d not in base]
    assert added, f"the component {component} adds nothing"
    for doc in added:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "pgdb-bot"
        if doc["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
    assert (
        granted(objects)
        == {
            "servicemonitor": {NAMESPACE: BASE_RIGHTS},
            "argocd-rbac": {NAMESPACE: BASE_RIGHTS, ARGOCD: ARGOCD_RIGHTS},
            "rollout-rbac": {NAMESPACE: {**BASE_RIGHTS, **ROLLOUT_RIGHTS}},
        }[component]
    )


def test_the_components_are_the_three_optional_pieces() -> None:
    assert COMPONENTS == ["argocd-rbac", "rollout-rbac", "servicemonitor"]


def test_the_servicemonitor_scrapes_the_bots_service(tmp_path: Path) -> None:
    objects = with_components(tmp_path, "servicemonitor")
    [monitor] = [d for d in objects if d["kind"] == "ServiceMonitor"]
    service = next(d for d in objects if d["kind"] == "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_the_example_overlay_turns_every_component_on() -> None:
    objects = kustomize(EXAMPLE)
    assert "ServiceMonitor" in {d["kind"] for d in objects}
    assert granted(objects) == {
        NAMESPACE: {**BASE_RIGHTS, **ROLLOUT_RIGHTS},
        ARGOCD: ARGOCD_RIGHTS,
        "docspell": ROLLOUT_RIGHTS,
    }
    data = next(d for d in objects if d["kind"] == "ConfigMap")["data"]
    assert data["PGDB_ROLLOUT"] == "on" and data["PGDB_ARGOCD_APP"]


# --- the rights, from what the code calls ---------------------------------------------------

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def verb_and_resource(call: Call) -> tuple[str, str, str, str]:
    """(namespace, group, resource, RBAC verb) of one request the bot made."""
    parts = [p for p in call.path.split("?")[0].split("/") if p]
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    assert rest[0] == "namespaces", f"a cluster-wide call: {call.path}"
    namespace, resource, named = rest[1], rest[2], len(rest) > 3
    verb = VERBS.get(call.method) or ("get" if named else "list")
    return namespace, group, resource, verb


def workload_reading(secret: str, kind: str, namespace: str) -> dict[str, Any]:
    container = {"name": "app", "envFrom": [{"secretRef": {"name": secret}}]}
    return {
        "kind": kind,
        "metadata": {"name": f"app-{kind.lower()}", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


@pytest.mark.usefixtures("no_pgdb_environment")
def test_the_rbac_is_what_the_kubernetes_adapter_calls(fake_kube: FakeKubernetes) -> None:
    """Every call of every feature (a diagnostics pass with Argo CD, repair's resync, rotate's
    Secret poll and rollout restart, leader election) against the fake API server: the rights
    they need are exactly what the example overlay grants, namespace by namespace."""
    settings = load_settings(
        kubeconfig=fake_kube.kubeconfig, argocd_app="postgresql-shared", kube_timeout="2s"
    )
    seed_app(fake_kube, "docspell", "s3cret-0123456789-abcdefghijklmnopqrstuv")
    fake_kube.put(pg_cluster())
    fake_kube.put(application("postgresql-shared"))
    fake_kube.put(backup("nightly-1"))
    fake_kube.put(scheduled_backup())
    for kind in ("Deployment", "StatefulSet"):
        for namespace in ("docspell", NAMESPACE):
            fake_kube.put(workload_reading("docspell-postgresql-credentials", kind, namespace))
    source = kube_source(settings)
    assert source is not None
    cluster = connect_cluster(source, settings)
    observed = cluster.observe()
    assert observed.errors == {} and observed.argocd is not None and observed.cluster is not None
    cluster.resync_infisical_secret("docspell-postgresql-credentials")
    assert cluster.read_secret("docspell-postgresql-credentials") is not None
    for namespace in ("docspell", NAMESPACE):  # rotate: the app's namespace and the bot's
        for workload in cluster.workloads(namespace):
            cluster.restart_workload(workload, restarted_at="2026-12-06T03:00:00Z")
    leader = build_leadership(settings)
    assert leader.try_lead() and leader.try_lead()  # creates the Lease, then renews it
    leader.release()

    needed: dict[str, Rights] = {}
    for call in fake_kube.requests():
        namespace, group, resource, verb = verb_and_resource(call)
        needed.setdefault(namespace, {}).setdefault((group, resource), set()).add(verb)

    expected = granted(kustomize(EXAMPLE))
    for namespace in sorted(set(needed) | set(expected)):
        assert needed.get(namespace) == expected.get(namespace), namespace


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
