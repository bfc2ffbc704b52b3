"""PyGithub's retries, bounded and extended to GitHub's 429 answers.

PyGithub owns the per-call timeout and the retries (a urllib3 ``Retry`` on its session); this
module only configures them: how many, how long a wait may be, and how GitHub's rate-limit
headers set the wait.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from github import GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

RETRIES = 3
SECONDARY_RATE_WAIT = 60.0  # GitHub: "wait at least one minute" after a secondary rate limit
MAX_RATE_LIMIT_WAIT = 90.0  # longer than this, a chat command fails instead of hanging


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
