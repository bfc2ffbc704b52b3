"""When a GitHub call is tried again, and after how long.

:class:`RetryPolicy` is the whole rule set; :class:`~bot.adapters.github.connection.
GitHubConnection` runs it around every request. Dropped connections, timeouts and 5xx answers
are retried with exponential backoff; rate limits (403 or 429, primary or secondary) wait what
GitHub announced — ``Retry-After``, else ``x-ratelimit-reset`` when nothing remains, else a
minute as GitHub asks after a secondary limit — and a wait longer than ``max_rate_limit_wait``
fails at once: a chat command must not hang until a limit resets in an hour.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

RETRIES = 3
SECONDARY_RATE_WAIT = 60.0  # GitHub: "wait at least one minute" after a secondary rate limit
MAX_RATE_LIMIT_WAIT = 90.0  # longer than this, a chat command fails instead of hanging


def announced_wait(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds GitHub asked to wait before the next call, or None when it said nothing.

    ``Retry-After`` first; else, when ``x-ratelimit-remaining`` is 0, until
    ``x-ratelimit-reset`` (plus a second: the reset happens somewhere in that second).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    retry_after = lower.get("retry-after", "").strip()
    if retry_after.isascii() and retry_after.isdigit():
        return float(retry_after)
    reset = lower.get("x-ratelimit-reset", "").strip()
    remaining = lower.get("x-ratelimit-remaining", "").strip()
    if remaining == "0" and reset.isascii() and reset.isdigit():
        return max(0.0, int(reset) - (time.time() if now is None else now)) + 1.0
    return None


def rate_limited(status: int, headers: Mapping[str, str], said: str) -> bool:
    """Whether an answer is a rate limit: every 429, and the 403s that say so (in their headers
    or their message, as a secondary limit does) — a 403 for a missing permission is not."""
    if status == 429:
        return True
    if status != 403:
        return False
    lower = {k.lower(): v for k, v in headers.items()}
    return (
        lower.get("x-ratelimit-remaining", "").strip() == "0"
        or "retry-after" in lower
        or "rate limit" in said.lower()
    )


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How many times a call is tried again and how long each wait is (tests shrink the
    waits; production keeps the defaults)."""

    retries: int = RETRIES
    backoff: float = 0.5  # first wait after a dropped connection or a 5xx; doubles each time
    backoff_max: float = 10.0
    secondary_rate_wait: float = SECONDARY_RATE_WAIT
    max_rate_limit_wait: float = MAX_RATE_LIMIT_WAIT

    def after_failure(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1, 2…) after no answer or a 5xx."""
        return min(self.backoff_max, self.backoff * 2.0 ** (retry_number - 1))

    def after_answer(
        self, status: int, headers: Mapping[str, str], said: str, *, retry_number: int
    ) -> float | None:
        """The wait before retry ``retry_number`` after an answer with ``status``, or None
        when that answer is final (a 4xx that is no rate limit).

        A rate limit waits what GitHub announced (it may exceed ``max_rate_limit_wait``: the
        caller then fails at once); a secondary limit that announced nothing waits
        ``secondary_rate_wait``, doubled on each repeat as GitHub asks, up to the bound.
        """
        if rate_limited(status, headers, said):
            announced = announced_wait(headers)
            if announced is not None:
                return announced
            return min(
                self.secondary_rate_wait * 2.0 ** (retry_number - 1), self.max_rate_limit_wait
            )
        if status >= 500:
            return self.after_failure(retry_number)
        return None
