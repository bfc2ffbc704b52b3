"""Mattermost's REST API v4: the few calls the bot makes, as its bot account.

Plain httpx (no client library: five calls do not justify one that follows server versions):
create a post, patch it, post an ephemeral message, list groups and a group's members; plus
a command's ``response_url`` as a last resort for private answers. Every call has a timeout
and bounded retries with backoff, honouring ``Retry-After``; a call that fails for good is
logged and raised as :class:`MattermostError`, which the callers turn into a log line or a
``BackendUnavailable``, never a crash of the workflow.
"""

from __future__ import annotations

import email.utils
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger(__name__)

API = "/api/v4"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 30.0
Post = dict[str, Any]  # a post as the REST API returns it


class MattermostError(Exception):
    """A REST call failed for good (after the retries); already logged."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MattermostApi:
    """The few REST v4 calls the bot makes, as its bot account (``Authorization: Bearer``)."""

    def __init__(
        self,
        *,
        base_url: str,
        bot_token: str,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self._token = bot_token
        self._attempts = max(1, attempts)
        self._backoff = backoff
        # The bot token is added per request, never as a client default: the response_url of
        # a command is another address and must not receive it.
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Accept": "application/json", "User-Agent": "pgdb-bot"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def create_post(
        self,
        *,
        channel_id: str,
        message: str,
        root_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Post:
        """``POST /api/v4/posts``. The ``pending_post_id`` makes retries idempotent: the server
        returns the post it already created for that id instead of a duplicate."""
        body: dict[str, Any] = {
            "channel_id": channel_id,
            "message": message,
            "root_id": root_id or "",
            "pending_post_id": uuid.uuid4().hex,
        }
        if attachments:
            body["props"] = {"attachments": attachments}
        return self._post("POST", f"{API}/posts", body=body, what="create a post")

    def patch_post(
        self,
        *,
        post_id: str,
        message: str,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Post:
        """``PUT /api/v4/posts/{id}/patch``: only what is sent changes; ``attachments`` None
        keeps the post's props (and its buttons), a list replaces them."""
        body: dict[str, Any] = {"message": message}
        if attachments is not None:
            body["props"] = {"attachments": attachments}
        return self._post("PUT", f"{API}/posts/{post_id}/patch", body=body, what="update a post")

    def ephemeral_post(
        self,
        *,
        user_id: str,
        channel_id: str,
        message: str,
        root_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Post:
        """``POST /api/v4/posts/ephemeral`` (needs ``create_post_ephemeral``)."""
        post: dict[str, Any] = {"channel_id": channel_id, "message": message}
        if root_id:
            post["root_id"] = root_id
        if attachments:
            post["props"] = {"attachments": attachments}
        return self._post(
            "POST",
            f"{API}/posts/ephemeral",
            body={"user_id": user_id, "post": post},
            what="post an ephemeral message",
        )

    def respond(self, *, response_url: str, body: Mapping[str, Any]) -> None:
        """POST to a command's ``response_url`` (no bot token: it is not the REST API)."""
        self._send("POST", response_url, body=dict(body), what="answer through response_url")

    def groups(self, *, query: str, page: int = 0, per_page: int = 200) -> list[dict[str, Any]]:
        """One page of ``GET /api/v4/groups?q=`` (the server pages every list: 200 at most)."""
        found = self._json(
            "GET",
            f"{API}/groups",
            params={"q": query, "page": str(page), "per_page": str(per_page)},
            what="list groups",
        )
        return found if isinstance(found, list) else []

    def group_members(self, *, group_id: str, page: int, per_page: int) -> list[dict[str, Any]]:
        found = self._json(
            "GET",
            f"{API}/groups/{group_id}/members",
            params={"page": str(page), "per_page": str(per_page)},
            what="list a group's members",
        )
        members = found.get("members") if isinstance(found, dict) else None
        return members if isinstance(members, list) else []

    # -- transport --

    def _json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        response = self._send(
            method,
            path,
            body=body,
            params=params,
            what=what,
            headers={"Authorization": f"Bearer {self._token}"},
        )
        try:
            return response.json()
        except ValueError:
            log.error("Mattermost: could not %s: the answer is not JSON", what)
            raise MattermostError(f"{what}: answer is not JSON", status=None) from None

    def _post(self, method: str, path: str, *, what: str, body: Mapping[str, Any]) -> Post:
        """A call answered by one post object."""
        found = self._json(method, path, what=what, body=body)
        if not isinstance(found, dict) or not found.get("id"):
            log.error("Mattermost: could not %s: the answer is not a post", what)
            raise MattermostError(f"{what}: the answer is not a post")
        return found

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call with bounded retries: transport errors, timeouts, 408/429/5xx are retried
        with exponential backoff (``Retry-After`` when the server gives one; a wait longer than
        ``MAX_RETRY_AFTER_SECONDS`` gives up at once).

        The one retry loop of this adapter, written here because no library at hand does it:
        httpx's transport retries cover failed connections only (not timeouts, statuses or
        ``Retry-After``), and a retry library (tenacity and the like) would be a new
        dependency for these few lines. Slack, GitHub and Kubernetes use their client
        library's retries instead."""
        problem = ""
        status: int | None = None
        for attempt in range(1, self._attempts + 1):
            delay = self._backoff * 2 ** (attempt - 1)
            try:
                response = self._http.request(
                    method, url, json=body, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                problem, status = f"{type(exc).__name__}", None
            else:
                status = response.status_code
                if status < 400:
                    return response
                problem = f"HTTP {status}{_error_detail(response)}"
                if status not in RETRYABLE_STATUSES:
                    break
                wait = _retry_after(response)
                if wait is not None:
                    if wait > MAX_RETRY_AFTER_SECONDS:
                        problem += f" (asked to wait {wait:.0f}s: giving up)"
                        break
                    delay = wait
            if attempt < self._attempts:
                log.warning(
                    "Mattermost: %s failed (%s), attempt %d of %d; retrying in %.1fs",
                    what,
                    problem,
                    attempt,
                    self._attempts,
                    delay,
                )
                time.sleep(delay)
        log.error("Mattermost: could not %s: %s", what, problem)
        raise MattermostError(f"could not {what}: {problem}", status=status)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``Retry-After`` (delta or HTTP date), else Mattermost's rate-limit reset."""
    value = response.headers.get("Retry-After") or (
        response.headers.get("X-Ratelimit-Reset") if response.status_code == 429 else None
    )
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_detail(response: httpx.Response) -> str:
    """Mattermost's error id and message (``{"id", "message", ...}``), when it sent one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("id"):
        return f" {body.get('id')}: {str(body.get('message', ''))[:200]}"
    return ""
