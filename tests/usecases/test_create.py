"""``/pgdb create`` over the in-memory ports: what each system holds afterwards, how a failure
at any step is resumed by a re-run with the same password, and what is refused before anything
is written."""

from __future__ import annotations

import pytest

from bot.core.errors import BackendUnavailable, PgdbError
from bot.core.model import CheckState, StoredCredentials, WorkflowStatus
from bot.core.names import AppName
from bot.core.reply import Reply, StepState
from bot.core.secret import Secret
from tests.fakes.git_host import MANIFESTS
from tests.fakes.services import MemoryWorld, run_command

APP = "docspell"
OPERATOR, REQUESTER = "olga", "rita"
DATABASE_FILE = f"{MANIFESTS}/databases/{APP}.yaml"
SECRET_FILE = f"{MANIFESTS}/credentials/{APP}-secret.yaml"
KUSTOMIZATION = f"{MANIFESTS}/kustomization.yaml"
WRITES = ("write", "create_role", "enable_login", "commit", "set_branch", "publish_checks")


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


def create(world: MemoryWorld, text: str = f"/pgdb create {APP}", **as_user: str) -> Reply:
    services = world.services(operators=OPERATOR)
    return run_command(services, text, user=as_user.get("user", REQUESTER), platform="slack")


def states(reply: Reply) -> dict[str, StepState]:
    return {s.key: s.state for s in reply.steps}


def writes(world: MemoryWorld) -> list[str]:
    calls = world.secrets.calls + world.database.calls + world.git.calls
    return [c for c in calls if c in WRITES]


def test_first_create_stores_credentials_creates_the_role_and_proposes_the_manifests(
    world: MemoryWorld,
) -> None:
    reply = create(world)

    assert reply.ok and reply.title == f"Onboarded `{APP}`"
    assert set(states(reply).values()) == {StepState.DONE}
    stored = world.secrets.apps[APP]
    assert (stored.username, stored.database) == (APP, APP)
    password = world.secrets.password(APP)
    assert password is not None and len(password) >= 32
    assert world.database.can_login(APP, password)
    role = world.database.roles[APP]
    assert not (role.superuser or role.createdb or role.createrole or role.member_of)
    head = world.git.branches[f"pgdb/{APP}"]
    assert world.git.commits[head].parents == (world.git.base_sha,)
    assert world.git.text(DATABASE_FILE, ref=head) is not None
    assert world.git.text(SECRET_FILE, ref=head) is not None
    kustomization = world.git.text(KUSTOMIZATION, ref=head) or ""
    assert f"databases/{APP}.yaml" in kustomization and f"credentials/{APP}-secret.yaml" in (
        kustomization
    )
    checks = world.git.checks[head]
    assert sorted(checks) == ["pgdb/manifests", "pgdb/role", "pgdb/secret"]
    assert {c.state for c in checks.values()} == {CheckState.SUCCESS}
    [record] = world.state.records(APP)
    assert (record.kind, record.status, record.requester) == ("create", WorkflowStatus.DONE, "rita")
    # the password never reaches a reply, a commit or the audit log
    shown = repr(reply) + "".join(c.message for c in world.git.commits.values())
    assert password not in shown + repr(world.state.audit)
    assert world.state.audit[-1].result == "ok"


def test_a_second_create_changes_nothing(world: MemoryWorld) -> None:
    create(world)
    head = world.git.branches[f"pgdb/{APP}"]
    password = world.secrets.password(APP)
    world.secrets.calls.clear()
    world.git.calls.clear()

    again = create(world)

    assert again.ok, again.steps
    assert states(again) == {
        "credentials": StepState.EXISTS,
        "role": StepState.EXISTS,
        "manifests": StepState.EXISTS,
        "checks": StepState.EXISTS,
    }
    assert world.secrets.password(APP) == password
    assert world.git.branches[f"pgdb/{APP}"] == head
    assert "write" not in world.secrets.calls and "commit" not in world.git.calls


@pytest.mark.parametrize(
    ("step", "system", "method"),
    [
        ("credentials", "secrets", "write"),
        ("role", "database", "create_role"),
        ("manifests", "git", "commit"),
        ("checks", "git", "publish_checks"),
    ],
)
def test_a_failure_at_any_step_is_resumed_by_a_rerun_with_the_same_password(
    world: MemoryWorld, step: str, system: str, method: str
) -> None:
    fake = {"secrets": world.secrets, "database": world.database, "git": world.git}[system]
    fake.fail(method, error=BackendUnavailable(system, "connection refused"))

    failed = create(world)

    assert not failed.ok
    assert failed.step(step).state is StepState.FAILED
    assert "connection refused" in failed.step(step).detail
    keys = [s.key for s in failed.steps]
    assert all(s.state is StepState.SKIPPED for s in failed.steps[keys.index(step) + 1 :])
    assert any("run the same command again" in line for line in failed.lines)
    [record] = world.state.records(APP)
    assert (record.status, record.step) == (WorkflowStatus.FAILED, step)
    first_password = world.secrets.password(APP)
    fake.heal()

    resumed = create(world)

    assert resumed.ok, [(s.key, s.state, s.detail) for s in resumed.steps]
    password = world.secrets.password(APP)
    assert password is not None and world.database.can_login(APP, password)
    if first_password is not None:
        assert password == first_password  # never a second password once one is stored
    assert len(world.git.commits) == 2  # the base, and one commit on the branch


