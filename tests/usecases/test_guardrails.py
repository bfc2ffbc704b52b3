"""Guardrails (limits, extensions, usage) over the in-memory ports, through the one dispatch every chat platform calls: limits
at create, extensions only from the allowlist (nothing written on a refusal), ``/pgdb update``
and ``/pgdb limits`` on the app's update branch, the usage findings and ``/pgdb usage``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bot.core.limits import RoleLimits
from bot.core.reply import Reply, StepState
from handlers.findings import Finding, diagnose
from handlers.observe import observe
from tests.fakes.git_host import MANIFESTS
from tests.fakes.services import MemoryWorld, run_command

APP, OTHER = "docspell", "photos"
OPERATOR, REQUESTER, STRANGER = "olga", "rita", "sam"
GiB = 1024**3


def database_file(app: str = APP) -> str:
    return f"{MANIFESTS}/databases/{app}.yaml"


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


def run(world: MemoryWorld, text: str, *, user: str = REQUESTER, **settings: Any) -> Reply:
    settings.setdefault("operators", OPERATOR)
    return run_command(world.services(**settings), text, user=user, platform="slack")


def spec_of(world: MemoryWorld, app: str = APP, *, ref: str | None = None) -> dict[str, Any]:
    text = world.git.text(database_file(app), ref=ref)
    assert text is not None
    return dict(yaml.safe_load(text)["spec"])


def onboard(world: MemoryWorld, app: str = APP, options: str = "", **settings: Any) -> Reply:
    """``create`` by the requester, its proposal merged."""
    reply = run(world, f"/pgdb create {app} {options}".strip(), **settings)
    assert reply.ok, reply
    world.git.merge(f"pgdb/{app}")
    world.database.add_database(app, owner=app)
    return reply


def kinds(world: MemoryWorld, **settings: Any) -> dict[tuple[str, str | None], Finding]:
    services = world.services(**settings)
    return {(f.kind, f.app): f for f in diagnose(observe(services), services).findings}


# --- limits at create ----------------------------------------------------------------------


def test_create_gives_the_role_a_limit_of_20_and_the_manifest_connection_limit_20(
    world: MemoryWorld,
) -> None:
    reply = run(world, f"/pgdb create {APP}")

    assert reply.ok
    assert world.database.roles[APP].connection_limit == 20
    assert world.database.roles[APP].statement_timeout_ms == 0
    assert "connection limit 20, statement timeout none" in reply.step("role").detail
    assert spec_of(world, ref=f"pgdb/{APP}")["connectionLimit"] == 20
    assert world.state.declared[APP] == (RoleLimits(connection_limit=20), "create", REQUESTER)
    world.git.merge(f"pgdb/{APP}")
    assert ("limits_drift", APP) not in kinds(world)


def test_configured_limits_and_timeout_are_what_a_new_role_gets(world: MemoryWorld) -> None:
    run(world, f"/pgdb create {APP}", connection_limit=8, statement_timeout="30s")

    role = world.database.roles[APP]
    assert (role.connection_limit, role.statement_timeout_ms) == (8, 30_000)
    assert spec_of(world, ref=f"pgdb/{APP}")["connectionLimit"] == 8


def test_an_adopted_role_keeps_its_limits_and_the_difference_is_a_note(
    world: MemoryWorld,
) -> None:
    password = "an-existing-password-0123456789abcdef"
    world.secrets.put(APP, password)
    world.database.add_role(APP, password=password, connection_limit=100)

    reply = run(world, f"/pgdb create {APP}")

    assert reply.ok
    assert world.database.roles[APP].connection_limit == 100  # never overwritten by create
    assert "keeps its own limits (connection limit 100" in reply.step("role").detail
    assert f"/pgdb limits {APP}" in reply.step("role").detail
    assert spec_of(world, ref=f"pgdb/{APP}")["connectionLimit"] == 100
    note = kinds(world)[("limits_drift", APP)]
    assert note.severity.value == "info"  # a note with the command, never an alert
    assert note.remedy == f"/pgdb limits {APP} --connections 20 --statement-timeout 0"
    assert APP not in world.state.declared


# --- extensions and schemas ----------------------------------------------------------------


def test_an_unlisted_extension_is_refused_with_the_list_and_nothing_is_written(
    world: MemoryWorld,
) -> None:
    refused = run(world, f"/pgdb create {APP} --extension vector", allowed_extensions="pg_trgm")

    assert not refused.ok and refused.outcome == "refused"
    assert "`vector`" in refused.lines[0] and "allows `pg_trgm`" in refused.lines[0]
    assert world.secrets.apps == {} and APP not in world.database.roles
    assert world.git.branches.keys() == {world.git.base_branch}
    assert world.state.records() == []
    assert world.state.audit[-1].result == "refused"

    none_allowed = run(world, f"/pgdb create {APP} --extension vector")
    assert "allows none" in none_allowed.lines[0]
    assert world.secrets.apps == {} and world.state.records() == []


def test_an_allowed_extension_and_schemas_land_in_the_manifest(world: MemoryWorld) -> None:
    reply = run(
        world,
        f"/pgdb create {APP} --extension vector,pg_trgm --schema app,reporting",
        allowed_extensions="vector,pg_trgm",
    )

    assert reply.ok
    spec = spec_of(world, ref=f"pgdb/{APP}")
    assert spec["extensions"] == [
        {"name": "vector", "ensure": "present"},
        {"name": "pg_trgm", "ensure": "present"},
    ]
    assert spec["schemas"] == [
        {"name": "app", "owner": APP, "ensure": "present"},
        {"name": "reporting", "owner": APP, "ensure": "present"},
    ]
    assert reply.step("checks").state is StepState.DONE  # pgdb/manifests: the CRD schema


def test_a_bad_schema_name_is_a_usage_error(world: MemoryWorld) -> None:
    reply = run(world, f"/pgdb create {APP} --schema public")

    assert not reply.ok and "`public` cannot be an app's schema" in "\n".join(reply.lines)
    assert world.secrets.apps == {}


def test_update_proposes_the_database_manifest_alone_on_the_update_branch(
    world: MemoryWorld,
) -> None:
    onboard(world)
    base_secret = world.git.text(f"{MANIFESTS}/credentials/{APP}-secret.yaml")

    reply = run(world, f"/pgdb update {APP} --extension vector", allowed_extensions="vector")

    assert reply.ok, reply
    head = world.git.branches[f"pgdb-update/{APP}"]
    commit = world.git.commits[head]
    assert commit.parents == (world.git.base_sha,)
    base_tree = world.git.commits[world.git.base_sha].tree
    changed = {p for p, text in commit.tree.items() if base_tree.get(p) != text}
    assert changed == {database_file()}
    assert spec_of(world, ref=head)["extensions"] == [{"name": "vector", "ensure": "present"}]
    assert spec_of(world, ref=head)["connectionLimit"] == 20  # the rest of the manifest kept
    assert world.git.text(f"{MANIFESTS}/credentials/{APP}-secret.yaml", ref=head) == base_secret
    # discovery knows the branch: an update, not an onboarding
    snapshot = world.git.snapshot(manifests_path=MANIFESTS)
    assert APP in snapshot.updates and snapshot.proposals[APP].branch == f"pgdb/{APP}"


def test_a_further_change_is_added_to_the_open_update_branch(world: MemoryWorld) -> None:
    onboard(world)
    allowed = "vector,pg_trgm"
    assert run(world, f"/pgdb update {APP} --extension vector", allowed_extensions=allowed).ok
    world.git.push({f"{MANIFESTS}/README.md": "the base moved on\n"}, message="elsewhere")

    assert run(world, f"/pgdb update {APP} --extension pg_trgm", allowed_extensions=allowed).ok
    limits = run(
        world,
        f"/pgdb limits {APP} --connections 40 --yes",
        user=OPERATOR,
        allowed_extensions=allowed,
    )
    assert limits.ok, limits

    head = world.git.branches[f"pgdb-update/{APP}"]
    assert world.git.commits[head].parents == (world.git.base_sha,)  # rebuilt on the new base
    spec = spec_of(world, ref=head)
    assert [e["name"] for e in spec["extensions"]] == ["vector", "pg_trgm"]
    assert spec["connectionLimit"] == 40


def test_update_refusals_write_nothing(world: MemoryWorld) -> None:
    onboard(world)
    before = dict(world.git.branches)

    unlisted = run(world, f"/pgdb update {APP} --extension vector")
    stranger = run(
        world, f"/pgdb update {APP} --extension vector", user=STRANGER, allowed_extensions="vector"
    )

    assert unlisted.outcome == "refused" and "PGDB_ALLOWED_EXTENSIONS" in unlisted.lines[0]
    assert stranger.outcome == "refused"
    assert f"`{REQUESTER}` (who onboarded it)" in stranger.lines[0]
    assert world.git.branches == before
    by_operator = run(
        world, f"/pgdb update {APP} --extension vector", user=OPERATOR, allowed_extensions="vector"
    )
    assert by_operator.ok


def test_update_of_an_app_without_its_manifest_on_the_base_branch_says_what_to_do(
    world: MemoryWorld,
) -> None:
    assert run(world, f"/pgdb create {APP}").ok  # proposed, not merged

    reply = run(world, f"/pgdb update {APP} --extension vector", allowed_extensions="vector")

    assert not reply.ok and "merge its onboarding proposal first" in reply.lines[0]
    assert f"pgdb-update/{APP}" not in world.git.branches


# --- /pgdb limits --------------------------------------------------------------------------


def test_limits_asks_first_then_alters_the_role_proposes_the_manifest_and_declares(
    world: MemoryWorld,
) -> None:
    onboard(world)

    preview = run(
        world, f"/pgdb limits {APP} --connections 40 --statement-timeout 30s", user=OPERATOR
    )
    assert preview.title == f"Limits of `{APP}`: confirm"
    assert preview.buttons and preview.buttons[0].command.endswith("--yes")
    assert world.database.roles[APP].connection_limit == 20
    assert f"pgdb-update/{APP}" not in world.git.branches
    dry = run(world, f"/pgdb limits {APP} --connections 40 --dry-run --yes", user=OPERATOR)
    assert "Dry run: nothing was changed." in dry.lines
    assert world.database.roles[APP].connection_limit == 20

    done = run(
        world, f"/pgdb limits {APP} --connections 40 --statement-timeout 30s --yes", user=OPERATOR
    )

    assert done.ok, done
    role = world.database.roles[APP]
    assert (role.connection_limit, role.statement_timeout_ms) == (40, 30_000)
    assert spec_of(world, ref=f"pgdb-update/{APP}")["connectionLimit"] == 40
    assert world.state.declared[APP] == (
        RoleLimits(connection_limit=40, statement_timeout_ms=30_000),
        "limits",
        OPERATOR,
    )
    assert world.state.audit[-1].command.startswith(f"/pgdb limits {APP}")
    assert ("limits_drift", APP) not in kinds(world)


def test_limits_is_for_operators(world: MemoryWorld) -> None:
    onboard(world)

    reply = run(world, f"/pgdb limits {APP} --connections 99 --yes")

    assert not reply.ok and world.database.roles[APP].connection_limit == 20


def test_a_role_changed_by_hand_is_limits_drift(world: MemoryWorld) -> None:
    onboard(world)
    world.database.alter_role(APP, connection_limit=500)

    drift = kinds(world)[("limits_drift", APP)]

    assert drift.severity.value == "warning"
    assert "connection limit 500 (declared 20)" in drift.message
    assert drift.remedy.startswith(f"/pgdb limits {APP} --connections 20 --statement-timeout 0")


# --- usage findings and /pgdb usage --------------------------------------------------------


def test_17_open_connections_of_a_20_limit_app_are_connections_near_limit(
    world: MemoryWorld,
) -> None:
    onboard(world)
    world.database.sessions[APP] = 15
    assert ("connections_near_limit", APP) not in kinds(world)

    world.database.sessions[APP] = 17

    near = kinds(world)[("connections_near_limit", APP)]
    assert near.severity.value == "warning" and "17 of its 20 connections" in near.message
    status = run(world, f"/pgdb status {APP}")
    assert dict(status.fields)["⚠️ connections"].startswith("17 of 20 open (85 %)")


def test_a_database_above_the_size_warning_is_database_large(world: MemoryWorld) -> None:
    onboard(world)
    world.database.add_database(APP, owner=APP, size_bytes=6 * GiB)

    large = kinds(world)[("database_large", APP)]

    assert large.severity.value == "warning" and "6.0 GiB" in large.message
    assert ("database_large", APP) not in kinds(world, database_size_warn="10GiB")


def test_usage_lists_the_apps_biggest_first_with_their_figures(world: MemoryWorld) -> None:
    onboard(world)
    onboard(world, OTHER, "--extension vector", allowed_extensions="vector")
    world.database.add_database(APP, owner=APP, size_bytes=200 * 1024**2)
    world.database.add_database(OTHER, owner=OTHER, size_bytes=6 * GiB)
    world.database.sessions[APP] = 17

    reply = run(world, "/pgdb usage")

    assert reply.ok and reply.title.startswith("Usage: 2 app(s)")
    assert reply.lines[0] == f"⚠️ {OTHER}: 0/20 connections · 6.0 GiB"
    assert reply.lines[1] == f"⚠️ {APP}: 17/20 connections · 200 MiB"
    top = run(world, "/pgdb usage --top 1")
    assert top.lines[0].startswith(f"⚠️ {OTHER}") and APP not in top.lines[0]
    assert "1 smaller app(s) not shown" in top.lines[1] and top.more_hint == "/pgdb usage --top 2"


def test_calls_per_pass_stay_constant_with_the_usage_findings(world: MemoryWorld) -> None:
    def calls_for(size: int) -> dict[str, int]:
        fleet = MemoryWorld(kubernetes=True)
        for i in range(size):
            app = f"app-{i:03d}"
            fleet.secrets.put(app, f"{app}-password-0123456789abcdef")
            fleet.database.add_role(
                app, password=f"{app}-password-0123456789abcdef", connection_limit=20
            )
            fleet.database.add_database(app, owner=app, size_bytes=(i + 1) * 3 * GiB)
            fleet.database.sessions[app] = 19
            fleet.cluster.onboard(app)
        fakes = (
            ("database", fleet.database),
            ("state", fleet.state),
            ("git", fleet.git),
            ("secrets", fleet.secrets),
            ("cluster", fleet.cluster),
        )
        for _, fake in fakes:
            fake.calls.clear()  # the seeding above is not the pass
        services = fleet.services()
        found = diagnose(observe(services), services).findings
        assert {"connections_near_limit", "database_large"} <= {f.kind for f in found}
        return {system: len(fake.calls) for system, fake in fakes}

    small, large = calls_for(3), calls_for(40)
    assert small == large
    assert large == {"database": 2, "state": 1, "git": 1, "secrets": 1, "cluster": 1}


def test_status_names_the_open_update_proposal(world: MemoryWorld) -> None:
    onboard(world)
    assert run(world, f"/pgdb limits {APP} --connections 30 --yes", user=OPERATOR).ok

    status = run(world, f"/pgdb status {APP}")

    assert any(f"branch pgdb-update/{APP}" in line for line in status.lines)
    assert dict(status.fields)["✅ limits"].startswith("connection limit 30")


def test_repair_recreates_a_dropped_role_with_the_configured_limits(world: MemoryWorld) -> None:
    onboard(world)
    world.database.drop_role(APP)

    reply = run(world, f"/pgdb repair {APP} --yes", user=OPERATOR)

    assert reply.ok, reply
    assert world.database.roles[APP].connection_limit == 20
    assert world.state.declared[APP][1] == "repair"


def test_a_re_run_of_create_keeps_the_extensions_its_open_proposal_asks_for(
    world: MemoryWorld,
) -> None:
    allowed = "vector,pg_trgm"
    assert run(world, f"/pgdb create {APP} --extension vector", allowed_extensions=allowed).ok
    world.git.push({f"{MANIFESTS}/README.md": "the base moved on\n"}, message="elsewhere")

    rerun = run(world, f"/pgdb create {APP}", allowed_extensions=allowed)
    more = run(world, f"/pgdb create {APP} --extension pg_trgm", allowed_extensions=allowed)

    assert rerun.ok and more.ok
    spec = spec_of(world, ref=f"pgdb/{APP}")
    assert [e["name"] for e in spec["extensions"]] == ["vector", "pg_trgm"]


def test_a_note_never_turns_a_warning_into_a_red_cross(world: MemoryWorld) -> None:
    password = "an-existing-password-0123456789abcdef"
    world.secrets.put(APP, password)
    world.database.add_role(APP, password=password, connection_limit=10)  # not declared: a note
    world.database.sessions[APP] = 9  # a warning

    found = kinds(world)
    fleet = run(world, "/pgdb status")

    assert found[("limits_drift", APP)].severity.value == "info"
    assert found[("connections_near_limit", APP)].severity.value == "warning"
    line = next(line for line in fleet.lines if f" {APP}:" in line)
    assert line.startswith("⚠️"), line
