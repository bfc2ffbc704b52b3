"""The repository as the bot reads it: the base branch's manifests folder, one file, and the
``pgdb/*`` pull requests (as :class:`~bot.core.model.Proposal` values).

Every read is a fixed number of calls whatever the number of apps; checks are read for one
branch at a time (:func:`proposal`), never for every pull request of a snapshot.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.adapters.github.connection import PAGE_SIZE, GitHubConnection
from bot.adapters.github.errors import SYSTEM, GitHubError, details
from bot.adapters.github.refs import check_branch, check_ref, clean_path
from bot.adapters.github.statuses import read_checks
from bot.core.errors import BackendUnavailable
from bot.core.model import CheckResult, GitSnapshot, Proposal, ProposalState
from bot.core.names import OFFBOARD_BRANCH_PREFIX, ONBOARD_BRANCH_PREFIX, UPDATE_BRANCH_PREFIX


@dataclass(frozen=True, kw_only=True)
class Pull:
    """What the bot reads of a pull request (list view; ``mergeable`` only in the full one)."""

    number: int
    state: str  # open, closed
    merged: bool
    head_ref: str
    head_label: str  # <owner>:<branch>: tells a branch of this repository from a fork's
    head_sha: str
    base_ref: str
    url: str
    created_at: datetime | None
    mergeable: bool | None = None

    @classmethod
    def of(cls, data: Any) -> Pull:
        """From GitHub's JSON; KeyError or TypeError when it is not a pull request."""
        head, base = data["head"], data["base"]
        created, mergeable = data.get("created_at"), data.get("mergeable")
        return cls(
            number=int(data["number"]),
            state=str(data["state"]),
            merged=data.get("merged_at") is not None,
            head_ref=str(head["ref"]),
            head_label=str(head["label"]),
            head_sha=str(head["sha"]),
            base_ref=str(base["ref"]),
            url=str(data["html_url"]),
            created_at=_moment(created) if isinstance(created, str) else None,
            mergeable=mergeable if isinstance(mergeable, bool) else None,
        )


def snapshot(conn: GitHubConnection, *, manifests_path: str) -> GitSnapshot:
    """The base branch's manifests folder and every open ``pgdb/*`` pull request.

    A fixed number of calls whatever the number of apps: the base ref, the listing of the
    folder's parent, the folder's tree, the kustomization blob, and the open pull
    requests (one call per 100). Checks are not read here (one call per PR); ``proposal``
    reads them for one branch.
    """
    folder = clean_path(manifests_path)
    base_sha = branch_sha(conn, conn.base_branch)
    listing = _list_folder(conn, base_sha, folder)
    kustomization = None
    blob = listing.get("kustomization.yaml")
    if blob is not None:
        kustomization = conn.call(
            f"reading {folder}/kustomization.yaml on {conn.base_branch}",
            lambda: _blob_text(conn, blob),
        )
    pulls = conn.call(
        "listing the open pull requests",
        lambda: [
            Pull.of(data)
            for data in conn.pages(
                "pulls",
                params={
                    "state": "open",
                    "base": conn.base_branch,
                    "sort": "created",
                    "direction": "asc",
                },
            )
        ],
    )
    proposals: dict[str, Proposal] = {}
    offboardings: dict[str, Proposal] = {}
    updates: dict[str, Proposal] = {}
    for pr in pulls:
        app = _app_of(conn, pr)
        if app is not None and app not in proposals:
            proposals[app] = to_proposal(pr)
        leaving = _app_of(conn, pr, prefix=OFFBOARD_BRANCH_PREFIX)
        if leaving is not None and leaving not in offboardings:
            offboardings[leaving] = to_proposal(pr)
        changing = _app_of(conn, pr, prefix=UPDATE_BRANCH_PREFIX)
        if changing is not None and changing not in updates:
            updates[changing] = to_proposal(pr)
    return GitSnapshot(
        base_branch=conn.base_branch,
        base_sha=base_sha,
        files=frozenset(listing),
        kustomization=kustomization,
        proposals=dict(sorted(proposals.items())),
        offboardings=dict(sorted(offboardings.items())),
        updates=dict(sorted(updates.items())),
    )


def read_file(conn: GitHubConnection, *, ref: str, path: str) -> str | None:
    """A file's text at a commit or branch (contents API), or None when it is absent."""
    check_ref(ref)
    clean = clean_path(path)

    def read() -> str | None:
        try:
            found = conn.get(f"contents/{clean}", params={"ref": ref})
        except GitHubError as exc:
            if exc.status == 404 and "no commit found" not in details(exc).lower():
                return None
            raise
        if not isinstance(found, dict) or found["type"] != "file":
            return None  # a folder, a symlink or a submodule
        if found.get("encoding") == "base64":
            return _decode(str(found["content"]))
        # files over 1 MB come without content: read the blob instead
        return _blob_text(conn, str(found["sha"]))

    return conn.call(
        f"reading {clean} at {ref}",
        read,
        missing=f"{ref} is neither a branch nor a commit of {conn.repo} — run the command again",
    )


def proposal(conn: GitHubConnection, *, branch: str) -> Proposal | None:
    """The branch's pull request in full detail (mergeable, head's parent, checks): the
    open one, else the newest closed or merged one; None when it never had one.

    A ``pgdb/*`` branch without any pull request (a run that stopped before opening it)
    is no proposal: the workflow rebuilds it on the current base and opens one.
    """
    check_branch(branch)
    pulls = _pulls(conn, branch, state="all")
    if not pulls:
        return None
    pr = next((p for p in pulls if p.state == "open"), pulls[0])
    if pr.state != "open":
        return to_proposal(pr)
    number = pr.number
    detail = conn.call(
        f"reading pull request #{number}", lambda: Pull.of(conn.get(f"pulls/{number}"))
    )
    head_sha = detail.head_sha
    parents = conn.call(
        f"reading the head commit of pull request #{number}",
        lambda: [str(p["sha"]) for p in conn.get(_commit_path(head_sha))["parents"]],
    )
    return to_proposal(
        detail,
        base_sha=parents[0] if parents else None,
        mergeable=detail.mergeable,
        checks=read_checks(conn, head_sha),
    )


