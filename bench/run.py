"""Run every benchmark, print a table, write JSON: `python bench/run.py [--quick]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import diagnostics, footprint, onboarding
from bench.fleet import FleetBuilder, private_cluster
from bench.machine import describe

FULL = {"sizes": [10, 100, 1000, 5000], "max_databases": 500, "password_apps": 1000}
QUICK = {"sizes": [10, 100], "max_databases": 20, "password_apps": 100}


def _row(*cells: object) -> str:
    return " | ".join(str(c) for c in cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/<time>.json)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    results: dict[str, Any] = {"plan": plan}
    with private_cluster() as (cluster, root):
        import psycopg

        with psycopg.connect(cluster.dsn()) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        results["machine"] = describe(version)
        print("machine:", ", ".join(f"{k}={v}" for k, v in results["machine"].items()))

        rows: list[dict[str, Any]] = []
        largest = None
        builder = FleetBuilder(cluster, root)
        for size in plan["sizes"]:
            print(f"diagnostics at {size} apps")
            fleet = builder.grow(apps=size, databases=min(size, plan["max_databases"]))
            largest = fleet
            services = fleet.services()
            services.database.observe()  # connection warm-up
            seconds, steady, calls, probes, alerting = diagnostics.one_pass(services)
            naive_seconds, naive_calls = diagnostics.naive_pass(
                services, fleet.apps, fleet.superuser_dsn
            )
            rows.append(
                {
                    "apps": len(fleet.apps),
                    "seconds": round(seconds, 3),
                    "steady_seconds": round(steady, 3),
                    "calls": calls,
                    "login_probes": probes,
                    "alerting_findings": alerting,
                    "naive_seconds": round(naive_seconds, 3),
                    "naive_calls": naive_calls,
                    "ratio_naive_over_batched": round(naive_seconds / seconds, 1),
                }
            )
        results["diagnostics"] = rows
        assert largest is not None
        print("password checks")
        results["password_checks"] = diagnostics.password_checks(
            largest, min(plan["password_apps"], len(largest.apps))
        )
        print("onboarding")
        results["onboarding"] = onboarding.onboard(largest, runs=5)
        print("footprint")
        results["footprint"] = footprint.footprint(largest, starts=3)

    print()
    print("## Diagnostics pass (batched) vs naive per-app")
    print(
        _row(
            "apps",
            "batched s",
            "next pass s",
            "calls per system",
            "naive s",
            "naive calls",
            "ratio",
        )
    )
    for r in rows:
        print(
            _row(
                r["apps"],
                r["seconds"],
                r["steady_seconds"],
                r["calls"],
                r["naive_seconds"],
                r["naive_calls"],
                f"{r['ratio_naive_over_batched']}x",
            )
        )
    pc = results["password_checks"]
    print(f"\n## Password checks at {pc['apps']} apps")
    print(
        _row(
            "verifier s",
            pc["verifier"]["seconds"],
            "login s",
            pc["login"]["seconds"],
            "login probes",
            pc["login"]["login_probes"],
            "cached re-check s",
            pc["login_cached_seconds"],
        )
    )
    ob = results["onboarding"]
    print(f"\n## One onboarding, local backends ({ob['runs']} runs)")
    print(_row("median s", ob["median_seconds"], "max s", ob["max_seconds"]))
    print(_row("calls per system", ob["calls_per_system"]))
    fp = results["footprint"]
    print("\n## Footprint of `pgdb-bot run`")
    print(
        _row(
            "cold start to ready s",
            fp["cold_start_to_ready_seconds"],
            "idle RSS MiB",
            fp["idle_rss_mib"],
        )
    )
    out = args.out or Path(__file__).parent / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
