"""``group:<name>`` in PGDB_REQUESTERS/PGDB_OPERATORS on Mattermost: the members of a Mattermost
group (custom or LDAP, by its @-mention name), for the core's authorization rules."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from bot.adapters.mattermost.api import MattermostApi, MattermostError
from bot.core.errors import BackendUnavailable

log = logging.getLogger(__name__)

GROUPS_TTL_SECONDS = 300.0
MAX_PAGES = 100  # of groups or of a group's members: 20,000 at 200 a page


class MattermostGroups:
    """``group:<name>`` → the ids of the Mattermost group's members (custom or LDAP groups,
    by their @-mention name). Cached for a few minutes; on an error the last known members are
    used, and with none the lookup raises BackendUnavailable: the authorization filter counts
    the user as not a member of that group alone (fails closed) and says why."""

    def __init__(
        self, *, api: MattermostApi, ttl: float = GROUPS_TTL_SECONDS, per_page: int = 200
    ) -> None:
        self._api = api
        self._ttl = ttl
        self._per_page = per_page
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def members(self, handle: str) -> Iterator[str]:
        name = handle.strip().lower()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return iter(cached[1])
        try:
            found = self._fetch(name)
        except MattermostError as exc:
            if cached is None:
                raise BackendUnavailable(
                    "Mattermost", f"cannot resolve `group:{name}` ({exc}); try again shortly"
                ) from None
            log.warning("Mattermost: members of group %s unknown: using the last known", name)
            return iter(cached[1])
        with self._lock:
            self._cache[name] = (time.monotonic() + self._ttl, found)
        return iter(found)

    def _group_id(self, name: str) -> str | None:
        """The id of the group named exactly ``name``: the search matches substrings of names
        and display names, so every page is read until it is found (``ops`` among 200+
        ``ops-…`` groups is not on the first page)."""
        for page in range(MAX_PAGES):
            batch = self._api.groups(query=name, page=page, per_page=self._per_page)
            for group in batch:
                if isinstance(group, dict) and str(group.get("name", "")) == name:
                    return str(group["id"])
            if len(batch) < self._per_page:
                return None
        log.warning("Mattermost: group %s not found in %d pages of groups", name, MAX_PAGES)
        return None

    def _fetch(self, name: str) -> frozenset[str]:
        group_id = self._group_id(name)
        if group_id is None:
            log.warning("Mattermost: no group named %s (PGDB_REQUESTERS/PGDB_OPERATORS)", name)
            return frozenset()
        ids: set[str] = set()
        for page in range(MAX_PAGES):
            batch = self._api.group_members(group_id=group_id, page=page, per_page=self._per_page)
            ids.update(str(u["id"]) for u in batch if isinstance(u, dict) and u.get("id"))
            if len(batch) < self._per_page:
                break
        return frozenset(ids)
