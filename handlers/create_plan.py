"""What ``/pgdb create <app>`` will do, decided before anything is written.

The dry run renders this plan; the real run computes the same plan under the app's lock and
carries it out, so a dry run names the step where the real run stops, and why. Every rule of
what ``create`` may adopt, and on whose word, is here:

* it never adopts a privileged role, never takes a database owned by another role, never
  resets a password, never re-enables a NOLOGIN role the bot did not offboard;
* it brings an offboarded app back only for an operator (or on an operator's approval), and
  not while the offboarding proposal is open;
* ``--namespace`` delivers the Secret only where the namespace policy allows, and a requester
  may use it only for an app they are creating now.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bot.core.model import (
    DatabaseState,
    PasswordResult,
    PasswordVerdict,
    RoleInfo,
    StoredCredentials,
)
from bot.core.names import AppName
from handlers.access import Role, role_of
from handlers.assessment import privileged_roles, psql_command, role_privileges
from handlers.context import CommandContext
from handlers.lifecycle import AppHistory
from handlers.policy import namespace_policy


class Act(enum.StrEnum):
    """What a step will do."""

    KEEP = "keep"  # already there: nothing to do
    DO = "do"  # the step changes something
    STOP = "stop"  # the workflow stops here, with the cause


@dataclass(frozen=True, kw_only=True)
class StepPlan:
    act: Act
    detail: str


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """The requester may not make this change: who may, and whether an approval can."""

    reason: str
    approvable: bool  # an operator's approval of the request would allow it


@dataclass(frozen=True, kw_only=True)
class CreatePlan:
    credentials: StepPlan
    role: StepPlan
    generate_password: bool = False  # credentials: a new password is made and stored
    complete_keys: bool = False  # credentials: the password is kept, missing keys added
    create_role: bool = False
    enable_login: bool = False  # bring back a role the bot offboarded
    refusal: Refusal | None = None

    @property
    def stop(self) -> tuple[str, str] | None:
        """The step the workflow stops at and why, if it does."""
        for key, step in (("credentials", self.credentials), ("role", self.role)):
            if step.act is Act.STOP:
                return key, step.detail
        return None


def is_operator(ctx: CommandContext) -> bool:
    settings = ctx.services.settings
    role = role_of(
        ctx.requester,
        requesters=settings.access.requesters,
        operators=settings.access.operators,
        groups=ctx.services.groups,
    )
    return role >= Role.OPERATOR


def _operators(ctx: CommandContext) -> str:
    named = ", ".join(ctx.services.settings.access.operators)
    return f"an operator ({named})" if named else "an operator (PGDB_OPERATORS)"


def _psql(ctx: CommandContext, statement: str) -> str:
    return psql_command(ctx.services, statement)


def plan_create(
    ctx: CommandContext,
    app: AppName,
    *,
    stored: StoredCredentials | None,
    state: DatabaseState,
    history: AppHistory,
    verdict: PasswordVerdict | None,
    offboarding_open: str | None,
    operator_decided: bool,
) -> CreatePlan:
    """The plan from what was just observed. ``offboarding_open``: the URL of the app's open
    offboarding proposal; ``operator_decided``: an operator runs it, or approved it."""
    location = ctx.services.secrets.location(app)
    role = state.roles.get(app)
    bringing_back = history.retired and role is not None and not role.can_login
    refusal = None
    if bringing_back and not operator_decided:
        refusal = Refusal(
            reason=f"`{app}` was offboarded: bringing it back (LOGIN re-enabled, manifests "
            f"proposed again) is {_operators(ctx)}'s decision",
            approvable=True,
        )
    # --- credentials
    has_password = stored is not None and stored.password is not None
    generate = complete = False
    if has_password and stored is not None:
        wrong = [
            f"`{key}` is `{value}`"
            for key, value in (("username", stored.username), ("database", stored.database))
            if value is not None and value != app
        ]
        if wrong:
            credentials = StepPlan(
                act=Act.STOP,
                detail=f"the credentials at {location} do not name the app ({' and '.join(wrong)}"
                f"): an operator decides which is right (set them to `{app}`); create never "
                "reuses credentials made for another role",
            )
        elif stored.username is None:
            complete = True
            credentials = StepPlan(
                act=Act.DO, detail=f"keep the password at {location}, add `username`"
            )
        else:
            credentials = StepPlan(act=Act.KEEP, detail=f"reuse the password at {location}")
    elif role is not None and bringing_back:
        generate = True
        credentials = StepPlan(
            act=Act.DO,
            detail=f"generate a new password for the offboarded role (its credentials had been "
            f"deleted) and store it at {location}",
        )
    elif role is not None:
        credentials = StepPlan(
            act=Act.STOP,
            detail=f"role `{app}` already exists but no password is stored at {location}; "
            f"create never resets a password: an operator decides (`/pgdb rotate {app}` sets a "
            "new one)",
        )
    else:
        generate = True
        credentials = StepPlan(act=Act.DO, detail=f"generate a password and store it at {location}")
    # --- role (and the database that would be handed to it)
    role_plan, create_role, enable_login = _role_plan(
        ctx,
        app,
        role=role,
        state=state,
        history=history,
        verdict=verdict,
        offboarding_open=offboarding_open,
        has_password=has_password or generate,
    )
    return CreatePlan(
        credentials=credentials,
        role=role_plan,
        generate_password=generate,
        complete_keys=complete,
        create_role=create_role,
        enable_login=enable_login,
        refusal=refusal,
    )


def _role_plan(
    ctx: CommandContext,
    app: AppName,
    *,
    role: RoleInfo | None,
    state: DatabaseState,
    history: AppHistory,
    verdict: PasswordVerdict | None,
    offboarding_open: str | None,
    has_password: bool,
) -> tuple[StepPlan, bool, bool]:
    database = state.databases.get(app)
    if database is not None and database.owner != app:
        return (
            StepPlan(
                act=Act.STOP,
                detail=f"database `{app}` already exists and is owned by `{database.owner}`: "
                "create never hands existing data to a new owner (an operator decides: if the "
                f"data is `{app}`'s, "
                + _psql(ctx, f'ALTER DATABASE "{app}" OWNER TO "{app}";')
                + ", then run create again)",
            ),
            False,
            False,
        )
    if role is None:
        return (
            StepPlan(act=Act.DO, detail=f"create role `{app}` (LOGIN, no privileges)"),
            True,
            False,
        )
    privileged = role_privileges(role, privileged_roles(state))
    if privileged:
        return (
            StepPlan(
                act=Act.STOP,
                detail=f"role `{app}` is privileged ({', '.join(privileged)}): create never "
                "adopts a privileged role (pgdb/role fails); an operator removes the privilege "
                "or picks another app name",
            ),
            False,
            False,
        )
    if not role.can_login:
        if not history.retired:
            return (
                StepPlan(
                    act=Act.STOP,
                    detail=f"role `{app}` is NOLOGIN and the bot did not offboard it: a human "
                    "decides whether it may log in again ("
                    + _psql(ctx, f'ALTER ROLE "{app}" LOGIN;')
                    + ")",
                ),
                False,
                False,
            )
        if offboarding_open is not None:
            return (
                StepPlan(
                    act=Act.STOP,
                    detail=f"the offboarding proposal {offboarding_open} is still open: close "
                    f"it without merging first (merging it would remove `{app}` again)",
                ),
                False,
                False,
            )
        return (
            StepPlan(act=Act.DO, detail=f"re-enable LOGIN on the offboarded role `{app}`"),
            False,
            True,
        )
    refusal = role.login_refusal(ctx.services.clock())
    if refusal is not None:
        fix = (
            f'ALTER ROLE "{app}" CONNECTION LIMIT -1;'
            if role.connection_limit == 0
            else f"ALTER ROLE \"{app}\" VALID UNTIL 'infinity';"
        )
        return (
            StepPlan(
                act=Act.STOP,
                detail=f"role `{app}` cannot log in ({refusal}): an operator decides ("
                + _psql(ctx, fix)
                + ")",
            ),
            False,
            False,
        )
    if not has_password:
        return StepPlan(act=Act.STOP, detail="no stored password to check"), False, False
    if verdict is None or verdict.result is PasswordResult.UNKNOWN:
        why = verdict.detail if verdict is not None else "not checked"
        return (
            StepPlan(
                act=Act.STOP,
                detail=f"could not check the stored password against role `{app}` ({why}); "
                "run again once PostgreSQL accepts the check",
            ),
            False,
            False,
        )
    if verdict.result is PasswordResult.MISMATCH:
        return (
            StepPlan(
                act=Act.STOP,
                detail=f"role `{app}` exists but the stored password does not open it; create "
                f"never resets a password: an operator decides (`/pgdb rotate {app}`)",
            ),
            False,
            False,
        )
    detail = f"role `{app}` exists and the stored password opens it"
    if role.createdb:
        detail += " (warning: it has CREATEDB; see /pgdb diagnose)"
    return StepPlan(act=Act.KEEP, detail=detail), False, False


def namespace_refusal(
    ctx: CommandContext, app: AppName, namespace: str, *, existing: bool, operator: bool
) -> str | None:
    """Why this ``--namespace`` may not be used here, or None."""
    refused = namespace_policy(ctx.services.settings.layout).refusal(namespace)
    if refused is not None:
        return refused
    if existing and not operator:
        return (
            f"`{app}` already exists: delivering its credentials to another namespace "
            f"(`{namespace}`) is {_operators(ctx)}'s change; a requester may use `--namespace` "
            "only for an app they are creating now"
        )
    return None
