"""Authorization: one filter in front of every command.

Plain entries (user ids, ``*``) are decided without asking anyone. A ``group:`` entry is looked
up only when the plain entries did not already decide, and a lookup that fails counts as "not a
member" for that rule alone: an outage of the platform's group API never refuses a command the
user is allowed by another entry (``help`` with ``PGDB_REQUESTERS=*``), and never grants one.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.core.errors import PgdbError
from bot.core.model import Requester
from bot.core.ports import GroupResolver

log = logging.getLogger(__name__)


class Role(enum.IntEnum):
    NOBODY = 0
    REQUESTER = 1
    OPERATOR = 2


@dataclass(frozen=True, kw_only=True)
class RoleCheck:
    """Whether the user holds the role, and the groups that could not be checked (each with
    its reason), so a refusal can say why a member may have been missed."""

    allowed: bool
    unchecked: tuple[str, ...] = field(default_factory=tuple)


def _plain(user_id: str, entries: Sequence[str]) -> bool:
    return any(entry == "*" or entry == user_id for entry in entries)


def _in_groups(
    user_id: str, entries: Sequence[str], groups: GroupResolver | None, unchecked: list[str]
) -> bool:
    for entry in entries:
        if not entry.startswith("group:") or groups is None:
            continue
        try:
            if user_id in set(groups.members(entry.removeprefix("group:"))):
                return True
        except PgdbError as exc:
            log.warning("%s not checked for %s (counted as not a member): %s", entry, user_id, exc)
            unchecked.append(f"`{entry}` could not be checked ({exc})")
    return False


def check_role(
    requester: Requester,
    needs: Role,
    *,
    requesters: Sequence[str],
    operators: Sequence[str],
    groups: GroupResolver | None,
) -> RoleCheck:
    """Whether ``requester`` holds ``needs`` (operators may do what requesters may), asking the
    group API only when plain entries do not decide."""
    if needs is Role.NOBODY or requester.is_console_owner:
        return RoleCheck(allowed=True)
    user = requester.user_id
    rules = [operators] if needs is Role.OPERATOR else [requesters, operators]
    if any(_plain(user, entries) for entries in rules):
        return RoleCheck(allowed=True)
    unchecked: list[str] = []
    for entries in rules:
        if _in_groups(user, entries, groups, unchecked):
            return RoleCheck(allowed=True)
    return RoleCheck(allowed=False, unchecked=tuple(unchecked))


def role_of(
    requester: Requester,
    *,
    requesters: Sequence[str],
    operators: Sequence[str],
    groups: GroupResolver | None,
) -> Role:
    """The highest role the user holds. The console's own OS user is an operator."""
    if check_role(
        requester, Role.OPERATOR, requesters=requesters, operators=operators, groups=groups
    ).allowed:
        return Role.OPERATOR
    user = requester.user_id
    if _plain(user, requesters) or _in_groups(user, requesters, groups, []):
        return Role.REQUESTER
    return Role.NOBODY
