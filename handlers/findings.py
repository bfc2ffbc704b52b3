"""Diagnostics: findings derived from one observation (SPEC §6.1)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.core.model import PasswordResult, PasswordVerdict, ProposalState, WorkflowRecord
from bot.core.names import AppName, InvalidAppName, parse_app_name
from handlers.context import Services
from handlers.lifecycle import Lifecycle, lifecycle_of
from handlers.observe import (
    Observation,
    check_passwords,
    known_apps,
    lifecycles,
    manifests_on_base,
    orphan_roles,
)
from handlers.offboard import secret_deleted

SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})
_OFFBOARDED = frozenset({Lifecycle.OFFBOARDED, Lifecycle.OFFBOARDING})
# What offboarding causes on purpose (issue 10): not reported for an offboarded app.
_CAUSED_BY_OFFBOARDING = frozenset(
    {"role_missing", "manifest_missing", "pr_stale", "password_drift"}
)
# variable to check, per system that could not be observed
_SYSTEM_HINTS = {
    "secret store": "check PGDB_SECRETS_DIR (or the Infisical settings) and its permissions",
    "PostgreSQL": "check PGDB_PG_DSN and that the server accepts the bot's connections",
    "git": "check PGDB_GITOPS_REPO (or PGDB_GITHUB_*) and PGDB_GITOPS_BASE_BRANCH",
    "bot state": "check PGDB_PG_DSN: the bot keeps its records in schema PGDB_STATE_SCHEMA",
    "Kubernetes": "check PGDB_KUBECONFIG (or the pod's service account) and that the API server "
    "is reachable; PGDB_KUBERNETES=off runs without it",
}


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: str
    app: str | None
    severity: Severity
    message: str
    remedy: str

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    apps: list[AppName]
    findings: list[Finding]
    verdicts: dict[str, PasswordVerdict]
    observed_at: datetime

    @property
    def alerting(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is not Severity.INFO]


def rotation_of(obs: Observation, app: str) -> WorkflowRecord | None:
    """The app's rotation that has not finished (running, failed, or crashed), if any."""
    from handlers.rotate import unfinished_rotation  # rotate imports the context: keep it light

    return unfinished_rotation(obs.workflows.value or [], app)


def rotation_note(rotation: WorkflowRecord) -> str:
    """Why a drift is expected, and what the re-run does."""
    return (
        f": a rotation started at {rotation.started_at:%Y-%m-%d %H:%M:%S} UTC stopped at step "
        f"“{rotation.step}”; `/pgdb rotate {rotation.app} --yes` finishes it (with the new "
        "password when the store holds it, else with a fresh one)"
    )


def _psql(services: Services, sql: str) -> str:
    s = services.settings
    return f"kubectl exec -n {s.namespace} {s.cluster}-1 -- psql -U postgres -c '{sql}'"


def _fresh_apps(obs: Observation, services: Services) -> set[str]:
    """Apps whose workflow is running or changed within the grace period (PGDB_GRACE)."""
    if obs.workflows.value is None:
        return set()
    grace = timedelta(seconds=services.settings.grace_seconds)
    # A running workflow updates its record at every step, so an old "running" record is a
    # crashed run: it must not hide the app's findings forever.
    return {w.app for w in obs.workflows.value if obs.at - w.updated_at < grace}


def diagnose(obs: Observation, services: Services, *, respect_grace: bool = True) -> Diagnosis:
    """Every finding of the pass, most severe first. Repair ignores the grace period."""
    apps = known_apps(obs, services)
    states = lifecycles(obs)
    # An offboarded app's role is NOLOGIN on purpose and `create` sets its password again:
    # its password is not checked, and what offboarding leaves behind is no problem.
    retired = {a for a in apps if states.get(a) in _OFFBOARDED}
    verdicts = check_passwords(obs, services, [a for a in apps if a not in retired])
    findings: list[Finding] = []
    for system, error in obs.unreachable().items():
        findings.append(
            Finding(
                kind="system_unreachable",
                app=None,
                severity=Severity.CRITICAL,
                message=f"{system} could not be observed: {error}",
                remedy=_SYSTEM_HINTS.get(system, f"check the PGDB_* settings of {system}"),
            )
        )
    fresh = _fresh_apps(obs, services) if respect_grace else set()
    for app in apps:
        found = _app_findings(obs, services, app, verdicts.get(app), fresh=app in fresh)
        if app in retired:
            found = _offboarded_findings(obs, services, app, found, fresh=app in fresh)
        findings.extend(found)
    findings.extend(_orphans(obs, services, apps))
    from handlers.cluster_checks import kube_findings  # imports this module: a cycle at the top

    # Once offboarded, an app's Kubernetes resources go away with its manifests, on purpose.
    in_cluster = [a for a in apps if a not in retired]
    findings.extend(
        kube_findings(obs, services, in_cluster, fresh_apps=fresh, respect_grace=respect_grace)
    )
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
    findings.sort(key=lambda f: (order[f.severity], f.app or "", f.kind))
    return Diagnosis(apps=apps, findings=findings, verdicts=verdicts, observed_at=obs.at)


