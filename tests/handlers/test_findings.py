"""Diagnostics derived from one observation, without any real backend.

Each test describes the world as the bot would observe it and checks the findings an operator
would read: kind, app, severity, and a remedy that is the exact command to type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core.errors import BackendUnavailable
from bot.core.model import (
    DatabaseInfo,
    DatabaseState,
    GitSnapshot,
    Observed,
    PasswordResult,
    PasswordVerdict,
    Proposal,
    ProposalState,
    RoleInfo,
    StoredCredentials,
    WorkflowRecord,
    WorkflowStatus,
)
from bot.core.secret import Secret
from handlers.context import Services
from handlers.diagnose import as_json, exit_code, render
from handlers.findings import Diagnosis, Finding, Severity, diagnose
from handlers.observe import Observation
from tests.fakes.database import MemoryDatabase
from tests.fakes.secret_store import MemorySecretStore
from tests.fakes.services import memory_services, memory_settings

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BOT = "pgdb_bot"
APP = "docspell"
REPAIR = f"/pgdb repair {APP} --yes"


# --- test doubles of the ports diagnose() reads --------------------------------------------


class Database(MemoryDatabase):
    """Answers password checks from a table; records what it was asked."""

    def __init__(
        self, verdicts: Mapping[str, PasswordResult] | None = None, *, down: bool = False
    ) -> None:
        super().__init__(bot_role=BOT)
        self.verdicts = dict(verdicts or {})
        self.down = down
        self.asked: list[dict[str, Secret]] = []

    def check_passwords(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        self.asked.append(dict(candidates))
        if self.down:
            raise BackendUnavailable("PostgreSQL", "login probes refused")
        return {
            app: PasswordVerdict(
                result=self.verdicts.get(app, PasswordResult.MATCH),
                method="verifier",
                detail="verifier differs" if app in self.verdicts else "",
            )
            for app in candidates
        }


class Unused:
    """A port diagnose() must not call."""

    configured = False
    kind = "test"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"diagnose() called {name} on a port it should not use")


@pytest.fixture(autouse=True)
def _no_pgdb_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PGDB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def services(database: Database | None = None, **settings: Any) -> Services:
    return memory_services(
        settings=memory_settings(**settings),
        secrets=MemorySecretStore(),
        database=database or Database(),
        state=Unused(),
        git=Unused(),
        cluster=Unused(),
        bot_role=BOT,
        clock=lambda: NOW,
    )


# --- building observations ----------------------------------------------------------------


def creds(app: str = APP, *, password: bool = True, **keys: str | None) -> StoredCredentials:
    values: dict[str, Any] = {"username": app, "database": app, **keys}
    return StoredCredentials(password=Secret(f"pw-of-{app}") if password else None, **values)


def login(name: str = APP, **attributes: Any) -> RoleInfo:
    attributes.setdefault("connection_limit", 20)  # the default limits: no note
    return RoleInfo(name=name, can_login=attributes.pop("can_login", True), **attributes)


def kustomization(*apps: str) -> str:
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources:"]
    for app in apps:
        lines += [f"  - databases/{app}.yaml", f"  - credentials/{app}-secret.yaml"]
    return "\n".join(lines) + "\n"


def on_base(*apps: str, proposals: Mapping[str, Proposal] | None = None) -> GitSnapshot:
    files = {f"databases/{a}.yaml" for a in apps} | {f"credentials/{a}-secret.yaml" for a in apps}
    return GitSnapshot(
        base_branch="main",
        base_sha="0" * 40,
        files=frozenset(files),
        kustomization=kustomization(*apps),
        proposals=dict(proposals or {}),
    )


def proposal(app: str = APP, state: ProposalState = ProposalState.OPEN) -> Proposal:
    return Proposal(branch=f"pgdb/{app}", head_sha="1" * 40, url=f"branch pgdb/{app}", state=state)


def workflow(
    app: str = APP, *, status: WorkflowStatus = WorkflowStatus.DONE, age: timedelta
) -> WorkflowRecord:
    return WorkflowRecord(
        id=1,
        app=app,
        kind="create",
        requester="alice",
        status=status,
        step="role",
        detail="",
        started_at=NOW - age - timedelta(seconds=5),
        updated_at=NOW - age,
    )


def pg(
    *roles: RoleInfo, databases: tuple[DatabaseInfo, ...] = (), bot_role: str = BOT
) -> DatabaseState:
    system = [login("postgres"), login("streaming_replica"), login(bot_role)]
    return DatabaseState(
        roles={r.name: r for r in [*system, *roles]},
        databases={
            d.name: d
            for d in [
                DatabaseInfo(name="postgres", owner="postgres"),
                DatabaseInfo(name="template0", owner="postgres"),
                DatabaseInfo(name="template1", owner="postgres"),
                *databases,
            ]
        },
        bot_role=bot_role,
        bot_is_superuser=True,
        server_version=170000,
    )


def world(
    *,
    secrets: dict[str, StoredCredentials] | None = None,
    database: DatabaseState | None = None,
    git: GitSnapshot | None = None,
    workflows: list[WorkflowRecord] | None = None,
    down: tuple[str, ...] = (),
) -> Observation:
    """Everything reachable unless named in ``down`` (secrets, database, git, workflows)."""

    def seen(name: str, value: Any) -> Observed[Any]:
        if name in down:
            return Observed.failed(f"{name}: connection refused")
        return Observed.ok(value)

    return Observation(
        secrets=seen("secrets", {} if secrets is None else secrets),
        database=seen("database", pg() if database is None else database),
        git=seen("git", on_base() if git is None else git),
        workflows=seen("workflows", [] if workflows is None else workflows),
        cluster=Observed.not_configured(),
        at=NOW,
    )


def healthy(**overrides: Any) -> Observation:
    """`docspell` fully onboarded: secret, login role, manifests on the base branch."""
    parts: dict[str, Any] = {
        "secrets": {APP: creds()},
        "database": pg(login(), databases=(DatabaseInfo(name=APP, owner=APP),)),
        "git": on_base(APP),
    }
    parts.update(overrides)
    return world(**parts)


def run(obs: Observation, svc: Services | None = None, **kwargs: Any) -> Diagnosis:
    return diagnose(obs, svc or services(), **kwargs)


def kinds(diagnosis: Diagnosis) -> list[tuple[str, str | None]]:
    return [(f.kind, f.app) for f in diagnosis.findings]


def only(diagnosis: Diagnosis, kind: str) -> Finding:
    matching = [f for f in diagnosis.findings if f.kind == kind]
    assert len(matching) == 1, kinds(diagnosis)
    return matching[0]


# --- a healthy fleet ----------------------------------------------------------------------


def test_healthy_app_has_no_finding() -> None:
    diagnosis = run(healthy())
    assert diagnosis.apps == [APP]
    assert diagnosis.findings == []
    assert exit_code(diagnosis) == 0


def test_password_is_checked_once_per_app_with_role_and_stored_password() -> None:
    database = Database()
    obs = healthy(
        secrets={APP: creds(), "newapp": creds("newapp"), "nopw": creds("nopw", password=False)},
        database=pg(login(), login("nopw")),
        git=on_base(APP, "newapp", "nopw"),
    )
    diagnosis = run(obs, services(database))
    assert [set(batch) for batch in database.asked] == [{APP}]
    assert database.asked[0][APP] == Secret(f"pw-of-{APP}")
    assert diagnosis.verdicts[APP].result is PasswordResult.MATCH


# --- role_missing -------------------------------------------------------------------------


def test_role_missing() -> None:
    finding = only(run(healthy(database=pg())), "role_missing")
    assert finding.app == APP
    assert finding.severity is Severity.CRITICAL
    assert f"role `{APP}` does not exist" in finding.message
    assert finding.remedy == REPAIR


def test_nologin_role_is_login_refused_and_an_operator_decides() -> None:
    diagnosis = run(healthy(database=pg(login(can_login=False))))
    finding = only(diagnosis, "login_refused")
    assert finding.severity is Severity.CRITICAL
    assert "cannot log in: NOLOGIN (not set by an offboarding)" in finding.message
    assert 'ALTER ROLE "docspell" LOGIN;' in finding.remedy
    assert finding.repair is None  # repair never changes LOGIN
    assert exit_code(diagnosis) == 1


def test_expired_role_or_connection_limit_zero_is_login_refused() -> None:
    expired = login(valid_until=NOW - timedelta(days=1))
    limited = login(connection_limit=0)
    for role, sql in ((expired, "VALID UNTIL 'infinity'"), (limited, "CONNECTION LIMIT -1")):
        finding = only(run(healthy(database=pg(role))), "login_refused")
        assert sql in finding.remedy
        assert "password_drift" not in {k for k, _ in kinds(run(healthy(database=pg(role))))}


def test_role_and_password_both_missing_are_both_repaired() -> None:
    diagnosis = run(healthy(secrets={APP: creds(password=False)}, database=pg()))
    found = {f.kind: f for f in diagnosis.findings}
    assert found["role_missing"].repair is not None
    assert found["secret_missing"].repair is not None


# --- password_drift -----------------------------------------------------------------------


def test_password_drift() -> None:
    database = Database({APP: PasswordResult.MISMATCH})
    diagnosis = run(healthy(), services(database))
    finding = only(diagnosis, "password_drift")
    assert finding.app == APP
    assert finding.severity is Severity.CRITICAL
    assert "/postgresql/docspell (env dev)" in finding.message
    assert f"does not open role `{APP}`" in finding.message
    assert "verifier differs" in finding.message
    assert finding.remedy == f"/pgdb rotate {APP}"


def test_password_never_appears_in_findings() -> None:
    database = Database({APP: PasswordResult.MISMATCH})
    diagnosis = run(healthy(database=pg(login(superuser=True))), services(database))
    document = json.dumps(as_json(diagnosis, services()))
    assert diagnosis.findings
    assert f"pw-of-{APP}" not in document


def test_unknown_password_verdict_is_no_drift() -> None:
    database = Database(down=True)
    diagnosis = run(healthy(), services(database))
    assert diagnosis.findings == []
    assert diagnosis.verdicts[APP].result is PasswordResult.UNKNOWN
    assert "login probes refused" in diagnosis.verdicts[APP].detail


# --- secret_missing -----------------------------------------------------------------------


def test_secret_missing_keys_next_to_a_password() -> None:
    obs = healthy(secrets={APP: creds(username=None, database=None)})
    finding = only(run(obs), "secret_missing")
    assert finding.severity is Severity.WARNING
    assert "lacks `username` at /postgresql/docspell (env dev)" in finding.message
    assert finding.remedy == REPAIR


def test_database_key_is_optional_and_wrong_values_are_a_mismatch() -> None:
    assert run(healthy(secrets={APP: creds(database=None)})).findings == []
    finding = only(run(healthy(secrets={APP: creds(username="wronguser")})), "credentials_mismatch")
    assert finding.severity is Severity.CRITICAL
    assert "`username` is `wronguser`" in finding.message


def test_no_password_stored_for_a_role_in_use_is_critical() -> None:
    for stored in ({APP: creds(password=False)},):
        finding = only(run(healthy(secrets=stored)), "secret_missing")
        assert finding.severity is Severity.CRITICAL
        assert "no password is stored at /postgresql/docspell (env dev)" in finding.message
        assert f"but role `{APP}` exists" in finding.message
        assert finding.remedy == f"/pgdb rotate {APP}"


def test_no_password_stored_and_no_role_is_a_warning_repair_fixes() -> None:
    stored = {APP: creds(password=False)}
    finding = only(run(healthy(secrets=stored, database=pg())), "secret_missing")
    assert finding.severity is Severity.WARNING
    assert "but role" not in finding.message
    assert finding.remedy == REPAIR


def test_complete_secret_is_no_finding() -> None:
    assert "secret_missing" not in {k for k, _ in kinds(run(healthy()))}


# --- manifest_missing ---------------------------------------------------------------------


def test_manifest_missing() -> None:
    finding = only(run(healthy(git=on_base())), "manifest_missing")
    assert finding.app == APP
    assert finding.severity is Severity.WARNING
    assert "no manifests for `docspell` on branch main and no open proposal" in finding.message
    assert finding.remedy == REPAIR


def test_open_proposal_is_not_manifest_missing() -> None:
    diagnosis = run(healthy(git=on_base(proposals={APP: proposal()})))
    assert diagnosis.findings == []


@pytest.mark.parametrize("state", [ProposalState.MERGED, ProposalState.CLOSED])
def test_finished_proposal_without_manifests_on_base(state: ProposalState) -> None:
    obs = healthy(git=on_base(proposals={APP: proposal(state=state)}))
    assert kinds(run(obs)) == [("manifest_missing", APP)]


def test_manifests_present_but_not_listed_in_kustomization() -> None:
    snapshot = on_base(APP)
    unlisted = GitSnapshot(
        base_branch="main",
        base_sha=snapshot.base_sha,
        files=snapshot.files,
        kustomization=kustomization(),
    )
    assert kinds(run(healthy(git=unlisted))) == [("manifest_missing", APP)]


# --- role_unsafe --------------------------------------------------------------------------


def test_role_unsafe_attributes() -> None:
    obs = healthy(database=pg(login(superuser=True, createrole=True)))
    finding = only(run(obs), "role_unsafe")
    assert finding.app == APP
    assert finding.severity is Severity.CRITICAL  # privileged is critical
    assert "SUPERUSER, CREATEROLE" in finding.message
    assert finding.remedy == (
        "kubectl exec -n databases postgresql-shared-1 -- psql -U postgres "
        """-c 'ALTER ROLE "docspell" NOSUPERUSER NOCREATEROLE;'"""
    )


def test_createdb_alone_is_a_warning() -> None:
    finding = only(run(healthy(database=pg(login(createdb=True)))), "role_unsafe")
    assert finding.severity is Severity.WARNING
    assert "NOCREATEDB" in finding.remedy


def test_role_unsafe_every_attribute_is_revoked() -> None:
    role = login(superuser=True, createdb=True, createrole=True, replication=True, bypassrls=True)
    remedy = only(run(healthy(database=pg(role))), "role_unsafe").remedy
    assert (
        'ALTER ROLE "docspell" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;'
        in remedy
    )


def test_role_unsafe_membership() -> None:
    obs = healthy(database=pg(login(member_of=("pg_read_all_data", "readers"))))
    finding = only(run(obs), "role_unsafe")
    assert "pg_read_all_data" in finding.message
    assert "readers" not in finding.message
    assert finding.remedy == (
        "kubectl exec -n databases postgresql-shared-1 -- psql -U postgres "
        """-c 'REVOKE "pg_read_all_data" FROM "docspell";'"""
    )


def test_role_unsafe_attributes_and_membership_in_one_command() -> None:
    obs = healthy(database=pg(login(createdb=True, member_of=("pg_write_all_data",))))
    svc = services(namespace="pg", cluster="shared")
    remedy = only(run(obs, svc), "role_unsafe").remedy
    assert remedy == (
        "kubectl exec -n pg shared-1 -- psql -U postgres "
        """-c 'ALTER ROLE "docspell" NOCREATEDB; REVOKE "pg_write_all_data" FROM "docspell";'"""
    )


def test_ordinary_membership_is_safe() -> None:
    assert run(healthy(database=pg(login(member_of=("readers",))))).findings == []


# --- orphans ------------------------------------------------------------------------------


def test_orphan_role_is_info() -> None:
    diagnosis = run(healthy(database=pg(login(), login("legacy"))))
    finding = only(diagnosis, "orphan_role")
    assert finding.app is None
    assert finding.severity is Severity.INFO
    assert "`legacy`" in finding.message
    assert "add legacy to PGDB_IGNORE_ROLES" in finding.remedy
    assert "/postgresql/legacy/" in finding.remedy
    assert "/pgdb create legacy" in finding.remedy
    assert exit_code(diagnosis) == 0  # orphans are never alerted


def test_ignored_roles_are_not_orphans() -> None:
    obs = healthy(database=pg(login(), login("legacy"), login("grafana")))
    svc = services(ignore_roles="legacy, grafana")
    assert run(obs, svc).findings == []


@pytest.mark.parametrize(
    "name", ["postgres", "streaming_replica", "cnpg_pooler_pgbouncer", "pg_monitor", BOT]
)
def test_system_roles_are_not_orphans(name: str) -> None:
    assert run(healthy(database=pg(login(), login(name)))).findings == []


def test_nologin_roles_are_not_orphans() -> None:
    assert run(healthy(database=pg(login(), login("readers", can_login=False)))).findings == []


def test_the_bots_own_role_is_read_from_the_catalog() -> None:
    state = pg(login(), login("bot_account"), bot_role="bot_account")
    assert run(healthy(database=state)).findings == []


def test_orphan_database() -> None:
    state = pg(login(), databases=(DatabaseInfo(name="legacy", owner="postgres"),))
    finding = only(run(healthy(database=state)), "orphan_database")
    assert finding.app is None
    assert finding.severity is Severity.INFO
    assert "database `legacy` (owner `postgres`)" in finding.message
    assert "add legacy to PGDB_IGNORE_ROLES" in finding.remedy
    assert "/pgdb create legacy" in finding.remedy


def test_databases_that_are_not_orphans() -> None:
    state = pg(
        login(),
        databases=(
            DatabaseInfo(name=APP, owner=APP),
            DatabaseInfo(name="ignored", owner="postgres"),
            DatabaseInfo(name="pgdb_state", owner=BOT),
        ),
    )
    assert run(healthy(database=state), services(ignore_roles="ignored")).findings == []


def test_orphan_remedy_never_suggests_a_refused_create() -> None:
    diagnosis = run(healthy(database=pg(login(), login("legacy_user"))))
    assert "/pgdb create legacy_user" not in only(diagnosis, "orphan_role").remedy


# --- system_unreachable -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "system", "variable"),
    [
        ("secrets", "secret store", "PGDB_SECRETS_DIR"),
        ("database", "PostgreSQL", "PGDB_PG_DSN"),
        ("git", "git", "PGDB_GITOPS_REPO"),
        ("workflows", "bot state", "PGDB_STATE_SCHEMA"),
    ],
)
def test_system_unreachable(down: str, system: str, variable: str) -> None:
    diagnosis = run(healthy(down=(down,)))
    finding = diagnosis.findings[0]
    assert finding.kind == "system_unreachable"
    assert finding.app is None
    assert finding.severity is Severity.CRITICAL
    assert finding.message == f"{system} could not be observed: {down}: connection refused"
    assert variable in finding.remedy
    assert exit_code(diagnosis) == 1


def test_every_unreachable_system_is_reported() -> None:
    diagnosis = run(healthy(down=("secrets", "workflows")))
    assert sorted(f.message.split(" could")[0] for f in diagnosis.findings) == [
        "bot state",
        "secret store",
    ]
    assert {k for k, _ in kinds(diagnosis)} == {"system_unreachable"}


# --- no guesses about what could not be observed ------------------------------------------


def test_secret_store_down_no_secret_or_role_guesses() -> None:
    database = Database()
    obs = healthy(database=pg(login(can_login=False)), down=("secrets",))
    diagnosis = run(obs, services(database))
    # NOLOGIN is read from the catalogs; nothing is derived from the store's silence
    assert {k for k, _ in kinds(diagnosis)} == {"system_unreachable", "login_refused"}
    assert database.asked == []  # no password to compare


def test_postgresql_down_no_role_secret_or_orphan_guesses() -> None:
    obs = healthy(secrets={APP: creds(), "newapp": creds("newapp")}, down=("database",))
    diagnosis = run(obs)
    assert {k for k, _ in kinds(diagnosis)} <= {"system_unreachable", "manifest_missing"}
    assert ("role_missing", APP) not in kinds(diagnosis)


def test_postgresql_down_no_password_stored_is_not_guessed() -> None:
    obs = healthy(secrets={}, down=("database",))
    assert {k for k, _ in kinds(run(obs))} == {"system_unreachable"}


def test_git_down_no_manifest_guesses() -> None:
    obs = healthy(secrets={APP: creds(), "newapp": creds("newapp")}, down=("git",))
    diagnosis = run(obs)
    assert "manifest_missing" not in {k for k, _ in kinds(diagnosis)}


def test_secret_store_down_no_orphan_guesses() -> None:
    # `newapp`: password stored and role created by hand; its manifests are not written yet.
    obs = world(
        secrets={"newapp": creds("newapp")},
        database=pg(login("newapp"), databases=(DatabaseInfo(name="newapp", owner="newapp"),)),
        down=("secrets",),
    )
    assert {k for k, _ in kinds(run(obs))} == {"system_unreachable"}


# --- grace period -------------------------------------------------------------------------


def half_created(**overrides: Any) -> Observation:
    """`create` stored the password and has not created the role nor committed yet."""
    parts: dict[str, Any] = {"database": pg(), "git": on_base()}
    parts.update(overrides)
    return healthy(**parts)


def test_without_a_workflow_record_a_half_created_app_is_reported() -> None:
    assert kinds(run(half_created())) == [("role_missing", APP), ("manifest_missing", APP)]


def test_running_workflow_suppresses_findings() -> None:
    obs = half_created(workflows=[workflow(status=WorkflowStatus.RUNNING, age=timedelta(0))])
    diagnosis = run(obs)
    assert diagnosis.findings == []
    assert exit_code(diagnosis) == 0


def test_recent_workflow_suppresses_findings_within_grace() -> None:
    obs = half_created(workflows=[workflow(status=WorkflowStatus.FAILED, age=timedelta(minutes=9))])
    assert run(obs).findings == []


def test_findings_come_back_after_the_grace_period() -> None:
    obs = half_created(
        workflows=[workflow(status=WorkflowStatus.FAILED, age=timedelta(minutes=11))]
    )
    assert kinds(run(obs)) == [("role_missing", APP), ("manifest_missing", APP)]


def test_grace_period_is_configurable() -> None:
    obs = half_created(workflows=[workflow(status=WorkflowStatus.DONE, age=timedelta(minutes=2))])
    assert run(obs).findings == []
    assert kinds(run(obs, services(grace="1m")))[0] == ("role_missing", APP)


def test_repair_ignores_the_grace_period() -> None:
    obs = half_created(workflows=[workflow(status=WorkflowStatus.RUNNING, age=timedelta(0))])
    assert kinds(run(obs, respect_grace=False)) == [
        ("role_missing", APP),
        ("manifest_missing", APP),
    ]


def test_grace_covers_only_the_fresh_app() -> None:
    obs = half_created(
        secrets={APP: creds(), "other": creds("other")},
        workflows=[workflow(status=WorkflowStatus.RUNNING, age=timedelta(0))],
    )
    assert kinds(run(obs)) == [("role_missing", "other"), ("manifest_missing", "other")]


def test_grace_hides_a_fresh_app_without_stored_password() -> None:
    # a create that has not written yet: its empty store is a new environment, not a loss
    running = workflow(status=WorkflowStatus.RUNNING, age=timedelta(0))
    obs = half_created(secrets={}, workflows=[replace(running, step="")])
    assert run(obs).findings == []


def test_grace_never_hides_drift_or_unsafe_roles() -> None:
    database = Database({APP: PasswordResult.MISMATCH})
    obs = healthy(
        database=pg(login(superuser=True)),
        workflows=[workflow(status=WorkflowStatus.RUNNING, age=timedelta(0))],
    )
    assert {k for k, _ in kinds(run(obs, services(database)))} == {
        "password_drift",
        "role_unsafe",
    }


def test_workflow_left_running_long_ago_does_not_hide_findings() -> None:
    obs = half_created(workflows=[workflow(status=WorkflowStatus.RUNNING, age=timedelta(days=2))])
    assert kinds(run(obs)) == [("role_missing", APP), ("manifest_missing", APP)]


# --- known apps ---------------------------------------------------------------------------


def test_apps_come_from_every_source() -> None:
    obs = world(
        secrets={"from-secrets": creds("from-secrets")},
        git=on_base("from-git", proposals={"from-pr": proposal("from-pr")}),
        workflows=[workflow("from-workflow", age=timedelta(minutes=1))],
    )
    assert run(obs).apps == ["from-git", "from-pr", "from-secrets", "from-workflow"]


def test_closed_proposal_alone_does_not_make_an_app() -> None:
    obs = world(git=on_base(proposals={"gone": proposal("gone", ProposalState.CLOSED)}))
    assert run(obs).apps == []


def test_folders_that_are_no_app_names_are_not_apps() -> None:
    assert run(world(secrets={"Not_An_App": creds("Not_An_App")})).apps == []


# --- ordering, JSON and exit code ---------------------------------------------------------


def test_most_severe_first_then_by_app() -> None:
    obs = world(
        secrets={"zeta": creds("zeta"), "alpha": creds("alpha", username=None)},
        database=pg(login("alpha"), login("legacy"), login("zeta", createdb=True)),
        git=on_base("alpha", "zeta"),
    )
    assert kinds(run(obs)) == [
        ("secret_missing", "alpha"),
        ("role_unsafe", "zeta"),
        ("orphan_role", None),
    ]


def test_severity_order_critical_warning_info() -> None:
    obs = world(
        secrets={"alpha": creds("alpha"), "beta": creds("beta")},
        database=pg(login("alpha", createdb=True), login("legacy")),
        git=on_base("alpha", "beta"),
    )
    severities = [f.severity for f in run(obs).findings]
    assert severities == sorted(
        severities, key=[Severity.CRITICAL, Severity.WARNING, Severity.INFO].index
    )
    assert kinds(run(obs)) == [
        ("role_missing", "beta"),
        ("role_unsafe", "alpha"),
        ("orphan_role", None),
    ]


def test_json_document() -> None:
    obs = healthy(database=pg(login(createdb=True), login("legacy")))
    svc = services()
    diagnosis = run(obs, svc)
    document = json.loads(json.dumps(as_json(diagnosis, svc)))
    assert document["observed_at"] == NOW.isoformat()
    assert document["apps"] == 1
    assert document["counts"] == {"critical": 0, "warning": 1, "info": 1}
    assert document["findings"] == [
        {
            "kind": "role_unsafe",
            "app": APP,
            "severity": "warning",
            "message": diagnosis.findings[0].message,
            "remedy": diagnosis.findings[0].remedy,
        },
        {
            "kind": "orphan_role",
            "app": None,
            "severity": "info",
            "message": "login role `legacy` belongs to no known app",
            "remedy": diagnosis.findings[1].remedy,
        },
    ]
    assert exit_code(diagnosis) == 1


def test_json_document_all_clear() -> None:
    svc = services()
    diagnosis = run(healthy(), svc)
    document = as_json(diagnosis, svc)
    assert document["counts"] == {"critical": 0, "warning": 0, "info": 0}
    assert document["findings"] == []
    assert exit_code(diagnosis) == 0


def test_only_info_findings_exit_zero() -> None:
    diagnosis = run(healthy(database=pg(login(), login("legacy"))))
    assert diagnosis.findings and not diagnosis.alerting
    assert exit_code(diagnosis) == 0


def test_chat_rendering_shows_kind_app_and_fix() -> None:
    diagnosis = run(healthy(database=pg()))
    reply = render(diagnosis, correlation_id="abc")
    assert reply.title == "Diagnostics: 1 problem(s) over 1 app(s)"
    assert not reply.ok
    assert reply.lines == [
        f"🔴 role_missing `{APP}` — role `{APP}` does not exist although its password is "
        f"stored. Fix: {REPAIR}"
    ]


def test_chat_rendering_all_clear() -> None:
    reply = render(run(healthy()))
    assert reply.ok and reply.title == "Diagnostics: all clear over 1 app(s)"
