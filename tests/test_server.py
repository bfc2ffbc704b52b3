"""`pgdb-bot run`: the long-running process, started as a user would start it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.pgcluster import free_port
from tests.fixtures.bot import wait_healthy
from tests.fixtures.postgres import dsn_user, fresh_database, with_params

pytestmark = pytest.mark.server  # `pgdb-bot run` as a subprocess


def _env(tmp_path: Path, dsn: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGDB_")}
    env.update(
        PGDB_PG_DSN=dsn,
        PGDB_GITOPS_REPO=str(tmp_path / "gitops"),
        PGDB_SECRETS_DIR=str(tmp_path / "secrets"),
        PGDB_HTTP_PORT=str(port),
    )
    env.update(extra)
    return env


@pytest.fixture
def running_bot(
    tmp_path: Path, pg_superuser_dsn: str, gitops_repo: Path
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    # its own schema in a database of this run's, not in the shared server's `postgres`
    database = fresh_database(pg_superuser_dsn, owner=dsn_user(pg_superuser_dsn))
    dsn = with_params(pg_superuser_dsn, dbname=database)
    env = _env(tmp_path, dsn, port, PGDB_GITOPS_REPO=str(gitops_repo))
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(process, port, timeout=20)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_run_serves_health_and_stops_cleanly_on_sigterm(
    running_bot: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = running_bot
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").text == "ok\n"

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert "no chat platform is configured" in stderr
    assert "stopped" in stderr


def test_run_refuses_to_start_without_a_git_host(tmp_path: Path, pg_superuser_dsn: str) -> None:
    env = _env(tmp_path, pg_superuser_dsn, free_port())
    del env["PGDB_GITOPS_REPO"]
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert "PGDB_GITOPS_REPO" in out.stderr
    assert "console" in out.stderr  # says the local defaults are the console's only


def readyz_once_checked(port: int, *, timeout: float = 20) -> httpx.Response:
    """/readyz once the background check has finished a round (it answers "starting" before)."""
    end = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:  # one client: each new one loads the CA bundle
        while True:
            answer = client.get(f"http://127.0.0.1:{port}/readyz")
            if "starting" not in answer.text or time.monotonic() > end:
                return answer
            time.sleep(0.1)


def test_readyz_and_metrics(running_bot: tuple[subprocess.Popen[str], int]) -> None:
    _, port = running_bot
    ready = readyz_once_checked(port)
    assert ready.status_code == 200, ready.text
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE pgdb_commands_total counter" in metrics.text
    assert "pgdb_workflow_step_seconds" in metrics.text


def test_readyz_names_the_backend_that_is_down(tmp_path: Path, gitops_repo: Path) -> None:
    port = free_port()
    dsn = f"postgresql://bot:hunter2-not-shown@127.0.0.1:{free_port()}/postgres"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=_env(tmp_path, dsn, port, PGDB_GITOPS_REPO=str(gitops_repo)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(process, port, timeout=20)
        ready = readyz_once_checked(port)
    finally:
        process.terminate()
        _, log = process.communicate(timeout=30)
    assert ready.status_code == 503
    assert (
        ready.text
        == "not ready\nPostgreSQL (PGDB_PG_DSN): not answering (the bot's log says why)\n"
    )
    # the detail is in the log, for operators; never the password
    assert "not ready: PostgreSQL (PGDB_PG_DSN): " in log and "127.0.0.1" in log
    assert "hunter2-not-shown" not in ready.text + log


def test_readiness_answers_at_once_while_a_check_hangs() -> None:
    """A backend that never answers is reported after the deadline; no probe ever waits."""
    from bot.server import Readiness

    release = threading.Event()

    def hang() -> None:
        release.wait(30)

    readiness = Readiness([("Hanging", hang)], deadline=0.2)
    readiness.start()
    try:
        start = time.monotonic()
        first = readiness.problems()
        time.sleep(0.4)
        late = readiness.problems()
        elapsed = time.monotonic() - start
    finally:
        release.set()
        readiness.stop()
    assert first == ["starting: the first check has not finished"]
    assert late == ["Hanging: no answer within 0.2 s"]
    assert elapsed < 0.6


def test_readiness_shows_a_plain_cause_and_logs_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.core.errors import BackendUnavailable
    from bot.server import Readiness

    def down() -> None:
        raise BackendUnavailable("PostgreSQL", "cannot connect to db.internal:5432/app as bot")

    readiness = Readiness([("PostgreSQL (PGDB_PG_DSN)", down)])
    assert readiness.check_once() == [
        "PostgreSQL (PGDB_PG_DSN): not answering (the bot's log says why)"
    ]
    assert "db.internal:5432/app as bot" not in " ".join(readiness.problems())
    assert "db.internal:5432/app as bot" in caplog.text
