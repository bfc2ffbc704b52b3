"""The one assessment over combinations of layer states: whatever the state of each system,
``status`` shows ❌/⚠️ exactly where ``diagnose`` has a warning or critical finding, and a
system that cannot be read yields no per-app finding."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from bot.core.model import (
    DatabaseInfo,
    ProposalState,
    WorkflowRecord,
    WorkflowStatus,
)
from handlers.assessment import assess
from handlers.checks import WARNING_ICON, CheckOutcome, Severity
from handlers.observe import Observation
from tests.handlers.test_findings import (
    APP,
    NOW,
    Database,
    creds,
    login,
    on_base,
    pg,
    proposal,
    services,
    world,
)

STORES = ("complete", "no password", "wrong username", "unreadable", "empty")
ROLES = ("ok", "missing", "nologin", "expired", "superuser", "createdb")
DATABASES = ("ok", "missing", "foreign")
MANIFESTS = ("on base", "open branch", "merged then removed", "absent", "unreadable")
LIVES = ("active", "offboarded")


def _observation(store: str, role: str, database: str, manifests: str, life: str) -> Observation:
    neighbour = {"other": creds("other")}  # keeps a readable store from looking empty
    secrets: dict[str, Any] = {
        "complete": {APP: creds(), **neighbour},
        "no password": {APP: creds(password=False), **neighbour},
        "wrong username": {APP: creds(username="wronguser"), **neighbour},
        "unreadable": {},
        "empty": {},
    }[store]
    roles = {
        "ok": [login()],
        "missing": [],
        "nologin": [login(can_login=False)],
        "expired": [login(valid_until=NOW - timedelta(days=3))],
        "superuser": [login(superuser=True)],
        "createdb": [login(createdb=True)],
    }[role]
    databases = {
        "ok": (DatabaseInfo(name=APP, owner=APP),),
        "missing": (),
        "foreign": (DatabaseInfo(name=APP, owner="postgres"),),
    }[database]
    git = {
        "on base": on_base(APP, "other"),
        "open branch": on_base("other", proposals={APP: proposal()}),
        "merged then removed": on_base(
            "other", proposals={APP: proposal(state=ProposalState.MERGED)}
        ),
        "absent": on_base("other"),
        "unreadable": on_base("other"),
    }[manifests]
    records = [
        WorkflowRecord(
            id=1,
            app=APP,
            kind="offboard" if life == "offboarded" else "create",
            requester="olga",
            status=WorkflowStatus.DONE,
            step="done",
            detail="",
            started_at=NOW - timedelta(days=2),
            updated_at=NOW - timedelta(days=2),
        )
    ]
    down = tuple(
        name
        for name, broken in (("secrets", store == "unreadable"), ("git", manifests == "unreadable"))
        if broken
    )
    return world(
        secrets=secrets,
        database=pg(*roles, login("other"), databases=databases),
        git=git,
        workflows=records,
        down=down,
    )


CASES = list(itertools.product(STORES, ROLES, DATABASES, MANIFESTS, LIVES))


@pytest.mark.parametrize(("store", "role", "database", "manifests", "life"), CASES)
def test_status_marks_exactly_what_diagnose_finds(
    store: str, role: str, database: str, manifests: str, life: str
) -> None:
    obs = _observation(store, role, database, manifests, life)
    svc = services(Database())

    assessment = assess(obs, svc)
    judged = assessment.apps[APP]
    findings = [f for f in assessment.findings if f.app == APP]

    marked = [c for c in judged.checks if c.icon in ("❌", WARNING_ICON)]
    alerting = [f for f in findings if f.severity is not Severity.INFO]
    # every ❌/⚠️ is a finding, every warning or critical finding is a ❌/⚠️
    assert sorted(id(c.finding) for c in marked) == sorted(id(f) for f in alerting)
    for check in marked:
        assert check.outcome is CheckOutcome.PROBLEM
        expected = "❌" if check.finding and check.finding.severity is Severity.CRITICAL else "⚠"
        assert check.icon.startswith(expected)
    # nothing is derived from a system that could not be read (or an empty store)
    if store in ("unreadable", "empty"):
        assert not [f for f in findings if f.kind in ("secret_missing", "credentials_mismatch")]
        assert ("system_unreachable", None) in [(f.kind, f.app) for f in assessment.findings]
        assert not [f for f in findings if f.remedy.startswith("/pgdb rotate")]
    if manifests == "unreadable":
        assert not [f for f in findings if f.kind in ("manifest_missing", "pr_stale")]
    # an offboarded app is never told to log in again by repair
    assert not [f for f in findings if f.kind == "login_refused" and f.repair is not None]


def test_a_store_that_could_not_be_read_is_one_finding_for_the_whole_fleet() -> None:
    obs = world(
        secrets={},
        database=pg(login(), login("b")),
        git=on_base(APP, "b"),
        down=("secrets",),
    )
    assessment = assess(obs, services(Database()))
    assert [(f.kind, f.app) for f in assessment.alerting] == [("system_unreachable", None)]
    assert all(
        c.outcome is CheckOutcome.UNKNOWN
        for a in assessment.apps.values()
        for c in a.checks
        if c.name == "credentials stored"
    )
