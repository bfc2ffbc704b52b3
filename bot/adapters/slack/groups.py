"""``group:<handle>`` in PGDB_REQUESTERS/PGDB_OPERATORS on Slack: the user ids of a Slack user
group, for the core's authorization rules."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient

from bot.adapters.slack.client import error_code
from bot.core.errors import PgdbError

log = logging.getLogger(__name__)


class SlackGroups:
    """``group:<handle>`` → the Slack user ids in that user group (``usergroups.list`` and
    ``usergroups.users.list``), cached briefly; a stale answer is used while Slack fails."""

    def __init__(
        self,
        *,
        client: WebClient,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: tuple[float, dict[str, str]] | None = None
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    def members(self, handle: str) -> Iterator[str]:
        return iter(self._lookup(handle.strip().lstrip("@")))

    def _lookup(self, handle: str) -> frozenset[str]:
        with self._lock:
            now = self._clock()
            cached = self._members.get(handle)
            if cached is not None and cached[0] > now:
                return cached[1]
            try:
                group_id = self._group_ids(now).get(handle)
                if group_id is None:
                    log.warning(
                        "no Slack user group with handle @%s (PGDB_*: group:%s)", handle, handle
                    )
                    users: frozenset[str] = frozenset()
                else:
                    answer = self._client.usergroups_users_list(usergroup=group_id)
                    users = frozenset(str(u) for u in answer.get("users") or [])
            except Exception as exc:
                cause = error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
                if cached is not None:
                    log.warning(
                        "Slack user group @%s: using the cached members (%s)", handle, cause
                    )
                    return cached[1]
                raise PgdbError(
                    f"cannot resolve `group:{handle}` through Slack ({cause}); try again shortly"
                ) from None
            self._members[handle] = (now + self._ttl, users)
            return users

    def _group_ids(self, now: float) -> dict[str, str]:
        if self._ids is None or self._ids[0] <= now:
            answer = self._client.usergroups_list()
            ids = {str(g["handle"]): str(g["id"]) for g in answer.get("usergroups") or []}
            self._ids = (now + self._ttl, ids)
        return self._ids[1]
