"""The console chat: the same commands typed in a terminal, or piped one per line."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TextIO

from bot.core.model import Requester
from bot.core.reply import Reply, StepState
from handlers.context import Services
from handlers.dispatch import dispatch

_STATE_MARKS = {
    StepState.DONE: "✔ done",
    StepState.EXISTS: "✔ already there",
    StepState.PLANNED: "• would do",
    StepState.FAILED: "✘ failed",
    StepState.SKIPPED: "- skipped",
}


class ConsoleConversation:
    """Prints a reply as it progresses: title once, each step when it settles, then the rest."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._title: str | None = None
        self._printed: dict[str, StepState] = {}

    @property
    def message_link(self) -> None:
        """A terminal has no message to reply to later."""
        return None

    def show(self, reply: Reply) -> None:
        if self._title is None:
            self._line(("" if reply.ok or not reply.private else "! ") + reply.title)
            self._title = reply.title
        for step in reply.steps:
            if step.state is StepState.PENDING or self._printed.get(step.key) is step.state:
                continue
            self._printed[step.key] = step.state
            detail = f": {step.detail}" if step.detail else ""
            self._line(f"  [{_STATE_MARKS[step.state]}] {step.label}{detail}")
        if reply.final:
            if reply.title != self._title:
                self._line(reply.title)
            for label, value in reply.fields:
                self._line(f"  {label}: {value}")
            for line in reply.lines:
                self._line(f"  {line}" if line else "")
            if reply.code:
                self._line("")
                for code_line in reply.code.splitlines():
                    self._line(f"    {code_line}")
            if reply.correlation_id and not reply.ok:
                self._line(f"  (correlation id {reply.correlation_id})")

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()


def run_console(
    services: Services,
    *,
    user: str | None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    banner: Callable[[TextIO], None] | None = None,
) -> int:
    """Read commands until end of input; 0 unless the bot itself crashed."""
    owner = getpass.getuser()
    requester = Requester(
        user_id=user or owner, platform="console", is_console_owner=user in (None, owner)
    )
    interactive = stdin.isatty()
    if interactive and banner is not None:
        banner(stdout)
    while True:
        if interactive:
            stdout.write("pgdb> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            if interactive:
                stdout.write("\n")
            return 0
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text in {"exit", "quit"}:
            return 0
        if not interactive:
            stdout.write(f"> {text}\n")
        dispatch(
            services,
            text=text,
            requester=requester,
            conversation=ConsoleConversation(stdout),
        )
        stdout.write("\n")
