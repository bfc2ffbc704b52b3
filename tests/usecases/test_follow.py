"""The follow-through after ``create`` over the in-memory ports: "ready"
once every layer is ok, said once in the command's thread; past the deadline, the layer that
blocks, also to the ops channel; one replica posts it."""

from __future__ import annotations

from datetime import timedelta

from handlers.findings import diagnose
from handlers.follow import READY, STUCK, follow_through
from handlers.observe import observe
from tests.fakes.chat import RecordingConversation, RecordingPlatform
from tests.fakes.services import MemoryWorld, run_command

APP = "docspell"
THREAD = "chat:C1:1700000000.000100"
DAY = timedelta(hours=24)


def created(world: MemoryWorld) -> None:
    conversation = RecordingConversation(message_link=THREAD)
    reply = run_command(world.services(), f"/pgdb create {APP}", conversation=conversation)
    assert reply.ok


def one_pass(
    world: MemoryWorld, *, ops: RecordingPlatform | None = None, deadline: timedelta = DAY
) -> list[str]:
    services = world.services()
    obs = observe(services)
    verdicts = diagnose(obs, services).verdicts
    done = follow_through(
        obs,
        services,
        verdicts,
        repliers=[world.chat],
        ops=[ops] if ops is not None else [],
        deadline=deadline,
    )
    return [f.result for f in done]


def test_ready_once_every_layer_is_ok_said_once_in_the_commands_thread() -> None:
    world = MemoryWorld()
    created(world)
    [pending] = world.state.pending_follow_ups()
    assert pending.message_link == THREAD

    assert one_pass(world) == []  # the proposal is not merged yet
    world.git.merge(f"pgdb/{APP}")
    assert one_pass(world) == []  # CloudNativePG has not created the database yet
    world.database.add_database(APP, owner=APP)

    assert one_pass(world) == [READY]
    [told] = world.chat.thread_replies
    assert told.link == THREAD and told.text.startswith(f"`{APP}` is ready")
    assert one_pass(world) == []  # once
    assert world.state.pending_follow_ups() == []


def test_past_the_deadline_the_blocking_layer_is_named_once_and_ops_hear_of_it() -> None:
    world = MemoryWorld()
    ops = RecordingPlatform(name="ops")
    created(world)

    assert one_pass(world, ops=ops, deadline=timedelta(0)) == [STUCK]

    [told] = world.chat.thread_replies
    assert "stuck at manifests" in told.text
    [alert] = ops.alerts
    assert alert.key == f"follow_stuck:{APP}"
    assert one_pass(world, ops=ops, deadline=timedelta(0)) == []


def test_a_post_that_fails_is_tried_again_on_the_next_pass() -> None:
    world = MemoryWorld()
    created(world)
    world.git.merge(f"pgdb/{APP}")
    world.database.add_database(APP, owner=APP)
    world.chat.down = True

    assert one_pass(world) == []
    assert len(world.state.pending_follow_ups()) == 1  # the mark was undone
    world.chat.down = False
    assert one_pass(world) == [READY]


def test_another_replica_that_posted_first_wins() -> None:
    world = MemoryWorld()
    created(world)
    [pending] = world.state.pending_follow_ups()
    assert world.state.mark_followed_up(pending.id, result=READY)  # the other replica

    world.git.merge(f"pgdb/{APP}")
    world.database.add_database(APP, owner=APP)

    assert one_pass(world) == []
    assert world.chat.thread_replies == []


def test_the_console_has_no_thread_so_no_follow_through() -> None:
    world = MemoryWorld()
    assert run_command(world.services(), f"/pgdb create {APP}", console_owner=True).ok

    assert world.state.pending_follow_ups() == []
