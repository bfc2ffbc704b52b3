"""Leadership of the diagnostics schedule without Kubernetes (``Leadership``): a PostgreSQL
session advisory lock held on a dedicated connection.

The leader keeps the connection open; if its process dies, the server closes the session and
releases the lock, and the next replica's ``try_lead`` takes it. A leader whose connection broke
stops leading at once (it cannot know whether the lock is still its own).
"""

from __future__ import annotations

import contextlib
import logging
import threading

import psycopg

from bot.adapters.postgres.connection import LOCK_CLASS_LEADER, Connection, Server

log = logging.getLogger(__name__)


class PostgresLeaderLock:
    """``pg_try_advisory_lock`` on a connection of its own, kept while leading."""

    def __init__(self, dsn: str, *, key: str, connect_timeout: float = 5) -> None:
        self._server = Server(
            dsn,
            application_name="pgdb-bot leader",
            connect_timeout=connect_timeout,
            statement_timeout=5,
        )
        self._key = key
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.name = f"PostgreSQL advisory lock {key!r} on {self._server.target.host}"
        self._problem: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the last attempt could not ask PostgreSQL (None: it asked)."""
        return self._problem

    @property
    def leading(self) -> bool:
        with self._lock:
            return self._conn is not None and not self._conn.closed

    def try_lead(self) -> bool:
        """Check the held lock's session is alive, or try to take the lock."""
        with self._lock:
            self._problem = None
            if self._conn is not None:
                try:
                    self._conn.execute("SELECT 1")
                    return True
                except psycopg.Error as exc:
                    log.warning(
                        "leader election: lost the leader connection: %s", self._server.reason(exc)
                    )
                    self._close()
            try:
                conn = self._server.connect()
            except psycopg.Error as exc:
                self._problem = f"PostgreSQL unreachable: {self._server.reason(exc)}"
                log.warning("leader election: %s", self._problem)
                return False
            try:
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                    (LOCK_CLASS_LEADER, self._key),
                ).fetchone()
            except psycopg.Error as exc:
                self._problem = f"PostgreSQL failed: {self._server.reason(exc)}"
                log.warning("leader election: %s", self._problem)
                conn.close()
                return False
            if row and row[0]:
                self._conn = conn
                log.info("leader election: this replica leads (%s)", self.name)
                return True
            conn.close()
            return False

    def release(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # ends the session: the server releases the lock
            self._conn = None
