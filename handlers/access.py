"""Authorization: one filter in front of every command (SPEC §8)."""

from __future__ import annotations

import enum

from bot.core.ports import GroupResolver
from handlers.context import Requester


class Role(enum.IntEnum):
    NOBODY = 0
    REQUESTER = 1
    OPERATOR = 2


def _matches(user_id: str, entries: list[str], groups: GroupResolver | None) -> bool:
    for entry in entries:
        if entry == "*" or entry == user_id:
            return True
        if (
            entry.startswith("group:")
            and groups is not None
            and user_id in set(groups.members(entry.removeprefix("group:")))
        ):
            return True
    return False


def role_of(
    requester: Requester,
    *,
    requesters: list[str],
    operators: list[str],
    groups: GroupResolver | None,
) -> Role:
    """Operators may do everything requesters may. The console's own OS user is an operator."""
    if requester.is_console_owner or _matches(requester.user_id, operators, groups):
        return Role.OPERATOR
    if _matches(requester.user_id, requesters, groups):
        return Role.REQUESTER
    return Role.NOBODY
