"""The HTTP side of the Infisical store: one operation's time budget, and the transport that
makes every request of the SDK keep to it.

The SDK sets no timeout and retries network errors for about 15 s on its own. The transport,
mounted on the SDK's ``requests`` session with ``Session.mount`` (requests' documented
extension point, so nothing inside the SDK is patched), gives every request the per-request
timeout or the operation's time left, whichever is smaller, reads the body before returning
(so a connection dropped mid-body is caught here too), and turns "no answer" into
:class:`NoAnswer`, an error the SDK does not retry: the only retries are then the store's
(:meth:`bot.adapters.infisical.session.InfisicalSession.call`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)


class OutOfTime(Exception):
    """The operation's time is spent. Not an OSError: the SDK's retry lets it through."""


class NoAnswer(Exception):
    """A request that got no HTTP answer (refused, dropped, timed out). Deliberately not an
    OSError nor a requests exception, so the SDK does not retry it: ours is the only retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Budget:
    """The time left to the current operation, and what the last answer said about retrying."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.deadline = math.inf
        self.retry_after: float | None = None

    def remaining(self) -> float:
        return self.deadline - self.clock()


class BoundedTransport(HTTPAdapter):
    """Every request within the per-request timeout and the operation's time left; a request
    that gets no answer raises :class:`NoAnswer` (ours to retry, not the SDK's)."""

    def __init__(self, *, budget: Budget, timeout: float) -> None:
        super().__init__(max_retries=0)  # urllib3 retries nothing either
        self._budget = budget
        self._timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        left = self._budget.remaining()
        if left <= 0:
            raise OutOfTime
        limit = self._timeout
        if isinstance(timeout, int | float):  # a future SDK may pass its own: the shorter wins
            limit = min(limit, float(timeout))
        # connect within half the time left, so connect + first read never outlast the budget
        connect = min(limit, left / 2)
        read = min(limit, left - connect)
        path = urlsplit(request.url or "").path
        started = self._budget.clock()
        failure: NoAnswer | None = None
        try:
            response = super().send(
                request,
                stream=stream,
                timeout=(connect, read),
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
            if not stream:
                _ = response.content  # read the body here: a drop mid-body is ours to retry too
        except requests.Timeout:
            failure = NoAnswer(f"no answer within {max(connect, read):.1f} s")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            failure = NoAnswer(_network_reason(exc))
        if failure is not None:
            log.debug("Infisical %s %s: %s", request.method, path, failure.reason)
            raise failure  # outside the except block: nothing chains to the request body
        self._budget.retry_after = _retry_after(response.headers.get("Retry-After"))
        log.debug(
            "Infisical %s %s -> %s in %.0f ms",
            request.method,
            path,
            response.status_code,
            (self._budget.clock() - started) * 1000,
        )
        return response


def _network_reason(exc: Exception) -> str:
    """A short reason from a requests error, without its URL (it names no secret anyway)."""
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nameresolution" in text or "getaddrinfo" in text:
        return "host name not resolved"
    if "no route" in text or "unreachable" in text:
        return "host unreachable"
    return "connection dropped before an answer"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in seconds (dates are rare here: ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
