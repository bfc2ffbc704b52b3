"""The `pgdb/*` status checks: built once here for `create` and for the diagnostics passes,
which keep them true while an onboarding PR is open (a role dropped after the PR was opened
turns `pgdb/role` red before anyone merges)."""

from __future__ import annotations

import logging

from bot.core.errors import PgdbError
from bot.core.model import CheckResult, CheckState, PasswordResult, ProposalState
from handlers.context import Services
from handlers.findings import Diagnosis
from handlers.observe import Observation

log = logging.getLogger(__name__)


def secret_check(*, ok: bool) -> CheckResult:
    return CheckResult(
        context="pgdb/secret",
        state=CheckState.SUCCESS if ok else CheckState.FAILURE,
        description="username, password and database are stored"
        if ok
        else "credentials are incomplete in the secret store",
    )


def role_check(app: str, *, ok: bool) -> CheckResult:
    return CheckResult(
        context="pgdb/role",
        state=CheckState.SUCCESS if ok else CheckState.FAILURE,
        description=f"role {app} exists, can log in, password verified"
        if ok
        else f"role {app} is not usable",
    )


class CheckRefresher:
    """Re-publishes `pgdb/secret` and `pgdb/role` on open proposals when they change; what was
    published is remembered per head commit, so a steady fleet costs no call."""

    def __init__(self) -> None:
        self._published: dict[str, dict[str, CheckState]] = {}

    def refresh(self, obs: Observation, services: Services, diagnosis: Diagnosis) -> int:
        """Publish what changed; the number of proposals updated."""
        snapshot, stored, state = obs.git.value, obs.secrets.value, obs.database.value
        if snapshot is None or stored is None or state is None:
            return 0  # a system was not observed: change nothing
        updated = 0
        for app, proposal in snapshot.proposals.items():
            if proposal.state is not ProposalState.OPEN:
                continue
            creds = stored.get(app)
            role = state.roles.get(app)
            verdict = diagnosis.verdicts.get(app)
            role_ok = (
                role is not None
                and role.can_login
                and (verdict is None or verdict.result is PasswordResult.MATCH)
            )
            checks = [
                secret_check(ok=creds is not None and creds.complete),
                role_check(app, ok=role_ok),
            ]
            wanted = {c.context: c.state for c in checks}
            known = self._published.get(proposal.head_sha) or {
                c.context: c.state for c in proposal.checks
            }
            if all(known.get(context) == s for context, s in wanted.items()):
                self._published[proposal.head_sha] = wanted
                continue
            try:
                services.git.publish_checks(proposal=proposal, checks=checks)
            except PgdbError as exc:
                log.warning("could not refresh the checks of %s: %s", proposal.url, exc)
                continue
            self._published[proposal.head_sha] = wanted
            updated += 1
        return updated
