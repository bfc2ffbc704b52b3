"""Two environments from one bot (PGDB_CONFIG): dev is the benchmark's fleet, prod a second
PostgreSQL server with its own secret-store folder and GitOps folder in the same repository.

Measures one diagnostics pass over both (in parallel) with its calls per system, and one
onboarding into prod, into dev, and into both at once.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench.fleet import Fleet
from bench.measure import counting, median
from bench.onboarding import create
from bot.config import Settings
from bot.pgcluster import PrivateCluster
from bot.wiring import build_services, instrumented
from handlers.diagnose import run_diagnoses

PROD_PATH = "apps/04-databases/postgresql-shared-prod/base"


def _prod_folder(repo: Path) -> None:
    """prod's folder, with no app yet."""
    folder = repo / PROD_PATH
    if folder.exists():
        return
    folder.mkdir(parents=True)
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"
    )
    for args in (("add", "-A"), ("commit", "-qm", "prod folder")):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def two_environments(fleet: Fleet, prod: PrivateCluster, *, runs: int) -> dict[str, Any]:
    base = fleet.settings(fleet.superuser_dsn)
    _prod_folder(fleet.root / "gitops")
    config = fleet.root / "environments.yaml"
    config.write_text(
        "environments:\n"
        f"  dev: {{pg_dsn: '{fleet.superuser_dsn}', gitops_path: {base.gitops_path}}}\n"
        f"  prod: {{pg_dsn: '{prod.dsn()}', gitops_path: {PROD_PATH}, secrets_env: prod}}\n"
    )
    settings = Settings(**{**base.model_dump(), "config": config})
    services = instrumented(build_services(settings))
    run_diagnoses(services)  # connections and first verifier comparisons
    with counting() as calls:
        start = time.perf_counter()
        diagnoses = run_diagnoses(services)
        seconds = time.perf_counter() - start
    onboarding: dict[str, float] = {}
    for where in ("dev", "prod", "all"):
        timings = [
            create(services, f"bench-{where}-{i}-{int(time.time())}", "--env", where)
            for i in range(runs)
        ]
        onboarding[where] = round(median(timings), 4)
    return {
        "apps": {env: len(d.apps) for env, d in diagnoses.items()},
        "pass_seconds": round(seconds, 3),
        "pass_calls": calls,
        "onboarding_median_seconds": onboarding,
    }
