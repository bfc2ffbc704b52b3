"""What every multi-step workflow (create, rotate, offboard) does between its steps: record
progress in the bot's state and show it, or stop at a step with the cause and how to resume."""

from __future__ import annotations

import logging

from bot.core.errors import PgdbError
from bot.core.model import Proposal, WorkflowStatus
from bot.core.reply import Reply, StepState
from handlers.context import CommandContext

log = logging.getLogger(__name__)


def progress(
    ctx: CommandContext,
    reply: Reply,
    workflow_id: int,
    step: str,
    *,
    proposal: Proposal | None = None,
) -> None:
    """``step`` is done: recorded (a crash resumes after it) and shown."""
    done = reply.step(step)
    log.info(
        "%s: %s %s",
        reply.title,
        step,
        done.state.value,
        extra={"correlation_id": ctx.correlation_id, "step": step, "state": done.state.value},
    )
    ctx.services.state.update_workflow(
        workflow_id,
        step=step,
        status=WorkflowStatus.RUNNING,
        proposal_url=proposal.url if proposal else None,
    )
    ctx.conversation.show(reply)


def stop_at(
    ctx: CommandContext, reply: Reply, workflow_id: int, step: str, *, cause: str, resume: str
) -> Reply:
    """Stop the workflow at ``step``: the step failed with ``cause``, the rest is skipped, the
    record says so, and the reply ends with ``resume`` (how a re-run finishes the work)."""
    failed = reply.step(step)
    failed.state, failed.detail = StepState.FAILED, cause
    for s in reply.steps:
        if s.state is StepState.PENDING:
            s.state = StepState.SKIPPED
    reply.ok = False
    reply.lines.append(f"Stopped at step “{failed.label}”: {cause}. {resume}")
    try:
        ctx.services.state.update_workflow(
            workflow_id, step=step, status=WorkflowStatus.FAILED, detail=cause[:500]
        )
    except PgdbError as exc:
        log.warning("could not record the failed workflow %d: %s", workflow_id, exc)
    return reply
