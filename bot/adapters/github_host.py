"""GitHub as the GitOps host: ``pgdb/<app>`` branches and pull requests, through PyGithub.

Writes use the git data API (one tree with inline contents, one commit, one ref), so the three
file changes land as a single commit parented on the current base branch. Every call goes
through :meth:`GitHubHost._call`, the one place that turns PyGithub and network errors into
``BackendUnavailable("GitHub", "<what failed> — <what to fix>")`` with credentials scrubbed.
PyGithub owns the per-call timeout and the retries, which :class:`RateLimitRetry` bounds and
aligns with GitHub's rate-limit headers.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from github import Auth, Github, GithubException, GithubRetry, InputGitTreeElement
from github.GithubException import RateLimitExceededExceedsMaxWait, RateLimitExceededException
from github.GithubObject import NotSet
from github.PullRequest import PullRequest
from github.Repository import Repository
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from bot.core.errors import BackendUnavailable, ConflictError, PgdbError
from bot.core.model import CheckResult, CheckState, GitSnapshot, Proposal, ProposalState
from bot.core.names import OFFBOARD_BRANCH_PREFIX, ONBOARD_BRANCH_PREFIX
from bot.core.secret import Secret

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_API_URL = "https://api.github.com"
BRANCH_PREFIX = ONBOARD_BRANCH_PREFIX
TIMEOUT_SECONDS = 10
RETRIES = 3
SECONDARY_RATE_WAIT = 60.0  # GitHub: "wait at least one minute" after a secondary rate limit
MAX_RATE_LIMIT_WAIT = 90.0  # longer than this, a chat command fails instead of hanging
PAGE_SIZE = 100
WRITE_SPACING = 1.0  # seconds between two writes (GitHub's guidance for integrations)
STATUS_DESCRIPTION_MAX = 140  # GitHub truncates nothing: it refuses longer descriptions

_SYSTEM = "GitHub"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_REF_PART = re.compile(r"^[A-Za-z0-9._/-]+$")
# What GitHub's own credentials look like, scrubbed from anything the bot says or logs.
_GITHUB_TOKENS = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b")
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


# --- what each call needs, said for both kinds of credentials -------------------------------


@dataclass(frozen=True, kw_only=True)
class _Need:
    for_pat: str  # classic scope, or fine-grained permission, for PGDB_GITHUB_TOKEN
    for_app: str  # GitHub App permission


_READ = _Need(
    for_pat="a classic token with scope `repo` (`public_repo` for a public repository), or a"
    " fine-grained token with Contents: Read and Pull requests: Read on the repository",
    for_app="the App permissions Contents: Read and Pull requests: Read",
)
_CONTENTS = _Need(
    for_pat="a classic token with scope `repo`, or a fine-grained token with Contents: Read and"
    " write on the repository",
    for_app="the App permission Contents: Read and write",
)
_PULLS = _Need(
    for_pat="a classic token with scope `repo`, or a fine-grained token with Pull requests: Read"
    " and write on the repository",
    for_app="the App permission Pull requests: Read and write",
)
_STATUSES = _Need(
    for_pat="a classic token with scope `repo:status` (part of `repo`), or a fine-grained token"
    " with Commit statuses: Read and write on the repository",
    for_app="the App permission Commit statuses: Read and write",
)
_CHECKS = _Need(
    for_pat="a GitHub App: tokens cannot write check runs",
    for_app="the App permission Checks: Read and write",
)


# --- retries ---------------------------------------------------------------------------------


def announced_wait(headers: Mapping[str, Any], *, now: float | None = None) -> float | None:
    """Seconds GitHub asked to wait before the next call, or None when it said nothing.

    ``Retry-After`` first; else, when ``x-ratelimit-remaining`` is 0, until
    ``x-ratelimit-reset`` (plus a second: the reset happens somewhere in that second).
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    retry_after = lower.get("retry-after", "").strip()
    if retry_after.isascii() and retry_after.isdigit():
        return float(retry_after)
    reset = lower.get("x-ratelimit-reset", "").strip()
    remaining = lower.get("x-ratelimit-remaining", "").strip()
    if remaining == "0" and reset.isascii() and reset.isdigit():
        return max(0.0, int(reset) - (time.time() if now is None else now)) + 1.0
    return None


