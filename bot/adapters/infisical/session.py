"""The SDK session of the Infisical store: one ``InfisicalSDKClient``, logged in, one operation
at a time within its total time, and :meth:`InfisicalSession.call`, through which every SDK
call goes.

* **Time.** Each store call (``read_all``, ``read``, ``write``, ``delete``) is one
  :meth:`InfisicalSession.operation` with its own deadline; the transport
  (:mod:`bot.adapters.infisical.transport`) keeps every request within it.
* **Tokens.** The SDK logs in once and never again: the session logs in again shortly before
  the access token expires, and once more when Infisical refuses it (401, or 403
  ``TokenError``).
* **Retries.** :meth:`InfisicalSession.call` is the one retry loop of the adapter, and is hand
  written on purpose. A urllib3 ``Retry`` mounted on the SDK's ``requests`` session (the
  session is a public attribute, ``client.api.session``) would honour ``Retry-After`` and a
  status list, but not the rest of what the store promises: requests reads the body *after*
  urllib3's retry loop has returned (it asks for ``preload_content=False``), so a connection
  dropped mid-body would escape it into the SDK's own unbounded retry; urllib3 gives every try
  the timeout fixed before the first, where the store shrinks each try to the operation's time
  left so the last one ends within it; and a refused token is retried after a new login, above
  HTTP. So the transport turns every failure into an error the SDK does not retry, and this
  loop retries: :data:`ATTEMPTS` tries of network errors and 429/5xx, with backoff, honouring
  ``Retry-After``, never sleeping past the deadline.
* **Errors.** Every failure becomes a ``BackendUnavailable`` (:mod:`.errors`), raised outside
  the ``except`` blocks, so it chains to nothing that holds a request body.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError, InfisicalError

from bot.adapters.infisical.errors import SYSTEM, ErrorTranslator, mask, token_refused
from bot.adapters.infisical.place import Place
from bot.adapters.infisical.transport import BoundedTransport, Budget, NoAnswer, OutOfTime
from bot.core.errors import BackendUnavailable
from bot.core.secret import Secret

log = logging.getLogger(__name__)

ATTEMPTS = 3  # tries of one request on a network error or a retryable status
BACKOFF = 0.5  # seconds before the second try; doubled before each next one
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_TOKEN_MARGIN = 30.0  # log in again this long before the token expires (at most 1/10 of its life)


@dataclass(frozen=True)
class Tolerated:
    """An HTTP status the caller asked to handle itself (e.g. 400 "already exists")."""

    status: int
    said: str  # the server's message, masked


@dataclass(frozen=True)
class _Failed:
    """One failed try: the error to raise if it is the last, and whether another is worth it."""

    error: BackendUnavailable
    retryable: bool = False  # a network error, 429 or 5xx
    refused: bool = False  # the token was refused: worth a new login first


class InfisicalSession:
    """The SDK client of one store, at one :class:`~bot.adapters.infisical.place.Place`.
    Calls are serialized: one SDK session, one token and one deadline at a time (requests'
    sessions are not meant to be shared across threads)."""

    def __init__(
        self,
        *,
        place: Place,
        client_id: str,
        client_secret: Secret,
        timeout: float,
        total: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.place = place
        self._errors = ErrorTranslator(place, total)
        self._client_id = client_id
        self._client_secret = client_secret
        self._total = total
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._budget = Budget(clock)
        self.sdk = InfisicalSDKClient(host=place.url, cache_ttl=None)  # no cache thread
        transport = BoundedTransport(budget=self._budget, timeout=timeout)
        self.sdk.api.session.mount("http://", transport)
        self.sdk.api.session.mount("https://", transport)
        self._token_until = -math.inf  # not logged in yet
        self._token: str | None = None
        self._project_id: str | None = None
        self._hidden: tuple[str, ...] = ()

    # --- the project ----------------------------------------------------------------------------

    def project_id(self) -> str:
        """The project's id, looked up once by slug; its environment is checked at the same time."""
        if self._project_id is not None:
            return self._project_id
        slug, env = self.place.project, self.place.env
        data = self.call(
            f"look up project `{slug}`",
            lambda: self.sdk.api.get(f"/api/v1/projects/slug/{quote(slug)}", model=dict).data,
        )
        project = data.get("project", data) if isinstance(data, dict) else None
        project_id = project.get("id") if isinstance(project, dict) else None
        if not isinstance(project, dict) or not isinstance(project_id, str) or not project_id:
            raise BackendUnavailable(
                SYSTEM,
                f"the answer to the lookup of project `{slug}` has no project id — check that"
                f" PGDB_INFISICAL_URL ({self.place.url}) is the Infisical API",
            )
        environments = [
            e.get("slug") for e in project.get("environments") or [] if isinstance(e, dict)
        ]
        if environments and env not in environments:
            known = ", ".join(str(e) for e in environments)
            raise BackendUnavailable(
                SYSTEM,
                f"environment `{env}` does not exist in project `{slug}` (it has: {known})"
                " — set PGDB_ENV to one of them, or add the environment in Infisical",
            )
        self._project_id = project_id
        return project_id

    # --- one operation, one call ----------------------------------------------------------------

    @contextmanager
    def operation(self, *, hide: str = "") -> Iterator[None]:
        """One store call: serialized, with its own deadline, and values to keep out of errors."""
        with self._lock:
            self._budget.deadline = self._clock() + self._total
            self._hidden = tuple(v for v in (hide, self._client_secret.reveal()) if v)
            try:
                yield
            finally:
                self._budget.deadline = math.inf
                self._hidden = ()

    def call(
        self,
        action: str,
        fn: Callable[[], Any],
        *,
        tolerate: frozenset[int] = frozenset(),
        writes: str | None = None,
        login: bool = False,
    ) -> Any:
        """One SDK call, logged in, retried when worth it, its failure translated.

        Network errors and 429/5xx are tried :data:`ATTEMPTS` times within the operation's
        time; a refused token leads to one new login. A status in ``tolerate`` is returned as
        :class:`Tolerated`. ``writes`` names the key being written, for the approval-policy
        answer (a 200 without a secret, on which the SDK fails).
        """
        attempt = 0
        relogged = False
        while True:
            if not login and self._clock() >= self._token_until:
                self._login()
            attempt += 1
            self._budget.retry_after = None
            outcome = self._try(
                action, fn, tolerate=tolerate, writes=writes, login=login, attempts=attempt
            )
            if not isinstance(outcome, _Failed):
                return outcome
            error = outcome.error
            if outcome.refused and not login and not relogged:
                log.info("Infisical refused the access token: logging in again")
                relogged = True
                attempt -= 1
                self._token_until = -math.inf
                continue
            if outcome.retryable and attempt < ATTEMPTS:
                asked = self._budget.retry_after
                pause = asked if asked is not None else _backoff(attempt)
                if pause < self._budget.remaining():
                    log.debug(
                        "Infisical: %s: try %d failed, next in %.1f s", action, attempt, pause
                    )
                    self._sleep(pause)
                    continue
                if asked is not None:  # the server's own wait is longer than the time left
                    error = self._errors.out_of_time(action, asked=asked)
            raise error  # outside any except block: it chains to nothing

    def _try(
        self,
        action: str,
        fn: Callable[[], Any],
        *,
        tolerate: frozenset[int],
        writes: str | None,
        login: bool,
        attempts: int,
    ) -> Any:
        """One try of ``fn``: its result, a :class:`Tolerated` status, or a :class:`_Failed`
        that says what went wrong (the error is made here but raised by ``call``)."""
        try:
            return fn()
        except APIError as exc:
            status, body = exc.status_code, exc.response
            said = self._server_said(body)
            if status in tolerate:
                return Tolerated(status, said)
            return _Failed(
                self._errors.http_error(action, status, body, said, login=login, attempts=attempts),
                retryable=status in _RETRY_STATUSES,
                refused=token_refused(status, body),
            )
        except NoAnswer as exc:
            return _Failed(
                self._errors.no_answer(action, exc.reason, attempts=attempts), retryable=True
            )
        except OutOfTime:
            return _Failed(self._errors.out_of_time(action))
        except KeyError as exc:  # the SDK reads ``secret`` from a 2xx answer that has none
            approval = writes is not None and exc.args == ("secret",)
            return _Failed(self._errors.odd_answer(action, approval=approval, writes=writes))
        except InfisicalError:
            return _Failed(self._errors.not_json(action))
        except (requests.RequestException, TypeError, AttributeError, ValueError) as exc:
            log.debug("Infisical: unexpected failure of %s (%s)", action, type(exc).__name__)
            return _Failed(self._errors.odd_answer(action, approval=False, writes=writes))

    def _login(self) -> None:
        """Universal Auth; remember when to log in again (a little before the token expires)."""
        result = self.call(
            "log in",
            lambda: self.sdk.auth.universal_auth.login(
                client_id=self._client_id, client_secret=self._client_secret.reveal()
            ),
            login=True,
        )
        self._token = str(result.accessToken)
        try:
            ttl = float(result.expiresIn)
        except (TypeError, ValueError):
            ttl = 0.0
        if ttl <= 0:  # a token without expiry
            self._token_until = math.inf
        else:
            self._token_until = self._clock() + ttl - min(_TOKEN_MARGIN, ttl / 10)
        log.debug("Infisical: logged in as machine identity %s", self._client_id)

    def _server_said(self, body: Any) -> str:
        """The server's message, short and with every hidden value and the token masked."""
        if not isinstance(body, Mapping):
            return ""
        return mask(body, (*self._hidden, self._token or ""))


def _backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s… with ±20 % jitter, so replicas do not retry in step."""
    return BACKOFF * 2.0 ** (attempt - 1) * random.uniform(0.8, 1.2)  # noqa: S311 (not crypto)
