"""The `pgdb/*` status checks: built once here for `create` and for the diagnostics passes,
which keep them true while an onboarding PR is open (a role dropped after the PR was opened
turns `pgdb/role` red before anyone merges)."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.core.errors import PgdbError
from bot.core.model import CheckResult, CheckState, ProposalState, WorkflowStatus
from handlers.assessment import CHECK_CREDENTIALS, CHECK_LOGIN, CHECK_PASSWORD, CHECK_ROLE
from handlers.checks import CheckOutcome
from handlers.context import Services
from handlers.findings import Diagnosis
from handlers.observe import Observation

log = logging.getLogger(__name__)


def secret_check(*, ok: bool) -> CheckResult:
    return CheckResult(
        context="pgdb/secret",
        state=CheckState.SUCCESS if ok else CheckState.FAILURE,
        description="username and password are stored for the app"
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


# A workflow record still "running" after this long was interrupted: its checks are refreshed.
RUNNING_FOR_AT_MOST = timedelta(minutes=10)


def _workflows_running(obs: Observation) -> set[str]:
    """Apps whose latest workflow is running right now (not an interrupted one)."""
    return {
        w.app
        for w in obs.workflows.value or []
        if w.status is WorkflowStatus.RUNNING and obs.at - w.updated_at < RUNNING_FOR_AT_MOST
    }


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
        busy = _workflows_running(obs)
        for app, proposal in snapshot.proposals.items():
            if proposal.state is not ProposalState.OPEN or app in busy:
                continue  # a workflow running on the app publishes its own checks when done
            judged = diagnosis.assessment.apps.get(app) if diagnosis.assessment else None
            if judged is None:
                continue
            # the same judgement as `status`: a privileged or refused role is no success
            outcome = {c.name: c.outcome for c in judged.checks}
            role_ok = (
                all(
                    outcome.get(name) in (CheckOutcome.OK, None)
                    for name in (CHECK_ROLE, CHECK_LOGIN, CHECK_PASSWORD)
                )
                and state.roles.get(app) is not None
            )
            creds = stored.get(app)
            checks = [
                secret_check(
                    ok=creds is not None and outcome.get(CHECK_CREDENTIALS) is CheckOutcome.OK
                ),
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
