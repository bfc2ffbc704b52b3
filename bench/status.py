"""Fleet ``/pgdb status`` over the real backends: how long it takes and how big the reply is,
with one workflow record per app (the history a fleet the bot onboarded has)."""

from __future__ import annotations

import io
import statistics
import time
from typing import Any

from bot.adapters.console_chat import ConsoleConversation
from bot.core.model import Requester
from handlers.context import CommandContext, Services
from handlers.status import run_status


def fleet_status(services: Services, *, runs: int = 3) -> dict[str, Any]:
    def once() -> tuple[float, int, int]:
        ctx = CommandContext(
            services=services,
            requester=Requester(user_id="bench", platform="console", is_console_owner=True),
            conversation=ConsoleConversation(io.StringIO()),
        )
        started = time.perf_counter()
        reply = run_status(ctx, None)
        seconds = time.perf_counter() - started
        text = "\n".join([reply.title, *(f"{k}: {v}" for k, v in reply.fields), *reply.lines])
        return seconds, len(text), len(reply.lines)

    once()  # warm-up: verifier memo, connections
    samples = [once() for _ in range(runs)]
    return {
        "median_seconds": round(statistics.median(s for s, _, _ in samples), 3),
        "max_seconds": round(max(s for s, _, _ in samples), 3),
        "reply_chars": samples[-1][1],
        "reply_lines": samples[-1][2],
    }
