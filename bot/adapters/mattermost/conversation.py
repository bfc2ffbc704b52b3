"""One Mattermost command's replies: the HTTP response while it is pending, then one bot post
updated in place; private replies go to the requester only (an ephemeral post, else the
command's ``response_url``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from bot.adapters.mattermost.api import MattermostApi, MattermostError
from bot.adapters.mattermost.buttons import ButtonConfig
from bot.adapters.mattermost.render import Message, render_reply
from bot.chat_updates import ThrottledMessage
from bot.core.model import thread_link
from bot.core.reply import Reply

log = logging.getLogger(__name__)

# Updates of one post closer together than this are coalesced into one patch.
MIN_PATCH_INTERVAL_SECONDS = 1.0
PLATFORM = "mattermost"  # its name in links, the audit log and the requester


class InlineSlot:
    """The pending HTTP response of a command or click, answered at most once from a worker
    thread: with a private final reply (shown inline) or with None ("working on it")."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[Message | None] = loop.create_future()
        self._lock = threading.Lock()
        self._open = True

    def offer(self, message: Message | None) -> bool:
        """True if the HTTP response takes ``message``; False once it has been answered."""
        with self._lock:
            if not self._open:
                return False
            self._open = False
        try:
            self._loop.call_soon_threadsafe(self._settle, message)
        except RuntimeError:  # the server's loop is gone (shutting down)
            return False
        return True

    def _settle(self, message: Message | None) -> None:
        if not self._future.done():
            self._future.set_result(message)

    async def wait(self, *, timeout: float) -> Message | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            with self._lock:
                if self._open:
                    self._open = False
                    return None
            return await self._future  # an offer won the race and is on its way


class PostStream:
    """One bot post for one command: created on the first update, then patched in place (when
    to write is :class:`~bot.chat_updates.ThrottledMessage`'s to decide). A post Mattermost
    refuses for its size is sent again shortened; a post that is gone (403, 404) is posted
    anew."""

    def __init__(
        self,
        *,
        api: MattermostApi,
        channel_id: str,
        root_id: str | None,
        post_id: str | None = None,
        min_interval: float = MIN_PATCH_INTERVAL_SECONDS,
    ) -> None:
        self._api = api
        self._channel_id = channel_id
        self._root_id = root_id
        self._post_id = post_id
        # delivered stays None for a clicked post until the first patch: its props are unknown
        self._updates: ThrottledMessage[Message] = ThrottledMessage(
            deliver=self._deliver, min_interval=min_interval, what="a Mattermost post"
        )

    @property
    def latest(self) -> Message | None:
        return self._updates.latest

    @property
    def post_id(self) -> str | None:
        return self._post_id

    def update(self, message: Message, *, final: bool) -> None:
        self._updates.update(message, final=final)

    def _deliver(self, target: Message) -> bool:
        try:
            try:
                self._deliver_once(target)
            except MattermostError as exc:
                if exc.status != 400 or target.short is None:
                    raise
                log.warning("Mattermost refused the post (%s): sending a shorter one", exc)
                self._deliver_once(Message(text=target.short, attachments=target.attachments))
        except MattermostError:
            return False  # logged by the client; the next update (or the final one) tries again
        return True

    def _deliver_once(self, target: Message) -> None:
        if self._post_id is not None:
            sent = self._updates.delivered
            same_props = sent is not None and sent.attachments == target.attachments
            try:
                self._api.patch_post(
                    post_id=self._post_id,
                    message=target.text,
                    attachments=None if same_props else target.attachments,
                )
                return
            except MattermostError as exc:
                if exc.status not in {403, 404}:
                    raise
                log.warning("Mattermost: post %s cannot be updated: posting anew", self._post_id)
                self._post_id = None
        post = self._api.create_post(
            channel_id=self._channel_id,
            message=target.text,
            root_id=self._root_id,
            attachments=target.attachments,
        )
        self._post_id = str(post.get("id") or "") or None


class MattermostConversation:
    """Where one command's (or click's) replies go: the HTTP response while it is pending,
    then one bot post updated in place; private replies go to the requester only."""

    def __init__(
        self,
        *,
        api: MattermostApi,
        user_id: str,
        channel_id: str,
        root_id: str | None,
        buttons: ButtonConfig | None,
        slot: InlineSlot | None = None,
        post_id: str | None = None,
        response_url: str | None = None,
        footer: str = "",
        min_interval: float = MIN_PATCH_INTERVAL_SECONDS,
    ) -> None:
        self._api = api
        self._user_id = user_id
        self._channel_id = channel_id
        self._root_id = root_id
        self._buttons = buttons
        self._slot = slot
        self._response_url = response_url
        self._footer = footer
        self.stream = PostStream(
            api=api,
            channel_id=channel_id,
            root_id=root_id,
            post_id=post_id,
            min_interval=min_interval,
        )

    @property
    def message_link(self) -> str | None:
        """``mattermost:<channel_id>:<thread root>`` once the progress post exists."""
        root = self._root_id or self.stream.post_id
        return thread_link(PLATFORM, self._channel_id, root) if root else None

    def show(self, reply: Reply) -> None:
        """Never raises: a chat failure must not stop the workflow or its audit record."""
        try:
            self._show(reply)
        except Exception:
            log.exception("Mattermost: showing a reply failed [%s]", reply.correlation_id)

    def _show(self, reply: Reply) -> None:
        # Who asked is shown to the channel; the requester alone needs no reminder.
        footer = "" if reply.private else self._footer
        message = render_reply(reply, buttons=self._buttons, root_id=self._root_id, footer=footer)
        if not reply.private:
            self._release()
            self.stream.update(message, final=reply.final or reply.urgent)
            return
        if not reply.final:
            self._release()  # the requester gets "working on it"; the private text comes last
            return
        if self._slot is not None and self._slot.offer(message):
            return
        self._send_private(message)
        shown = self.stream.latest
        if shown is not None:
            ended = "_Ended: the answer was shown to the requester only._"
            self.stream.update(Message(text=f"{shown.text}\n\n{ended}"), final=True)

    def _release(self) -> None:
        if self._slot is not None:
            self._slot.offer(None)

    def _send_private(self, message: Message) -> None:
        try:
            self._api.ephemeral_post(
                user_id=self._user_id,
                channel_id=self._channel_id,
                root_id=self._root_id,
                message=message.text,
                attachments=message.attachments,
            )
            return
        except MattermostError:
            if not self._response_url:
                return
        body: dict[str, Any] = {"response_type": "ephemeral", "text": message.text}
        if message.attachments:
            body["attachments"] = message.attachments
        with contextlib.suppress(MattermostError):  # logged by the client
            self._api.respond(response_url=self._response_url, body=body)
