"""``/pgdb repair`` over the in-memory ports: each finding's remedy applied in dependency order
after one confirmation; what needs a human decision is listed, never guessed."""

from __future__ import annotations

from dataclasses import replace

from bot.core.model import StoredCredentials
from bot.core.reply import Reply, StepState
from bot.core.secret import Secret
from tests.fakes.services import MemoryWorld, run_command

APP = "docspell"
SECRET = f"{APP}-postgresql-credentials"


def onboarded() -> MemoryWorld:
    world = MemoryWorld(kubernetes=True)
    assert run(world, f"/pgdb create {APP}").ok
    world.git.merge(f"pgdb/{APP}")
    world.database.add_database(APP, owner=APP)
    world.cluster.onboard(APP)
    return world


def run(world: MemoryWorld, text: str) -> Reply:
    return run_command(world.services(), text, console_owner=True)


def steps(reply: Reply) -> list[tuple[str, StepState]]:
    return [(s.key, s.state) for s in reply.steps]


def test_a_healthy_app_has_nothing_to_repair() -> None:
    reply = run(onboarded(), f"/pgdb repair {APP} --yes")

    assert reply.title == f"Repair `{APP}`: nothing to repair" and reply.steps == []


def test_keys_then_role_then_resync_in_one_confirmation() -> None:
    world = onboarded()
    password = world.secrets.password(APP)
    assert password is not None
    world.database.drop_role(APP)
    world.secrets.apps[APP] = StoredCredentials(password=Secret(password))  # keys lost
    synced = world.cluster.secrets[SECRET]
    world.cluster.secrets[SECRET] = replace(synced, password=Secret("an older password"))

    plan = run(world, f"/pgdb repair {APP}")

    assert plan.title == f"Repair `{APP}`: confirm"
    assert steps(plan) == [
        ("credentials", StepState.PLANNED),
        ("role", StepState.PLANNED),
        ("resync", StepState.PLANNED),
    ]
    assert "(waits for: store the missing credentials)" in plan.step("role").detail
    assert APP not in world.database.roles  # nothing changed yet

    done = run(world, f"/pgdb repair {APP} --yes")

    assert done.title == f"Repair `{APP}`: done", done.steps
    assert {state for _, state in steps(done)} == {StepState.DONE}
    assert world.secrets.apps[APP] == StoredCredentials(
        username=APP, password=Secret(password), database=APP
    )
    assert world.database.can_login(APP, password)  # created with the stored password
    assert world.cluster.secrets[SECRET].password == Secret(password)  # the operator resynced
    assert run(world, f"/pgdb status {APP}").title == f"Status of `{APP}`: ok"


def test_missing_manifests_are_proposed_again() -> None:
    world = MemoryWorld()
    world.secrets.put(APP, "p" * 40)
    world.database.add_role(APP, password="p" * 40)

    done = run(world, f"/pgdb repair {APP} --yes")

    assert steps(done) == [("manifests", StepState.DONE)], done.steps
    assert f"pgdb/{APP}" in world.git.branches


def test_a_drifted_password_is_left_to_an_operator_with_the_command_to_run() -> None:
    world = MemoryWorld()
    world.secrets.put(APP, "the stored one " * 3)
    world.database.add_role(APP, password="another one " * 3)

    reply = run(world, f"/pgdb repair {APP} --yes")

    assert any(
        line.startswith("Not repaired here: password_drift")
        and line.endswith(f"/pgdb rotate {APP}")
        for line in reply.lines
    )
    assert world.database.can_login(APP, "another one " * 3)  # never changed by repair
    assert world.secrets.password(APP) == "the stored one " * 3


def test_a_step_that_fails_stops_what_waits_for_it() -> None:
    world = onboarded()
    world.database.drop_role(APP)
    password = world.secrets.password(APP)
    assert password is not None
    world.secrets.apps[APP] = StoredCredentials(password=Secret(password))
    world.secrets.fail("write")

    reply = run(world, f"/pgdb repair {APP} --yes")

    assert reply.title == f"Repair `{APP}`: incomplete"
    assert steps(reply) == [("credentials", StepState.FAILED), ("role", StepState.SKIPPED)]
    assert "which failed" in reply.step("role").detail
    assert APP not in world.database.roles


def test_an_unknown_app_is_not_repaired() -> None:
    world = MemoryWorld()

    reply = run(world, "/pgdb repair nobody-here --yes")

    assert reply.title == "Repair `nobody-here`: unknown app"
    assert world.secrets.calls.count("write") == 0
