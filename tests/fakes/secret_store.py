"""``SecretStore`` in memory: each app's ``username``, ``password`` and ``database``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.core.model import StoredCredentials
from bot.core.names import AppName
from bot.core.secret import Secret
from tests.fakes.faults import Faults


class MemorySecretStore(Faults):
    """``apps`` is what the store holds (folder name -> keys); a test may set partial
    credentials there directly, as a person editing Infisical by hand would."""

    kind = "memory"
    system = "secret store"

    def __init__(
        self,
        *,
        env: str = "dev",
        prefix: str = "/postgresql",
        apps: Mapping[str, StoredCredentials] | None = None,
    ) -> None:
        super().__init__()
        self.env = env
        self.prefix = "/" + prefix.strip("/")
        self.apps: dict[str, StoredCredentials] = dict(apps or {})

    def put(self, app: str, password: str | Secret, *, database: str | None = None) -> None:
        """Seed complete credentials, as the bot writes them (username and database: the app)."""
        secret = password if isinstance(password, Secret) else Secret(password)
        with self._lock:
            self.apps[app] = StoredCredentials(
                username=app, password=secret, database=database or app
            )

    def password(self, app: str) -> str | None:
        """The stored password in clear (for assertions), None when there is none."""
        with self._lock:
            found = self.apps.get(app)
        return found.password.reveal() if found is not None and found.password else None

    # --- the port ------------------------------------------------------------------------------

    def location(self, app: AppName) -> str:
        return f"{self.prefix}/{app} (env {self.env})"

    def read_all(self) -> dict[str, StoredCredentials]:
        self._enter("read_all")
        with self._lock:
            return dict(sorted(self.apps.items()))

    def read(self, app: AppName) -> StoredCredentials | None:
        self._enter("read")
        with self._lock:
            return self.apps.get(app)

    def write(self, app: AppName, *, username: str, password: Secret, database: str) -> None:
        self._enter("write")
        with self._lock:
            self.apps[app] = StoredCredentials(
                username=username, password=password, database=database
            )

    def delete(self, app: AppName) -> bool:
        self._enter("delete")
        with self._lock:
            return self.apps.pop(app, None) is not None


if TYPE_CHECKING:
    from bot.core.ports import SecretStore

    _conforms: SecretStore = MemorySecretStore()