def _app_findings(
    obs: Observation,
    services: Services,
    app: AppName,
    verdict: PasswordVerdict | None,
    *,
    fresh: bool,
) -> list[Finding]:
    out: list[Finding] = []
    stored = obs.secrets.value.get(app) if obs.secrets.value is not None else None
    state = obs.database.value
    role = state.roles.get(app) if state is not None else None
    snapshot = obs.git.value
    location = services.secrets.location(app)
    repair = f"/pgdb repair {app} --yes"

    if obs.secrets.value is not None and (stored is None or not stored.complete):
        has_password = stored is not None and stored.password is not None
        if has_password and stored is not None:
            missing = ", ".join(stored.missing_keys)
            out.append(
                Finding(
                    kind="secret_missing",
                    app=app,
                    severity=Severity.WARNING,
                    message=f"the secret store lacks {missing} at {location}",
                    remedy=repair,
                )
            )
        elif state is not None and (role is not None or not fresh):
            in_use = role is not None
            out.append(
                Finding(
                    kind="secret_missing",
                    app=app,
                    severity=Severity.CRITICAL if in_use else Severity.WARNING,
                    message=(
                        f"no password is stored at {location}"
                        + (f" but role `{app}` exists" if in_use else "")
                    ),
                    remedy=f"/pgdb rotate {app}" if in_use else repair,
                )
            )
    if state is not None and stored is not None and stored.password is not None and not fresh:
        if role is None:
            out.append(
                Finding(
                    kind="role_missing",
                    app=app,
                    severity=Severity.CRITICAL,
                    message=f"role `{app}` does not exist although its password is stored",
                    remedy=repair,
                )
            )
        elif not role.can_login:
            out.append(
                Finding(
                    kind="role_missing",
                    app=app,
                    severity=Severity.CRITICAL,
                    message=f"role `{app}` exists but cannot log in (NOLOGIN)",
                    remedy=repair,
                )
            )
    rotation = rotation_of(obs, app)
    # Between the store write and ALTER ROLE a rotation *is* a drift: not reported while it
    # runs (the grace period), and reported with the command that finishes it once it stopped.
    if (
        verdict is not None
        and verdict.result is PasswordResult.MISMATCH
        and not (rotation is not None and fresh)
    ):
        out.append(
            Finding(
                kind="password_drift",
                app=app,
                severity=Severity.CRITICAL,
                message=(
                    f"the password stored at {location} does not open role `{app}`"
                    + (f" ({verdict.detail})" if verdict.detail else "")
                    + (rotation_note(rotation) if rotation is not None else "")
                ),
                remedy=f"/pgdb rotate {app}" + (" --yes" if rotation is not None else ""),
            )
        )
    if role is not None and (role.dangerous_attributes or role.privileged_memberships):
        attrs = [f"NO{a.upper()}" for a in role.dangerous_attributes]
        what = ", ".join([*role.dangerous_attributes, *role.privileged_memberships])
        sql = ""
        if attrs:
            sql += f'ALTER ROLE "{app}" {" ".join(attrs)};'
        for granted in role.privileged_memberships:
            sql += f' REVOKE "{granted}" FROM "{app}";'
        out.append(
            Finding(
                kind="role_unsafe",
                app=app,
                severity=Severity.WARNING,
                message=f"role `{app}` has privileges an app must not have: {what}",
                remedy=_psql(services, sql.strip()),
            )
        )
    if snapshot is not None and not fresh and (stored is not None or role is not None):
        proposal = snapshot.proposals.get(app)
        pending = proposal is not None and proposal.state is ProposalState.OPEN
        if not pending and not manifests_on_base(snapshot, app):
            out.append(
                Finding(
                    kind="manifest_missing",
                    app=app,
                    severity=Severity.WARNING,
                    message=(
                        f"no manifests for `{app}` on branch {snapshot.base_branch} "
                        "and no open proposal"
                    ),
                    remedy=repair,
                )
            )
    out.extend(_pr_stale(obs, services, app))
    return out


