"""One `/pgdb create`, end to end, on the local backends: wall time and calls per system."""

from __future__ import annotations

import io
import time
from typing import Any

from bench.fleet import Fleet
from bench.measure import counting, median
from bot.adapters.console_chat import ConsoleConversation
from bot.core.model import Requester
from bot.wiring import instrumented
from handlers.context import Services
from handlers.dispatch import dispatch

# The fewest port calls a first onboarding needs from each system, and why.
MINIMUM = {
    "secret store": (2, "read the app's folder (a password to reuse?), write the three keys"),
    "postgresql": (2, "observe the roles (exists? password?), create the role"),
    "git": (
        5,
        "snapshot of the base (files, kustomization, open proposals), the commit, the branch, "
        "the proposal, the checks (the local host keeps them as a git note)",
    ),
    "bot state": (
        8,
        "lock, the app's latest workflow (a rotation stopped midway or an offboarding changes "
        "what create may do), workflow start, one progress record per step (credentials, role, "
        "manifests: a failed run says where it stopped), done, audit row",
    ),
}


def create(services: Services, app: str, *options: str) -> float:
    """One ``/pgdb create`` through the dispatch the chat platforms call; its seconds."""
    start = time.perf_counter()
    reply = dispatch(
        services,
        text=" ".join((f"/pgdb create {app}", *options)),
        requester=Requester(user_id="bench", platform="console", is_console_owner=True),
        conversation=ConsoleConversation(io.StringIO()),
    )
    seconds = time.perf_counter() - start
    assert reply.ok, reply
    return seconds


def onboard(fleet: Fleet, *, runs: int) -> dict[str, Any]:
    services = instrumented(fleet.services())
    seconds: list[float] = []
    calls: list[dict[str, float]] = []
    for i in range(runs):
        with counting() as counted:
            seconds.append(create(services, f"bench-{i}-{int(time.time())}"))
        calls.append(counted)
    return {
        "runs": runs,
        "median_seconds": round(median(seconds), 4),
        "max_seconds": round(max(seconds), 4),
        "calls_per_system": calls[-1],
        "minimum": {system: count for system, (count, _) in MINIMUM.items()},
        "minimum_why": {system: why for system, (_, why) in MINIMUM.items()},
    }
