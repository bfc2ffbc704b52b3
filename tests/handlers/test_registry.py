"""The command registry: one handler per command spec, no handler without a spec."""

from __future__ import annotations

from handlers.commands import COMMANDS
from handlers.dispatch import MIDDLEWARE
from handlers.registry import HANDLERS, ROUTES


def test_every_command_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(COMMANDS)
    assert all(ROUTES[name].spec is spec for name, spec in COMMANDS.items())


def test_the_audit_is_outermost_and_authorization_innermost() -> None:
    names = [layer.__name__ for layer in MIDDLEWARE]
    assert names[0] == "audited"  # it records the reply the user saw, whatever happened inside
    assert names.index("shown") < names.index("errors_as_replies")  # an error is shown too
    assert names[-1] == "authorized"  # nothing runs before the requester's role is checked
