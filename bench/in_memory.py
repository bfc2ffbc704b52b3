"""The core alone at fleet scale: a diagnostics pass and a fleet ``/pgdb status`` over the
in-memory fakes of tests/fakes, so what the use cases themselves cost (the assessment, the
rendering) is measured apart from any system's latency."""

from __future__ import annotations

import time
from typing import Any

from bench.diagnostics import one_pass
from tests.fakes.git_host import MANIFESTS
from tests.fakes.services import MemoryWorld, run_command


def fleet_world(size: int) -> MemoryWorld:
    """``size`` apps in place in every system: credentials, roles with those passwords,
    databases, and manifests listed on the base branch."""
    world = MemoryWorld()
    files: dict[str, str | None] = {}
    for i in range(size):
        app = f"app-{i:05d}"
        password = f"{app}-password-0123456789abcdefghijkl"
        world.secrets.put(app, password)
        # with the usage findings on: every tenth app near its connection limit
        # and above the size warning, read in the same one catalog query
        world.database.add_role(app, password=password, connection_limit=20)
        world.database.add_database(app, owner=app, size_bytes=(6 if i % 10 == 0 else 1) << 30)
        world.database.sessions[app] = 17 if i % 10 == 0 else 2
        files[f"{MANIFESTS}/databases/{app}.yaml"] = f"# Database {app}\n"
        files[f"{MANIFESTS}/credentials/{app}-secret.yaml"] = f"# InfisicalSecret {app}\n"
    resources = "".join(
        f"  - databases/app-{i:05d}.yaml\n  - credentials/app-{i:05d}-secret.yaml\n"
        for i in range(size)
    )
    files[f"{MANIFESTS}/kustomization.yaml"] = "kind: Kustomization\nresources:\n" + resources
    world.git.push(files, message="the fleet")
    return world


def core_on_fakes(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        services = fleet_world(size).services()
        first, steady, calls, _, alerting = one_pass(services)
        start = time.perf_counter()
        status = run_command(services, "/pgdb status", console_owner=True)
        status_seconds = time.perf_counter() - start
        rows.append(
            {
                "apps": size,
                "first_pass_seconds": round(first, 3),
                "steady_pass_seconds": round(steady, 3),
                "calls": calls,
                "alerting_findings": alerting,
                "status_seconds": round(status_seconds, 3),
                "status_title": status.title,
            }
        )
    return rows
