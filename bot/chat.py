"""What a chat platform adapter offers the long-running process (`pgdb-bot run`), and where it
hands each command over."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from starlette.routing import BaseRoute

from bot.core.reply import Alert

if TYPE_CHECKING:
    from bot.core.ports import Conversation
    from handlers.context import Requester
    from handlers.intake import Once


class ChatPlatform(Protocol):
    """One chat platform: its HTTP routes, and any connection it keeps open (Socket Mode)."""

    name: str

    def routes(self) -> list[BaseRoute]:
        """HTTP endpoints this platform needs on the shared server (may be empty)."""
        ...

    def start(self) -> None:
        """Open long-lived connections, if any. Must not block."""
        ...

    def stop(self) -> None:
        """Close them."""
        ...

    def send_alert(self, alert: Alert) -> str | None:
        """Post (or, with ``alert.thread``, reply in the thread of) an ops-channel alert;
        returns the reference of the posted message for later replies. Raises PgdbError when
        it could not be delivered, so the alert is kept and sent again on the next pass."""
        ...

    def reply_in_thread(self, link: str, text: str) -> bool:
        """Post ``text`` in the thread of a command's message (``message_link`` of its
        conversation): False when ``link`` belongs to another platform; raises PgdbError when
        it could not be posted."""
        ...


class CommandIntake(Protocol):
    """Where a chat adapter hands a command over, on a worker of the runner: the core runs it
    (the composition root binds ``handlers.intake.run_once`` to the services of that platform).
    The adapter only translates the platform's request into these arguments; every rule
    (authorization, replays, audit) is the core's."""

    def __call__(
        self,
        *,
        text: str,
        requester: Requester,
        conversation: Conversation,
        once: Once | None,
    ) -> None: ...


def thread_link(platform: str, channel: str, message: str) -> str:
    """``<platform>:<channel>:<message>``: a command's message, as its conversation's
    ``message_link`` names it so that a later reply can go to its thread."""
    return f"{platform}:{channel}:{message}"


def thread_of(link: str, *, platform: str) -> tuple[str, str] | None:
    """The (channel, message) a :func:`thread_link` of ``platform`` names; None for another
    platform's link or a malformed one."""
    if not link.startswith(f"{platform}:"):
        return None
    channel, _, message = link.removeprefix(f"{platform}:").partition(":")
    return (channel, message) if channel and message else None
