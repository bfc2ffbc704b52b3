"""What a chat platform adapter offers the long-running process (`pgdb-bot run`)."""

from __future__ import annotations

from typing import Protocol

from starlette.routing import BaseRoute

from bot.core.reply import Alert


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