class RateLimitRetry(GithubRetry):
    """PyGithub's retry rules, bounded, and extended to GitHub's 429 answers.

    GithubRetry retries 5xx and the 403s that are rate limits. GitHub answers rate limits with
    429 as well, with the same headers, so 429 is retried here too. Every wait follows what
    GitHub announced (``Retry-After``, else ``x-ratelimit-reset`` when nothing remains, else
    ``secondary_rate_wait`` for a secondary limit), and a wait above ``max_rate_limit_wait``
    fails at once: a chat command must not hang until a limit resets in an hour.
    """

    def __init__(
        self,
        *,
        secondary_rate_wait: float = SECONDARY_RATE_WAIT,
        max_rate_limit_wait: float | None = MAX_RATE_LIMIT_WAIT,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("total", RETRIES)
        kwargs.setdefault("backoff_factor", 0.5)
        kwargs.setdefault("backoff_max", 10.0)
        # the last answer reaches PyGithub, which raises with GitHub's own message
        kwargs.setdefault("raise_on_status", False)
        kwargs.setdefault("status_forcelist", [429, *range(500, 600)])  # GithubRetry adds 403
        super().__init__(
            secondary_rate_wait=secondary_rate_wait,
            max_rate_limit_wait=max_rate_limit_wait,
            **kwargs,
        )

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        if response is not None and response.status in (403, 429):
            wait = announced_wait(response.headers)
            bound = self.max_rate_limit_wait
            if wait is not None and bound is not None and wait > bound:
                raise RateLimitExceededExceedsMaxWait(
                    response.status,
                    {"message": "rate limit exceeded"},
                    dict(response.headers),
                    wait=wait,
                )
        return super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[arg-type]

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        if response is not None and response.status in (403, 429):
            wait = announced_wait(response.headers)
            if wait is None and response.status == 429:
                wait = self.secondary_rate_wait  # a secondary limit that gave no hint
            if wait is not None:
                bound = self.max_rate_limit_wait
                time.sleep(min(wait, bound) if bound is not None else wait)
                return
        super().sleep(response)


# --- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AppCredentials:
    """A GitHub App installation: the App's id and private key, and the installation id."""

    app_id: str
    private_key: Secret
    installation_id: int


def load_private_key(value: str) -> Secret:
    """The App's PEM private key, given inline (``\\n`` escapes allowed) or as a file path.

    Checked here so a pasted key that lost its newlines fails at start, not at the first call.
    """
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = Path(text).expanduser().read_text()
        except (OSError, ValueError):
            raise ValueError(
                "neither a PEM private key nor the path of a readable .pem file"
            ) from None
    text = text.replace("\\n", "\n").strip() + "\n"
    try:
        serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            "not an unencrypted PEM private key: give the .pem file generated on the App's"
            " settings page (its contents, or its path)"
        ) from None
    return Secret(text)


# --- the host --------------------------------------------------------------------------------


