"""``/pgdb offboard`` over the in-memory ports: what it changes (a proposal removing the
manifests, NOLOGIN, the credentials kept unless configured), what it refuses before changing
anything (a database CloudNativePG would drop, an unfinished rotation), and re-runs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.model import WorkflowStatus
from bot.core.reply import Reply, StepState
from tests.fakes.git_host import MANIFESTS
from tests.fakes.services import MemoryWorld, run_command

APP = "docspell"
BRANCH = f"pgdb-offboard/{APP}"
DATABASE_FILE = f"{MANIFESTS}/databases/{APP}.yaml"
SECRET_FILE = f"{MANIFESTS}/credentials/{APP}-secret.yaml"
KUSTOMIZATION = f"{MANIFESTS}/kustomization.yaml"


def onboarded(*, kubernetes: bool = False) -> MemoryWorld:
    """``APP`` created by the bot, its proposal merged, its database made by CloudNativePG."""
    world = MemoryWorld(kubernetes=kubernetes)
    assert run(world, f"/pgdb create {APP}").ok
    world.git.merge(f"pgdb/{APP}")
    world.database.add_database(APP, owner=APP)
    world.cluster.onboard(APP)
    return world


def run(world: MemoryWorld, text: str, **settings: str) -> Reply:
    return run_command(world.services(**settings), text, console_owner=True)


def password(world: MemoryWorld) -> str:
    found = world.secrets.password(APP)
    assert found is not None
    return found


def test_the_confirmation_changes_nothing() -> None:
    world = onboarded()
    branches = dict(world.git.branches)

    confirm = run(world, f"/pgdb offboard {APP}")

    assert confirm.title == f"Offboard `{APP}`: confirm"
    assert [b.command for b in confirm.buttons] == [f"/pgdb offboard {APP} --yes"]
    assert {s.key: s.state for s in confirm.steps} == {
        "manifests": StepState.PLANNED,
        "role": StepState.PLANNED,
        "secret": StepState.EXISTS,
    }
    assert world.git.branches == branches
    assert world.database.can_login(APP, password(world))


def test_offboarding_proposes_the_removal_disables_login_and_keeps_the_credentials() -> None:
    world = onboarded()
    kustomization = world.git.text(KUSTOMIZATION) or ""

    done = run(world, f"/pgdb offboard {APP} --yes")

    assert done.ok and done.title == f"Offboarded `{APP}`", done.steps
    assert [s.state for s in done.steps] == [StepState.DONE, StepState.DONE, StepState.EXISTS]
    head = world.git.commits[world.git.branches[BRANCH]]
    assert head.parents == (world.git.base_sha,)
    assert world.git.text(DATABASE_FILE, ref=BRANCH) is None
    assert world.git.text(SECRET_FILE, ref=BRANCH) is None
    expected = "".join(
        line
        for line in kustomization.splitlines(keepends=True)
        if line.strip() not in {f"- databases/{APP}.yaml", f"- credentials/{APP}-secret.yaml"}
    )
    assert world.git.text(KUSTOMIZATION, ref=BRANCH) == expected  # comments kept
    assert not world.database.roles[APP].can_login
    assert world.database.databases[APP].owner == APP  # the data stays
    assert world.secrets.password(APP) is not None
    assert world.state.records(APP)[-1].kind == "offboard"

    world.git.merge(BRANCH)
    status = run(world, f"/pgdb status {APP}")
    assert status.title == f"Status of `{APP}`: offboarded", status.fields
    listing = run(world, "/pgdb list")
    assert any(line.startswith(f"⚪ {APP}: offboarded") for line in listing.lines)
    again = run(world, f"/pgdb offboard {APP} --yes")
    assert again.title == f"`{APP}` is already offboarded: nothing to do"


def test_with_the_setting_the_credentials_are_deleted_and_create_makes_new_ones() -> None:
    world = onboarded()
    old = password(world)

    done = run(world, f"/pgdb offboard {APP} --yes", offboard_delete_secret="true")

    assert done.step("secret").state is StepState.DONE
    assert "PGDB_OFFBOARD_DELETE_SECRET" in done.step("secret").detail
    assert APP not in world.secrets.apps
    world.git.merge(BRANCH)

    back = run(world, f"/pgdb create {APP}")

    assert back.ok, back.steps
    assert "generated a new password" in back.step("credentials").detail
    new = password(world)
    assert new != old and world.database.can_login(APP, new)
    assert not world.database.can_login(APP, old)


def test_a_refused_alter_role_stops_the_run_and_a_rerun_reuses_the_proposal() -> None:
    world = onboarded()
    world.database.fail("disable_login")

    failed = run(world, f"/pgdb offboard {APP} --yes")

    assert [s.state for s in failed.steps] == [
        StepState.DONE,
        StepState.FAILED,
        StepState.SKIPPED,
    ]
    assert any(f"/pgdb offboard {APP} --yes" in line for line in failed.lines)
    assert world.database.can_login(APP, password(world))
    status = run(world, f"/pgdb status {APP}")
    assert status.title.startswith(f"Status of `{APP}`: offboarding"), status.title
    head = world.git.branches[BRANCH]
    world.database.heal()

    resumed = run(world, f"/pgdb offboard {APP} --yes")

    assert [s.state for s in resumed.steps] == [
        StepState.EXISTS,
        StepState.DONE,
        StepState.EXISTS,
    ]
    assert "reused the open proposal" in resumed.step("manifests").detail
    assert world.git.branches[BRANCH] == head
    assert not world.database.roles[APP].can_login
    assert world.state.records(APP)[-1].status is WorkflowStatus.DONE


def test_a_manifest_that_would_drop_the_database_is_refused() -> None:
    world = onboarded()
    manifest = world.git.text(DATABASE_FILE) or ""
    world.git.push(
        {
            DATABASE_FILE: manifest.replace(
                "databaseReclaimPolicy: retain", "databaseReclaimPolicy: delete"
            )
        }
    )
    branches = dict(world.git.branches)

    for text in (f"/pgdb offboard {APP}", f"/pgdb offboard {APP} --yes"):
        refused = run(world, text)
        assert not refused.ok and refused.buttons == []
        detail = refused.step("manifests").detail
        assert "databaseReclaimPolicy: delete" in detail and "DROP database" in detail

    assert world.git.branches == branches
    assert world.database.can_login(APP, password(world))


def test_a_live_database_that_would_drop_the_data_is_refused_until_it_says_retain() -> None:
    world = onboarded(kubernetes=True)
    database = world.cluster.databases[APP]
    world.cluster.databases[APP] = replace(database, reclaim_policy="delete")

    refused = run(world, f"/pgdb offboard {APP} --yes")

    assert refused.title == f"Offboard `{APP}`: refused", refused.steps
    detail = refused.step("manifests").detail
    assert "CloudNativePG would DROP database `docspell` and its data" in detail
    assert "databaseReclaimPolicy" in detail and "kubectl -n databases patch database" in detail
    assert world.database.can_login(APP, password(world))
    assert [r.kind for r in world.state.records(APP)] == ["create"]

    world.cluster.databases[APP] = replace(database, reclaim_policy=None)  # the default: retain
    assert run(world, f"/pgdb offboard {APP} --yes").ok


def test_an_unfinished_rotation_holds_offboarding_back() -> None:
    world = onboarded()
    world.database.fail("set_password", times=1)
    assert not run(world, f"/pgdb rotate {APP} --yes").ok
    new = password(world)

    refused = run(world, f"/pgdb offboard {APP} --yes")

    assert refused.title == f"`{APP}` is being rotated"
    assert "Nothing was changed." in refused.lines[0]
    assert BRANCH not in world.git.branches
    assert run(world, f"/pgdb rotate {APP} --yes").ok
    assert password(world) == new  # the rotation finished with its password, not a third
    assert run(world, f"/pgdb offboard {APP} --yes").ok
    assert not world.database.roles[APP].can_login


@pytest.mark.parametrize("confirmed", [False, True])
def test_an_unknown_app_is_refused(confirmed: bool) -> None:
    world = MemoryWorld()

    reply = run(world, "/pgdb offboard nobody-here" + (" --yes" if confirmed else ""))

    assert not reply.ok and "not a known app" in reply.lines[0]
    assert world.git.calls.count("commit") == 0
