"""``GitHubHost``: the ``GitHost`` port on a GitHub repository.

It checks its parameters, builds the :class:`~bot.adapters.github.connection.GitHubConnection`,
and hands each method to the module that does it (reading, writing, statuses). It reads no
configuration: the composition root (:mod:`bot.wiring.github`) gives it plain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.adapters.github import reading, statuses, writing
from bot.adapters.github.connection import (
    DEFAULT_API_URL,
    TIMEOUT_SECONDS,
    WRITE_SPACING,
    GitHubConnection,
)
from bot.adapters.github.credentials import AppCredentials
from bot.adapters.github.refs import REPO
from bot.adapters.github.retry import RetryPolicy
from bot.core.model import CheckResult, GitSnapshot, Proposal
from bot.core.secret import Secret


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
        retry: RetryPolicy | None = None,
        write_spacing: float = WRITE_SPACING,
    ) -> None:
        """``retry`` None means :class:`RetryPolicy` with its defaults. ``write_spacing``:
        seconds between two writes (a second, as GitHub asks of integrations; 0 turns the
        spacing off, for a GitHub without secondary rate limits or a local fake)."""
        if not REPO.fullmatch(repo):
            raise ValueError(f"{repo!r} is not a GitHub repository name (owner/name)")
        if (token is None) == (app is None):
            raise ValueError("give either a token or GitHub App credentials")
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self.base_branch = base_branch
        self.labels = tuple(labels)
        self.reviewers = tuple(reviewers)
        self._conn = GitHubConnection(
            repo=repo,
            token=token,
            app=app,
            api_url=self.api_url,
            base_branch=base_branch,
            timeout=timeout,
            retry=retry if retry is not None else RetryPolicy(),
            write_spacing=write_spacing,
        )

    def snapshot(self, *, manifests_path: str) -> GitSnapshot:
        """The base branch's manifests folder and every open ``pgdb/*`` pull request."""
        return reading.snapshot(self._conn, manifests_path=manifests_path)

    def read_file(self, *, ref: str, path: str) -> str | None:
        """A file's text at a commit or branch, or None when it is absent."""
        return reading.read_file(self._conn, ref=ref, path=path)

    def proposal(self, *, branch: str) -> Proposal | None:
        """The branch's pull request in full detail; None when it never had one."""
        return reading.proposal(self._conn, branch=branch)

    def commit(self, *, parent: str, files: Mapping[str, str | None], message: str) -> str:
        """A commit on ``parent`` that adds, replaces or deletes ``files``; its sha."""
        return writing.commit(self._conn, parent=parent, files=files, message=message)

    def set_branch(self, *, branch: str, sha: str) -> None:
        """Create ``refs/heads/<branch>`` at ``sha``, or move it there."""
        writing.set_branch(self._conn, branch=branch, sha=sha)

    def open_proposal(self, *, branch: str, title: str, body: str) -> Proposal:
        """The open pull request for ``branch``, else a new one (labels, reviewers)."""
        return writing.open_proposal(
            self._conn,
            branch=branch,
            title=title,
            body=body,
            labels=self.labels,
            reviewers=self.reviewers,
        )

    def publish_checks(self, *, proposal: Proposal, checks: list[CheckResult]) -> None:
        """Commit statuses on the head commit (and check runs as a GitHub App)."""
        statuses.publish_checks(self._conn, proposal=proposal, checks=checks)
