"""Messages a command sends besides its own reply: an approval request to the ops channel, a
decision in the requester's thread. The chat platforms attach themselves once they exist."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace

from bot.core.errors import PgdbError
from bot.core.ports import AlertSink, ChatPlatform, ThreadReplier
from bot.core.reply import Alert

log = logging.getLogger(__name__)


class Announcer:
    """Every chat platform's ops channel and threads; with none, the log."""

    def __init__(self) -> None:
        self.sinks: list[AlertSink] = []
        self.repliers: list[ThreadReplier] = []

    def attach(self, platforms: Iterable[ChatPlatform]) -> None:
        """The chat platforms, once the process has built them (they need the services)."""
        for platform in platforms:
            self.sinks.append(platform)
            self.repliers.append(platform)

    def announce(self, alert: Alert, *, threads: Mapping[str, str] | None = None) -> dict[str, str]:
        """Post to every ops channel (in ``threads[platform]`` when given): platform ->
        message reference, for the platforms that took it. Failures are logged, not raised:
        the caller says so to the user."""
        if not self.sinks:
            log.warning(
                "ops (no chat platform): %s — %s", alert.title, alert.text.replace("\n", " — ")
            )
            return {}
        posted: dict[str, str] = {}
        for sink in self.sinks:
            thread = (threads or {}).get(sink.name)
            if threads is not None and thread is None:
                continue  # a reply for a thread this platform does not have
            try:
                ref = sink.send_alert(replace(alert, thread=thread))
            except PgdbError as exc:
                log.warning("ops message %s not posted on %s: %s", alert.key, sink.name, exc)
                continue
            if ref:
                posted[sink.name] = ref
        return posted

    def tell(self, link: str | None, text: str) -> bool:
        """Reply in the thread of a command's message (its ``message_link``); False when no
        platform has that message (the console) or it could not be posted (logged)."""
        if link:
            for replier in self.repliers:
                try:
                    if replier.reply_in_thread(link, text):
                        return True
                except PgdbError as exc:
                    log.warning("could not reply in %s: %s", link, exc)
                    return False
        log.info("not told in a thread (no chat message to reply to): %s", text)
        return False
