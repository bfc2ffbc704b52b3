"""The ``pgdb/*`` checks on a pull request's head commit: commit statuses, and check runs too
when the bot is a GitHub App (tokens cannot write check runs)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from bot.adapters.github.connection import PAGE_SIZE, GitHubConnection
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


def read_checks(conn: GitHubConnection, sha: str) -> tuple[CheckResult, ...]:
    """The latest ``pgdb/*`` status of each context on ``sha`` (one call: the combined
    status, the latest of each context)."""
    check_ref(sha)

    def read() -> list[CheckResult]:
        combined = conn.get(f"commits/{sha}/status", params={"per_page": PAGE_SIZE})
        return [
            CheckResult(
                context=str(status["context"]),
                state=_STATE_IN.get(str(status["state"]), CheckState.PENDING),
                description=str(status.get("description") or ""),
            )
            for status in combined["statuses"]
            if str(status["context"]).startswith(CONTEXT_PREFIX)
        ]

    found = conn.call(f"reading the statuses of {sha[:12]}", read)
    return tuple(sorted(found, key=lambda c: (_CHECK_ORDER.get(c.context, 9), c.context)))


def publish_checks(
    conn: GitHubConnection, *, proposal: Proposal, checks: list[CheckResult]
) -> None:
    """Commit statuses on the head commit; check runs too when authenticated as an App
    (tokens cannot write check runs: GitHub answers 403, so they are not attempted)."""
    sha = proposal.head_sha
    check_ref(sha)
    link = _link(proposal)
    for check in checks:
        status: dict[str, Any] = {
            "state": _STATE_OUT[check.state],
            "description": _short(check.description),
            "context": check.context,
        }
        if link is not None:
            status["target_url"] = link
        conn.call(
            f"posting status {check.context} on {sha[:12]}",
            partial(conn.post, f"statuses/{sha}", status),
            need=STATUSES,
            missing=f"commit {sha} is not in {conn.repo} — run the command again",
        )
    if conn.as_app:
        _check_runs(conn, proposal, checks)


def _check_runs(conn: GitHubConnection, proposal: Proposal, checks: Iterable[CheckResult]) -> None:
    link = _link(proposal)
    for check in checks:
        done = check.state is not CheckState.PENDING
        run: dict[str, Any] = {
            "name": check.context,
            "head_sha": proposal.head_sha,
            "status": "completed" if done else "in_progress",
            "output": {
                "title": _short(check.description),
                "summary": f"`{check.context}`: {_STATE_OUT[check.state]}. {check.description}",
            },
        }
        if done:
            run["conclusion"] = _STATE_OUT[check.state]
        if link is not None:
            run["details_url"] = link

        try:
            conn.call(
                f"posting check run {check.context}",
                partial(conn.post, "check-runs", run),
                need=CHECKS,
            )
        except BackendUnavailable as exc:
            if "(403" not in str(exc):
                raise
            # the statuses carry the same result: a missing Checks permission costs the
            # details view only, so it is said in the log, not as a failed workflow
            log.warning("%s", exc)
            return


def _link(proposal: Proposal) -> str | None:
    """The pull request's address, for the checks to link to (a web address only)."""
    return proposal.url if proposal.url.startswith(("https://", "http://")) else None


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= STATUS_DESCRIPTION_MAX:
        return one_line
    return one_line[: STATUS_DESCRIPTION_MAX - 1] + "…"
