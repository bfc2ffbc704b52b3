"""What a failed GitHub call becomes: ``BackendUnavailable("GitHub", "<what failed> — <what to
fix>")`` (a ``ConflictError`` for a 409 conflict), said for the credentials in use (a token or
a GitHub App) and with every credential scrubbed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.adapters.github.credentials import AppCredentials
from bot.adapters.github.retry import announced_wait, rate_limited
from bot.core.errors import BackendUnavailable, ConflictError, PgdbError
from bot.core.secret import Secret

SYSTEM = "GitHub"
# What GitHub's own credentials look like, scrubbed from anything the bot says or logs.
_GITHUB_TOKENS = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b")


class GitHubError(Exception):
    """GitHub's final answer to a request was no success (after the retries).

    Internal to this package: :meth:`~bot.adapters.github.connection.GitHubConnection.call`
    turns it into a :class:`PgdbError`. Its ``str`` is the status alone, so nothing GitHub
    echoed (a credential…) can reach a log through it. ``wait`` is set when GitHub announced
    a rate-limit wait too long to sit through.
    """

    def __init__(
        self, *, status: int, headers: Mapping[str, str], data: Any, wait: float | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.data = data  # the JSON answer, or its text when it is not JSON
        self.wait = wait


# --- what each call needs, said for both kinds of credentials -------------------------------


@dataclass(frozen=True, kw_only=True)
class Need:
    """The grant a call needs, named as the person who fixes it sets it."""

    for_pat: str  # classic scope, or fine-grained permission, for PGDB_GITHUB_TOKEN
    for_app: str  # GitHub App permission


READ = Need(
    for_pat="a classic token with scope `repo` (`public_repo` for a public repository), or a"
    " fine-grained token with Contents: Read and Pull requests: Read on the repository",
    for_app="the App permissions Contents: Read and Pull requests: Read",
)
CONTENTS = Need(
    for_pat="a classic token with scope `repo`, or a fine-grained token with Contents: Read and"
    " write on the repository",
    for_app="the App permission Contents: Read and write",
)
PULLS = Need(
    for_pat="a classic token with scope `repo`, or a fine-grained token with Pull requests: Read"
    " and write on the repository",
    for_app="the App permission Pull requests: Read and write",
)
STATUSES = Need(
    for_pat="a classic token with scope `repo:status` (part of `repo`), or a fine-grained token"
    " with Commit statuses: Read and write on the repository",
    for_app="the App permission Commit statuses: Read and write",
)
CHECKS = Need(
    for_pat="a GitHub App: tokens cannot write check runs",
    for_app="the App permission Checks: Read and write",
)


# --- the translation -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ErrorTranslator:
    """Turns GitHub's answers and network errors into errors that say what failed and what
    to fix.

    ``retries`` and ``timeout`` are the connection's, named in the messages."""

    repo: str
    api_url: str
    base_branch: str
    token: Secret | None
    app: AppCredentials | None
    retries: int
    timeout: int

    def failure(
        self,
        exc: GitHubError,
        *,
        what: str,
        need: Need,
        missing: str | None,
        repo_visible: Callable[[], bool],
    ) -> PgdbError:
        """GitHub's answer to ``what``; ``repo_visible`` tells "no such repository, or no
        access" apart from "no such branch or file" (GitHub says 404 for both)."""
        status = exc.status
        headers = exc.headers
        said = details(exc)
        who = "the GitHub App" if self.app is not None else "PGDB_GITHUB_TOKEN"
        grant = need.for_app if self.app is not None else need.for_pat
        if exc.wait is not None or rate_limited(status, headers, said):
            return BackendUnavailable(SYSTEM, self.scrub(_rate_limit_message(what, exc, headers)))
        if status == 401:
            fix = (
                "check PGDB_GITHUB_APP_ID, PGDB_GITHUB_APP_PRIVATE_KEY and"
                " PGDB_GITHUB_INSTALLATION_ID"
                if self.app is not None
                else f"the token is wrong, expired or revoked: create one ({need.for_pat}) and"
                " set PGDB_GITHUB_TOKEN"
            )
            text = f"{what}: GitHub refused {who} (401 {said}) — {fix}"
        elif status == 403:
            if "saml" in said.lower():
                fix = f"authorize {who} for the organization's single sign-on"
            else:
                fix = f"{who} needs {grant}"
            text = f"{what}: {who} may not do this (403 {said}) — {fix}"
        elif status == 404:
            if not repo_visible():
                text = (
                    f"repository {self.repo} was not found at {self.api_url}, or {who} cannot"
                    f" see it — check PGDB_GITHUB_REPO (owner/name) and PGDB_GITHUB_API_URL,"
                    f" and give {who} access to the repository ({grant})"
                )
            else:
                text = f"{what}: not found (404 {said}) — " + (missing or "run the command again")
        elif status == 409:
            if "empty" in said.lower():
                text = (
                    f"repository {self.repo} is empty — push a first commit to branch"
                    f" {self.base_branch} (PGDB_GITOPS_BASE_BRANCH)"
                )
            else:
                return ConflictError(
                    self.scrub(
                        f"{what}: GitHub reports a conflict ({said}) — run the command again"
                    )
                )
        elif status == 422:
            text = (
                f"{what}: GitHub refused the request (422 {said}) — check the repository"
                " (branch protection rules on pgdb/*?), then run the command again"
            )
        elif status >= 500:
            text = (
                f"{what}: GitHub answered {status} {said} even after {self.retries}"
                " retries — GitHub may be degraded (https://www.githubstatus.com); run the"
                " command again later"
            )
        else:
            text = (
                f"{what}: GitHub answered {status} {said} — check that PGDB_GITHUB_API_URL is"
                " the GitHub API (https://api.github.com, or https://<host>/api/v3), then run"
                " the command again"
            )
        return BackendUnavailable(SYSTEM, self.scrub(text))

    def no_answer(self, what: str, exc: Exception) -> BackendUnavailable:
        """No HTTP answer to ``what`` (a refused or dropped connection, a timeout), even after
        the retries."""
        return BackendUnavailable(
            SYSTEM,
            self.scrub(
                f"{what}: no answer from {self.api_url}"
                f" ({_network_reason(exc, self.timeout)}) — check PGDB_GITHUB_API_URL and"
                " the network between the bot and GitHub, then run the command again"
            ),
        )

    def unexpected(self, what: str, exc: Exception) -> BackendUnavailable:
        """An answer without what GitHub's answers carry (a field missing or of another type):
        the URL does not lead to GitHub's REST API, or something between rewrote the answer."""
        return BackendUnavailable(
            SYSTEM,
            self.scrub(
                f"{what}: {self.api_url} gave an answer GitHub's REST API does not give"
                f" ({type(exc).__name__} {str(exc)[:80]}) — check that PGDB_GITHUB_API_URL is"
                " the GitHub API (https://api.github.com, or https://<host>/api/v3)"
            ),
        )

    def app_login_failure(self, exc: Exception) -> PgdbError:
        """The installation token was refused or not fetched: said as a wrong App id, key or
        installation rather than as a failure of whatever call came first."""
        assert self.app is not None
        app = self.app
        what = f"authenticating as GitHub App {app.app_id}"
        if isinstance(exc, GitHubError) and (
            exc.status >= 500
            or exc.wait is not None
            or rate_limited(exc.status, exc.headers, details(exc))
        ):  # GitHub's state, not the App's credentials
            return self.failure(exc, what=what, need=READ, missing=None, repo_visible=lambda: True)
        if not isinstance(exc, GitHubError):
            return BackendUnavailable(
                SYSTEM,
                self.scrub(
                    f"{what}: no answer from {self.api_url}"
                    f" ({_network_reason(exc, self.timeout)}) — check PGDB_GITHUB_API_URL and"
                    " the network, then run the command again"
                ),
            )
        reason = f"{exc.status} {details(exc)}".strip()
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
        return BackendUnavailable(SYSTEM, self.scrub(f"{what} ({reason}): {fix}"))

    def scrub(self, text: str) -> str:
        """``text`` without any credential: the configured token, and anything shaped like
        a GitHub token (installation tokens come back in API answers)."""
        if self.token is not None and self.token.reveal():
            text = text.replace(self.token.reveal(), "***")
        return _GITHUB_TOKENS.sub("***", text)


# --- reading GitHub's answers ------------------------------------------------------------------


def details(exc: GitHubError) -> str:
    """GitHub's message and the messages of its ``errors`` list, on one short line."""
    data = exc.data
    if not isinstance(data, dict):
        return " ".join(str(data or "").split())[:300]
    parts = [str(data.get("message") or "")]
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


def _rate_limit_message(what: str, exc: GitHubError, headers: Mapping[str, str]) -> str:
    wait = exc.wait
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


def _network_reason(exc: Exception, timeout: int) -> str:
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
