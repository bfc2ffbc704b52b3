"""What the bot writes to GitHub: one commit on the base branch's head (git data API: the
parent, one tree with the contents inline, the commit), the ``pgdb/*`` branch pointing at it,
and one pull request with the configured labels and reviewers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from bot.adapters.github.connection import GitHubConnection
from bot.adapters.github.errors import CONTENTS, PULLS, GitHubError, details
from bot.adapters.github.reading import Pull, branch_sha, open_pull, to_proposal
from bot.adapters.github.refs import SHA, check_branch, check_ref, clean_path
from bot.adapters.github.statuses import read_checks
from bot.core.errors import BackendUnavailable, ConflictError
from bot.core.model import Proposal

log = logging.getLogger(__name__)


def commit(
    conn: GitHubConnection, *, parent: str, files: Mapping[str, str | None], message: str
) -> str:
    """A commit on ``parent`` whose tree adds or replaces ``files`` (None deletes the
    path: a tree entry with ``"sha": null``; GitHub refuses it for an absent path); its sha.

    Three calls: the parent (for its tree), the new tree with the contents inline (no
    separate blobs), the commit.
    """
    parent_sha = parent if SHA.fullmatch(parent) else branch_sha(conn, parent)
    changes: list[dict[str, Any]] = [
        {"path": clean_path(path), "mode": "100644", "type": "blob"}
        | ({"content": text} if text is not None else {"sha": None})
        for path, text in files.items()
    ]
    base_tree = conn.call(
        f"reading commit {parent_sha[:12]}",
        lambda: str(conn.get(f"git/commits/{parent_sha}")["tree"]["sha"]),
        missing=f"commit {parent_sha} is not in {conn.repo} — run the command again",
    )
    tree = conn.call(
        "writing the tree",
        lambda: str(conn.post("git/trees", {"base_tree": base_tree, "tree": changes})["sha"]),
        need=CONTENTS,
    )
    made = {"message": message, "tree": tree, "parents": [parent_sha]}
    return conn.call(
        "writing the commit",
        lambda: str(conn.post("git/commits", made)["sha"]),
        need=CONTENTS,
    )


def set_branch(conn: GitHubConnection, *, branch: str, sha: str) -> None:
    """Create ``refs/heads/<branch>`` at ``sha``, or move it there (forced: the bot owns
    ``pgdb/*`` and a rebuilt commit does not descend from the old one)."""
    check_branch(branch)
    check_ref(sha)
    if branch == conn.base_branch:
        raise ValueError(f"the bot never moves the base branch {branch}")

    def point() -> None:
        try:
            conn.post("git/refs", {"ref": f"refs/heads/{branch}", "sha": sha})
            return
        except GitHubError as exc:
            if exc.status != 422 or "already exists" not in details(exc).lower():
                raise
        try:
            conn.patch(f"git/refs/heads/{branch}", {"sha": sha, "force": True})
        except GitHubError as exc:
            if exc.status == 422 and "does not exist" in details(exc).lower():
                raise ConflictError(
                    f"branch {branch} was deleted in {conn.repo} while the bot was moving it —"
                    " run the command again"
                ) from None
            raise

    conn.call(f"pointing branch {branch} at {sha[:12]}", point, need=CONTENTS)


def open_proposal(
    conn: GitHubConnection,
    *,
    branch: str,
    title: str,
    body: str,
    labels: Sequence[str],
    reviewers: Sequence[str],
) -> Proposal:
    """The open pull request for ``branch`` (found with ``head=<owner>:<branch>``), else a
    new one with ``labels`` and ``reviewers``. Never a second one: GitHub refuses a
    duplicate (422 "already exists"), and then the open one is looked up and reused.

    Creating first costs one call where none is open (a first onboarding, the usual case);
    looking up first would cost one more there, and the caller already knows from its
    snapshot whether one is open."""
    check_branch(branch)

    def create() -> Pull | None:
        try:
            made = conn.post(
                "pulls", {"base": conn.base_branch, "head": branch, "title": title, "body": body}
            )
        except GitHubError as exc:
            if exc.status == 422 and "already exists" in details(exc).lower():
                return None
            raise
        return Pull.of(made)

    made = conn.call(f"opening a pull request for {branch}", create, need=PULLS)
    if made is None:
        existing = open_pull(conn, branch)
        if existing is None:
            raise ConflictError(
                f"GitHub says a pull request for {branch} exists but lists none open —"
                " run the command again"
            )
        return to_proposal(existing, checks=read_checks(conn, existing.head_sha))
    _label_and_request_reviews(conn, made.number, labels=labels, reviewers=reviewers)
    return to_proposal(made)


def _label_and_request_reviews(
    conn: GitHubConnection, number: int, *, labels: Sequence[str], reviewers: Sequence[str]
) -> None:
    """Labels and reviewers from the configuration. The pull request exists already: a
    refusal (a reviewer who is no collaborator…) is logged with its fix, not raised."""
    if labels:
        try:
            conn.call(
                f"labelling pull request #{number}",
                partial(conn.post, f"issues/{number}/labels", {"labels": list(labels)}),
                need=PULLS,
            )
        except BackendUnavailable as exc:
            log.warning("%s (PGDB_GITHUB_LABELS)", exc)
    if reviewers:
        users = [r for r in reviewers if "/" not in r]
        teams = [r.split("/", 1)[1] for r in reviewers if "/" in r]
        request: dict[str, list[str]] = {}
        if users:
            request["reviewers"] = users
        if teams:
            request["team_reviewers"] = teams
        try:
            conn.call(
                f"requesting reviews on pull request #{number}",
                partial(conn.post, f"pulls/{number}/requested_reviewers", request),
                need=PULLS,
            )
        except BackendUnavailable as exc:
            log.warning(
                "%s (PGDB_GITHUB_REVIEWERS: users must be collaborators, teams written"
                " org/team-slug)",
                exc,
            )
