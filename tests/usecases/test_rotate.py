"""``/pgdb rotate`` over the in-memory ports (issue 10): the confirmation, the order of the
writes, the Infisical operator's sync, what a re-run finishes, and what rotate refuses."""

from __future__ import annotations

import pytest

from bot.core.model import WorkflowStatus, Workload
from bot.core.reply import Reply, StepState
from bot.core.scram import scram_matches
from bot.core.secret import Secret
from tests.fakes.services import MemoryWorld, run_command

APP = "docspell"
SECRET = f"{APP}-postgresql-credentials"
OLD = "the-password-before-the-rotation-0123456789"


def onboarded(*, kubernetes: bool = False, bot_is_superuser: bool = True) -> MemoryWorld:
    """``APP`` as create left it and the controllers synced it."""
    world = MemoryWorld(kubernetes=kubernetes, bot_is_superuser=bot_is_superuser)
    world.secrets.put(APP, OLD)
    world.database.add_role(APP, password=OLD)
    world.database.add_database(APP, owner=APP)
    world.cluster.onboard(APP)
    return world


def rotate(world: MemoryWorld, *, confirmed: bool = True, **settings: str) -> Reply:
    text = f"/pgdb rotate {APP}" + (" --yes" if confirmed else "")
    return run_command(world.services(operators="olga", **settings), text, user="olga")


def states(reply: Reply) -> dict[str, StepState]:
    return {s.key: s.state for s in reply.steps}


def test_without_yes_the_plan_is_shown_and_nothing_changes() -> None:
    world = onboarded(kubernetes=True)

    plan = rotate(world, confirmed=False)

    assert plan.title == f"Rotate `{APP}`: confirm"
    assert [b.command for b in plan.buttons] == [f"/pgdb rotate {APP} --yes"]
    assert states(plan)["rollout"] is StepState.SKIPPED  # PGDB_ROLLOUT is off
    assert world.secrets.password(APP) == OLD
    assert world.state.records() == []
    assert "write" not in world.secrets.calls and "set_password" not in world.database.calls


def test_a_rotation_without_kubernetes_changes_the_store_then_the_role() -> None:
    world = onboarded()

    reply = rotate(world)

    assert reply.ok and reply.title == f"Rotated `{APP}`", reply.steps
    assert states(reply)["resync"] is StepState.SKIPPED
    new = world.secrets.password(APP)
    assert new is not None and new != OLD
    assert world.database.can_login(APP, new) and not world.database.can_login(APP, OLD)
    assert reply.step("verify").detail.endswith("the old password no longer does")
    [record] = world.state.records(APP)
    assert (record.kind, record.status) == ("rotate", WorkflowStatus.DONE)
    # the fingerprint is a salted verifier of the new password, never the password
    fingerprint = world.state.password_fingerprint(record.id)
    assert fingerprint is not None and new not in fingerprint
    assert scram_matches(fingerprint, Secret(new)) is True
    assert new not in repr(reply)


def test_with_kubernetes_the_secret_carries_the_new_password_before_the_role_changes() -> None:
    world = onboarded(kubernetes=True)

    reply = rotate(world)

    assert reply.ok, reply.steps
    assert states(reply) == {
        "password": StepState.DONE,
        "resync": StepState.DONE,
        "sync-wait": StepState.DONE,
        "role": StepState.DONE,
        "rollout": StepState.SKIPPED,
        "verify": StepState.DONE,
    }
    assert "generation 1 → 2" in reply.step("resync").detail
    secret = world.cluster.secrets[SECRET]
    assert secret.password == Secret(world.secrets.password(APP) or "")
    # the store was written before the resync, the resync before the role changed
    order = [*world.secrets.calls, *world.cluster.calls, *world.database.calls]
    assert order.index("write") < order.index("resync_infisical_secret")
    assert world.cluster.called("resync_infisical_secret") == 1


def test_when_the_operator_does_not_sync_the_old_password_is_put_back() -> None:
    world = onboarded(kubernetes=True)
    world.cluster.operator_syncs = False

    stopped = rotate(world, rotate_sync_timeout="1s")

    assert not stopped.ok and stopped.step("sync-wait").state is StepState.FAILED
    assert "The old password was put back in the secret store" in stopped.step("sync-wait").detail
    assert states(stopped)["role"] is StepState.SKIPPED
    assert world.secrets.password(APP) == OLD
    assert world.database.can_login(APP, OLD)  # the role was never changed
    [record] = world.state.records(APP)
    assert (record.status, record.step) == (WorkflowStatus.FAILED, "sync-wait")

    world.cluster.operator_syncs = True
    again = rotate(world)

    assert again.ok, again.steps
    assert again.title.startswith(f"Rotated `{APP}` (finished the rotation started at")
    assert "a new password (the secret store does not hold" in again.step("password").detail
    assert [r.id for r in world.state.records(APP)] == [record.id]  # the same record, finished


def test_a_failure_at_the_role_is_finished_by_a_rerun_with_the_same_new_password() -> None:
    world = onboarded()
    world.database.fail("set_password")

    stopped = rotate(world)

    assert stopped.step("role").state is StepState.FAILED
    new = world.secrets.password(APP)
    assert new is not None and new != OLD and world.database.can_login(APP, OLD)
    world.database.heal()

    finished = rotate(world)

    assert finished.ok, finished.steps
    assert finished.step("password").detail.startswith("kept the password stored by the rotation")
    assert world.secrets.password(APP) == new and world.database.can_login(APP, new)


def test_rollout_restarts_the_workloads_reading_the_secret_once() -> None:
    world = onboarded(kubernetes=True)
    reader = Workload(
        kind="Deployment", namespace="databases", name="docspell", secrets=frozenset({SECRET})
    )
    other = Workload(
        kind="Deployment", namespace="databases", name="wiki", secrets=frozenset({"wiki"})
    )
    world.cluster.deploy(reader)
    world.cluster.deploy(other)

    reply = rotate(world, rollout="on")

    assert reply.ok, reply.steps
    assert reply.step("rollout").detail.startswith("restarted Deployment databases/docspell")
    [(restarted, stamp)] = world.cluster.restarts
    assert restarted.name == "docspell"
    [record] = world.state.records(APP)
    assert stamp == record.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"drop": True}, "does not exist, so there is no password to rotate"),
        ({"can_login": False}, "rotate never re-enables login"),
        ({"superuser": True}, "is a superuser"),
    ],
)
def test_what_rotate_refuses_before_changing_anything(change: dict[str, bool], words: str) -> None:
    world = onboarded(bot_is_superuser=False)  # a CREATEROLE account, as production's
    if change.pop("drop", False):
        world.database.drop_role(APP)
    else:
        world.database.alter_role(APP, **change)

    reply = rotate(world)

    assert not reply.ok and words in reply.lines[0]
    assert world.secrets.password(APP) == OLD and world.state.records() == []


def test_an_unfinished_rotation_holds_back_create_until_it_is_finished() -> None:
    world = onboarded()
    world.database.fail("set_password", times=1)
    rotate(world)

    blocked = run_command(world.services(), f"/pgdb create {APP}", user="olga", console_owner=True)

    assert blocked.title == f"`{APP}` is being rotated"
    assert f"`/pgdb rotate {APP} --yes` finishes it" in blocked.lines[0]
    assert rotate(world).ok
    assert run_command(world.services(), f"/pgdb create {APP}", console_owner=True).ok
