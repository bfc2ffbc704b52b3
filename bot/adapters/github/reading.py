"""The repository as the bot reads it: the base branch's manifests folder, one file, and the
``pgdb/*`` pull requests (as :class:`~bot.core.model.Proposal` values).

Every read is a fixed number of calls whatever the number of apps; checks are read for one
branch at a time (:func:`proposal`), never for every pull request of a snapshot.
"""

from __future__ import annotations

import base64
from datetime import UTC
from itertools import islice

from github import GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository

from bot.adapters.github.connection import PAGE_SIZE, GitHubConnection
from bot.adapters.github.errors import SYSTEM, details
from bot.adapters.github.refs import check_branch, check_ref, clean_path
from bot.adapters.github.statuses import read_checks
from bot.core.errors import BackendUnavailable
from bot.core.model import CheckResult, GitSnapshot, Proposal, ProposalState
from bot.core.names import OFFBOARD_BRANCH_PREFIX, ONBOARD_BRANCH_PREFIX, UPDATE_BRANCH_PREFIX


def snapshot(conn: GitHubConnection, *, manifests_path: str) -> GitSnapshot:
    """The base branch's manifests folder and every open ``pgdb/*`` pull request.

    A fixed number of calls whatever the number of apps: the base ref, the listing of the
    folder's parent, the folder's tree, the kustomization blob, and the open pull
    requests (one call per 100). Checks are not read here (one call per PR); ``proposal``
    reads them for one branch.
    """
    folder = clean_path(manifests_path)
    repo = conn.repository()
    base_sha = branch_sha(conn, repo, conn.base_branch)
    listing = _list_folder(conn, repo, base_sha, folder)
    kustomization = None
    blob = listing.get("kustomization.yaml")
    if blob is not None:
        kustomization = conn.call(
            f"reading {folder}/kustomization.yaml on {conn.base_branch}",
            lambda: _decode(repo.get_git_blob(blob).content),
        )
    pulls = conn.call(
        "listing the open pull requests",
        lambda: list(
            repo.get_pulls(state="open", base=conn.base_branch, sort="created", direction="asc")
        ),
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
    repo = conn.repository()

    def read() -> str | None:
        try:
            found = repo.get_contents(clean, ref=ref)
        except GithubException as exc:
            if exc.status == 404 and "no commit found" not in details(exc).lower():
                return None
            raise
        if isinstance(found, list) or found.type != "file":
            return None  # a folder, a symlink or a submodule
        if found.encoding == "base64":
            return found.decoded_content.decode("utf-8", "replace")
        # files over 1 MB come without content: read the blob instead
        return _decode(repo.get_git_blob(found.sha).content)

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
    repo = conn.repository()
    pulls = _pulls(conn, repo, branch, state="all")
    if not pulls:
        return None
    pr = next((p for p in pulls if p.state == "open"), pulls[0])
    if pr.state != "open":
        return to_proposal(pr)
    number = pr.number
    detail = conn.call(
        f"reading pull request #{number}",
        lambda: _completed(repo.get_pull(number)),
    )
    head_sha = detail.head.sha
    parents = conn.call(
        f"reading the head commit of pull request #{number}",
        lambda: [p.sha for p in repo.get_git_commit(head_sha).parents],
    )
    return to_proposal(
        detail,
        base_sha=parents[0] if parents else None,
        mergeable=detail.mergeable,
        checks=read_checks(conn, repo, head_sha),
    )


def branch_sha(conn: GitHubConnection, repo: Repository, branch: str) -> str:
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
        lambda: repo.get_git_ref(f"heads/{branch}").object.sha,
        missing=hint,
    )


def open_pull(conn: GitHubConnection, repo: Repository, branch: str) -> PullRequest | None:
    """The open pull request from ``branch`` of this repository into the base branch."""
    return next(iter(_pulls(conn, repo, branch, state="open")), None)