def _offboarded_findings(
    obs: Observation, services: Services, app: AppName, found: list[Finding], *, fresh: bool
) -> list[Finding]:
    """An offboarded app's findings: what offboarding causes on purpose (NOLOGIN role, no
    manifests, the onboarding proposal left behind, credentials deleted by configuration) is
    not reported; a role that can log in again, or an offboarding that stopped, is."""
    record = next((w for w in obs.workflows.value or [] if w.app == app), None)
    finished = lifecycle_of(record) is Lifecycle.OFFBOARDED
    deleted = secret_deleted(record) or services.settings.offboard_delete_secret
    out: list[Finding] = []
    for f in found:
        if f.kind in _CAUSED_BY_OFFBOARDING or (f.kind == "secret_missing" and deleted):
            continue
        if f.kind == "secret_missing":
            f = replace(
                f,
                severity=Severity.INFO,
                message=f"{f.message}; `{app}` is offboarded, so `/pgdb create {app}` would "
                "set a new password",
                remedy=f"nothing to do until `{app}` comes back (/pgdb create {app})",
            )
        out.append(f)
    state = obs.database.value
    role = state.roles.get(app) if state is not None else None
    if finished and role is not None and role.can_login:
        out.append(
            Finding(
                kind="role_unsafe",
                app=app,
                severity=Severity.WARNING,
                message=f"role `{app}` can log in although `{app}` is offboarded",
                remedy=f"/pgdb offboard {app} --yes (sets NOLOGIN again), or /pgdb create {app} "
                "to bring the app back",
            )
        )
    if not finished and record is not None and not fresh:
        out.append(
            Finding(
                kind="offboard_incomplete",
                app=app,
                severity=Severity.WARNING,
                message=f"the offboarding of `{app}` started by {record.requester} on "
                f"{record.started_at:%Y-%m-%d %H:%M} UTC stopped at step {record.step}"
                + (f": {record.detail}" if record.detail else ""),
                remedy=f"/pgdb offboard {app} --yes (it finishes what is left)",
            )
        )
    return out


def _pr_stale(obs: Observation, services: Services, app: AppName) -> list[Finding]:
    """An onboarding proposal open longer than PGDB_PR_STALE_AFTER: until someone merges it
    (or closes it), the app has a role and credentials but no database."""
    snapshot = obs.git.value
    proposal = snapshot.proposals.get(app) if snapshot is not None else None
    if proposal is None or proposal.state is not ProposalState.OPEN:
        return []
    if proposal.created_at is None:
        return []
    age = obs.at - proposal.created_at
    if age.total_seconds() < services.settings.pr_stale_after_seconds:
        return []
    what = (
        f"pull request #{proposal.number}"
        if proposal.number is not None
        else f"branch {proposal.branch}"
    )
    days = age.days
    how_long = f"{days} day{'s' if days != 1 else ''}" if days else f"{age.seconds // 3600} h"
    return [
        Finding(
            kind="pr_stale",
            app=app,
            severity=Severity.WARNING,
            message=(
                f"{what} onboarding `{app}` has been open for {how_long} (since "
                f"{proposal.created_at:%Y-%m-%d}), longer than PGDB_PR_STALE_AFTER "
                f"({services.settings.pr_stale_after})"
            ),
            remedy=f"review and merge {what}: {proposal.url} (or close it if `{app}` is dropped)",
        )
    ]


def _adopt_hint(name: str, services: Services) -> str:
    try:
        parse_app_name(name, bot_role=services.bot_role, deny=services.settings.deny_names)
    except InvalidAppName:
        return f"add {name} to PGDB_IGNORE_ROLES (it cannot be an app name)"
    return (
        f"add {name} to PGDB_IGNORE_ROLES, or adopt it: store its password at "
        f"{services.settings.secrets_prefix}/{name}/ and run /pgdb create {name}"
    )


def _orphans(obs: Observation, services: Services, apps: list[AppName]) -> list[Finding]:
    if obs.secrets.value is None or obs.git.value is None or obs.workflows.value is None:
        return []  # a source of known apps is missing: every app would look like an orphan
    out = [
        Finding(
            kind="orphan_role",
            app=None,
            severity=Severity.INFO,
            message=f"login role `{name}` belongs to no known app",
            remedy=_adopt_hint(name, services),
        )
        for name in orphan_roles(obs, services, apps)
    ]
    state = obs.database.value
    if state is not None:
        known = set(apps)
        for db in sorted(state.databases.values(), key=lambda d: d.name):
            if db.name in SYSTEM_DATABASES or db.name in known:
                continue
            if db.name in services.settings.ignore_roles or db.owner == state.bot_role:
                continue
            out.append(
                Finding(
                    kind="orphan_database",
                    app=None,
                    severity=Severity.INFO,
                    message=f"database `{db.name}` (owner `{db.owner}`) belongs to no known app",
                    remedy=_adopt_hint(db.name, services),
                )
            )
    return out