class GitHubHost:
    """``GitHost`` on a GitHub repository: one commit on ``pgdb/<app>``, one pull request."""

    kind = "GitHub"

    def __init__(
        self,
        *,
        repo: str,
        token: Secret | None = None,
        app: AppCredentials | None = None,
        api_url: str = DEFAULT_API_URL,
        base_branch: str = "main",
        labels: Sequence[str] = (),
        reviewers: Sequence[str] = (),
        timeout: int = TIMEOUT_SECONDS,
        retry: Retry | None = None,
        throttle: bool = True,
    ) -> None:
        """``retry`` None means :class:`RateLimitRetry` with its defaults. ``throttle`` spaces
        writes by a second, as GitHub asks of integrations; tests against a local server turn
        it off."""
        if not _REPO.fullmatch(repo):
            raise ValueError(f"{repo!r} is not a GitHub repository name (owner/name)")
        if (token is None) == (app is None):
            raise ValueError("give either a token or GitHub App credentials")
        self.repo = repo
        self.owner = repo.split("/", 1)[0]
        self.api_url = api_url.rstrip("/")
        self.base_branch = base_branch
        self.labels = tuple(labels)
        self.reviewers = tuple(reviewers)
        self._token = token
        self._app = app
        self._timeout = timeout
        self._retry: Retry = retry if retry is not None else RateLimitRetry()
        self._throttle = throttle
        self._lock = threading.Lock()
        self._github: Github | None = None
        self._repository: Repository | None = None
        _quiet_pygithub_debug_log()

    # --- reading ----------------------------------------------------------------------------

    def snapshot(self, *, manifests_path: str) -> GitSnapshot:
        """The base branch's manifests folder and every open ``pgdb/*`` pull request.

        A fixed number of calls whatever the number of apps: the base ref, the listing of the
        folder's parent, the folder's tree, the kustomization blob, and the open pull
        requests (one call per 100). Checks are not read here (one call per PR); ``proposal``
        reads them for one branch.
        """
        folder = _clean_path(manifests_path)
        repo = self._repo()
        base_sha = self._base_sha(repo)
        listing = self._list_folder(repo, base_sha, folder)
        kustomization = None
        blob = listing.get("kustomization.yaml")
        if blob is not None:
            kustomization = self._call(
                f"reading {folder}/kustomization.yaml on {self.base_branch}",
                lambda: _decode(repo.get_git_blob(blob).content),
            )
        pulls = self._call(
            "listing the open pull requests",
            lambda: list(
                repo.get_pulls(state="open", base=self.base_branch, sort="created", direction="asc")
            ),
        )
        proposals: dict[str, Proposal] = {}
        offboardings: dict[str, Proposal] = {}
        for pr in pulls:
            app = self._app_of(pr)
            if app is not None and app not in proposals:
                proposals[app] = self._to_proposal(pr)
            leaving = self._app_of(pr, prefix=OFFBOARD_BRANCH_PREFIX)
            if leaving is not None and leaving not in offboardings:
                offboardings[leaving] = self._to_proposal(pr)
        return GitSnapshot(
            base_branch=self.base_branch,
            base_sha=base_sha,
            files=frozenset(listing),
            kustomization=kustomization,
            proposals=dict(sorted(proposals.items())),
            offboardings=dict(sorted(offboardings.items())),
        )

    def read_file(self, *, ref: str, path: str) -> str | None:
        """A file's text at a commit or branch (contents API), or None when it is absent."""
        _check_ref(ref)
        clean = _clean_path(path)
        repo = self._repo()

        def read() -> str | None:
            try:
                found = repo.get_contents(clean, ref=ref)
            except GithubException as exc:
                if exc.status == 404 and "no commit found" not in _details(exc).lower():
                    return None
                raise
            if isinstance(found, list) or found.type != "file":
                return None  # a folder, a symlink or a submodule
            if found.encoding == "base64":
                return found.decoded_content.decode("utf-8", "replace")
            # files over 1 MB come without content: read the blob instead
            return _decode(repo.get_git_blob(found.sha).content)

        return self._call(
            f"reading {clean} at {ref}",
            read,
            missing=f"{ref} is neither a branch nor a commit of {self.repo} — run the command"
            " again",
        )

    def proposal(self, *, branch: str) -> Proposal | None:
        """The branch's pull request in full detail (mergeable, head's parent, checks): the
        open one, else the newest closed or merged one; None when it never had one.

        A ``pgdb/*`` branch without any pull request (a run that stopped before opening it)
        is no proposal: the workflow rebuilds it on the current base and opens one.
        """
        _check_branch(branch)
        repo = self._repo()
        pulls = self._pulls(repo, branch, state="all")
        if not pulls:
            return None
        pr = next((p for p in pulls if p.state == "open"), pulls[0])
        if pr.state != "open":
            return self._to_proposal(pr)
        number = pr.number
        detail = self._call(
            f"reading pull request #{number}",
            lambda: _completed(repo.get_pull(number)),
            need=_READ,
        )
        head_sha = detail.head.sha
        parents = self._call(
            f"reading the head commit of pull request #{number}",
            lambda: [p.sha for p in repo.get_git_commit(head_sha).parents],
        )
        return self._to_proposal(
            detail,
            base_sha=parents[0] if parents else None,
            mergeable=detail.mergeable,
            checks=self._checks(repo, head_sha),
        )

    # --- changing ---------------------------------------------------------------------------

    def commit(self, *, parent: str, files: Mapping[str, str | None], message: str) -> str:
        """A commit on ``parent`` whose tree adds or replaces ``files`` (None deletes the
        path: a tree entry with ``"sha": null``; GitHub refuses it for an absent path); its sha.

        Three calls: the parent (for its tree), the new tree with the contents inline (no
        separate blobs), the commit.
        """
        repo = self._repo()
        parent_sha = parent if _SHA.fullmatch(parent) else self._branch_sha(repo, parent)
        changes = [
            InputGitTreeElement(path=_clean_path(path), mode="100644", type="blob", content=text)
            if text is not None
            else InputGitTreeElement(path=_clean_path(path), mode="100644", type="blob", sha=None)
            for path, text in files.items()
        ]
        base = self._call(
            f"reading commit {parent_sha[:12]}",
            lambda: repo.get_git_commit(parent_sha),
            missing=f"commit {parent_sha} is not in {self.repo} — run the command again",
        )
        tree = self._call(
            "writing the tree",
            lambda: repo.create_git_tree(changes, base_tree=base.tree),
            need=_CONTENTS,
        )
        made = self._call(
            "writing the commit",
            lambda: repo.create_git_commit(message, tree, [base]),
            need=_CONTENTS,
        )
        return made.sha

    def set_branch(self, *, branch: str, sha: str) -> None:
        """Create ``refs/heads/<branch>`` at ``sha``, or move it there (forced: the bot owns
        ``pgdb/*`` and a rebuilt commit does not descend from the old one)."""
        _check_branch(branch)
        _check_ref(sha)
        if branch == self.base_branch:
            raise ValueError(f"the bot never moves the base branch {branch}")
        repo = self._repo()
        ref = f"refs/heads/{branch}"

        def point() -> None:
            try:
                repo.create_git_ref(ref=ref, sha=sha)
                return
            except GithubException as exc:
                if exc.status != 422 or "already exists" not in _details(exc).lower():
                    raise
            for found in repo.get_git_matching_refs(f"heads/{branch}"):
                if found.ref == ref:
                    found.edit(sha, force=True)
                    return
            raise ConflictError(
                f"branch {branch} was deleted in {self.repo} while the bot was moving it — run"
                " the command again"
            )

        self._call(f"pointing branch {branch} at {sha[:12]}", point, need=_CONTENTS)

    def open_proposal(self, *, branch: str, title: str, body: str) -> Proposal:
        """The open pull request for ``branch`` (found with ``head=<owner>:<branch>``), else a
        new one with the configured labels and reviewers. Never a second one: GitHub refuses a
        duplicate (422 "already exists"), and then the open one is looked up and reused.

        Creating first costs one call where none is open (a first onboarding, the usual case);
        looking up first would cost one more there, and the caller already knows from its
        snapshot whether one is open."""
        _check_branch(branch)
        repo = self._repo()

        def create() -> PullRequest | None:
            try:
                return repo.create_pull(base=self.base_branch, head=branch, title=title, body=body)
            except GithubException as exc:
                if exc.status == 422 and "already exists" in _details(exc).lower():
                    return None
                raise

        made = self._call(f"opening a pull request for {branch}", create, need=_PULLS)
        if made is None:
            existing = self._open_pull(repo, branch)
            if existing is None:
                raise ConflictError(
                    f"GitHub says a pull request for {branch} exists but lists none open —"
                    " run the command again"
                )
            return self._to_proposal(existing, checks=self._checks(repo, existing.head.sha))
        self._label_and_request_reviews(made)
        return self._to_proposal(made)

    def publish_checks(self, *, proposal: Proposal, checks: list[CheckResult]) -> None:
        """Commit statuses on the head commit; check runs too when authenticated as an App
        (tokens cannot write check runs: GitHub answers 403, so they are not attempted)."""
        _check_ref(proposal.head_sha)
        repo = self._repo()
        commit = repo.get_commit(proposal.head_sha)
        target = proposal.url if proposal.url.startswith(("https://", "http://")) else NotSet
        for check in checks:
            self._call(
                f"posting status {check.context} on {proposal.head_sha[:12]}",
                lambda check=check: commit.create_status(  # type: ignore[misc]
                    _STATE_OUT[check.state],
                    target_url=target,
                    description=_short(check.description),
                    context=check.context,
                ),
                need=_STATUSES,
                missing=f"commit {proposal.head_sha} is not in {self.repo} — run the command again",
            )
        if self._app is not None:
            self._check_runs(repo, proposal, checks)

    # --- helpers ----------------------------------------------------------------------------

    def _repo(self) -> Repository:
        """The repository object, built on first use (lazy: no call until one is needed)."""
        with self._lock:
            if self._repository is None:
                github = self._client()
                self._repository = github.get_repo(self.repo)
            return self._repository

    def _client(self) -> Github:
        auth: Auth.Auth
        if self._token is not None:
            auth = Auth.Token(self._token.reveal())
        else:
            assert self._app is not None
            auth = Auth.AppAuth(
                self._app.app_id, self._app.private_key.reveal()
            ).get_installation_auth(self._app.installation_id)
        github = Github(
            auth=auth,
            base_url=self.api_url,
            timeout=self._timeout,
            retry=self._retry,
            per_page=PAGE_SIZE,
            user_agent="pgdb-bot",
            lazy=True,
            # reads go back to back; writes keep PyGithub's one-second spacing, which GitHub
            # asks of integrations to stay clear of its secondary rate limits
            seconds_between_requests=None,
            seconds_between_writes=WRITE_SPACING if self._throttle else None,
        )
        if isinstance(auth, Auth.AppInstallationAuth):
            self._installation_token(auth)
        self._github = github
        return github

    def _installation_token(self, auth: Auth.AppInstallationAuth) -> None:
        """Fetch the installation token now, so a wrong App id, key or installation is told
        as such rather than as a failure of whatever call came first."""
        assert self._app is not None
        app = self._app
        try:
            _ = auth.token
        except GithubException as exc:
            reason = f"{exc.status} {_details(exc)}".strip()
            if exc.status == 404:
                fix = (
                    f"installation {app.installation_id} of App {app.app_id} does not exist —"
                    " set PGDB_GITHUB_INSTALLATION_ID to the installation's id (the number at"
                    " the end of the installation's settings URL)"
                )
            elif exc.status == 401:
                fix = (
                    "GitHub refused the App's JSON web token — check PGDB_GITHUB_APP_ID and"
                    " that PGDB_GITHUB_APP_PRIVATE_KEY is a current private key of that App"
                )
            else:
                fix = (
                    "check PGDB_GITHUB_APP_ID, PGDB_GITHUB_APP_PRIVATE_KEY and"
                    " PGDB_GITHUB_INSTALLATION_ID"
                )
            raise BackendUnavailable(
                _SYSTEM, self._scrub(f"authenticating as GitHub App {app.app_id} ({reason}): {fix}")
            ) from None
        except OSError as exc:
            raise BackendUnavailable(
                _SYSTEM,
                self._scrub(
                    f"authenticating as GitHub App {app.app_id}: no answer from {self.api_url}"
                    f" ({_network_reason(exc, self._timeout)}) — check PGDB_GITHUB_API_URL and"
                    " the network, then run the command again"
                ),
            ) from None

    def _base_sha(self, repo: Repository) -> str:
        return self._branch_sha(repo, self.base_branch)

    def _branch_sha(self, repo: Repository, branch: str) -> str:
        _check_branch(branch)
        hint = (
            f"branch {branch} does not exist in {self.repo} — set PGDB_GITOPS_BASE_BRANCH to"
            " the repository's base branch"
            if branch == self.base_branch
            else f"branch {branch} does not exist in {self.repo} — run the command again"
        )
        return self._call(
            f"reading branch {branch}",
            lambda: repo.get_git_ref(f"heads/{branch}").object.sha,
            missing=hint,
        )

    def _list_folder(self, repo: Repository, commit: str, folder: str) -> dict[str, str]:
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

        where = f"listing {parent or 'the repository root'} on {self.base_branch}"
        tree_sha = next(
            (
                sha
                for name, kind, sha in self._call(where, entries)
                if name == leaf and kind == "dir"
            ),
            None,
        )
        if tree_sha is None:
            return {}
        tree = self._call(
            f"listing {folder} on {self.base_branch}",
            lambda: repo.get_git_tree(tree_sha, recursive=True),
        )
        if tree.truncated:
            raise BackendUnavailable(
                _SYSTEM,
                f"the listing of {folder} in {self.repo} is too large for one call (GitHub"
                " truncated it) — move other files out of PGDB_GITOPS_PATH",
            )
        return {item.path: item.sha for item in tree.tree if item.type == "blob"}

    def _pulls(self, repo: Repository, branch: str, *, state: str) -> list[PullRequest]:
        """Pull requests from ``branch`` of this repository into the base branch, newest first.

        ``head`` must carry the owner: without it GitHub ignores the filter and lists every
        pull request of the repository.
        """
        found = self._call(
            f"looking up the pull request for {branch}",
            lambda: list(
                islice(
                    repo.get_pulls(
                        state=state,
                        head=f"{self.owner}:{branch}",
                        base=self.base_branch,
                        sort="created",
                        direction="desc",
                    ),
                    PAGE_SIZE,
                )
            ),
        )
        return [pr for pr in found if self._from_here(pr) and pr.head.ref == branch]

    def _open_pull(self, repo: Repository, branch: str) -> PullRequest | None:
        return next(iter(self._pulls(repo, branch, state="open")), None)

    def _from_here(self, pr: PullRequest) -> bool:
        """A pull request from a branch of this repository (not a fork) into the base branch
        (``pgdb/<app>``, or another branch the bot owns such as ``pgdb-offboard/<app>``)."""
        head = pr.head
        return head.label == f"{self.owner}:{head.ref}" and pr.base.ref == self.base_branch

    def _app_of(self, pr: PullRequest, *, prefix: str = BRANCH_PREFIX) -> str | None:
        """The app of a ``<prefix><app>`` pull request from this repository (not a fork) into
        the base branch; None for any other pull request."""
        head = pr.head
        if not self._from_here(pr):
            return None
        app = head.ref.removeprefix(prefix)
        if app == head.ref or not app or "/" in app:
            return None
        return app

    def _to_proposal(
        self,
        pr: PullRequest,
        *,
        base_sha: str | None = None,
        mergeable: bool | None = None,
        checks: tuple[CheckResult, ...] = (),
    ) -> Proposal:
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

    def _checks(self, repo: Repository, sha: str) -> tuple[CheckResult, ...]:
        """The latest ``pgdb/*`` status of each context on ``sha`` (one call)."""
        combined = self._call(
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
            if status.context.startswith(BRANCH_PREFIX)
        ]
        return tuple(sorted(found, key=lambda c: (_CHECK_ORDER.get(c.context, 9), c.context)))

    def _check_runs(
        self, repo: Repository, proposal: Proposal, checks: Iterable[CheckResult]
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
                        "summary": f"`{check.context}`: {_STATE_OUT[check.state]}."
                        f" {check.description}",
                    },
                )

            try:
                self._call(f"posting check run {check.context}", run, need=_CHECKS)
            except BackendUnavailable as exc:
                if "(403" not in str(exc):
                    raise
                # the statuses carry the same result: a missing Checks permission costs the
                # details view only, so it is said in the log, not as a failed workflow
                log.warning("%s", exc)
                return

    def _label_and_request_reviews(self, pr: PullRequest) -> None:
        """Labels and reviewers from the configuration. The pull request exists already: a
        refusal (a reviewer who is no collaborator…) is logged with its fix, not raised."""
        if self.labels:
            labels = self.labels
            try:
                self._call(
                    f"labelling pull request #{pr.number}",
                    lambda: pr.add_to_labels(*labels),
                    need=_PULLS,
                )
            except BackendUnavailable as exc:
                log.warning("%s (PGDB_GITHUB_LABELS)", exc)
        if self.reviewers:
            users = [r for r in self.reviewers if "/" not in r]
            teams = [r.split("/", 1)[1] for r in self.reviewers if "/" in r]
            try:
                self._call(
                    f"requesting reviews on pull request #{pr.number}",
                    lambda: pr.create_review_request(
                        reviewers=users or NotSet, team_reviewers=teams or NotSet
                    ),
                    need=_PULLS,
                )
            except BackendUnavailable as exc:
                log.warning(
                    "%s (PGDB_GITHUB_REVIEWERS: users must be collaborators, teams written"
                    " org/team-slug)",
                    exc,
                )

    # --- the one place that talks to GitHub -------------------------------------------------

    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        need: _Need = _READ,
        missing: str | None = None,
    ) -> T:
        """Run one PyGithub operation; any failure becomes a BackendUnavailable that says
        what failed and what to fix, with no credential in it."""
        try:
            return fn()
        except PgdbError:
            raise
        except GithubException as exc:
            raise self._translate(exc, what=what, need=need, missing=missing) from None
        except OSError as exc:  # requests' ConnectionError, Timeout, RetryError are OSErrors
            raise BackendUnavailable(
                _SYSTEM,
                self._scrub(
                    f"{what}: no answer from {self.api_url}"
                    f" ({_network_reason(exc, self._timeout)}) — check PGDB_GITHUB_API_URL and"
                    " the network between the bot and GitHub, then run the command again"
                ),
            ) from None

    def _translate(
        self, exc: GithubException, *, what: str, need: _Need, missing: str | None
    ) -> PgdbError:
        status = exc.status
        headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
        details = _details(exc)
        who = "the GitHub App" if self._app is not None else "PGDB_GITHUB_TOKEN"
        grant = need.for_app if self._app is not None else need.for_pat
        if isinstance(exc, RateLimitExceededException) or (
            status in (403, 429) and _rate_limited(headers, details)
        ):
            return BackendUnavailable(_SYSTEM, self._scrub(_rate_limit_message(what, exc, headers)))
        if status == 401:
            fix = (
                "check PGDB_GITHUB_APP_ID, PGDB_GITHUB_APP_PRIVATE_KEY and"
                " PGDB_GITHUB_INSTALLATION_ID"
                if self._app is not None
                else f"the token is wrong, expired or revoked: create one ({need.for_pat}) and"
                " set PGDB_GITHUB_TOKEN"
            )
            text = f"{what}: GitHub refused {who} (401 {details}) — {fix}"
        elif status == 403:
            if "saml" in details.lower():
                fix = f"authorize {who} for the organization's single sign-on"
            else:
                fix = f"{who} needs {grant}"
            text = f"{what}: {who} may not do this (403 {details}) — {fix}"
        elif status == 404:
            if not self._repo_visible():
                text = (
                    f"repository {self.repo} was not found at {self.api_url}, or {who} cannot"
                    f" see it — check PGDB_GITHUB_REPO (owner/name) and PGDB_GITHUB_API_URL,"
                    f" and give {who} access to the repository ({grant})"
                )
            else:
                text = f"{what}: not found (404 {details}) — " + (
                    missing or "run the command again"
                )
        elif status == 409:
            if "empty" in details.lower():
                text = (
                    f"repository {self.repo} is empty — push a first commit to branch"
                    f" {self.base_branch} (PGDB_GITOPS_BASE_BRANCH)"
                )
            else:
                return ConflictError(
                    self._scrub(
                        f"{what}: GitHub reports a conflict ({details}) — run the command again"
                    )
                )
        elif status == 422:
            text = (
                f"{what}: GitHub refused the request (422 {details}) — check the repository"
                " (branch protection rules on pgdb/*?), then run the command again"
            )
        elif status >= 500:
            text = (
                f"{what}: GitHub answered {status} {details} even after {self._retry.total}"
                " retries — GitHub may be degraded (https://www.githubstatus.com); run the"
                " command again later"
            )
        else:
            text = (
                f"{what}: GitHub answered {status} {details} — check that PGDB_GITHUB_API_URL is"
                " the GitHub API (https://api.github.com, or https://<host>/api/v3), then run"
                " the command again"
            )
        return BackendUnavailable(_SYSTEM, self._scrub(text))

    def _repo_visible(self) -> bool:
        """Whether the repository answers at all: tells "no such repository, or no access"
        apart from "no such branch or file" (GitHub says 404 for both)."""
        if self._github is None:
            return True
        try:
            self._github.get_repo(self.repo).complete()
        except GithubException as exc:
            return exc.status != 404
        except OSError:
            return True
        return True

    def _scrub(self, text: str) -> str:
        """``text`` without any credential: the configured token, and anything shaped like
        a GitHub token (installation tokens come back in API answers)."""
        if self._token is not None and self._token.reveal():
            text = text.replace(self._token.reveal(), "***")
        return _GITHUB_TOKENS.sub("***", text)


