"""What every chat endpoint does before it reads a request: bound the body by the bytes that
actually arrive (a chunked body has no ``Content-Length`` to trust), and record each refusal in
the audit log without ever holding the request up.

The audit of refusals is written by one thread of its own from a bounded queue: a flood of
refused requests costs at most the queue, never memory or the workers that run commands, and
what does not fit is counted and logged instead.
"""

from __future__ import annotations

import logging
import queue
import threading

from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.core.errors import PgdbError
from bot.core.model import AuditEntry
from bot.core.ports import BotState
from bot.core.text import Refusal, storable

log = logging.getLogger(__name__)

AUDIT_QUEUE_SIZE = 256
UNAUTHENTICATED = "(unauthenticated)"


async def read_limited(request: Request, *, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to be longer than ``limit`` bytes: a
    declared ``Content-Length`` over the limit, or more bytes received than the limit (the rest
    is never read, so a huge or endless body costs at most ``limit`` bytes of memory)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit()):
        return None
    if declared is not None and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(*, limit: int, body: dict[str, object] | None = None) -> JSONResponse:
    """413, and the connection closed: whatever the client still sends is not read."""
    return JSONResponse(
        body or {"error": f"request body over {limit:,} bytes"},
        status_code=413,
        headers={"Connection": "close"},
    )


class EdgeAudit:
    """Audit entries for requests refused at the edge, written in the background."""

    def __init__(self, state: BotState, *, size: int = AUDIT_QUEUE_SIZE) -> None:
        self._state = state
        self._queue: queue.Queue[AuditEntry] = queue.Queue(maxsize=size)
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refused(self, *, user: str, platform: str, command: str, result: str, detail: str) -> None:
        """Record a refusal soon; never blocks, never raises."""
        entry = AuditEntry(
            user=storable(user, limit=64),
            platform=platform,
            command=storable(command),
            app=None,
            result=result,
            detail=storable(detail),
        )
        self._start()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def refused_body(self, *, platform: str, path: str, limit: int) -> None:
        """A body over ``limit`` bytes, refused before it was read whole (so its sender is
        unknown)."""
        self.refused(
            user=UNAUTHENTICATED,
            platform=platform,
            command=f"(a request body over {limit:,} bytes to {path})",
            result="too large",
            detail="refused before reading it whole",
        )

    def refused_command(self, refusal: Refusal, *, user: str, platform: str, text: str) -> None:
        """A command refused before anything parsed or logged its text (``refuse_at_edge``)."""
        self.refused(
            user=user or UNAUTHENTICATED,
            platform=platform,
            command=f"/pgdb {text}",
            result=refusal.outcome,
            detail=refusal.message,
        )

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write, name="pgdb-edge-audit", daemon=True
                )
                self._thread.start()

    def _write(self) -> None:
        while True:
            entry = self._queue.get()
            try:
                self._state.record_audit(entry)
            except PgdbError as exc:
                log.warning("audit log unavailable, refusal not recorded: %s", exc)
            except Exception:
                log.exception("recording a refusal failed")
            finally:
                self._queue.task_done()
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning("%d refused request(s) not audited: too many at once", dropped)
