"""The one step runner of the multi-step workflows (create, rotate, offboard): each step is
recorded, timed, logged and shown; the first that cannot go on stops the run, and the workflow
reports where and how a re-run resumes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.core.errors import PgdbError
from bot.core.model import Proposal, WorkflowStatus
from bot.core.reply import Reply, Step, StepState
from handlers.context import CommandContext

log = logging.getLogger(__name__)


class StepStopped(PgdbError):
    """A step cannot go on: the message names the cause and what to do. ``resume`` replaces
    the workflow's usual "run it again" when a re-run would not simply finish the work."""

    def __init__(self, message: str, *, resume: str | None = None) -> None:
        super().__init__(message)
        self.resume = resume


@dataclass(frozen=True)
class Stopped:
    """Where a run stopped, why, and (when not the workflow's usual) how to resume."""

    step: str
    cause: str
    resume: str | None = None


StepAction = Callable[[Step], None]


def run_steps(
    ctx: CommandContext,
    reply: Reply,
    workflow_id: int,
    *,
    kind: str,
    steps: Sequence[tuple[str, StepAction]],
    proposal: Callable[[], Proposal | None] = lambda: None,
) -> Stopped | None:
    """Run ``steps`` in order, each on its line of ``reply``. A step is recorded before it acts
    (a crash leaves the record at the step that was running, with the pull request once there
    is one), timed as ``<kind>-<step>``, logged, and shown once it settles. The first step that
    raises stops the run: an unexpected error is logged with its traceback and reported by
    correlation id only."""
    for key, act in steps:
        opened = proposal()
        ctx.services.state.update_workflow(
            workflow_id,
            step=key,
            status=WorkflowStatus.RUNNING,
            proposal_url=opened.url if opened else None,
        )
        step = reply.step(key)
        try:
            with ctx.services.metrics.step(f"{kind}-{key}"):
                act(step)
        except StepStopped as exc:
            return Stopped(key, str(exc), exc.resume)
        except PgdbError as exc:
            return Stopped(key, str(exc))
        except Exception as exc:
            log.exception("%s failed at %s [%s]", reply.title, key, ctx.correlation_id)
            cause = f"internal error {type(exc).__name__} (correlation id {ctx.correlation_id})"
            return Stopped(key, cause)
        log.info(
            "%s: %s %s",
            reply.title,
            key,
            step.state.value,
            extra={"correlation_id": ctx.correlation_id, "step": key, "state": step.state.value},
        )
        ctx.conversation.show(reply)
    return None


def fail_step(reply: Reply, key: str, cause: str) -> Step:
    """Step ``key`` failed with ``cause``; the steps not reached are skipped. The failed step."""
    failed = reply.step(key)
    failed.state, failed.detail = StepState.FAILED, cause
    for step in reply.steps:
        if step.state is StepState.PENDING:
            step.state = StepState.SKIPPED
    reply.ok = False
    return failed


def stop_at(
    ctx: CommandContext, reply: Reply, workflow_id: int, step: str, *, cause: str, resume: str
) -> Reply:
    """Stop the workflow at ``step``: the step failed with ``cause``, the rest is skipped, the
    record says so, and the reply ends with ``resume`` (how a re-run finishes the work)."""
    failed = fail_step(reply, step, cause)
    reply.lines.append(f"Stopped at step “{failed.label}”: {cause}. {resume}")
    try:
        ctx.services.state.update_workflow(
            workflow_id, step=step, status=WorkflowStatus.FAILED, detail=cause[:500]
        )
    except PgdbError as exc:
        log.warning("could not record the failed workflow %d: %s", workflow_id, exc)
    return reply
