"""Slack's Web API client as the bot uses it: one ``WebClient`` per workspace with bounded
retries (slack_sdk's retry handlers: 429 after its ``Retry-After``, 5xx and broken
connections with backoff) and a timeout on every call."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.web import WebClient

HTTP_TIMEOUT_SECONDS = 10
# chat.postMessage errors that mean "not here" (expected; any failure falls back to response_url)
FALLBACK_ERRORS = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
)


class ServerErrorsRetryHandler(RetryHandler):
    """Retries any 5xx answer (slack_sdk's own handler only retries 500 and 503)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600


def retry_handlers() -> list[RetryHandler]:
    """Bounded retries: 429 after its Retry-After, 5xx and broken connections with backoff."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorsRetryHandler(max_retry_count=2),
    ]


def web_client(*, token: str, api_url: str) -> WebClient:
    return WebClient(
        token=token,
        base_url=api_url,
        timeout=HTTP_TIMEOUT_SECONDS,
        retry_handlers=retry_handlers(),
    )


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (``not_in_channel``…), else the HTTP status: for logs and errors."""
    try:
        return str(exc.response.get("error") or exc.response.status_code)
    except Exception:
        return "unknown error"
