"""Whether the stored passwords still open their roles (``ManagedDatabase.check_passwords``).

A role's verifier is compared when the bot may read it (superuser); otherwise a real login as
the role decides. Both are slow on purpose (PBKDF2, a connection), so their answers are kept
in memory: the verifier comparisons for the same verifier and password, the login results
for ``login_recheck_seconds``. Nothing faster to guess against is ever written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import psycopg

from bot.adapters.postgres.connection import Target, reason
from bot.core.model import DatabaseState, PasswordResult, PasswordVerdict, RoleInfo
from bot.core.scram import scram_matches
from bot.core.secret import Secret

_VERIFIER_MEMO_SIZE = 100_000
_VERIFIER_THREADS = 4  # PBKDF2 comparisons side by side, at most one per core
_VERIFIER_BATCH = 8  # fewer new verifiers than this are compared in the calling thread
_MD5 = re.compile(r"^md5[0-9a-f]{32}$")


def verifier_matches(verifier: str, *, role: str, password: Secret) -> bool | None:
    """Whether ``password`` produces ``verifier`` (SCRAM-SHA-256 or md5); None if unrecognised."""
    scram = scram_matches(verifier, password)
    if scram is not None:
        return scram
    if _MD5.match(verifier):
        # md5 is what PostgreSQL stores for password_encryption=md5; we only compare with it.
        digest = hashlib.md5((password.reveal() + role).encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest("md5" + digest, verifier)
    return None


class _Pair(NamedTuple):
    """A role, its candidate password and their verifier-memo key."""

    info: RoleInfo
    password: Secret
    key: bytes


class PasswordChecker:
    """Verdicts on candidate passwords, by verifier or by login, remembered between calls."""

    def __init__(
        self,
        target: Target,
        *,
        login_concurrency: int,
        login_timeout: float,
        login_recheck_seconds: float,
    ) -> None:
        self._target = target
        # A login probe reuses how the admin DSN reaches the server, not who it connects as.
        self._probe_params = target.login_params(
            connect_timeout=login_timeout, application_name="pgdb-bot password check"
        )
        self._login_concurrency = login_concurrency
        # Bounds probes across concurrent calls too (status and diagnostics may overlap).
        self._login_slots = threading.BoundedSemaphore(login_concurrency)
        self._login_recheck_seconds = login_recheck_seconds
        # (role, keyed hash of the password) -> (verdict, monotonic expiry). The hash is keyed
        # with a per-process random key so the cache holds nothing useful to guess against.
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[tuple[str, bytes], tuple[PasswordVerdict, float]] = {}
        # keyed hash of (role, verifier, password) -> whether they match (None: a format we do
        # not know). One small bytes key and a shared value per role: the idle bot keeps no
        # verifier string or verdict object per app between passes.
        self._verifier_memo: dict[bytes, bool | None] = {}
        self._lock = threading.Lock()
        self._filling = threading.Lock()  # one verifier-memo filler at a time
        self.login_probes: int = 0

    def forget(self, role: str) -> None:
        """The role's password changed (or the role is new): earlier login results are stale."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == role]:
                del self._cache[key]

    def check(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        verdicts: dict[str, PasswordVerdict] = {}
        probes: dict[str, Secret] = {}
        self._expire_logins(time.monotonic())
        keys = self._memo_keys(candidates, state=state)
        self._compare_new_verifiers(keys)
        for role, password in candidates.items():
            info = state.roles.get(role)
            if info is None:
                verdicts[role] = PasswordVerdict(
                    result=PasswordResult.UNKNOWN,
                    method="verifier" if state.bot_is_superuser else "login",
                    detail=f"role `{role}` does not exist",
                )
                continue
            if not password.reveal():
                verdicts[role] = PasswordVerdict(
                    result=PasswordResult.MISMATCH,
                    method="verifier" if info.verifier is not None else "login",
                    detail="the stored password is empty",
                )
                continue
            if info.verifier == "":
                verdicts[role] = PasswordVerdict(
                    result=PasswordResult.MISMATCH,
                    method="verifier",
                    detail=f"role `{role}` has no password",
                )
                continue
            if info.verifier is not None:
                verdict = self._by_verifier(keys[role])
                if verdict is not None:
                    verdicts[role] = verdict
                    continue
            if not info.can_login:
                verdicts[role] = PasswordVerdict(
                    result=PasswordResult.UNKNOWN,
                    method="login",
                    detail=f"role `{role}` cannot log in (NOLOGIN), so a login cannot test "
                    "its password",
                )
                continue
            cached = self._cached(role, password)
            if cached is not None:
                verdicts[role] = cached
            else:
                probes[role] = password
        if probes:
            verdicts.update(self._probe_all(probes, state=state))
        return verdicts

    # -- by verifier ----------------------------------------------------------------------

    def _memo_keys(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, _Pair]:
        """role -> (its role, its password, the memo key) for the pairs a verifier decides:
        each key is computed once per pass, for the filler and the verdicts alike."""
        keys: dict[str, _Pair] = {}
        for role, password in candidates.items():
            info = state.roles.get(role)
            if info is None or not info.verifier or not password.reveal():
                continue
            keys[role] = _Pair(info, password, self._memo_key(info, password))
        return keys

    def _compare_new_verifiers(self, keys: Mapping[str, _Pair]) -> None:
        """Fill the verifier memo for the pairs it lacks, one thread per core.

        A first pass over N apps is N PBKDF2 runs (4,096 SHA-256 rounds each, about 1.5 ms);
        hashlib releases the GIL while it runs, so cores work side by side. Only the memo in
        memory is filled: nothing faster to guess against is ever written anywhere.
        """
        workers = min(os.cpu_count() or 1, _VERIFIER_THREADS)
        if workers < 2:
            return
        # One filler at a time: commands arriving meanwhile (ten `/pgdb status` at once after
        # a restart) wait for it and find the memo filled, instead of each running the same
        # N PBKDF2 side by side.
        with self._filling:
            self._fill_memo(keys, workers=workers)

    def _fill_memo(self, keys: Mapping[str, _Pair], *, workers: int) -> None:
        with self._lock:
            missing = [k for k in keys.values() if k.key not in self._verifier_memo]
        if len(missing) < _VERIFIER_BATCH:
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgdb-verifier") as pool:
            for _ in pool.map(self._by_verifier, missing):
                pass

    def _by_verifier(self, pair: _Pair) -> PasswordVerdict | None:
        """Compare against the verifier; the (slow, PBKDF2) result is remembered for the same
        verifier and password, so a diagnostics pass only pays for what changed."""
        info, password, key = pair
        assert info.verifier
        with self._lock:
            known = key in self._verifier_memo
            matches = self._verifier_memo.get(key)
        if not known:
            matches = verifier_matches(info.verifier, role=info.name, password=password)
            with self._lock:
                if len(self._verifier_memo) >= _VERIFIER_MEMO_SIZE:
                    self._verifier_memo.clear()
                self._verifier_memo[key] = matches
        if matches is None:
            return None  # a format we do not know: a real login decides
        if matches:
            return PasswordVerdict(result=PasswordResult.MATCH, method="verifier")
        return PasswordVerdict(
            result=PasswordResult.MISMATCH,
            method="verifier",
            detail=f"the stored password does not match role `{info.name}`'s verifier",
        )

    def _memo_key(self, info: RoleInfo, password: Secret) -> bytes:
        """The verifier memo's key: keyed like the login cache, so it holds nothing to guess
        against (the verifier is not kept either). The role is part of it: an md5 verifier is
        salted with the role's name."""
        assert info.verifier is not None
        message = "\0".join((info.name, info.verifier, password.reveal())).encode()
        return hmac.digest(self._cache_key, message, "sha256")

    # -- by login -------------------------------------------------------------------------

    def _cache_slot(self, role: str, password: Secret) -> tuple[str, bytes]:
        return role, hmac.digest(self._cache_key, password.reveal().encode(), "sha256")

    def _expire_logins(self, now: float) -> None:
        """Forget login results past their recheck time (once per check, not per role)."""
        with self._lock:
            for key in [k for k, (_, expiry) in self._cache.items() if expiry <= now]:
                del self._cache[key]

    def _cached(self, role: str, password: Secret) -> PasswordVerdict | None:
        with self._lock:
            hit = self._cache.get(self._cache_slot(role, password))
        return hit[0] if hit is not None else None

    def _probe_all(
        self, probes: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        def probe(item: tuple[str, Secret]) -> tuple[str, PasswordVerdict]:
            role, password = item
            dbname = role if role in state.databases else "postgres"
            with self._login_slots:
                verdict = self._probe(role, password, dbname=dbname)
            if verdict.result is not PasswordResult.UNKNOWN:
                # Only definite answers are kept: an outage must not hide for an hour.
                expiry = time.monotonic() + self._login_recheck_seconds
                with self._lock:
                    self._cache[self._cache_slot(role, password)] = (verdict, expiry)
            return role, verdict

        workers = min(self._login_concurrency, len(probes))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgdb-login") as pool:
            return dict(pool.map(probe, probes.items()))

    def _probe(self, role: str, password: Secret, *, dbname: str) -> PasswordVerdict:
        """One real login as ``role``: the only proof when the verifier cannot be read."""
        with self._lock:
            self.login_probes += 1
        where = f"{self._target.host}:{self._target.port}/{dbname}"
        params: dict[str, Any] = {**self._probe_params, "user": role, "dbname": dbname}
        message = ""
        try:
            conn = psycopg.connect(**params, password=password.reveal(), autocommit=True)
        except psycopg.Error as exc:
            message = reason(exc, [password.reveal()])
        else:
            with conn:
                used_password = conn.pgconn.used_password
            if used_password:
                return PasswordVerdict(result=PasswordResult.MATCH, method="login")
            return PasswordVerdict(
                result=PasswordResult.UNKNOWN,
                method="login",
                detail=f"the server let `{role}` in without asking for a password (trust in "
                "pg_hba.conf), so a login cannot test the stored password",
            )
        lowered = message.lower()
        if "password authentication failed" in lowered:
            return PasswordVerdict(
                result=PasswordResult.MISMATCH,
                method="login",
                detail=f"the stored password does not open role `{role}` (login refused)",
            )
        if "no pg_hba.conf entry" in lowered:
            detail = f"pg_hba.conf does not let `{role}` connect to {where} from the bot"
        elif "not permitted to log in" in lowered:
            detail = f"role `{role}` cannot log in (NOLOGIN)"
        else:
            detail = f"could not log in as `{role}` to {where} to test its password: {message}"
        return PasswordVerdict(result=PasswordResult.UNKNOWN, method="login", detail=detail)
