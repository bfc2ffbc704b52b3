"""The chat side in memory: a conversation that keeps every reply shown, a platform's ops
channel and threads (a ``ChatPlatform`` with no HTTP routes), and ``group:`` resolution."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

from bot.core.errors import BackendUnavailable
from bot.core.reply import Alert, Reply
from tests.fakes.faults import Faults


class RecordingConversation:
    """Each ``show`` kept as a copy (a workflow updates one reply in place, step by step).
    ``message_link``: the posted message's reference, as a chat platform's conversation has
    it; None like the console."""

    def __init__(self, *, message_link: str | None = None) -> None:
        self.shown: list[Reply] = []
        self.message_link = message_link

    def show(self, reply: Reply) -> None:
        self.shown.append(copy.deepcopy(reply))

    @property
    def last(self) -> Reply:
        return self.shown[-1]


@dataclass(frozen=True)
class ThreadReply:
    link: str
    text: str


@dataclass
class RecordingPlatform:
    """A chat platform's ops channel and threads. ``alerts`` were posted, ``thread_replies``
    went into a command's thread; a link is this platform's when it starts with ``<name>:``.
    ``down``: every post raises ``BackendUnavailable`` (what the adapters raise)."""

    name: str = "chat"
    down: bool = False
    alerts: list[Alert] = field(default_factory=list)
    thread_replies: list[ThreadReply] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send_alert(self, alert: Alert) -> str | None:
        self._check()
        with self._lock:
            self.alerts.append(alert)
            return alert.thread or f"{self.name}:{len(self.alerts)}"

    def reply_in_thread(self, link: str, text: str) -> bool:
        if not link.startswith(f"{self.name}:"):
            return False
        self._check()
        with self._lock:
            self.thread_replies.append(ThreadReply(link=link, text=text))
        return True

    def routes(self) -> list[BaseRoute]:
        return []  # nothing comes in over HTTP: tests call the core directly

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def titles(self) -> list[str]:
        with self._lock:
            return [a.title for a in self.alerts]

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable(self.name, "not answering (a test took it down)")


class StaticGroups(Faults):
    """``GroupResolver`` over a fixed mapping: handle -> user ids (an unknown group is empty)."""

    system = "chat"

    def __init__(self, groups: Mapping[str, list[str]] | None = None) -> None:
        super().__init__()
        self.groups = {k: list(v) for k, v in (groups or {}).items()}

    def members(self, handle: str) -> Iterator[str]:
        self._enter("members")
        with self._lock:
            return iter(list(self.groups.get(handle.strip().lower(), [])))


if TYPE_CHECKING:
    from bot.core.ports import ChatPlatform, Conversation, GroupResolver

    _conversation: Conversation = RecordingConversation()
    _platform: ChatPlatform = RecordingPlatform()
    _groups: GroupResolver = StaticGroups()
