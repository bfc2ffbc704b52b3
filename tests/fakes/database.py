"""``ManagedDatabase`` in memory: roles with real SCRAM-SHA-256 verifiers, and databases.

A password is kept only as its verifier, as PostgreSQL keeps it, so ``check_passwords`` answers
the way the server would: by comparing with the verifier when the bot is a superuser (it can
read ``pg_authid``), else as a login would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.core.errors import ConflictError, PermissionProblem
from bot.core.limits import RoleLimits
from bot.core.model import (
    DatabaseInfo,
    DatabaseState,
    PasswordResult,
    PasswordVerdict,
    RoleInfo,
)
from bot.core.names import AppName
from bot.core.scram import scram_matches, scram_verifier
from bot.core.secret import Secret
from tests.fakes.faults import Faults

BOT_ROLE = "pgdb_bot"


class MemoryDatabase(Faults):
    """A fresh server: ``postgres``, ``streaming_replica`` and the bot's role, and the
    ``postgres``/``template0``/``template1`` databases. ``sessions`` counts the open sessions
    per role (what ``disable_login`` reports)."""

    system = "PostgreSQL"

    def __init__(
        self,
        *,
        bot_role: str = BOT_ROLE,
        bot_is_superuser: bool = True,
        server_version: int = 170000,
    ) -> None:
        super().__init__()
        self.bot_role = bot_role
        self.bot_is_superuser = bot_is_superuser
        self.server_version = server_version
        self.roles: dict[str, RoleInfo] = {}
        self.databases: dict[str, DatabaseInfo] = {}
        self.sessions: dict[str, int] = {}
        self._verifiers: dict[str, str] = {}  # role -> SCRAM verifier; "" has no password
        # (verifier, digest of a password) -> whether it matches: PBKDF2 once per pair, as the
        # real adapter remembers its comparisons (a fleet's diagnostics pass stays cheap)
        self._compared: dict[tuple[str, bytes], bool] = {}
        self.add_role("postgres", superuser=True, createdb=True, createrole=True)
        self.add_role("streaming_replica", replication=True)
        self.add_role(bot_role, superuser=bot_is_superuser, createrole=True)
        for name in ("postgres", "template0", "template1"):
            self.add_database(name, owner="postgres")

    # --- seeding and inspection (what a DBA or CloudNativePG does) -------------------------------

    def add_role(
        self, name: str, *, password: str | Secret | None = None, **attributes: Any
    ) -> RoleInfo:
        """A role as someone made it; ``attributes`` are ``RoleInfo``'s (``can_login`` defaults
        to True, ``bot_can_alter`` to True: the bot holds ADMIN OPTION on it)."""
        attributes.setdefault("can_login", True)
        attributes.pop("verifier", None)
        info = RoleInfo(name=name, **attributes)
        with self._lock:
            self.roles[name] = info
            self._verifiers[name] = _verifier(password)
        return info

    def drop_role(self, name: str) -> None:
        with self._lock:
            self.roles.pop(name, None)
            self._verifiers.pop(name, None)

    def alter_role(self, name: str, **attributes: Any) -> RoleInfo:
        """Change attributes of a role, as ``ALTER ROLE`` by someone else does."""
        with self._lock:
            info = replace(self.roles[name], **attributes)
            self.roles[name] = info
        return info

    def add_database(self, name: str, *, owner: str, size_bytes: int | None = None) -> None:
        with self._lock:
            self.databases[name] = DatabaseInfo(name=name, owner=owner, size_bytes=size_bytes)

    def drop_database(self, name: str) -> None:
        with self._lock:
            self.databases.pop(name, None)

    def can_login(self, role: str, password: str | Secret) -> bool:
        """Whether a client logging in as ``role`` with ``password`` gets in."""
        secret = password if isinstance(password, Secret) else Secret(password)
        with self._lock:
            info = self.roles.get(role)
            verifier = self._verifiers.get(role, "")
        return info is not None and info.can_login and self._matches(verifier, secret)

    # --- the port ------------------------------------------------------------------------------

    def observe(self) -> DatabaseState:
        self._enter("observe")
        with self._lock:
            roles = {
                name: replace(self._as_seen(info), connections=self.sessions.get(name, 0))
                for name, info in self.roles.items()
            }
            return DatabaseState(
                roles=roles,
                databases=dict(self.databases),
                bot_role=self.bot_role,
                bot_is_superuser=self.bot_is_superuser,
                server_version=self.server_version,
            )

    def check_passwords(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        self._enter("check_passwords")
        verdicts: dict[str, PasswordVerdict] = {}
        for role, password in candidates.items():
            verdicts[role] = self._check(role, password, state=state)
        return verdicts

    def create_role(
        self, role: AppName, *, password: Secret, limits: RoleLimits | None = None
    ) -> None:
        self._enter("create_role")
        limits = limits or RoleLimits()
        with self._lock:
            if role in self.roles:
                raise ConflictError(
                    f"role `{role}` was created by someone else while this command ran; "
                    "run the command again: it will check the existing role instead"
                )
            if not self.bot_is_superuser and not self.roles[self.bot_role].createrole:
                raise self._needs_createrole(role)
            self.roles[role] = RoleInfo(
                name=role,
                can_login=True,
                connection_limit=limits.connection_limit,
                statement_timeout_ms=limits.statement_timeout_ms,
            )
            self._verifiers[role] = scram_verifier(password)

    def enable_login(self, role: AppName, *, password: Secret) -> None:
        self._enter("enable_login")
        self._alter(role, password=password, login=True, if_dropped="run the command again")

    def set_password(self, role: AppName, *, password: Secret) -> None:
        self._enter("set_password")
        self._alter(
            role,
            password=password,
            login=True,
            if_dropped=f"`/pgdb repair {role} --yes` creates it with the stored password",
        )

    def set_limits(self, role: AppName, *, limits: RoleLimits) -> None:
        self._enter("set_limits")
        with self._lock:
            info = self.roles.get(role)
            if info is None:
                raise ConflictError(
                    f"role `{role}` no longer exists (dropped while this command ran); "
                    f"`/pgdb repair {role} --yes` creates it, then run the command again"
                )
            if not self._may_alter(info):
                raise PermissionProblem(
                    f"the bot's account `{self.bot_role}` may not alter role `{role}`: run "
                    f'`GRANT "{role}" TO "{self.bot_role}" WITH ADMIN OPTION;` as a superuser'
                )
            self.roles[role] = replace(
                info,
                connection_limit=limits.connection_limit,
                statement_timeout_ms=limits.statement_timeout_ms,
            )

    def disable_login(self, role: AppName) -> int:
        self._enter("disable_login")
        self._alter(role, password=None, login=False, if_dropped="there is nothing left to disable")
        with self._lock:
            return self.sessions.get(role, 0)

    # --- helpers -------------------------------------------------------------------------------

    def _check(self, role: str, password: Secret, *, state: DatabaseState) -> PasswordVerdict:
        """As the real adapter decides: the observed verifier when it could be read, else a
        login now."""
        info = state.roles.get(role)
        readable = info is not None and info.verifier is not None
        method = "verifier" if readable or (info is None and state.bot_is_superuser) else "login"
        if info is None:
            return _verdict(PasswordResult.UNKNOWN, method, f"role `{role}` does not exist")
        if not password.reveal():
            return _verdict(PasswordResult.MISMATCH, method, "the stored password is empty")
        if info.verifier is not None:
            if not info.verifier:
                return _verdict(PasswordResult.MISMATCH, method, f"role `{role}` has no password")
            if self._matches(info.verifier, password):
                return _verdict(PasswordResult.MATCH, method)
            return _verdict(
                PasswordResult.MISMATCH,
                method,
                f"the stored password does not match role `{role}`'s verifier",
            )
        if not info.can_login:
            return _verdict(
                PasswordResult.UNKNOWN,
                method,
                f"role `{role}` cannot log in (NOLOGIN), so a login cannot test its password",
            )
        if self.can_login(role, password):
            return _verdict(PasswordResult.MATCH, method)
        return _verdict(
            PasswordResult.MISMATCH,
            method,
            f"the stored password does not open role `{role}` (login refused)",
        )

    def _matches(self, verifier: str, password: Secret) -> bool:
        if not verifier:
            return False
        key = (verifier, hashlib.sha256(password.reveal().encode()).digest())
        with self._lock:
            known = self._compared.get(key)
        if known is None:
            known = scram_matches(verifier, password) is True
            with self._lock:
                self._compared[key] = known
        return known

    def _as_seen(self, info: RoleInfo) -> RoleInfo:
        """The role as the bot's account reads it from the catalogs."""
        return replace(
            info,
            verifier=self._verifiers.get(info.name, "") if self.bot_is_superuser else None,
            bot_can_alter=self._may_alter(info),
        )

    def _may_alter(self, info: RoleInfo) -> bool:
        if self.bot_is_superuser:
            return True
        if not self.roles[self.bot_role].createrole or info.superuser:
            return False
        if self.server_version < 160000:
            return not (info.replication or info.bypassrls)
        return info.bot_can_alter

    def _alter(self, role: str, *, password: Secret | None, login: bool, if_dropped: str) -> None:
        with self._lock:
            info = self.roles.get(role)
            if info is None:
                raise ConflictError(
                    f"role `{role}` no longer exists (dropped while this command ran); {if_dropped}"
                )
            if not self._may_alter(info):
                raise PermissionProblem(
                    f"the bot's account `{self.bot_role}` may not alter role `{role}`: run "
                    f'`GRANT "{role}" TO "{self.bot_role}" WITH ADMIN OPTION;` as a superuser'
                )
            self.roles[role] = replace(info, can_login=login)
            if password is not None:
                self._verifiers[role] = scram_verifier(password)

    def _needs_createrole(self, role: str) -> PermissionProblem:
        return PermissionProblem(
            f"the bot's account `{self.bot_role}` needs CREATEROLE to manage role `{role}`: "
            f'run `ALTER ROLE "{self.bot_role}" CREATEROLE;` as a superuser'
        )


def _verifier(password: str | Secret | None) -> str:
    if password is None:
        return ""
    return scram_verifier(password if isinstance(password, Secret) else Secret(password))


def _verdict(result: PasswordResult, method: str, detail: str = "") -> PasswordVerdict:
    return PasswordVerdict(result=result, method=method, detail=detail)


if TYPE_CHECKING:
    from bot.core.ports import ManagedDatabase

    _conforms: ManagedDatabase = MemoryDatabase()
