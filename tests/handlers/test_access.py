"""Who may do what: PGDB_REQUESTERS and PGDB_OPERATORS."""

from __future__ import annotations

from collections.abc import Iterator

from bot.core.errors import BackendUnavailable
from bot.core.model import Requester
from handlers.access import Role, RoleCheck, check_role, role_of


class Groups:
    """A GroupResolver over a fixed table; records which handles were asked for."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def members(self, handle: str) -> Iterator[str]:
        self.asked.append(handle)
        return iter(self.table.get(handle, []))


def user(user_id: str, *, console_owner: bool = False) -> Requester:
    return Requester(user_id=user_id, platform="slack", is_console_owner=console_owner)


def role(
    user_id: str,
    *,
    requesters: list[str] | None = None,
    operators: list[str] | None = None,
    groups: Groups | None = None,
    console_owner: bool = False,
) -> Role:
    return role_of(
        user(user_id, console_owner=console_owner),
        requesters=["*"] if requesters is None else requesters,
        operators=[] if operators is None else operators,
        groups=groups,
    )


def test_defaults_everyone_requests_nobody_operates() -> None:
    assert role("U123") is Role.REQUESTER


def test_star_operators_makes_everyone_operator() -> None:
    assert role("U123", operators=["*"]) is Role.OPERATOR


def test_listed_operator() -> None:
    assert role("U2", operators=["U1", "U2"]) is Role.OPERATOR
    assert role("U3", operators=["U1", "U2"]) is Role.REQUESTER


def test_listed_requesters_only() -> None:
    assert role("U1", requesters=["U1"]) is Role.REQUESTER
    assert role("U9", requesters=["U1"]) is Role.NOBODY


def test_operators_may_do_what_requesters_may() -> None:
    assert role("U1", requesters=["U2"], operators=["U1"]) is Role.OPERATOR
    assert Role.OPERATOR > Role.REQUESTER > Role.NOBODY


def test_nobody_when_both_lists_are_empty() -> None:
    assert role("U1", requesters=[], operators=[]) is Role.NOBODY


def test_ids_match_exactly() -> None:
    assert role("alice2", requesters=["alice"]) is Role.NOBODY
    assert role("ALICE", requesters=["alice"]) is Role.NOBODY
    assert role("alice", requesters=["alice "]) is Role.NOBODY


def test_group_member_is_operator() -> None:
    groups = Groups({"dba": ["U1", "U2"]})
    assert role("U2", operators=["group:dba"], groups=groups) is Role.OPERATOR
    assert groups.asked == ["dba"]


def test_group_non_member_is_not() -> None:
    groups = Groups({"dba": ["U1"]})
    assert role("U9", requesters=["group:devs"], operators=["group:dba"], groups=groups) is (
        Role.NOBODY
    )


def test_requester_group() -> None:
    groups = Groups({"devs": ["U5"]})
    assert role("U5", requesters=["group:devs"], groups=groups) is Role.REQUESTER


def test_groups_without_a_resolver_match_nobody() -> None:
    assert role("U1", requesters=["group:devs"], operators=["group:dba"]) is Role.NOBODY


def test_group_handle_is_not_a_user_id() -> None:
    groups = Groups({"dba": ["U1"]})
    assert role("dba", operators=["group:dba"], groups=groups) is Role.REQUESTER


def test_console_owner_is_always_operator() -> None:
    assert role("root", requesters=[], operators=[], console_owner=True) is Role.OPERATOR
    assert role("root", requesters=[], operators=["U1"], console_owner=True) is Role.OPERATOR


def test_console_user_acting_as_someone_else_follows_the_lists() -> None:
    assert role("alice", operators=["bob"], console_owner=False) is Role.REQUESTER


def test_display_names_are_never_matched() -> None:
    """A Slack user may rename themself "Alice Admin": only the stable id counts."""
    operators = ["U0ADMIN"]
    assert role("Alice Admin", operators=operators) is Role.REQUESTER
    impostor = Requester(user_id="U0EVIL", platform="slack")
    assert not hasattr(impostor, "display_name")
    assert role_of(impostor, requesters=["*"], operators=operators, groups=None) is Role.REQUESTER


class DownGroups(Groups):
    """The platform's group API failing for some handles (the adapters raise PgdbError)."""

    def __init__(self, table: dict[str, list[str]], *, down: set[str]) -> None:
        super().__init__(table)
        self.down = down

    def members(self, handle: str) -> Iterator[str]:
        self.asked.append(handle)
        if handle in self.down:
            raise BackendUnavailable("Slack", f"cannot resolve `group:{handle}` (ratelimited)")
        return iter(self.table.get(handle, []))


def check(user_id: str, needs: Role, groups: Groups, **rules: list[str]) -> RoleCheck:
    return check_role(
        user(user_id),
        needs,
        requesters=rules.get("requesters", ["*"]),
        operators=rules.get("operators", []),
        groups=groups,
    )


def test_a_requester_check_with_star_asks_no_group() -> None:
    groups = DownGroups({}, down={"dba", "devs"})
    assert check("U1", Role.REQUESTER, groups, operators=["group:dba"]).allowed
    assert groups.asked == []


def test_a_plain_entry_decides_before_any_group() -> None:
    groups = DownGroups({}, down={"dba"})
    assert check("U1", Role.OPERATOR, groups, operators=["group:dba", "U1"]).allowed
    assert groups.asked == []


def test_a_failing_group_fails_closed_for_its_rule_alone() -> None:
    groups = DownGroups({"devs": ["U1"]}, down={"dba"})
    refused = check("U1", Role.OPERATOR, groups, operators=["group:dba"])
    assert not refused.allowed
    assert refused.unchecked == (
        "`group:dba` could not be checked (Slack: cannot resolve `group:dba` (ratelimited))",
    )
    # the same user is still a requester through another group
    assert check(
        "U1", Role.REQUESTER, groups, requesters=["group:devs"], operators=["group:dba"]
    ).allowed
    assert role("U1", requesters=["group:devs"], operators=["group:dba"], groups=groups) is (
        Role.REQUESTER
    )
    # and a failing requester group never grants anything
    assert role("U2", requesters=["group:dba"], groups=groups) is Role.NOBODY


def test_a_later_group_still_counts_when_an_earlier_one_fails() -> None:
    groups = DownGroups({"oncall": ["U1"]}, down={"dba"})
    assert check("U1", Role.OPERATOR, groups, operators=["group:dba", "group:oncall"]).allowed
    assert groups.asked == ["dba", "oncall"]
