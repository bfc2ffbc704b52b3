"""The one place that talks to GitHub: its REST API over httpx.

:class:`GitHubConnection` owns what every request needs — the credentials (a token, or a
GitHub App's installation token, fetched on first use and renewed before it expires), the
timeout, the retries of :mod:`~bot.adapters.github.retry`, the spacing of writes, the
pagination — and :meth:`GitHubConnection.call`, which turns any failure into the errors of
:mod:`bot.adapters.github.errors`.

No client library: the bot makes about fifteen kinds of calls, and a library that models all
of GitHub cost the bot's memory more than any other (issue 17).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from bot.adapters.github.credentials import AppCredentials, app_jwt
from bot.adapters.github.errors import READ, ErrorTranslator, GitHubError, Need, details
from bot.adapters.github.retry import RetryPolicy
from bot.core.errors import PgdbError
from bot.core.secret import Secret

T = TypeVar("T")

DEFAULT_API_URL = "https://api.github.com"
TIMEOUT_SECONDS = 10
PAGE_SIZE = 100
WRITE_SPACING = 1.0  # seconds between two writes (GitHub's guidance for integrations)
TOKEN_RENEWAL = 300.0  # an installation token is renewed this long before it expires
_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "pgdb-bot",
}


class GitHubConnection:
    """One repository at one API, as one token or one App installation. The HTTP client is
    built on first use (no call until one is needed) and shared by the threads of the bot."""

    def __init__(
        self,
        *,
        repo: str,
        token: Secret | None,
        app: AppCredentials | None,
        api_url: str,
        base_branch: str,
        timeout: int,
        retry: RetryPolicy,
        write_spacing: float,
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
        self._write_spacing = write_spacing
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._installation: tuple[Secret, float] | None = None  # token, monotonic renewal time
        self._write_lock = threading.Lock()  # held by the one write under way
        self._next_write = 0.0  # monotonic time before which no write may start
        self._errors = ErrorTranslator(
            repo=repo,
            api_url=api_url,
            base_branch=base_branch,
            token=token,
            app=app,
            retries=retry.retries,
            timeout=timeout,
        )

    # --- the calls the other modules make ----------------------------------------------------

    def get(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any:
        """``GET /repos/<owner>/<name>/<path>``: the JSON answer."""
        return self._json("GET", self._url(path), params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """``POST /repos/<owner>/<name>/<path>`` (a write: spaced, see ``_write_turn``)."""
        return self._json("POST", self._url(path), body=body)

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        """``PATCH /repos/<owner>/<name>/<path>`` (a write: spaced, see ``_write_turn``)."""
        return self._json("PATCH", self._url(path), body=body)

    def pages(self, path: str, *, params: Mapping[str, str | int]) -> list[Any]:
        """Every item of a list, page after page (``Link: <…>; rel="next"``, 100 a page)."""
        items: list[Any] = []
        url: str | None = self._url(path)
        query: Mapping[str, str | int] | None = {**params, "per_page": PAGE_SIZE}
        seen: set[str] = set()
        while url is not None:
            response = self._request("GET", url, params=query)
            page = _decoded(response)
            if not isinstance(page, list):
                raise TypeError(f"a list was expected, not {type(page).__name__}")
            items.extend(page)
            seen.add(url)
            url, query = self._next_page(response), None
            if url in seen:
                raise TypeError("the next page is one already read")
        return items

    def call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        need: Need = READ,
        missing: str | None = None,
    ) -> T:
        """Run one operation (one or a few requests); any failure becomes a
        BackendUnavailable that says what failed and what to fix, with no credential in it.
        ``missing`` is the fix for a 404 on a repository that exists."""
        try:
            return fn()
        except PgdbError:
            raise
        except GitHubError as exc:
            raise self._errors.failure(
                exc, what=what, need=need, missing=missing, repo_visible=self._repo_visible
            ) from None
        except httpx.HTTPError as exc:  # refused, dropped, timed out, too many redirects
            raise self._errors.no_answer(what, exc) from None
        except (KeyError, TypeError, ValueError) as exc:  # an answer unlike GitHub's
            raise self._errors.unexpected(what, exc) from None

    # --- one request, with its retries ---------------------------------------------------------

    def _url(self, path: str) -> str:
        """The URL of ``path`` under the repository; ``path`` is quoted here (the modules
        checked it first: :mod:`~bot.adapters.github.refs`)."""
        suffix = f"/{quote(path, safe='/')}" if path else ""
        return f"{self.api_url}/repos/{self.repo}{suffix}"

    def _json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        return _decoded(self._request(method, url, params=params, body=body))

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        bearer: Secret | None = None,
    ) -> httpx.Response:
        """One request, tried again on no answer, a 5xx or a rate limit (as the retry policy
        says), and once with a renewed installation token when that one was refused. Raises
        GitHubError with the last answer, or httpx's error when none came."""
        http = self._client()
        write = method != "GET" and bearer is None  # (fetching a token is no write)
        renewed = False
        retry_number = 0
        while True:
            credential = bearer if bearer is not None else self._credential()
            try:
                with self._write_turn() if write else nullcontext():
                    response = http.request(
                        method,
                        url,
                        params=params,
                        json=body,
                        headers={"Authorization": f"Bearer {credential.reveal()}"},
                    )
            except httpx.TransportError:
                retry_number += 1
                if retry_number > self._retry.retries:
                    raise
                time.sleep(self._retry.after_failure(retry_number))
                continue
            status = response.status_code
            if status < 400:
                return response
            failure = GitHubError(status=status, headers=response.headers, data=_data(response))
            if status == 401 and bearer is None and self._app is not None and not renewed:
                renewed = True  # the installation token was revoked or expired early
                with self._lock:
                    self._installation = None
                continue
            retry_number += 1
            wait = self._retry.after_answer(
                status, failure.headers, details(failure), retry_number=retry_number
            )
            if wait is None or retry_number > self._retry.retries:
                raise failure
            if wait > self._retry.max_rate_limit_wait:
                failure.wait = wait
                raise failure
            time.sleep(wait)

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    headers=_HEADERS,
                    timeout=httpx.Timeout(self._timeout),
                    # GitHub redirects a renamed repository; httpx drops the Authorization
                    # header when a redirect leaves the API's origin
                    follow_redirects=True,
                )
            return self._http

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """One write at a time, each ``write_spacing`` (by default ``WRITE_SPACING``) after the
        end of the one before, as GitHub asks of integrations ("serially", "at least one second
        between each") to stay clear of its secondary rate limits. A spacing of 0: no wait, no
        turn."""
        if self._write_spacing <= 0:
            yield
            return
        with self._write_lock:
            wait = self._next_write - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                yield
            finally:
                self._next_write = time.monotonic() + self._write_spacing

    def _next_page(self, response: httpx.Response) -> str | None:
        """The next page's URL; refused when it leaves the API (the token would follow it)."""
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        if not url.startswith(self.api_url + "/"):
            raise TypeError(f"the next page is outside {self.api_url}")
        return url

    # --- credentials --------------------------------------------------------------------------

    def _credential(self) -> Secret:
        """The token every request carries: the configured one, or the App installation's."""
        if self._token is not None:
            return self._token
        with self._lock:
            current = self._installation
        if current is not None and time.monotonic() < current[1]:
            return current[0]
        token, renew_at = self._installation_token()
        with self._lock:
            self._installation = (token, renew_at)
        return token

    def _installation_token(self) -> tuple[Secret, float]:
        """A new installation token and when to renew it. A failure is told as a wrong App
        id, key or installation rather than as a failure of whatever call came first."""
        app = self._app
        assert app is not None
        url = f"{self.api_url}/app/installations/{app.installation_id}/access_tokens"
        try:
            answer = _decoded(self._request("POST", url, bearer=app_jwt(app)))
            token = str(answer["token"])
            expires = datetime.fromisoformat(str(answer["expires_at"]))
        except (GitHubError, httpx.HTTPError) as exc:
            raise self._errors.app_login_failure(exc) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise self._errors.unexpected(
                f"authenticating as GitHub App {app.app_id}", exc
            ) from None
        lifetime = max(0.0, expires.timestamp() - time.time())
        return Secret(token), time.monotonic() + max(0.0, lifetime - TOKEN_RENEWAL)

    def _repo_visible(self) -> bool:
        """Whether the repository answers at all: tells "no such repository, or no access"
        apart from "no such branch or file" (GitHub says 404 for both)."""
        try:
            self._request("GET", self._url(""))
        except GitHubError as exc:
            return exc.status != 404
        except (PgdbError, httpx.HTTPError):
            return True
        return True


def _decoded(response: httpx.Response) -> Any:
    """The JSON of a successful answer (None for 204 No Content)."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise GitHubError(
            status=response.status_code,
            headers=response.headers,
            data=f"an answer that is not JSON ({response.headers.get('content-type', '?')})",
        ) from None


def _data(response: httpx.Response) -> Any:
    """What a failed answer says: its JSON, else the start of its text."""
    try:
        return response.json()
    except ValueError:
        return response.text[:300]