# --- small helpers ---------------------------------------------------------------------------


def _quiet_pygithub_debug_log() -> None:
    """PyGithub's DEBUG log prints whole response bodies, and an App's installation token
    comes back in one: its loggers stay at INFO even when the bot logs at DEBUG."""
    logger = logging.getLogger("github")
    if logger.level == logging.NOTSET or logger.level < logging.INFO:
        logger.setLevel(logging.INFO)


def _completed(pr: PullRequest) -> PullRequest:
    """A lazily built pull request, fetched now (``mergeable`` is only in the full view)."""
    pr.complete()
    return pr


def _decode(content: str) -> str:
    return base64.b64decode(content).decode("utf-8", "replace")


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= STATUS_DESCRIPTION_MAX:
        return one_line
    return one_line[: STATUS_DESCRIPTION_MAX - 1] + "…"


def _details(exc: GithubException) -> str:
    """GitHub's message and the messages of its ``errors`` list, on one short line."""
    data = exc.data
    if not isinstance(data, dict):
        return exc.message or ""
    parts = [str(data.get("message") or exc.message or "")]
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            text = error.get("message") or " ".join(
                str(error[k]) for k in ("resource", "field", "code") if error.get(k)
            )
            parts.append(str(text))
        else:
            parts.append(str(error))
    joined = ": ".join(p for p in parts if p)
    return joined[:300]


