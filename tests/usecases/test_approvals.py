"""Approvals (``PGDB_REQUIRE_APPROVAL``) over the in-memory ports: a request, its announcement
in the ops channel, the decision, the requester told in their thread, expiry, four eyes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.model import ApprovalStatus
from bot.core.reply import Reply
from handlers.approvals import expire_due
from tests.fakes.chat import RecordingConversation
from tests.fakes.services import MemoryWorld, run_command

APP = "docspell"
REQUESTER, OPERATOR, OTHER_OPERATOR = "alice", "bob", "carol"
THREAD = "chat:C1:1700000000.000100"  # the requester's message, on the world's chat platform


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


def say(world: MemoryWorld, text: str, *, user: str, approval: str = "requesters") -> Reply:
    services = world.services(
        require_approval=approval, operators=f"{OPERATOR},{OTHER_OPERATOR}", approval_ttl="1h"
    )
    conversation = RecordingConversation(message_link=THREAD)
    return run_command(services, text, user=user, platform="chat", conversation=conversation)


def nothing_created(world: MemoryWorld) -> bool:
    return (
        APP not in world.secrets.apps
        and APP not in world.database.roles
        and not [b for b in world.git.branches if b.startswith("pgdb/")]
    )


def test_a_requesters_create_waits_is_announced_then_runs_once_approved(
    world: MemoryWorld,
) -> None:
    asked = say(world, f"/pgdb create {APP}", user=REQUESTER)

    assert asked.outcome == "pending"
    assert asked.title == f"Request #1: `{APP}` waits for an operator's approval"
    assert nothing_created(world)
    [announced] = world.chat.alerts
    assert announced.title == f"Request #1: {REQUESTER} asks for `/pgdb create {APP}`"
    assert [b.command for b in announced.buttons] == ["/pgdb approve 1", "/pgdb deny 1"]
    [request] = world.approvals.pending()
    assert (request.requester, request.message_link) == (REQUESTER, THREAD)
    assert request.threads == {"chat": "chat:1"}
    again = say(world, f"/pgdb create {APP}", user=REQUESTER)
    assert again.title == f"`{APP}` already waits for approval (request #1)"
    refused = say(world, "/pgdb approve 1", user=REQUESTER)
    assert refused.outcome == "refused" and nothing_created(world)

    approved = say(world, "/pgdb approve 1", user=OPERATOR)

    assert approved.ok and approved.title == f"Onboarded `{APP}`", approved.steps
    assert approved.lines[0] == f"Approved by {OPERATOR}: request #1 by {REQUESTER}."
    assert world.approvals.requests[1].status is ApprovalStatus.APPROVED
    password = world.secrets.password(APP)
    assert password is not None and world.database.can_login(APP, password)
    [record] = world.state.records(APP)
    assert record.requester == REQUESTER  # the create ran as the requester asked it
    [told] = world.chat.thread_replies
    assert told.link == THREAD
    assert told.text.startswith(f"Request #1 was approved by {OPERATOR}. Onboarded `{APP}`.")
    assert password not in told.text
    # the decision also went to the announcement's thread
    assert world.chat.alerts[-1].thread == "chat:1" and world.chat.alerts[-1].resolved
    twice = say(world, "/pgdb approve 1", user=OTHER_OPERATOR)
    assert f"was already approved by {OPERATOR}" in twice.lines[0]


def test_an_operators_create_needs_no_approval_under_requesters(world: MemoryWorld) -> None:
    assert say(world, f"/pgdb create {APP}", user=OPERATOR).ok
    assert world.approvals.requests == {}


def test_under_all_an_operator_never_approves_their_own_request(world: MemoryWorld) -> None:
    asked = say(world, f"/pgdb create {APP}", user=OPERATOR, approval="all")
    assert asked.outcome == "pending"

    own = say(world, "/pgdb approve 1", user=OPERATOR, approval="all")

    assert own.outcome == "refused" and "another operator decides it" in own.lines[0]
    assert nothing_created(world)
    assert say(world, "/pgdb approve 1", user=OTHER_OPERATOR, approval="all").ok


def test_a_dry_run_needs_no_approval(world: MemoryWorld) -> None:
    plan = say(world, f"/pgdb create {APP} --dry-run", user=REQUESTER, approval="all")

    assert plan.title == f"Plan for `{APP}`"
    assert world.approvals.requests == {} and nothing_created(world)


def test_a_denial_creates_nothing_and_reaches_the_requesters_thread(world: MemoryWorld) -> None:
    say(world, f"/pgdb create {APP}", user=REQUESTER)

    denied = say(world, "/pgdb deny 1 use the team's existing database", user=OPERATOR)

    assert denied.title == f"Request #1 denied: `{APP}` is not created"
    assert nothing_created(world)
    [told] = world.chat.thread_replies
    assert told.link == THREAD and "use the team's existing database" in told.text
    late = say(world, "/pgdb approve 1", user=OTHER_OPERATOR)
    assert f"was already denied by {OPERATOR}" in late.lines[0]


def test_an_expired_request_is_told_and_can_be_asked_again(world: MemoryWorld) -> None:
    say(world, f"/pgdb create {APP}", user=REQUESTER)
    world.clock.advance(timedelta(hours=2))  # past PGDB_APPROVAL_TTL

    [expired] = expire_due(world.services(approval_ttl="1h"))

    assert expired.status is ApprovalStatus.EXPIRED and expired.decided_by == "pgdb-bot"
    assert "expired" in world.chat.thread_replies[-1].text
    assert world.state.audit[-1].result == "expired"
    late = say(world, "/pgdb approve 1", user=OPERATOR)
    assert f"{REQUESTER} can ask again with `/pgdb create {APP}`" in late.lines[0]
    assert say(world, f"/pgdb create {APP}", user=REQUESTER).title.startswith("Request #2")
    assert nothing_created(world)


def test_an_approval_holds_for_the_requesters_rerun_of_a_create_that_stopped(
    world: MemoryWorld,
) -> None:
    say(world, f"/pgdb create {APP}", user=REQUESTER)
    world.database.fail("create_role", times=1)
    stopped = say(world, "/pgdb approve 1", user=OPERATOR)
    assert not stopped.ok and any("Stopped at step" in line for line in stopped.lines)

    rerun = say(world, f"/pgdb create {APP}", user=REQUESTER)
    other = say(world, f"/pgdb create {APP}", user="mallory")

    assert rerun.ok and rerun.title == f"Onboarded `{APP}`", rerun.steps
    assert other.outcome == "pending"  # an approval is not a pass for someone else


def test_a_pending_request_shows_in_status(world: MemoryWorld) -> None:
    say(world, f"/pgdb create {APP}", user=REQUESTER)

    status = say(world, f"/pgdb status {APP}", user=REQUESTER)
    fleet = say(world, "/pgdb status", user=REQUESTER)

    assert status.title == f"Status of `{APP}`: pending approval"
    assert any(f"request #1: `/pgdb create {APP}` by {REQUESTER}" in line for line in fleet.lines)


def test_without_a_chat_platform_the_requester_is_told_to_ask_an_operator(
    world: MemoryWorld,
) -> None:
    world.chat.down = True

    asked = say(world, f"/pgdb create {APP}", user=REQUESTER)

    assert asked.outcome == "pending"
    assert "ask an operator to run `/pgdb approve 1`" in asked.lines[-1]
