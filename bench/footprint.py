"""`pgdb-bot run`: cold start to ready, and resident memory; `--help` and `--version`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.fleet import Fleet
from bench.measure import median
from bot.pgcluster import free_port


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_run(fleet: Fleet, **extra: str) -> tuple[subprocess.Popen[bytes], int, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGDB_")}
    env.update(
        PGDB_PG_DSN=fleet.superuser_dsn,
        PGDB_GITOPS_REPO=str(fleet.root / "gitops"),
        PGDB_SECRETS_DIR=str(fleet.root / "secrets"),
        PGDB_HTTP_PORT=str(port),
        PGDB_LOG_LEVEL="WARNING",
        **extra,
    )
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.perf_counter() - start > 30:
            raise RuntimeError("pgdb-bot run did not become ready")
        time.sleep(0.01)
    return process, port, time.perf_counter() - start


def footprint(fleet: Fleet, *, starts: int) -> dict[str, Any]:
    cold: list[float] = []
    idle: list[float] = []
    for _ in range(starts):
        process, _, seconds = start_run(fleet)
        time.sleep(0.5)
        cold.append(seconds)
        idle.append(rss_mib(process.pid))
        process.terminate()
        process.wait(timeout=30)
    return {
        "cold_start_to_ready_seconds": round(min(cold), 3),
        "cold_start_median_seconds": round(median(cold), 3),
        "idle_rss_mib": round(min(idle), 1),
        **{f"{flag[2:]}_seconds": quick_command(flag) for flag in ("--help", "--version")},
    }


def quick_command(flag: str, *, runs: int = 7) -> dict[str, float]:
    """Wall time of ``pgdb-bot <flag>`` from process start to exit (min and median): what an
    operator waits for, imports included."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bot", flag], capture_output=True, check=True, timeout=30
        )
        times.append(time.perf_counter() - start)
    return {"min": round(min(times), 3), "median": round(median(times), 3)}
