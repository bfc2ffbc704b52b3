"""The command registry: one handler per command spec, no handler without a spec."""

from __future__ import annotations

from handlers.commands import COMMANDS
from handlers.dispatch import IN_EACH_ENVIRONMENT, MIDDLEWARE
from handlers.registry import HANDLERS, ROUTES


def test_every_command_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(COMMANDS)
    assert all(ROUTES[name].spec is spec for name, spec in COMMANDS.items())


def test_the_audit_is_outermost_and_authorization_innermost() -> None:
    names = [layer.__name__ for layer in MIDDLEWARE]
    assert names[0] == "audited"  # it records the reply the user saw, whatever happened inside
    assert names.index("shown") < names.index("errors_as_replies")  # an error is shown too
    assert names[-1] == "parsed"  # then the command runs in each environment it acts on
    inner = [layer.__name__ for layer in IN_EACH_ENVIRONMENT]
    # each environment's audit log records what happened there, errors included, and nothing
    # runs before the requester's role is checked against that environment's policy
    assert inner == ["audited_here", "errors_as_replies", "authorized"]
