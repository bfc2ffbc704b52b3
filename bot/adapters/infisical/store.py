"""``InfisicalSecretStore``: the ``SecretStore`` port on an Infisical project.

It checks its parameters, builds the :class:`~bot.adapters.infisical.session.InfisicalSession`,
and hands each method to the module that does it (reading, writing). It reads no
configuration: the composition root gives it plain values.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.adapters.infisical import reading, writing
from bot.adapters.infisical.place import Place
from bot.adapters.infisical.session import InfisicalSession
from bot.core.model import StoredCredentials
from bot.core.names import AppName
from bot.core.secret import Secret

DEFAULT_TIMEOUT = 10.0  # seconds: one request's connect, and each of its reads
DEFAULT_TOTAL = 30.0  # seconds: one store call, with its retries and re-logins


class InfisicalSecretStore:
    """``SecretStore`` on an Infisical project: ``<prefix>/<app>/{username,password,database}``
    in one environment."""

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
        place = Place.checked(url=url, project=project, env=env, prefix=prefix)
        if timeout <= 0 or total <= 0:
            raise ValueError("timeouts must be positive")
        self.url = place.url
        self.project = place.project
        self.env = place.env
        self.prefix = place.prefix
        self._session = InfisicalSession(
            place=place,
            client_id=client_id,
            client_secret=client_secret,
            timeout=timeout,
            total=total,
            clock=clock,
            sleep=sleep,
        )

    def location(self, app: AppName) -> str:
        """The path, environment and project, which is what an operator types in Infisical."""
        return (
            f"{self._session.place.folder(app)} (env {self.env}, Infisical project {self.project})"
        )

    def read_all(self) -> dict[str, StoredCredentials]:
        """Every app folder under the prefix, with the keys it holds."""
        return reading.read_all(self._session)

    def read(self, app: AppName) -> StoredCredentials | None:
        """The app's keys; None when its folder does not exist."""
        return reading.read(self._session, app)

    def write(self, app: AppName, *, username: str, password: Secret, database: str) -> None:
        """The app's folder and its three keys, created or updated."""
        writing.write(self._session, app, username=username, password=password, database=database)

    def delete(self, app: AppName) -> bool:
        """The app's keys and folder, refused when it holds anything else; whether any went."""
        return writing.delete(self._session, app)