def _rate_limited(headers: Mapping[str, str], details: str) -> bool:
    return (
        headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in headers
        or "rate limit" in details.lower()
    )


def _rate_limit_message(what: str, exc: GithubException, headers: Mapping[str, str]) -> str:
    wait = exc.wait if isinstance(exc, RateLimitExceededExceedsMaxWait) else None
    if wait is None:
        wait = announced_wait(headers)
    reset = headers.get("x-ratelimit-reset", "")
    if reset.isascii() and reset.isdigit() and headers.get("x-ratelimit-remaining") == "0":
        at = datetime.fromtimestamp(int(reset), UTC).strftime("%H:%M:%S UTC")
        when = f"; it resets at {at}"
    elif wait is not None:
        when = f"; GitHub asked to wait {wait:.0f} s"
    else:
        when = " (a secondary rate limit)"
    return (
        f"{what}: GitHub's rate limit is reached{when} — run the command again then; a GitHub"
        " App installation gets a higher limit than a personal token"
    )


def _network_reason(exc: OSError, timeout: int) -> str:
    text = str(exc)
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return f"timed out after {timeout} s"
    if "refused" in text.lower():
        return "connection refused"
    if "disconnected" in text.lower() or "aborted" in text.lower() or "reset" in text.lower():
        return "the connection was dropped"
    if "name or service not known" in text.lower() or "resolve" in text.lower():
        return "the host name does not resolve"
    return type(exc).__name__


