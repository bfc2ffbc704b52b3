"""End to end with a Kubernetes API server (the fake, reached by the real client through a
kubeconfig): what `pgdb-bot diagnose --json`, `/pgdb status` and `/pgdb repair` say and do
when the cluster is not what the manifests asked for."""

from __future__ import annotations

import json
import time

from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.kubernetes import (
    FakeKubernetes,
    backup,
    database,
    infisical_secret,
    pg_cluster,
    scheduled_backup,
)

pytestmark = one_account()  # the cluster's cases: tests/fixtures/bot.py

APP = "docspell"


def onboard_and_merge(env: BotEnv, *, drop_role: bool = True) -> str:
    """Onboarded and merged, then the role lost (the seed's "role created late")."""
    out = env.console(f"/pgdb create {APP}", PGDB_KUBERNETES="off")
    assert out.returncode == 0, out.stderr
    env.git("merge", "--ff-only", f"pgdb/{APP}")
    if drop_role:
        env.sql(f"DROP ROLE {APP}")
    password = env.stored(APP)
    assert password is not None
    time.sleep(1.2)  # past PGDB_GRACE=1s for the workflow record
    return password


def broken_cluster(fake: FakeKubernetes) -> None:
    """The seed's failure: the Database applied before its role, the secret not synced, and
    the cluster failing over (reference/operators.md §4.2, §4.4, §4.6)."""
    fake.put(pg_cluster(healthy=False))
    fake.put(scheduled_backup())
    fake.put(backup("daily-1"))
    fake.put(database(APP, applied=False))
    fake.put(infisical_secret(APP, ready=False))


def test_diagnose_json_reports_what_the_cluster_runs_and_exits_1(
    bot_env: BotEnv, fake_kube: FakeKubernetes
) -> None:
    password = onboard_and_merge(bot_env)
    broken_cluster(fake_kube)

    out = bot_env.diagnose("--json", PGDB_KUBECONFIG=str(fake_kube.kubeconfig), PGDB_GRACE="1s")

    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)  # stdout is the JSON document alone
    found = {(f["kind"], f["app"]): f for f in report["findings"]}
    not_applied = found[("database_not_applied", APP)]
    assert f'role "{APP}" does not exist' in not_applied["message"]
    assert not_applied["severity"] == "critical"
    assert not_applied["remedy"] == f"/pgdb repair {APP} --yes"
    unsynced = found[("secret_unsynced", APP)]
    assert "ReadyToSyncSecrets False" in unsynced["message"]
    assert unsynced["remedy"].endswith(f"/pgdb repair {APP} --yes")
    degraded = found[("cluster_degraded", None)]
    assert "Failing over" in degraded["message"]
    assert degraded["remedy"] == "kubectl -n databases describe cluster postgresql-shared"
    assert ("kube_secret_missing", APP) in found
    assert ("role_missing", APP) in found
    for finding in report["findings"]:
        assert finding["remedy"], finding
    assert password not in out.stdout + out.stderr
    # one pass: one call per kind
    assert len(fake_kube.requests()) == 6


def test_diagnose_with_an_unreachable_cluster_is_a_finding_not_a_crash(
    bot_env: BotEnv, fake_kube: FakeKubernetes
) -> None:
    fake_kube.fail(status=503)

    out = bot_env.diagnose("--json", PGDB_KUBECONFIG=str(fake_kube.kubeconfig))

    assert out.returncode == 1, out.stderr
    kinds = [(f["kind"], f["app"]) for f in json.loads(out.stdout)["findings"]]
    assert ("system_unreachable", None) in kinds


def test_status_and_repair_through_the_console(bot_env: BotEnv, fake_kube: FakeKubernetes) -> None:
    onboard_and_merge(bot_env)
    broken_cluster(fake_kube)
    kube = {"PGDB_KUBECONFIG": str(fake_kube.kubeconfig), "PGDB_GRACE": "1s"}

    status = bot_env.console(f"/pgdb status {APP}", "/pgdb status", **kube)

    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert "❌ InfisicalSecret ready: ReadyToSyncSecrets False: Failed to sync secrets" in text
    assert f'❌ Database CR applied: not applied: while creating database "{APP}"' in text
    assert "Kubernetes: ❌ Cluster `postgresql-shared`: Failing over" in text

    repaired = bot_env.console(f"/pgdb repair {APP} --yes", **kube)

    assert f"created role `{APP}`" in repaired.stdout, repaired.stdout
    assert "Re-sync the InfisicalSecret" in repaired.stdout
    assert "from 60 to 61 (generation 1 → 2)" in repaired.stdout
    assert "Not repaired here" not in repaired.stdout
    stored = fake_kube.get("InfisicalSecret", f"{APP}-postgresql-credentials")
    assert stored is not None and stored["metadata"]["generation"] == 2
    password = bot_env.stored(APP)
    assert password is not None and bot_env.can_login(APP, password)

    # the Database CR still says the role is missing (CNPG retries every 30 s): a warning now
    after = json.loads(bot_env.diagnose("--json", **kube).stdout)
    [not_applied] = [f for f in after["findings"] if f["kind"] == "database_not_applied"]
    assert not_applied["severity"] == "warning" and "exists now" in not_applied["message"]
