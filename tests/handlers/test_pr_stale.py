"""``pr_stale``: an onboarding proposal left open past PGDB_PR_STALE_AFTER.

Until someone merges it, the app has credentials and a role but no database, and nothing else
would say so: the proposal is "pending", so no other finding fires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import load_settings
from bot.core.errors import ConfigError
from bot.core.model import (
    DatabaseState,
    GitSnapshot,
    Observed,
    Proposal,
    ProposalState,
    RoleInfo,
    StoredCredentials,
)
from bot.core.secret import Secret
from handlers.context import Services
from handlers.findings import Finding, Severity, diagnose
from handlers.observe import Observation
from tests.fakes.services import MemoryWorld

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
APP = "docspell"
URL = "https://github.example/acme/gitops/pull/12"
PASSWORD = "p" * 40


def services(**settings: Any) -> Services:
    """The ports diagnose() asks, holding what ``observation`` shows (the role and its
    password)."""
    world = MemoryWorld()
    world.database.add_role(APP, password=PASSWORD)
    return world.services(**settings)


def pull_request(
    *, age: timedelta, state: ProposalState = ProposalState.OPEN, number: int | None = 12
) -> Proposal:
    return Proposal(
        branch=f"pgdb/{APP}",
        head_sha="a" * 40,
        url=URL if number is not None else f"branch pgdb/{APP} in /srv/gitops",
        state=state,
        number=number,
        created_at=NOW - age,
    )


def observation(proposal: Proposal) -> Observation:
    snapshot = GitSnapshot(
        base_branch="main",
        base_sha="b" * 40,
        files=frozenset({"cluster.yaml", "kustomization.yaml"}),
        kustomization="resources:\n  - cluster.yaml\n",
        proposals={APP: proposal},
    )
    return Observation(
        secrets=Observed.ok(
            {APP: StoredCredentials(username=APP, password=Secret(PASSWORD), database=APP)}
        ),
        database=Observed.ok(
            DatabaseState(
                roles={APP: RoleInfo(name=APP, can_login=True)},
                databases={},
                bot_role="pgdb_bot",
                bot_is_superuser=True,
                server_version=170000,
            )
        ),
        git=Observed.ok(snapshot),
        workflows=Observed.ok([]),
        cluster=Observed.not_configured(),
        at=NOW,
    )


def stale(obs: Observation, svc: Services) -> list[Finding]:
    return [f for f in diagnose(obs, svc).findings if f.kind == "pr_stale"]


def test_a_pull_request_open_past_the_limit_is_a_warning_naming_it() -> None:
    [finding] = stale(observation(pull_request(age=timedelta(days=8, hours=3))), services())

    assert finding.app == APP
    assert finding.severity is Severity.WARNING
    assert finding.message == (
        "pull request #12 onboarding `docspell` has been open for 8 days (since 2026-05-24),"
        " longer than PGDB_PR_STALE_AFTER (7d)"
    )
    assert (
        finding.remedy
        == f"review and merge pull request #12: {URL} (or close it if `docspell` is dropped)"
    )


def test_a_young_closed_or_merged_proposal_is_not_stale() -> None:
    svc = services()
    assert stale(observation(pull_request(age=timedelta(days=6))), svc) == []
    for state in (ProposalState.CLOSED, ProposalState.MERGED):
        assert stale(observation(pull_request(age=timedelta(days=30), state=state)), svc) == []


def test_the_limit_is_configurable_and_a_local_branch_counts_too() -> None:
    [finding] = stale(
        observation(pull_request(age=timedelta(hours=30), number=None)),
        services(pr_stale_after="1d"),
    )
    assert finding.message.startswith(
        "branch pgdb/docspell onboarding `docspell` has been open for 1 day"
    )


def test_a_bad_limit_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_PR_STALE_AFTER", "a week")
    with pytest.raises(ConfigError, match="PGDB_PR_STALE_AFTER: 'a week' is not a duration"):
        load_settings(_env_file=None)