def _clean_path(path: str) -> str:
    clean = path.strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..") for p in parts) or "\0" in clean:
        raise ValueError(f"{path!r} is not a relative path inside the repository")
    return clean


def _check_ref(ref: str) -> None:
    if not ref or not _REF_PART.fullmatch(ref) or ".." in ref or ref.startswith(("-", "/")):
        raise ValueError(f"{ref!r} is not a branch name or a commit")


def _check_branch(branch: str) -> None:
    _check_ref(branch)
    if branch.endswith(("/", ".lock")) or "//" in branch:
        raise ValueError(f"{branch!r} is not a branch name")


def host_from_settings(settings: Settings) -> GitHubHost:
    """The GitHub host the PGDB_GITHUB_* variables describe; ConfigError names what is
    missing or wrong (the local git host is then not used)."""
    from bot.config import ConfigError

    if settings.github_repo is None:
        raise ConfigError(
            "missing configuration: PGDB_GITHUB_REPO (owner/name of the GitOps repository)"
        )
    app_values = {
        "PGDB_GITHUB_APP_ID": settings.github_app_id,
        "PGDB_GITHUB_APP_PRIVATE_KEY": settings.github_app_private_key,
        "PGDB_GITHUB_INSTALLATION_ID": settings.github_installation_id,
    }
    given = [name for name, value in app_values.items() if value is not None]
    token = settings.github_token
    if token is not None and given:
        raise ConfigError(
            "invalid configuration: set PGDB_GITHUB_TOKEN or the PGDB_GITHUB_APP_* variables,"
            f" not both (found {', '.join(['PGDB_GITHUB_TOKEN', *given])})"
        )
    common: dict[str, Any] = {
        "repo": settings.github_repo,
        "api_url": settings.github_api_url,
        "base_branch": settings.gitops_base_branch,
        "labels": settings.github_labels,
        "reviewers": settings.github_reviewers,
    }
    if token is not None:
        return GitHubHost(token=Secret(token), **common)
    if len(given) != len(app_values):
        missing = (
            [name for name in app_values if name not in given]
            if given
            else [
                "PGDB_GITHUB_TOKEN (or PGDB_GITHUB_APP_ID, PGDB_GITHUB_APP_PRIVATE_KEY and"
                " PGDB_GITHUB_INSTALLATION_ID)"
            ]
        )
        raise ConfigError(f"missing configuration: {', '.join(missing)}")
    assert settings.github_app_id is not None and settings.github_app_private_key is not None
    assert settings.github_installation_id is not None
    try:
        key = load_private_key(settings.github_app_private_key.get_secret_value())
    except ValueError as exc:
        raise ConfigError(f"invalid configuration:\n  PGDB_GITHUB_APP_PRIVATE_KEY: {exc}") from None
    app = AppCredentials(
        app_id=settings.github_app_id,
        private_key=key,
        installation_id=settings.github_installation_id,
    )
    return GitHubHost(app=app, **common)
