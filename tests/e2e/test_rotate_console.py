"""`/pgdb rotate` end to end through the console chat (`pgdb-bot console` in a subprocess), with
a real PostgreSQL, the file secret store, the fake Kubernetes API server reached through a
kubeconfig, and a stand-in Infisical operator syncing the managed Secret from the store."""

from __future__ import annotations

import base64
import json
import time

from tests.fixtures.bot import BotEnv
from tests.fixtures.kubernetes import (
    FakeKubernetes,
    database,
    infisical_secret,
    managed_secret,
    pg_cluster,
)
from tests.fixtures.operator import FakeInfisicalOperator, file_source

APP = "docspell"
SECRET = f"{APP}-postgresql-credentials"


def onboarded(env: BotEnv, kube: FakeKubernetes) -> str:
    """Created, merged, and what Argo CD and the operator made of it."""
    out = env.console(f"/pgdb create {APP}", PGDB_KUBERNETES="off")
    assert out.returncode == 0 and f"Onboarded `{APP}`" in out.stdout, out.stdout + out.stderr
    env.git("merge", "--ff-only", f"pgdb/{APP}")
    password = env.stored(APP)
    assert password is not None
    kube.put(pg_cluster())
    kube.put(database(APP))
    kube.put(infisical_secret(APP))
    kube.put(managed_secret(APP, password))
    kube.put(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "databases"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "x",
                                "envFrom": [{"secretRef": {"name": SECRET}}],
                            }
                        ]
                    }
                }
            },
        }
    )
    return password


def secret_password(kube: FakeKubernetes) -> str | None:
    secret = kube.get("Secret", SECRET)
    return base64.b64decode(secret["data"]["password"]).decode() if secret else None


def no_leak(env: BotEnv, password: str, *outputs: str) -> None:
    for text in outputs:
        assert password not in text
    services = env.services()
    audit = services.state.audit_entries()
    assert any(e.command.startswith(f"/pgdb rotate {APP}") for e in audit)
    assert password not in repr(audit)
    records = env.sql("SELECT * FROM pgdb_bot.workflows", in_state_db=True)
    assert password not in repr(records)


def test_rotate_confirm_then_apply_everywhere(bot_env: BotEnv, fake_kube: FakeKubernetes) -> None:
    old = onboarded(bot_env, fake_kube)
    operator = FakeInfisicalOperator(fake_kube, file_source(bot_env.secrets_dir), delay=0.2)
    kube = {"PGDB_KUBECONFIG": str(fake_kube.kubeconfig), "PGDB_ROLLOUT": "on"}
    try:
        operator.start()
        out = bot_env.console(
            f"/pgdb rotate {APP}", f"/pgdb rotate {APP} --yes", f"/pgdb status {APP}", **kube
        )
    finally:
        operator.stop()

    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"Rotate `{APP}`: confirm" in text
    assert f"To apply: `/pgdb rotate {APP} --yes`" in text
    assert f"Rotated `{APP}`" in text, text
    new = bot_env.stored(APP)
    assert new is not None and new != old
    assert secret_password(fake_kube) == new
    assert bot_env.can_login(APP, new) and not bot_env.can_login(APP, old)
    web = fake_kube.get("Deployment", "web")
    assert web is not None
    assert "kubectl.kubernetes.io/restartedAt" in web["spec"]["template"]["metadata"]["annotations"]
    assert "restarted Deployment databases/web" in text
    assert "✅ stored password opens the role" in text
    assert "✅ Kubernetes Secret carries the stored password" in text
    no_leak(bot_env, new, out.stdout, out.stderr)


def test_a_stuck_sync_puts_the_old_password_back_and_a_rerun_rotates_afresh(
    bot_env: BotEnv, fake_kube: FakeKubernetes
) -> None:
    old = onboarded(bot_env, fake_kube)
    operator = FakeInfisicalOperator(fake_kube, file_source(bot_env.secrets_dir))
    operator.stuck = True
    kube = {
        "PGDB_KUBECONFIG": str(fake_kube.kubeconfig),
        "PGDB_ROTATE_SYNC_TIMEOUT": "1s",
        "PGDB_GRACE": "1s",
    }
    try:
        operator.start()
        stopped = bot_env.console(f"/pgdb rotate {APP} --yes", **kube)
        after_stop = bot_env.stored(APP)
        old_still_opens = bot_env.can_login(APP, old)  # the role was not touched
        time.sleep(1.2)  # past PGDB_GRACE
        report = bot_env.diagnose("--json", **kube)
        status = bot_env.console(f"/pgdb status {APP}", **kube)
        operator.stuck = False
        finished = bot_env.console(f"/pgdb rotate {APP} --yes", **kube)
    finally:
        operator.stop()

    assert f"Rotate `{APP}`: stopped" in stopped.stdout, stopped.stdout
    assert "PGDB_ROTATE_SYNC_TIMEOUT" in stopped.stdout
    assert "The old password was put back in the secret store" in stopped.stdout
    assert after_stop == old  # the store, the Secret and the role agree again
    assert old_still_opens
    found = {(f["kind"], f["app"]) for f in json.loads(report.stdout)["findings"]}
    assert ("password_drift", APP) not in found and ("kube_secret_stale", APP) not in found
    assert "stopped at step “sync-wait”" in status.stdout
    assert f"`/pgdb rotate {APP} --yes`" in status.stdout

    assert f"Rotated `{APP}`" in finished.stdout, finished.stdout + finished.stderr
    assert "(finished the rotation started at" in finished.stdout
    pending = bot_env.stored(APP)
    assert pending is not None and pending != old  # a fresh password
    assert secret_password(fake_kube) == pending
    assert bot_env.can_login(APP, pending) and not bot_env.can_login(APP, old)
    no_leak(
        bot_env,
        pending,
        *(o.stdout + o.stderr for o in (stopped, report, status, finished)),
    )