def branch_sha(conn: GitHubConnection, branch: str) -> str:
    """The commit ``branch`` points at; a missing base branch names its setting."""
    check_branch(branch)
    hint = (
        f"branch {branch} does not exist in {conn.repo} — set PGDB_GITOPS_BASE_BRANCH to"
        " the repository's base branch"
        if branch == conn.base_branch
        else f"branch {branch} does not exist in {conn.repo} — run the command again"
    )
    return conn.call(
        f"reading branch {branch}",
        lambda: str(conn.get(f"git/ref/heads/{branch}")["object"]["sha"]),
        missing=hint,
    )


def open_pull(conn: GitHubConnection, branch: str) -> Pull | None:
    """The open pull request from ``branch`` of this repository into the base branch."""
    return next(iter(_pulls(conn, branch, state="open")), None)


def to_proposal(
    pr: Pull,
    *,
    base_sha: str | None = None,
    mergeable: bool | None = None,
    checks: tuple[CheckResult, ...] = (),
) -> Proposal:
    """A pull request as the workflow sees it; what the list view lacks is passed in."""
    if pr.state == "open":
        state = ProposalState.OPEN
    else:
        state = ProposalState.MERGED if pr.merged else ProposalState.CLOSED
    return Proposal(
        branch=pr.head_ref,
        head_sha=pr.head_sha,
        url=pr.url,
        state=state,
        number=pr.number,
        base_sha=base_sha,
        mergeable=mergeable,
        created_at=pr.created_at,
        checks=checks,
    )


def _list_folder(conn: GitHubConnection, commit: str, folder: str) -> dict[str, str]:
    """Files under ``folder`` at ``commit``: path relative to the folder -> blob sha.

    Two calls whatever the size of the repository: the parent's listing gives the
    folder's tree, read recursively. A missing folder is an empty one.
    """
    parent, _, leaf = folder.rpartition("/")

    def tree_of_folder() -> str | None:
        try:
            found = conn.get(f"contents/{parent}" if parent else "contents", params={"ref": commit})
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        items = found if isinstance(found, list) else [found]
        return next(
            (str(i["sha"]) for i in items if i["name"] == leaf and i["type"] == "dir"), None
        )

    tree_sha = conn.call(
        f"listing {parent or 'the repository root'} on {conn.base_branch}", tree_of_folder
    )
    if tree_sha is None:
        return {}

    def blobs() -> dict[str, str] | None:
        check_ref(tree_sha)
        tree = conn.get(f"git/trees/{tree_sha}", params={"recursive": 1})
        if tree.get("truncated"):
            return None
        return {str(i["path"]): str(i["sha"]) for i in tree["tree"] if i["type"] == "blob"}

    listing = conn.call(f"listing {folder} on {conn.base_branch}", blobs)
    if listing is None:
        raise BackendUnavailable(
            SYSTEM,
            f"the listing of {folder} in {conn.repo} is too large for one call (GitHub"
            " truncated it) — move other files out of PGDB_GITOPS_PATH",
        )
    return listing


def _pulls(conn: GitHubConnection, branch: str, *, state: str) -> list[Pull]:
    """Pull requests from ``branch`` of this repository into the base branch, newest first
    (the first 100: one call).

    ``head`` must carry the owner: without it GitHub ignores the filter and lists every
    pull request of the repository.
    """
    found = conn.call(
        f"looking up the pull request for {branch}",
        lambda: [
            Pull.of(data)
            for data in conn.get(
                "pulls",
                params={
                    "state": state,
                    "head": f"{conn.owner}:{branch}",
                    "base": conn.base_branch,
                    "sort": "created",
                    "direction": "desc",
                    "per_page": PAGE_SIZE,
                },
            )
        ],
    )
    return [pr for pr in found if _from_here(conn, pr) and pr.head_ref == branch]


def _from_here(conn: GitHubConnection, pr: Pull) -> bool:
    """A pull request from a branch of this repository (not a fork) into the base branch
    (``pgdb/<app>``, or another branch the bot owns such as ``pgdb-offboard/<app>``)."""
    return pr.head_label == f"{conn.owner}:{pr.head_ref}" and pr.base_ref == conn.base_branch


def _app_of(conn: GitHubConnection, pr: Pull, *, prefix: str = ONBOARD_BRANCH_PREFIX) -> str | None:
    """The app of a ``<prefix><app>`` pull request from this repository (not a fork) into
    the base branch; None for any other pull request."""
    if not _from_here(conn, pr):
        return None
    app = pr.head_ref.removeprefix(prefix)
    if app == pr.head_ref or not app or "/" in app:
        return None
    return app


def _blob_text(conn: GitHubConnection, sha: str) -> str:
    """A blob's text (git data API: any size, base64)."""
    check_ref(sha)  # (a sha GitHub gave: checked like any name that goes into a URL)
    return _decode(str(conn.get(f"git/blobs/{sha}")["content"]))


def _commit_path(sha: str) -> str:
    check_ref(sha)
    return f"git/commits/{sha}"


def _decode(content: str) -> str:
    """GitHub's base64 (wrapped in lines) as text."""
    return base64.b64decode(content).decode("utf-8", "replace")


def _moment(text: str) -> datetime:
    """An ISO 8601 time of GitHub's (``2026-01-02T03:04:05Z``), in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)
