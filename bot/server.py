"""`pgdb-bot run`: one HTTP server for every configured chat platform, plus health endpoints."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.core.errors import PgdbError
from bot.core.ports import ChatPlatform
from bot.runner import CommandRunner

log = logging.getLogger(__name__)
SHUTDOWN_DEADLINE_SECONDS = 25.0


ReadinessCheck = tuple[str, Callable[[], None]]
READINESS_INTERVAL_SECONDS = 5.0  # a check every this often, whatever the probes do
READINESS_DEADLINE_SECONDS = 3.0  # a check still running after this is a failure already


async def healthz(_: Request) -> PlainTextResponse:
    """The process is alive and serving HTTP."""
    return PlainTextResponse("ok\n")


async def metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class Readiness:
    """Each configured backend answers. The checks run in a thread of their own on their own
    schedule; a probe is answered from the last result at once, so no number of probes, and no
    backend that hangs, ever holds a request thread. The endpoint names the backend and a plain
    cause; what exactly failed (addresses, server messages) goes to the log, for operators."""

    def __init__(
        self,
        checks: Sequence[ReadinessCheck],
        *,
        interval: float = READINESS_INTERVAL_SECONDS,
        deadline: float = READINESS_DEADLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = list(checks)
        self._interval = interval
        self._deadline = deadline
        self._clock = clock
        self._lock = threading.Lock()
        self._problems: list[str] | None = None  # None: no round has finished yet
        self._running: tuple[str, float] | None = None  # the check in progress, since when
        self._logged: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="pgdb-readiness", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def problems(self) -> list[str]:
        """What the endpoint shows: the last round's causes, a check past its deadline, or
        that the first round has not finished. Never waits."""
        with self._lock:
            found = list(self._problems) if self._problems is not None else None
            running = self._running
        if running is not None and self._clock() - running[1] > self._deadline:
            late = f"{running[0]}: no answer within {self._deadline:g} s"
            found = [p for p in (found or []) if not p.startswith(f"{running[0]}:")] + [late]
        if found is None:
            return ["starting: the first check has not finished"]
        return found

    def check_once(self) -> list[str]:
        """One round of every check, in the calling thread (the background loop, tests)."""
        found: list[str] = []
        details: list[str] = []
        for name, check in self._checks:
            with self._lock:
                self._running = (name, self._clock())
            try:
                check()
            except PgdbError as exc:
                found.append(f"{name}: not answering (the bot's log says why)")
                details.append(f"{name}: {exc}")
            except Exception as exc:
                found.append(f"{name}: not answering (the bot's log says why)")
                details.append(f"{name}: {type(exc).__name__}")
        with self._lock:
            self._running = None
            self._problems = found
        self._log_change(details)
        return found

    def _log_change(self, details: list[str]) -> None:
        if details == self._logged:
            return
        if details:
            log.warning("not ready: %s", "; ".join(details))
        else:
            log.info("ready: every backend answers")
        self._logged = details

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:
                log.exception("readiness check failed")
            self._stop.wait(self._interval)

    async def endpoint(self, _: Request) -> PlainTextResponse:
        problems = self.problems()
        if problems:
            return PlainTextResponse("not ready\n" + "\n".join(problems) + "\n", status_code=503)
        return PlainTextResponse("ready\n")


def build_app(platforms: Sequence[ChatPlatform], *, readiness: Readiness) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readiness.endpoint, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    for platform in platforms:
        routes.extend(platform.routes())
    return Starlette(routes=routes)


class Server:
    """The HTTP server and the platforms' connections, started and stopped together."""

    def __init__(
        self,
        *,
        platforms: Sequence[ChatPlatform],
        runner: CommandRunner,
        readiness: Readiness,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 (a container's server listens on all interfaces)
    ) -> None:
        self.platforms = list(platforms)
        self.runner = runner
        self.readiness = readiness
        config = uvicorn.Config(
            build_app(self.platforms, readiness=readiness),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._uvicorn = uvicorn.Server(config)

    @property
    def started(self) -> bool:
        return bool(self._uvicorn.started)

    def serve(self) -> None:
        """Serve until asked to stop (SIGTERM/SIGINT in the main thread, or :meth:`stop`)."""
        stop_on_signals(self)
        self.readiness.start()
        for platform in self.platforms:
            platform.start()
        names = ", ".join(p.name for p in self.platforms) or "no chat platform"
        log.info("serving %s on port %d", names, self._uvicorn.config.port)
        try:
            self._uvicorn.run()
        finally:
            self._finish()

    def stop(self) -> None:
        self._uvicorn.should_exit = True

    def _finish(self) -> None:
        self.readiness.stop()
        for platform in self.platforms:
            try:
                platform.stop()
            except Exception:
                log.exception("stopping %s failed", platform.name)
        self.runner.shutdown(deadline_seconds=SHUTDOWN_DEADLINE_SECONDS)
        log.info("stopped")


def stop_on_signals(server: Server) -> None:
    """SIGTERM (Kubernetes) and SIGINT stop taking commands and let running ones finish.

    Installed before uvicorn's own handlers so that, when uvicorn re-raises the signal on exit,
    it reaches this handler instead of killing the process before the workflows finish.
    """

    def handler(signum: int, _: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        server.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
