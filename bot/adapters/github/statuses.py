"""The ``pgdb/*`` checks on a pull request's head commit: commit statuses, and check runs too
when the bot is a GitHub App (tokens cannot write check runs)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from github.GithubObject import NotSet
from github.Repository import Repository

from bot.adapters.github.connection import GitHubConnection
from bot.adapters.github.errors import CHECKS, STATUSES
from bot.adapters.github.refs import check_ref
from bot.core.errors import BackendUnavailable
from bot.core.model import CheckResult, CheckState, Proposal
from bot.core.names import ONBOARD_BRANCH_PREFIX

log = logging.getLogger(__name__)

STATUS_DESCRIPTION_MAX = 140  # GitHub truncates nothing: it refuses longer descriptions
CONTEXT_PREFIX = ONBOARD_BRANCH_PREFIX  # the bot's contexts: pgdb/secret, pgdb/role…
_CHECK_ORDER = {"pgdb/secret": 0, "pgdb/role": 1, "pgdb/manifests": 2}
_STATE_OUT = {
    CheckState.SUCCESS: "success",
    CheckState.FAILURE: "failure",
    CheckState.PENDING: "pending",
}
_STATE_IN = {
    "success": CheckState.SUCCESS,
    "failure": CheckState.FAILURE,
    "error": CheckState.FAILURE,
    "pending": CheckState.PENDING,
}


def read_checks(conn: GitHubConnection, repo: Repository, sha: str) -> tuple[CheckResult, ...]:
    """The latest ``pgdb/*`` status of each context on ``sha`` (one call)."""
    combined = conn.call(
        f"reading the statuses of {sha[:12]}",
        lambda: repo.get_commit(sha).get_combined_status(),
    )
    found = [
        CheckResult(
            context=status.context,
            state=_STATE_IN.get(status.state, CheckState.PENDING),
            description=status.description or "",
        )
        for status in combined.statuses
        if status.context.startswith(CONTEXT_PREFIX)
    ]
    return tuple(sorted(found, key=lambda c: (_CHECK_ORDER.get(c.context, 9), c.context)))


def publish_checks(
    conn: GitHubConnection, *, proposal: Proposal, checks: list[CheckResult]
) -> None:
    """Commit statuses on the head commit; check runs too when authenticated as an App
    (tokens cannot write check runs: GitHub answers 403, so they are not attempted)."""
    check_ref(proposal.head_sha)
    repo = conn.repository()
    commit = repo.get_commit(proposal.head_sha)
    target = proposal.url if proposal.url.startswith(("https://", "http://")) else NotSet
    for check in checks:
        conn.call(
            f"posting status {check.context} on {proposal.head_sha[:12]}",
            lambda check=check: commit.create_status(  # type: ignore[misc]
                _STATE_OUT[check.state],
                target_url=target,
                description=_short(check.description),
                context=check.context,
            ),
            need=STATUSES,
            missing=f"commit {proposal.head_sha} is not in {conn.repo} — run the command again",
        )
    if conn.as_app:
        _check_runs(conn, repo, proposal, checks)


def _check_runs(
    conn: GitHubConnection, repo: Repository, proposal: Proposal, checks: Iterable[CheckResult]
) -> None:
    details = proposal.url if proposal.url.startswith(("https://", "http://")) else NotSet
    for check in checks:
        done = check.state is not CheckState.PENDING

        def run(check: CheckResult = check, done: bool = done) -> None:
            repo.create_check_run(
                name=check.context,
                head_sha=proposal.head_sha,
                status="completed" if done else "in_progress",
                conclusion=_STATE_OUT[check.state] if done else NotSet,
                details_url=details,
                output={
                    "title": _short(check.description),
                    "summary": f"`{check.context}`: {_STATE_OUT[check.state]}. {check.description}",
                },
            )

        try:
            conn.call(f"posting check run {check.context}", run, need=CHECKS)
        except BackendUnavailable as exc:
            if "(403" not in str(exc):
                raise
            # the statuses carry the same result: a missing Checks permission costs the
            # details view only, so it is said in the log, not as a failed workflow
            log.warning("%s", exc)
            return


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= STATUS_DESCRIPTION_MAX:
        return one_line
    return one_line[: STATUS_DESCRIPTION_MAX - 1] + "…"
