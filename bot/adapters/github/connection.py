"""The one place that talks to GitHub.

:class:`GitHubConnection` builds the PyGithub client on first use (token or GitHub App
installation, timeout, retries, write spacing) and runs every operation through
:meth:`GitHubConnection.call`, which turns PyGithub and network errors into the errors of
:mod:`bot.adapters.github.errors`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from github import Auth, Github, GithubException
from github.Repository import Repository
from urllib3.util.retry import Retry

from bot.adapters.github.credentials import AppCredentials
from bot.adapters.github.errors import READ, ErrorTranslator, Need
from bot.core.errors import PgdbError
from bot.core.secret import Secret

T = TypeVar("T")

DEFAULT_API_URL = "https://api.github.com"
TIMEOUT_SECONDS = 10
PAGE_SIZE = 100
WRITE_SPACING = 1.0  # seconds between two writes (GitHub's guidance for integrations)


class GitHubConnection:
    """One repository at one API, as one token or one App installation; the client is built
    lazily (no call until one is needed) and shared by the threads of the bot."""

    def __init__(
        self,
        *,
        repo: str,
        token: Secret | None,
        app: AppCredentials | None,
        api_url: str,
        base_branch: str,
        timeout: int,
        retry: Retry,
        throttle: bool,
    ) -> None:
        self.repo = repo
        self.owner = repo.split("/", 1)[0]
        self.api_url = api_url
        self.base_branch = base_branch
        self.as_app = app is not None
        self._token = token
        self._app = app
        self._timeout = timeout
        self._retry = retry
        self._throttle = throttle
        self._lock = threading.Lock()
        self._github: Github | None = None
        self._repository: Repository | None = None
        self._errors = ErrorTranslator(
            repo=repo,
            api_url=api_url,
            base_branch=base_branch,
            token=token,
            app=app,
            retries=retry.total,
            timeout=timeout,
        )
        _quiet_pygithub_debug_log()

    def repository(self) -> Repository:
        """The repository object, built on first use (lazy: no call until one is needed)."""
        with self._lock:
            if self._repository is None:
                github = self._client()
                self._repository = github.get_repo(self.repo)
            return self._repository

    def call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        need: Need = READ,
        missing: str | None = None,
    ) -> T:
        """Run one PyGithub operation; any failure becomes a BackendUnavailable that says
        what failed and what to fix, with no credential in it. ``missing`` is the fix for a
        404 on a repository that exists."""
        try:
            return fn()
        except PgdbError:
            raise
        except GithubException as exc:
            raise self._errors.failure(
                exc, what=what, need=need, missing=missing, repo_visible=self._repo_visible
            ) from None
        except OSError as exc:  # requests' ConnectionError, Timeout, RetryError are OSErrors
            raise self._errors.no_answer(what, exc) from None

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
        try:
            _ = auth.token
        except (GithubException, OSError) as exc:
            raise self._errors.app_login_failure(exc) from None

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


def _quiet_pygithub_debug_log() -> None:
    """PyGithub's DEBUG log prints whole response bodies, and an App's installation token
    comes back in one: its loggers stay at INFO even when the bot logs at DEBUG."""
    logger = logging.getLogger("github")
    if logger.level == logging.NOTSET or logger.level < logging.INFO:
        logger.setLevel(logging.INFO)
