"""Onboarding and diagnostics with GitHub, Infisical and Kubernetes as the fakes of
tests/fixtures (real PostgreSQL): HTTP calls per system as the fakes recorded them."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bench.fakes import FakeWorld, fake_world, services_on
from bench.fleet import Fleet
from bench.measure import counting
from bot.adapters.console_chat import ConsoleConversation
from bot.core.manifests.layout import database_path, secret_path
from bot.core.model import Requester
from bot.core.names import AppName
from bot.wiring import instrumented
from bot.wiring.github import build_github_host
from handlers.dispatch import dispatch
from handlers.findings import diagnose
from handlers.observe import observe
from tests.fixtures.kubernetes import NAMESPACE, PLURALS

# The fewest HTTP requests one first `/pgdb create` needs from each system, and why.
MINIMUM_HTTP = {
    "github": (
        10,
        "the base branch (its commit and tree sha: one GET /branches), kustomization.yaml on the "
        "base (1 contents read), an open pull request for the branch? (1), one tree with the "
        "files inline, the commit, the branch ref, the pull request, 3 commit statuses "
        "(pgdb/secret, pgdb/role, pgdb/manifests: GitHub has no batch). The bot makes 3 more: "
        "the snapshot shared with status and diagnostics lists the manifests folder (2: the "
        "parent's contents, the folder's tree), and the commit re-reads the base commit for "
        "its tree sha (the ref read does not carry it)",
    ),
    "infisical": (
        5,
        "read the app's secrets (a password to reuse?), create the folder, write the three "
        "keys one request each: infisicalsdk 1.0.18 has no batch call (the API's "
        "secrets/batch/raw would make it 3); login + project lookup once per token",
    ),
    "kubernetes": (0, "nothing: the cluster only confirms later, through Git and the operator"),
}


def onboard_on_fakes(fleet: Fleet, world: FakeWorld, *, runs: int) -> dict[str, Any]:
    """`/pgdb create` in-process through handlers.dispatch on services built by
    bot.wiring.build_services; the first run pays the logins, the next ones are steady."""
    # GitHub writes are spaced by 1 s in production (GitHub's guidance for integrations); the
    # tests turn that off against the fake, and so does this: the spacing is reported apart.
    raw = dataclasses.replace(
        services_on(world, fleet),
        git=build_github_host(world.settings(fleet), throttle=False),
    )
    services = instrumented(raw)
    results: list[dict[str, Any]] = []
    for i in range(runs):
        world.clear()
        with counting() as ports:
            start = time.perf_counter()
            reply = dispatch(
                services,
                text=f"/pgdb create fake-{i}-{int(time.time())}",
                requester=Requester(user_id="bench", platform="console", is_console_owner=True),
                conversation=ConsoleConversation(io.StringIO()),
            )
            seconds = time.perf_counter() - start
        assert reply.ok, reply
        results.append(
            {
                "seconds": round(seconds, 4),
                "http_calls": world.calls(),
                "http_routes": world.calls_by_route(),
                "port_calls": dict(ports),
            }
        )
    steady = results[-1]
    return {
        "runs": runs,
        "first_seconds": results[0]["seconds"],
        "steady_seconds": round(sorted(r["seconds"] for r in results[1:])[len(results) // 2 - 1], 4)
        if runs > 1
        else results[0]["seconds"],
        "first_http_calls": results[0]["http_calls"],
        "steady_http_calls": steady["http_calls"],
        "steady_http_routes": steady["http_routes"],
        "port_calls": steady["port_calls"],
        "github_writes": sum(
            n for route, n in steady["http_routes"]["github"].items() if route.startswith("POST")
        ),
        "minimum_http": {k: v[0] for k, v in MINIMUM_HTTP.items()},
        "minimum_why": {k: v[1] for k, v in MINIMUM_HTTP.items()},
    }


def diagnose_on_fakes(fleet: Fleet, world: FakeWorld) -> dict[str, Any]:
    """One diagnostics pass (after a warm-up pass that pays logins and connections)."""
    services = instrumented(services_on(world, fleet))
    diagnose(observe(services), services)  # warm-up: tokens, connections
    world.clear()
    with counting() as ports:
        start = time.perf_counter()
        diagnosis = diagnose(observe(services), services)
        seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 3),
        "http_calls": world.calls(),
        "http_routes": world.calls_by_route(),
        "port_calls": dict(ports),
        "alerting_findings": len(diagnosis.alerting),
    }


def naive_on_fakes(fleet: Fleet, world: FakeWorld, apps: list[str]) -> dict[str, Any]:
    """One request per app per thing: the app's secrets, its two manifest files, its
    Database, InfisicalSecret and Secret."""
    services = services_on(world, fleet)
    settings = services.settings
    services.secrets.read(AppName(apps[0]))  # log in first, like the batched pass
    world.clear()
    start = time.perf_counter()
    with httpx.Client(base_url=world.kube.url, headers={"Authorization": "Bearer x"}) as kube:
        for app in apps:
            services.secrets.read(AppName(app))
            for path in (database_path(AppName(app)), secret_path(AppName(app))):
                services.git.read_file(ref="main", path=f"{settings.layout.gitops_path}/{path}")
            for kind, name in (
                ("Database", app),
                ("InfisicalSecret", f"{app}-postgresql-credentials"),
                ("Secret", f"{app}-postgresql-credentials"),
            ):
                group, version, plural = PLURALS[kind]
                prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
                kube.get(f"{prefix}/namespaces/{NAMESPACE}/{plural}/{name}").raise_for_status()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "http_calls": world.calls()}


def fleet_on_fakes(
    fleet: Fleet, *, size: int, with_naive: bool, naive_sample: int = 100
) -> dict[str, Any]:
    """The batched pass at ``size`` apps; with ``with_naive``, the naive pass timed over the
    first ``naive_sample`` apps and scaled to ``size`` (its cost is linear by construction:
    the same six requests per app), its calls counted on the sample and scaled the same way."""
    apps = fleet.apps[:size]
    assert len(fleet.apps) == size, "the fleet's repository must hold exactly these apps"
    gitops = fleet.root / "gitops"
    with fake_world(fleet.root / f"fakes-{size}", apps, fleet.passwords, gitops=gitops) as world:
        row: dict[str, Any] = {"apps": size, **diagnose_on_fakes(fleet, world)}
        with realistic_latency(world):
            row["realistic_seconds"] = diagnose_on_fakes(fleet, world)["seconds"]
        if with_naive:
            sample = apps[: min(size, naive_sample)]
            naive = naive_on_fakes(fleet, world, sample)
            scale = size / len(sample)
            row["naive_sampled_apps"] = len(sample)
            row["naive_seconds"] = round(naive["seconds"] * scale, 3)
            row["naive_http_calls"] = {k: round(v * scale) for k, v in naive["http_calls"].items()}
            row["ratio_naive_over_batched_seconds"] = round(
                row["naive_seconds"] / row["seconds"], 1
            )
            row["ratio_naive_over_batched_calls"] = round(
                sum(row["naive_http_calls"].values()) / max(1, sum(row["http_calls"].values())),
                1,
            )
    return row


def onboarding_on_fakes(fleet: Fleet, *, runs: int) -> dict[str, Any]:
    """On fakes holding the whole fleet (its repository cloned as the GitHub repository)."""
    root = fleet.root / "fakes-onboard"
    gitops = fleet.root / "gitops"
    with fake_world(root, fleet.apps, fleet.passwords, gitops=gitops) as world:
        result = onboard_on_fakes(fleet, world, runs=runs)
        with realistic_latency(world):
            slow = onboard_on_fakes(fleet, world, runs=2)
    return {
        "apps": len(fleet.apps),
        **result,
        "realistic_first_seconds": slow["first_seconds"],
        "realistic_steady_seconds": slow["steady_seconds"],
    }


# What a real deployment waits for per request (the figures): GitHub's API across the
# internet, Infisical in the same region, the Kubernetes API in the cluster.
REALISTIC_LATENCY = {"github": 0.2, "infisical": 0.1, "kubernetes": 0.01}


@contextmanager
def realistic_latency(world: FakeWorld) -> Iterator[None]:
    """Every fake answers after its realistic round trip for the duration."""
    world.github.latency = REALISTIC_LATENCY["github"]
    world.infisical.latency = REALISTIC_LATENCY["infisical"]
    world.kube.latency = REALISTIC_LATENCY["kubernetes"]
    try:
        yield
    finally:
        world.github.latency = world.infisical.latency = world.kube.latency = 0.0