def to_proposal(
    pr: PullRequest,
    *,
    base_sha: str | None = None,
    mergeable: bool | None = None,
    checks: tuple[CheckResult, ...] = (),
) -> Proposal:
    """A pull request as the workflow sees it; what the list view lacks is passed in."""
    if pr.state == "open":
        state = ProposalState.OPEN
    else:
        state = ProposalState.MERGED if pr.merged_at is not None else ProposalState.CLOSED
    created = pr.created_at
    return Proposal(
        branch=pr.head.ref,
        head_sha=pr.head.sha,
        url=pr.html_url,
        state=state,
        number=pr.number,
        base_sha=base_sha,
        mergeable=mergeable,
        created_at=created.astimezone(UTC) if created is not None else None,
        checks=checks,
    )


def _list_folder(
    conn: GitHubConnection, repo: Repository, commit: str, folder: str
) -> dict[str, str]:
    """Files under ``folder`` at ``commit``: path relative to the folder -> blob sha.

    Two calls whatever the size of the repository: the parent's listing gives the
    folder's tree, read recursively. A missing folder is an empty one.
    """
    parent, _, leaf = folder.rpartition("/")

    def entries() -> list[tuple[str, str, str]]:
        try:
            found = repo.get_contents(parent, ref=commit)
        except GithubException as exc:
            if exc.status == 404:
                return []
            raise
        items = found if isinstance(found, list) else [found]
        return [(item.name, item.type, item.sha) for item in items]

    where = f"listing {parent or 'the repository root'} on {conn.base_branch}"
    tree_sha = next(
        (sha for name, kind, sha in conn.call(where, entries) if name == leaf and kind == "dir"),
        None,
    )
    if tree_sha is None:
        return {}
    tree = conn.call(
        f"listing {folder} on {conn.base_branch}",
        lambda: repo.get_git_tree(tree_sha, recursive=True),
    )
    if tree.truncated:
        raise BackendUnavailable(
            SYSTEM,
            f"the listing of {folder} in {conn.repo} is too large for one call (GitHub"
            " truncated it) — move other files out of PGDB_GITOPS_PATH",
        )
    return {item.path: item.sha for item in tree.tree if item.type == "blob"}


def _pulls(
    conn: GitHubConnection, repo: Repository, branch: str, *, state: str
) -> list[PullRequest]:
    """Pull requests from ``branch`` of this repository into the base branch, newest first.

    ``head`` must carry the owner: without it GitHub ignores the filter and lists every
    pull request of the repository.
    """
    found = conn.call(
        f"looking up the pull request for {branch}",
        lambda: list(
            islice(
                repo.get_pulls(
                    state=state,
                    head=f"{conn.owner}:{branch}",
                    base=conn.base_branch,
                    sort="created",
                    direction="desc",
                ),
                PAGE_SIZE,
            )
        ),
    )
    return [pr for pr in found if _from_here(conn, pr) and pr.head.ref == branch]


def _from_here(conn: GitHubConnection, pr: PullRequest) -> bool:
    """A pull request from a branch of this repository (not a fork) into the base branch
    (``pgdb/<app>``, or another branch the bot owns such as ``pgdb-offboard/<app>``)."""
    head = pr.head
    return head.label == f"{conn.owner}:{head.ref}" and pr.base.ref == conn.base_branch


def _app_of(
    conn: GitHubConnection, pr: PullRequest, *, prefix: str = ONBOARD_BRANCH_PREFIX
) -> str | None:
    """The app of a ``<prefix><app>`` pull request from this repository (not a fork) into
    the base branch; None for any other pull request."""
    head = pr.head
    if not _from_here(conn, pr):
        return None
    app = head.ref.removeprefix(prefix)
    if app == head.ref or not app or "/" in app:
        return None
    return app


def _completed(pr: PullRequest) -> PullRequest:
    """A lazily built pull request, fetched now (``mergeable`` is only in the full view)."""
    pr.complete()
    return pr


def _decode(content: str) -> str:
    return base64.b64decode(content).decode("utf-8", "replace")