def test_a_dry_run_says_what_would_happen_and_writes_nothing(world: MemoryWorld) -> None:
    reply = create(world, f"/pgdb create {APP} --dry-run")

    assert states(reply) == {
        "credentials": StepState.PLANNED,
        "role": StepState.PLANNED,
        "manifests": StepState.PLANNED,
        "checks": StepState.PLANNED,
    }
    assert reply.lines[-2:] == [
        "The real run would complete every step.",
        "Dry run: nothing was changed.",
    ]
    assert writes(world) == []
    assert world.state.records() == []


def test_a_role_that_exists_without_stored_credentials_stops_before_anything_is_written(
    world: MemoryWorld,
) -> None:
    world.database.add_role(APP, password="made by hand")

    reply = create(world)

    assert not reply.ok and reply.title.endswith(": stopped")
    assert reply.step("credentials").state is StepState.FAILED
    assert "create never resets a password" in reply.step("credentials").detail
    assert writes(world) == [] and world.state.records() == []


def test_credentials_made_for_another_role_are_never_reused(world: MemoryWorld) -> None:
    world.secrets.apps[APP] = StoredCredentials(
        username="wiki", password=Secret("x" * 40), database=APP
    )

    reply = create(world)

    assert reply.step("credentials").state is StepState.FAILED
    assert "`username` is `wiki`" in reply.step("credentials").detail
    assert writes(world) == []


def test_missing_keys_are_completed_and_the_stored_password_kept(world: MemoryWorld) -> None:
    world.secrets.apps[APP] = StoredCredentials(password=Secret("k" * 40))

    reply = create(world)

    assert reply.ok
    assert reply.step("credentials").detail == "kept the stored password, added username, database"
    assert world.secrets.apps[APP] == StoredCredentials(
        username=APP, password=Secret("k" * 40), database=APP
    )
    assert world.database.can_login(APP, "k" * 40)


def test_while_another_workflow_holds_the_app_the_command_says_which(world: MemoryWorld) -> None:
    create(world)
    with world.state.app_lock(AppName(APP)):  # another replica runs a workflow of APP
        busy = create(world, user="bob")

    assert not busy.ok and busy.title == f"`{APP}` is busy: a `create` is in progress"
    assert "started by rita" in busy.lines[0]


def test_an_offboarded_app_comes_back_only_by_an_operator(world: MemoryWorld) -> None:
    create(world)
    world.git.merge(f"pgdb/{APP}")
    assert run_command(world.services(), f"/pgdb offboard {APP} --yes", console_owner=True).ok
    world.git.merge(f"pgdb-offboard/{APP}")
    password = world.secrets.password(APP)
    assert password is not None and not world.database.can_login(APP, password)

    refused = create(world)
    assert not refused.ok and refused.outcome == "refused"
    assert "was offboarded" in refused.lines[0]

    back = create(world, user=OPERATOR)
    assert back.ok, back.steps
    assert back.step("role").detail == f"re-enabled LOGIN on role `{APP}`"
    assert world.database.can_login(APP, password)  # its password was kept


@pytest.mark.parametrize(
    ("namespace", "words"),
    [
        ("kube-system", "can never receive"),
        ("argocd", "can never receive"),
        ("other", "not a namespace"),
    ],
)
def test_a_namespace_outside_the_policy_is_refused_before_anything_is_read(
    world: MemoryWorld, namespace: str, words: str
) -> None:
    services = world.services(secret_namespaces="team-*")

    reply = run_command(services, f"/pgdb create {APP} --namespace {namespace}", user=REQUESTER)

    assert reply.outcome == "refused" and words in reply.lines[0]
    assert world.secrets.calls == [] and world.database.calls == [] and world.git.calls == []


def test_a_namespace_the_policy_allows_delivers_the_secret_there_too(world: MemoryWorld) -> None:
    services = world.services(secret_namespaces="team-*")

    reply = run_command(services, f"/pgdb create {APP} --namespace team-docs", user=REQUESTER)

    assert reply.ok, reply.steps
    secret = world.git.text(SECRET_FILE, ref=f"pgdb/{APP}") or ""
    assert "team-docs" in secret and "databases" in secret


def test_an_unreachable_secret_store_stops_at_credentials_and_records_it(
    world: MemoryWorld,
) -> None:
    world.secrets.fail("read")

    reply = create(world)

    assert reply.step("credentials").state is StepState.FAILED
    assert "secret store: connection refused" in reply.step("credentials").detail
    [record] = world.state.records(APP)
    assert record.status is WorkflowStatus.FAILED
    assert writes(world) == []


def test_someone_not_allowed_is_refused_and_audited(world: MemoryWorld) -> None:
    services = world.services(requesters="alice")

    reply = run_command(services, f"/pgdb create {APP}", user="mallory", platform="slack")

    assert reply.outcome == "refused" and reply.title == "Not allowed"
    assert "PGDB_REQUESTERS" in reply.lines[0]
    [entry] = world.state.audit
    assert (entry.user, entry.result, entry.app) == ("mallory", "refused", APP)
    assert writes(world) == []


def test_an_audit_log_that_cannot_be_written_does_not_fail_the_command(world: MemoryWorld) -> None:
    world.state.fail("record_audit", error=PgdbError("audit table gone"))

    assert create(world).ok
