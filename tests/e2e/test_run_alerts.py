"""End to end: `pgdb-bot run` in a subprocess with a Kubernetes API server (the fake) and a
Mattermost ops channel (the fake). The scheduled diagnostics alert the ops channel once per
finding kind — also across a restart — and say "resolved" once, in each alert's thread, after the
cluster is fixed. The Database a degraded cluster cannot apply is named in the cluster's alert
(one cause, one alert)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.pgcluster import free_port
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.kubernetes import (
    FakeKubernetes,
    backup,
    database,
    infisical_secret,
    managed_secret,
    pg_cluster,
    scheduled_backup,
)
from tests.fixtures.mattermost import BOT_TOKEN, FakeMattermost

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py

OPS = "opschannel0000000000000001"
APP = "docspell"
KINDS = ("secret_unsynced", "cluster_degraded")


class Bot:
    """One `pgdb-bot run` process; `restart` is a deploy."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env, self.cwd, self.log = env, cwd, log
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log.open("a") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                env=self.env,
                cwd=self.cwd,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
            )
        url = f"http://127.0.0.1:{self.env['PGDB_HTTP_PORT']}/healthz"
        end = time.monotonic() + 30
        with httpx.Client(timeout=1) as client:  # one client: each new one loads the CA bundle
            while time.monotonic() < end:
                assert self.process.poll() is None, self.log.read_text()
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.TransportError:
                    time.sleep(0.1)
        raise AssertionError(f"pgdb-bot run did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def passes(self) -> int:
        return self.log.read_text().count("diagnostics pass:")


def wait_for(condition: Callable[[], bool], what: str, log: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen in {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def bot(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, fake_kube: FakeKubernetes, tmp_path: Path
) -> Iterator[Bot]:
    port = free_port()
    env = bot_env.env(
        PGDB_HTTP_PORT=str(port),
        PGDB_MATTERMOST_URL=fake_mattermost.url,
        PGDB_MATTERMOST_BOT_TOKEN=BOT_TOKEN,
        PGDB_MATTERMOST_COMMAND_TOKEN="commandtoken00000000000001",
        PGDB_MATTERMOST_OPS_CHANNEL=OPS,
        PGDB_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PGDB_ACTION_SECRET="e2e-action-secret-0123456789",
        PGDB_KUBECONFIG=str(fake_kube.kubeconfig),
        PGDB_POD_NAME="pgdb-bot-0",
        PGDB_DIAGNOSE_INTERVAL="1s",
        PGDB_GRACE="1s",
        PGDB_LOG_FORMAT="text",
        PGDB_LOG_LEVEL="INFO",
    )
    running = Bot(env, bot_env.state_dir, tmp_path / "pgdb-bot.log")
    try:
        yield running
    finally:
        running.stop()


def alerts_about(fake: FakeMattermost, kind: str) -> list[dict[str, Any]]:
    return [
        p for p in fake.posts_in(OPS) if f"{kind} " in p["message"] or p["message"].endswith(kind)
    ]


@pytest.mark.slow
def test_each_alert_once_across_a_restart_and_one_resolved_in_its_thread(
    bot: Bot, fake_mattermost: FakeMattermost, fake_kube: FakeKubernetes
) -> None:
    fake_kube.put(pg_cluster(healthy=False))
    fake_kube.put(scheduled_backup())
    fake_kube.put(backup("daily-1"))
    fake_kube.put(database(APP, applied=False))
    fake_kube.put(infisical_secret(APP, ready=False))

    bot.start()
    wait_for(
        lambda: all(alerts_about(fake_mattermost, k) for k in KINDS),
        "the two alerts",
        bot.log,
    )
    firsts = {k: alerts_about(fake_mattermost, k) for k in KINDS}
    for kind, posts in firsts.items():
        assert len(posts) == 1, (kind, posts)
        assert posts[0]["root_id"] == ""
    [degraded] = firsts["cluster_degraded"]
    assert "CRITICAL" in degraded["message"]
    assert "database_not_applied x1" in str(degraded["props"])
    assert alerts_about(fake_mattermost, "database_not_applied") == []

    bot.stop()  # a deploy
    before = bot.passes()
    bot.start()
    wait_for(lambda: bot.passes() >= before + 3, "three passes after the restart", bot.log)
    for kind in KINDS:
        assert len(alerts_about(fake_mattermost, kind)) == 1, kind

    # the cluster is fixed: the Database applied, the secret synced, the cluster healthy
    fake_kube.put(pg_cluster())
    fake_kube.put(database(APP))
    fake_kube.put(infisical_secret(APP))
    fake_kube.put(managed_secret(APP, "any-password-0123456789-abcdefghijkl"))
    wait_for(
        lambda: all(len(alerts_about(fake_mattermost, k)) == 2 for k in KINDS),
        "the two resolved messages",
        bot.log,
    )
    settled = bot.passes()
    wait_for(lambda: bot.passes() >= settled + 3, "three more passes", bot.log)
    for kind, [first] in firsts.items():
        posts = alerts_about(fake_mattermost, kind)
        assert len(posts) == 2, (kind, posts)
        resolved = posts[1]
        assert resolved["message"].startswith("✅ Resolved")
        assert resolved["root_id"] == first["id"]
    assert alerts_about(fake_mattermost, "database_not_applied") == []
    assert "Traceback" not in bot.log.read_text()
