"""The Infisical secret store: the team's real secret manager, behind the same port as the file
store (SPEC §3.2 step 3, §5, §6.1).

It speaks to Infisical through the official SDK (``infisicalsdk``) as a machine identity with
Universal Auth, and adds what the SDK leaves to its caller:

* **Time.** The SDK sets no timeout and retries network errors for about 15 s on its own. A
  transport adapter, mounted on the SDK's ``requests`` session with ``Session.mount`` (requests'
  documented extension point, so nothing inside the SDK is patched), gives every request the
  per-request timeout or the operation's time left, whichever is smaller, and turns "no answer"
  into an error the SDK does not retry. The only retries are then ours: bounded, with backoff,
  honouring ``Retry-After``, and each store call (``read_all``, ``read``, ``write``) ends within
  its total time.
* **Tokens.** The SDK logs in once and never again: the store logs in again shortly before the
  access token expires, and once more when Infisical refuses it (401, or 403 ``TokenError``).
* **Errors.** Every failure becomes a ``BackendUnavailable`` that names what to fix. Messages
  never carry a secret value, the client secret or the token, and are raised outside the
  ``except`` blocks, so they chain to nothing that holds a request body.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError, InfisicalError
from requests.adapters import HTTPAdapter

from bot.core.errors import BackendUnavailable
from bot.core.model import SECRET_KEYS, StoredCredentials
from bot.core.names import AppName
from bot.core.secret import Secret

log = logging.getLogger(__name__)

_SYSTEM = "Infisical"
DEFAULT_TIMEOUT = 10.0  # seconds: one request's connect, and each of its reads
DEFAULT_TOTAL = 30.0  # seconds: one store call, with its retries and re-logins
ATTEMPTS = 3  # tries of one request on a network error or a retryable status
BACKOFF = 0.5  # seconds before the second try; doubled before each next one
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_TOKEN_MARGIN = 30.0  # log in again this long before the token expires (at most 1/10 of its life)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_FOLDER = re.compile(r"^[A-Za-z0-9_-]+$")  # what Infisical accepts as a folder name
_HIDDEN = "********"


class _OutOfTime(Exception):
    """The operation's time is spent. Not an OSError: the SDK's retry lets it through."""


class _NoAnswer(Exception):
    """A request that got no HTTP answer (refused, dropped, timed out). Deliberately not an
    OSError nor a requests exception, so the SDK does not retry it: ours is the only retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Budget:
    """The time left to the current operation, and what the last answer said about retrying."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.deadline = math.inf
        self.retry_after: float | None = None

    def remaining(self) -> float:
        return self.deadline - self.clock()


class _BoundedTransport(HTTPAdapter):
    """Every request within the per-request timeout and the operation's time left; a request
    that gets no answer raises :class:`_NoAnswer` (ours to retry, not the SDK's)."""

    def __init__(self, *, budget: _Budget, timeout: float) -> None:
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
            raise _OutOfTime
        limit = self._timeout
        if isinstance(timeout, int | float):  # a future SDK may pass its own: the shorter wins
            limit = min(limit, float(timeout))
        # connect within half the time left, so connect + first read never outlast the budget
        connect = min(limit, left / 2)
        read = min(limit, left - connect)
        path = urlsplit(request.url or "").path
        started = self._budget.clock()
        failure: _NoAnswer | None = None
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
            failure = _NoAnswer(f"no answer within {max(connect, read):.1f} s")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            failure = _NoAnswer(_network_reason(exc))
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


@dataclass(frozen=True)
class _Tolerated:
    """An HTTP status the caller asked to handle itself (e.g. 400 "already exists")."""

    status: int
    said: str  # the server's message, masked


class InfisicalSecretStore:
    """``SecretStore`` on an Infisical project: ``<prefix>/<app>/{username,password,database}``
    in one environment. Calls are serialized: one SDK session, one token and one deadline at a
    time (requests' sessions are not meant to be shared across threads)."""

    kind = "Infisical"

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        client_secret: Secret,
        project: str,
        env: str,
        prefix: str = "/postgresql",
        timeout: float = DEFAULT_TIMEOUT,
        total: float = DEFAULT_TOTAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = [p for p in prefix.split("/") if p]
        if not parts or not all(_FOLDER.fullmatch(p) for p in parts):
            raise ValueError(f"unusable secret path prefix {prefix!r}")
        if not _SLUG.fullmatch(project):
            raise ValueError(f"unusable Infisical project slug {project!r}")
        if not _SLUG.fullmatch(env):
            raise ValueError(f"unusable Infisical environment slug {env!r}")
        if timeout <= 0 or total <= 0:
            raise ValueError("timeouts must be positive")
        split = urlsplit(url)
        if split.scheme not in {"http", "https"} or not split.hostname:
            raise ValueError("the Infisical URL must be http(s)://host[:port][/path]")
        self.url = url.rstrip("/")
        self.project = project
        self.env = env
        self.prefix = "/" + "/".join(parts)
        self._client_id = client_id
        self._client_secret = client_secret
        self._total = total
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._budget = _Budget(clock)
        self._sdk = InfisicalSDKClient(host=self.url, cache_ttl=None)  # no cache thread
        transport = _BoundedTransport(budget=self._budget, timeout=timeout)
        self._sdk.api.session.mount("http://", transport)
        self._sdk.api.session.mount("https://", transport)
        self._token_until = -math.inf  # not logged in yet
        self._token: str | None = None
        self._project_id: str | None = None
        self._hidden: tuple[str, ...] = ()

    # --- the port -----------------------------------------------------------------------------

    def location(self, app: AppName) -> str:
        """The path, environment and project, which is what an operator types in Infisical."""
        return f"{self._path(app)} (env {self.env}, Infisical project {self.project})"

    def read_all(self) -> dict[str, StoredCredentials]:
        """Every app folder under the prefix: one listing of the folders and one recursive
        listing of the secrets, whatever the number of apps (an empty folder is an app too)."""
        with self._operation():
            project_id = self._project()
            folders = self._call(
                f"list the folders under {self.prefix}",
                lambda: self._sdk.folders.list_folders(
                    project_id=project_id, environment_slug=self.env, path=self.prefix
                ),
            )
            listing = self._call(
                f"list the secrets under {self.prefix}",
                lambda: self._sdk.secrets.list_secrets(
                    environment_slug=self.env,
                    secret_path=self.prefix,
                    project_id=project_id,
                    expand_secret_references=False,
                    include_imports=False,
                    recursive=True,
                ),
            )
        values: dict[str, dict[str, str]] = {str(f.name): {} for f in folders.folders}
        for secret in listing.secrets:
            app = self._app_of(secret.secretPath)
            if app is not None and secret.secretKey in SECRET_KEYS and secret.type == "shared":
                values.setdefault(app, {})[secret.secretKey] = secret.secretValue
        return {app: _credentials(values[app]) for app in sorted(values)}

    def read(self, app: AppName) -> StoredCredentials | None:
        """The app's keys (one listing); when it has none, whether its folder exists."""
        path = self._path(app)
        with self._operation():
            project_id = self._project()
            listing = self._call(
                f"read {path}",
                lambda: self._sdk.secrets.list_secrets(
                    environment_slug=self.env,
                    secret_path=path,
                    project_id=project_id,
                    expand_secret_references=False,
                    include_imports=False,
                ),
            )
            values = {
                s.secretKey: s.secretValue
                for s in listing.secrets
                if s.secretKey in SECRET_KEYS and s.type == "shared"
            }
            if values:
                return _credentials(values)
            folders = self._call(
                f"list the folders under {self.prefix}",
                lambda: self._sdk.folders.list_folders(
                    project_id=project_id, environment_slug=self.env, path=self.prefix
                ),
            )
        exists = any(str(f.name) == app for f in folders.folders)
        return StoredCredentials() if exists else None

    def write(self, app: AppName, *, username: str, password: Secret, database: str) -> None:
        """The folder first (Infisical creates missing parents and returns an existing folder),
        then each key: created, or updated when it exists. Writes what it is told."""
        path = self._path(app)
        values = {"username": username, "password": password.reveal(), "database": database}
        with self._operation(hide=values["password"]):
            project_id = self._project()
            self._call(
                f"create the folder {path}",
                lambda: self._sdk.folders.create_folder(
                    name=str(app),
                    environment_slug=self.env,
                    project_id=project_id,
                    path=self.prefix,
                ),
            )
            for key in SECRET_KEYS:
                self._put(project_id, path=path, key=key, value=values[key])

    def delete(self, app: AppName) -> bool:
        """Each key, then the folder; an absent one (404) is already gone, so a re-run after a
        failure part-way finishes the job.

        Like the file store, only what the bot writes goes: the folder's secrets, sub-folders
        and secret imports are listed first, and a folder holding anything but the three keys
        is refused with nothing deleted (deleting a folder deletes everything beneath it)."""
        path = self._path(app)
        removed = False
        with self._operation():
            project_id = self._project()
            foreign = self._foreign(project_id, app)
            if foreign:
                raise BackendUnavailable(
                    _SYSTEM,
                    f"{path} (env {self.env}) holds what the bot did not write"
                    f" ({'; '.join(foreign)}), so nothing was deleted — move them elsewhere in"
                    " Infisical (or delete them there if nobody needs them), then run the"
                    " command again",
                )
            for key in SECRET_KEYS:
                target = f"`{key}` at {path}"
                gone = self._call(
                    f"delete {target}",
                    lambda key=key: self._sdk.secrets.delete_secret_by_name(  # type: ignore[misc]
                        secret_name=key,
                        secret_path=path,
                        environment_slug=self.env,
                        project_id=project_id,
                    ),
                    tolerate=frozenset({404}),
                    writes=target,
                )
                removed = removed or not isinstance(gone, _Tolerated)
            folder = self._call(
                f"delete the folder {path}",
                lambda: self._sdk.folders.delete_folder(
                    folder_id_or_name=str(app),
                    environment_slug=self.env,
                    project_id=project_id,
                    path=self.prefix,
                ),
                tolerate=frozenset({404}),
            )
        return removed or not isinstance(folder, _Tolerated)

    # --- the calls ----------------------------------------------------------------------------

    def _foreign(self, project_id: str, app: AppName) -> list[str]:
        """What the app's folder holds besides the bot's three keys, described without values:
        other secrets, sub-folders, secret imports. Empty when the folder is absent."""
        path = self._path(app)
        listing = self._call(
            f"list the secrets in {path}",
            lambda: self._sdk.secrets.list_secrets(
                environment_slug=self.env,
                secret_path=path,
                project_id=project_id,
                expand_secret_references=False,
                view_secret_value=False,
                include_imports=True,
            ),
        )
        folders = self._call(
            f"list the folders in {path}",
            lambda: self._sdk.folders.list_folders(
                project_id=project_id, environment_slug=self.env, path=path
            ),
        )
        keys = sorted(
            {
                f"{s.secretKey} ({s.type})" if s.type != "shared" else str(s.secretKey)
                for s in listing.secrets
                if s.secretKey not in SECRET_KEYS or s.type != "shared"
            }
        )
        found: list[str] = []
        if keys:
            found.append(f"secrets {', '.join(keys)}")
        names = sorted(str(f.name) for f in folders.folders)
        if names:
            found.append(f"folders {', '.join(names)}")
        imports = sorted(f"{i.environment}:{i.secretPath}" for i in listing.imports or ())
        if imports:
            found.append(f"secret imports from {', '.join(imports)}")
        return found

    def _put(self, project_id: str, *, path: str, key: str, value: str) -> None:
        """Create the key; Infisical answers 400 when it exists, and then it is updated."""
        target = f"`{key}` at {path}"
        created = self._call(
            f"create {target}",
            lambda: self._sdk.secrets.create_secret_by_name(
                secret_name=key,
                secret_path=path,
                environment_slug=self.env,
                project_id=project_id,
                secret_value=value,
            ),
            tolerate=frozenset({400}),
            writes=target,
        )
        if not isinstance(created, _Tolerated):
            return
        updated = self._call(
            f"update {target}",
            lambda: self._sdk.secrets.update_secret_by_name(
                current_secret_name=key,
                secret_path=path,
                environment_slug=self.env,
                project_id=project_id,
                secret_value=value,
            ),
            tolerate=frozenset({404}),
            writes=target,
        )
        if isinstance(updated, _Tolerated):  # so the 400 was not "already exists"
            raise BackendUnavailable(
                _SYSTEM,
                f"the server refused to create {target}: HTTP 400 ({created.said}) — check the"
                " server's logs for this request",
            )

    def _project(self) -> str:
        """The project's id, looked up once by slug; its environment is checked at the same time."""
        if self._project_id is not None:
            return self._project_id
        slug = self.project
        data = self._call(
            f"look up project `{slug}`",
            lambda: self._sdk.api.get(f"/api/v1/projects/slug/{quote(slug)}", model=dict).data,
        )
        project = data.get("project", data) if isinstance(data, dict) else None
        project_id = project.get("id") if isinstance(project, dict) else None
        if not isinstance(project, dict) or not isinstance(project_id, str) or not project_id:
            raise BackendUnavailable(
                _SYSTEM,
                f"the answer to the lookup of project `{slug}` has no project id — check that"
                f" PGDB_INFISICAL_URL ({self.url}) is the Infisical API",
            )
        environments = [
            e.get("slug") for e in project.get("environments") or [] if isinstance(e, dict)
        ]
        if environments and self.env not in environments:
            known = ", ".join(str(e) for e in environments)
            raise BackendUnavailable(
                _SYSTEM,
                f"environment `{self.env}` does not exist in project `{slug}` (it has: {known})"
                " — set PGDB_ENV to one of them, or add the environment in Infisical",
            )
        self._project_id = project_id
        return project_id

    def _login(self) -> None:
        """Universal Auth; remember when to log in again (a little before the token expires)."""
        result = self._call(
            "log in",
            lambda: self._sdk.auth.universal_auth.login(
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

    def _call(
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
        time; a refused token leads to one new login. ``writes`` names the key being written,
        for the approval-policy answer (a 200 without a secret, on which the SDK fails).
        """
        attempt = 0
        relogged = False
        while True:
            if not login and self._clock() >= self._token_until:
                self._login()
            attempt += 1
            pause: float | None = None  # set when another try is worth it
            refused = False
            self._budget.retry_after = None
            try:
                return fn()
            except APIError as exc:
                status, body = exc.status_code, exc.response
                if status in tolerate:
                    return _Tolerated(status, self._server_said(body))
                refused = not login and not relogged and _token_refused(status, body)
                error = self._http_error(action, status, body, login=login, attempts=attempt)
                if status in _RETRY_STATUSES and attempt < ATTEMPTS:
                    pause = self._budget.retry_after
                    if pause is None:
                        pause = _backoff(attempt)
            except _NoAnswer as exc:
                error = self._no_answer(action, exc.reason, attempts=attempt)
                if attempt < ATTEMPTS:
                    pause = _backoff(attempt)
            except _OutOfTime:
                error = self._out_of_time(action)
            except KeyError as exc:  # the SDK reads ``secret`` from a 2xx answer that has none
                approval = writes is not None and exc.args == ("secret",)
                error = self._odd_answer(action, approval=approval, writes=writes)
            except InfisicalError:
                error = BackendUnavailable(
                    _SYSTEM,
                    f"the answer to {action} is not JSON — check that PGDB_INFISICAL_URL"
                    f" ({self.url}) is the Infisical API and not a proxy or login page",
                )
            except (requests.RequestException, TypeError, AttributeError, ValueError) as exc:
                log.debug("Infisical: unexpected failure of %s (%s)", action, type(exc).__name__)
                error = self._odd_answer(action, approval=False, writes=writes)
            if refused:
                log.info("Infisical refused the access token: logging in again")
                relogged = True
                attempt -= 1
                self._token_until = -math.inf
                continue
            if pause is not None:
                left = self._budget.remaining()
                if pause < left:
                    log.debug(
                        "Infisical: %s: try %d failed, next in %.1f s", action, attempt, pause
                    )
                    self._sleep(pause)
                    continue
                asked = self._budget.retry_after
                if asked is not None:  # the server's own wait is longer than the time left
                    error = self._out_of_time(action, asked=asked)
            raise error  # outside the except blocks: it chains to nothing

    @contextmanager
    def _operation(self, *, hide: str = "") -> Iterator[None]:
        """One store call: serialized, with its own deadline, and values to keep out of errors."""
        with self._lock:
            self._budget.deadline = self._clock() + self._total
            self._hidden = tuple(v for v in (hide, self._client_secret.reveal()) if v)
            try:
                yield
            finally:
                self._budget.deadline = math.inf
                self._hidden = ()

    # --- errors -------------------------------------------------------------------------------

    def _http_error(
        self, action: str, status: int, body: Any, *, login: bool, attempts: int
    ) -> BackendUnavailable:
        body = body if isinstance(body, dict) else {}
        said = self._server_said(body)
        kind = str(body.get("error") or "")
        if login and status in {400, 401, 403, 404, 422}:
            return BackendUnavailable(
                _SYSTEM,
                f"the machine identity could not log in ({said or f'HTTP {status}'}) — check"
                " PGDB_INFISICAL_CLIENT_ID and PGDB_INFISICAL_CLIENT_SECRET: a Universal Auth"
                " client secret of the identity, not expired, not revoked, under its usage limit,"
                " and allowed from the bot's address (trusted IPs)",
            )
        if _token_refused(status, body):
            return BackendUnavailable(
                _SYSTEM,
                f"Infisical refused a fresh access token to {action} ({said}) — check the machine"
                " identity's access token settings (trusted IPs, TTL, usage limit)",
            )
        if status == 403:
            return BackendUnavailable(
                _SYSTEM,
                f"the machine identity may not {action} ({said or kind or 'HTTP 403'}) — give it"
                f" a role in project `{self.project}` that can read, create and edit secrets and"
                f" create folders under {self.prefix} in environment `{self.env}`",
            )
        if status == 404:
            lowered = said.lower()
            if "environment" in lowered:
                return BackendUnavailable(
                    _SYSTEM,
                    f"environment `{self.env}` was not found in project `{self.project}` ({said})"
                    " — set PGDB_ENV to an environment slug of the project",
                )
            if "project" in lowered or "workspace" in lowered or action.startswith("look up"):
                return BackendUnavailable(
                    _SYSTEM,
                    f"project `{self.project}` was not found ({said or 'HTTP 404'}) — set"
                    " PGDB_INFISICAL_PROJECT to the project's slug (Project Settings) and add the"
                    " machine identity to that project",
                )
        if status == 429:
            return BackendUnavailable(
                _SYSTEM,
                f"Infisical kept rate-limiting the bot ({attempts} tries to {action}) — run the"
                " command again later, or raise the rate limits of the Infisical instance",
            )
        if status >= 500:
            return BackendUnavailable(
                _SYSTEM,
                f"the server answered HTTP {status} to {action}, {attempts} tries ({said}) —"
                " the server is failing: check its health and logs, then run the command again",
            )
        return BackendUnavailable(
            _SYSTEM,
            f"the server refused to {action}: HTTP {status} ({said or kind}) — check the"
            f" server's logs for this request; PGDB_INFISICAL_URL ({self.url}) must be the"
            " Infisical API",
        )

    def _no_answer(self, action: str, reason: str, *, attempts: int) -> BackendUnavailable:
        return BackendUnavailable(
            _SYSTEM,
            f"no answer from {self.url} to {action} after {attempts} tries ({reason}) — check"
            " PGDB_INFISICAL_URL and that the Infisical server is up and reachable from the bot",
        )

    def _out_of_time(self, action: str, *, asked: float | None = None) -> BackendUnavailable:
        why = f"; it asked to retry after {asked:.0f} s" if asked is not None else ""
        return BackendUnavailable(
            _SYSTEM,
            f"no complete answer from {self.url} to {action} within {self._total:.0f} s{why} —"
            " check that the Infisical server is up and not overloaded, then run the command"
            " again",
        )

    def _odd_answer(self, action: str, *, approval: bool, writes: str | None) -> BackendUnavailable:
        if approval:
            return BackendUnavailable(
                _SYSTEM,
                f"a secret approval policy covers {writes} (env {self.env}): Infisical answered"
                " with an approval request instead of writing it — exempt the bot's machine"
                f" identity from the policy (or move the policy off {self.prefix}), reject the"
                " pending request in Infisical, then run the command again",
            )
        return BackendUnavailable(
            _SYSTEM,
            f"the answer to {action} is not what the Infisical API returns — check that"
            f" PGDB_INFISICAL_URL ({self.url}) is the Infisical API and that its version is"
            " supported",
        )

    def _server_said(self, body: Mapping[str, Any]) -> str:
        """The server's message, short and with every hidden value masked."""
        message = body.get("message")
        if message is None:
            return ""
        text = message if isinstance(message, str) else json.dumps(message)
        for value in (*self._hidden, self._token or ""):
            if value:
                text = text.replace(value, _HIDDEN)
        text = " ".join(text.split())
        return text if len(text) <= 200 else text[:197] + "..."

    # --- paths --------------------------------------------------------------------------------

    def _path(self, app: AppName) -> str:
        if not _FOLDER.fullmatch(app):
            raise ValueError("not an app folder name")
        return f"{self.prefix}/{app}"

    def _app_of(self, secret_path: object) -> str | None:
        """The app folder a secret's path is directly in, or None (deeper or elsewhere)."""
        if not isinstance(secret_path, str):
            return None
        rest = secret_path.rstrip("/").removeprefix(self.prefix + "/")
        if rest == secret_path or not rest or "/" in rest:
            return None
        return rest


def _token_refused(status: int, body: Any) -> bool:
    """401, or 403 ``TokenError`` (how Infisical says a token expired or is malformed)."""
    return status == 401 or (
        status == 403 and isinstance(body, dict) and body.get("error") == "TokenError"
    )


def _backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s… with ±20 % jitter, so replicas do not retry in step."""
    return BACKOFF * 2.0 ** (attempt - 1) * random.uniform(0.8, 1.2)  # noqa: S311 (not crypto)


def _credentials(values: Mapping[str, str]) -> StoredCredentials:
    password = values.get("password")
    return StoredCredentials(
        username=values.get("username"),
        password=None if password is None else Secret(password),
        database=values.get("database"),
    )
