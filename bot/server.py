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
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.chat import ChatPlatform
from bot.core.errors import PgdbError
from bot.runner import CommandRunner

log = logging.getLogger(__name__)
SHUTDOWN_DEADLINE_SECONDS = 25.0


ReadinessCheck = tuple[str, Callable[[], None]]
READINESS_CACHE_SECONDS = 5.0


async def healthz(_: Request) -> PlainTextResponse:
    """The process is alive and serving HTTP."""
    return PlainTextResponse("ok\n")


async def metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class Readiness:
    """Each configured backend answers; the body names any that does not. Results are cached
    briefly so that probes from several sources do not hammer the backends."""

    def __init__(self, checks: Sequence[ReadinessCheck]) -> None:
        self._checks = list(checks)
        self._cached: tuple[float, list[str]] | None = None
        self._lock = threading.Lock()

    def problems(self) -> list[str]:
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < READINESS_CACHE_SECONDS:
                return self._cached[1]
            found: list[str] = []
            for name, check in self._checks:
                try:
                    check()
                except PgdbError as exc:
                    found.append(f"{name}: {exc}")
                except Exception as exc:
                    found.append(f"{name}: {type(exc).__name__}")
            self._cached = (now, found)
            return found

    async def endpoint(self, _: Request) -> PlainTextResponse:
        problems = await run_in_threadpool(self.problems)
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
