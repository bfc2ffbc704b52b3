"""Run every benchmark, print a table, write JSON: `python bench/run.py [--quick]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import (
    chat,
    diagnostics,
    environments,
    footprint,
    in_memory,
    on_fakes,
    onboarding,
    status,
)
from bench.fleet import FleetBuilder, private_cluster
from bench.machine import describe
from bot import memory


@dataclass(frozen=True, kw_only=True)
class Plan:
    """How much of each benchmark to run."""

    sizes: list[int]
    max_databases: int
    password_apps: int
    fake_sizes: list[int]
    fake_onboard_runs: int
    naive_sample: int
    ack_help: bool
    ack_bursts: dict[int, int]
    commands: int


FULL = Plan(
    sizes=[10, 100, 1000, 5000],
    max_databases=500,
    password_apps=1000,
    fake_sizes=[100, 1000],
    fake_onboard_runs=3,
    naive_sample=100,
    ack_help=True,
    ack_bursts={1: 20, 10: 5, 50: 4, 200: 2},
    commands=1000,
)
QUICK = Plan(
    sizes=[10, 100],
    max_databases=20,
    password_apps=100,
    fake_sizes=[10, 100],
    fake_onboard_runs=2,
    naive_sample=20,
    ack_help=False,
    ack_bursts={1: 3, 10: 1, 50: 1, 200: 1},
    commands=100,
)


def _row(*cells: object) -> str:
    return " | ".join(str(c) for c in cells)


_T0 = time.perf_counter()


def _progress(*what: object) -> None:
    print(f"[{time.perf_counter() - _T0:5.1f} s]", *what, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/<time>.json)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    memory.tune_collector()  # as every `pgdb-bot` command does: the passes below run here
    results: dict[str, Any] = {"plan": asdict(plan)}
    with private_cluster() as (cluster, root):
        import psycopg

        with psycopg.connect(cluster.dsn()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = str(row[0]) if row else "unknown"
        results["machine"] = describe(version)
        print("machine:", ", ".join(f"{k}={v}" for k, v in results["machine"].items()))

        rows: list[dict[str, Any]] = []
        status_rows: list[dict[str, Any]] = []
        fake_rows: list[dict[str, Any]] = []
        largest = None
        builder = FleetBuilder(cluster, root)
        for size in plan.sizes:
            _progress(f"diagnostics at {size} apps")
            fleet = builder.grow(apps=size, databases=min(size, plan.max_databases))
            largest = fleet
            services = fleet.services()
            services.database.observe()  # connection warm-up
            seconds, steady, calls, probes, alerting = diagnostics.one_pass(services)
            naive_seconds, naive_calls = diagnostics.naive_pass(
                services, fleet.apps, fleet.superuser_dsn
            )
            _progress(f"fleet status at {size} apps")
            status_rows.append({"apps": len(fleet.apps), **status.fleet_status(services)})
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
            if size in plan.fake_sizes:
                _progress(f"diagnostics on the fakes at {size} apps")
                fake_rows.append(
                    on_fakes.fleet_on_fakes(
                        fleet,
                        size=size,
                        with_naive=size == max(plan.fake_sizes),
                        naive_sample=plan.naive_sample,
                    )
                )
        results["diagnostics_on_fakes"] = fake_rows
        _progress("the core alone, on the in-memory fakes")
        results["core_on_fakes"] = in_memory.core_on_fakes(plan.fake_sizes)
        results["diagnostics"] = rows
        results["fleet_status"] = status_rows
        assert largest is not None
        _progress("password checks")
        results["password_checks"] = diagnostics.password_checks(
            largest, min(plan.password_apps, len(largest.apps))
        )
        _progress("onboarding")
        results["onboarding"] = onboarding.onboard(largest, runs=5)
        _progress("onboarding on the fakes")
        results["onboarding_on_fakes"] = on_fakes.onboarding_on_fakes(
            largest, runs=plan.fake_onboard_runs
        )
        _progress("two environments")
        with private_cluster() as (prod_cluster, _):
            results["environments"] = environments.two_environments(
                largest, prod_cluster, runs=2 if args.quick else 3
            )
        _progress("footprint")
        results["footprint"] = footprint.footprint(largest, starts=2 if args.quick else 3)
        fleet_env = {
            "PGDB_PG_DSN": largest.superuser_dsn,
            "PGDB_GITOPS_REPO": str(largest.root / "gitops"),
            "PGDB_SECRETS_DIR": str(largest.root / "secrets"),
        }
        _progress(f"footprint after {plan.commands} commands")
        results["footprint_after_commands"] = chat.after_commands(
            largest.root, fleet_env, commands=plan.commands
        )
        results["import_rss"] = chat.import_rss()
        _progress("footprint with every platform and system configured")
        results["configured_footprint"] = chat.configured_footprint(largest)
        _progress("slash-command acknowledgement with a slow PostgreSQL")
        results["ack"] = chat.ack_latency(
            largest.root,
            fleet_env | {"PGDB_SECRETS_DIR": str(largest.root / "ack-secrets")},
            rounds=plan.ack_bursts,
            help_rows=plan.ack_help,
        )

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
    print("\n## The core alone (in-memory fakes of tests/fakes: no I/O)")
    print(_row("apps", "first pass s", "next pass s", "fleet status s"))
    for r in results["core_on_fakes"]:
        print(
            _row(r["apps"], r["first_pass_seconds"], r["steady_pass_seconds"], r["status_seconds"])
        )
    print("\n## Fleet `/pgdb status`, one workflow record per app")
    print(_row("apps", "median s", "max s", "reply chars", "reply lines"))
    for r in results["fleet_status"]:
        print(
            _row(
                r["apps"], r["median_seconds"], r["max_seconds"], r["reply_chars"], r["reply_lines"]
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
    print(_row("system", "port calls", "minimum"))
    for system, minimum in ob["minimum"].items():
        print(_row(system, int(ob["calls_per_system"].get(system, 0)), minimum))
    te = results["environments"]
    print(
        f"\n## Two environments (PGDB_CONFIG): dev {te['apps']['dev']} apps, prod a second server"
    )
    print(_row("pass over both s", te["pass_seconds"], "calls per system", te["pass_calls"]))
    print(
        _row(
            "one environment, same fleet: calls per system",
            rows[-1]["calls"],
        )
    )
    print(_row("onboarding into", "median s"))
    for where, seconds in te["onboarding_median_seconds"].items():
        print(_row(where, seconds))
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
    for flag in ("help", "version"):
        took = fp[f"{flag}_seconds"]
        print(_row(f"pgdb-bot --{flag} s, min / median", took["min"], took["median"]))
    fc = results["footprint_after_commands"]
    print(
        _row(
            f"RSS after {fc['commands']} commands MiB",
            fc["rss_after_mib"],
            "(idle before",
            f"{fc['idle_rss_mib']})",
            "all answered in s",
            fc["all_answered_seconds"],
        )
    )
    cf = results["configured_footprint"]
    print(
        _row(
            f"every system configured ({cf['configured']}), {cf['apps']} apps: RSS after start",
            f"{cf['rss_after_start_mib']} MiB",
            "idle after the first pass",
            f"{cf['idle_rss_after_first_pass_mib']} MiB",
        )
    )
    print("RSS of a fresh interpreter after each import (cumulative):")
    for step in results["import_rss"]:
        print(_row(f"  {step['step']}", f"{step['rss_mib']} MiB", f"+{step['delta_mib']}"))
    ack = results["ack"]
    print(f"\n## Slash-command ack (HTTP), backends slow: {ack['slow_backend']}")
    print(_row("endpoint", "concurrent", "samples", "p50 ms", "p99 ms", "max ms", "bot CPU ms/cmd"))
    for endpoint in ("slack", "mattermost", "mattermost_help"):
        for concurrency, r in ack.get(endpoint, {}).items():
            print(
                _row(
                    endpoint,
                    concurrency,
                    r["samples"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["max_ms"],
                    r["bot_cpu_ms_per_command"],
                )
            )
    print("\n## Diagnostics on the fakes (GitHub, Infisical, Kubernetes; real PostgreSQL)")
    print(
        _row(
            "apps",
            "s",
            "s at realistic latency",
            "HTTP calls per fake",
            "port calls",
            "naive s",
            "naive HTTP calls",
        )
    )
    for r in results["diagnostics_on_fakes"]:
        print(
            _row(
                r["apps"],
                r["seconds"],
                r.get("realistic_seconds", "-"),
                r["http_calls"],
                r["port_calls"],
                f"{r['naive_seconds']} (timed on {r['naive_sampled_apps']} apps, scaled)"
                if "naive_seconds" in r
                else "-",
                r.get("naive_http_calls", "-"),
            )
        )
        if "ratio_naive_over_batched_seconds" in r:
            print(
                _row(
                    f"  naive/batched at {r['apps']} apps: time",
                    f"{r['ratio_naive_over_batched_seconds']}x",
                    "calls",
                    f"{r['ratio_naive_over_batched_calls']}x",
                )
            )
    of = results["onboarding_on_fakes"]
    print(
        f"\n## One onboarding on the fakes holding {of['apps']} apps ({of['runs']} runs, "
        "GitHub write spacing off)"
    )
    print(_row("first s", of["first_seconds"], "steady s", of["steady_seconds"]))
    print(
        _row(
            "realistic latency (GitHub 200 ms, Infisical 100 ms, Kubernetes 10 ms): first s",
            of["realistic_first_seconds"],
            "steady s",
            of["realistic_steady_seconds"],
        )
    )
    print(_row("system", "HTTP calls (steady)", "first run", "minimum"))
    for system, minimum in of["minimum_http"].items():
        print(
            _row(
                system,
                of["steady_http_calls"][system],
                of["first_http_calls"][system],
                minimum,
            )
        )
    print(
        _row(
            "GitHub writes",
            of["github_writes"],
            "production adds 1 s spacing between writes: +",
            f"{max(0, of['github_writes'] - 1)} s",
        )
    )
    out = args.out or Path(__file__).parent / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nJSON: {out}")
    _progress("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
