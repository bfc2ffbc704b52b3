"""Later changes to an app's Database manifest: ``/pgdb update <app>
--extension e`` here, and the manifest half of ``/pgdb limits``.

Every such change is a pull request on the app's update branch, ``pgdb-update/<app>``, touching
the Database manifest alone, edited in place (comments and formatting kept). While that branch
is open, a further change is added to it: the branch is rebuilt on the current base with what
it already proposed and the new change together.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from bot.core.limits import (
    NO_LIMIT,
    allowlist_refusal,
    not_allowed,
)
from bot.core.manifests.layout import database_path
from bot.core.manifests.render import DatabaseManifest, edit_database, read_database
from bot.core.manifests.validate import validate_database
from bot.core.model import GitSnapshot, Proposal, ProposalState
from bot.core.names import AppName
from bot.core.reply import Reply, error_reply
from handlers.context import CommandContext
from handlers.create_plan import is_operator
from handlers.observe import read_git


class UpdateRefused(Exception):
    """The change cannot be proposed; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class UpdatePlan:
    """The Database manifest as the update branch should carry it, and what that changes."""

    app: AppName
    path: str  # repository path of the Database manifest
    snapshot: GitSnapshot
    text: str  # the manifest on the branch to be (base + what is open + this change)
    before: DatabaseManifest  # on the base branch
    after: DatabaseManifest
    open_proposal: Proposal | None  # the update branch's proposal, while it is open
    current: bool  # the open proposal already carries exactly this, on the current base

    @property
    def changes(self) -> list[str]:
        """Every difference the branch proposes against the base branch."""
        found = []
        if self.after.connection_limit != self.before.connection_limit:
            found.append(
                f"connectionLimit {_limit(self.before.connection_limit)} → "
                f"{_limit(self.after.connection_limit)}"
            )
        added = [e for e in self.after.extensions if e not in self.before.extensions]
        if added:
            found.append(f"extensions + {', '.join(added)}")
        return found


def _limit(value: int | None) -> str:
    return "unset" if value is None else "none (-1)" if value == NO_LIMIT else str(value)


def plan_update(
    ctx: CommandContext,
    app: AppName,
    *,
    connection_limit: int | None = None,
    extensions: tuple[str, ...] = (),
) -> UpdatePlan:
    """Read the base branch (and the open update branch), and build the manifest to propose.
    Nothing is written. Raises UpdateRefused when the app has no Database manifest on the
    base branch, or it cannot be edited."""
    services = ctx.services
    layout = services.settings.layout
    git = services.git
    snapshot = read_git(services)
    relative = database_path(app)
    path = posixpath.join(layout.gitops_path.strip("/"), relative)
    base_text = None
    if relative in snapshot.files:
        base_text = git.read_file(ref=snapshot.base_sha, path=path)
    if base_text is None:
        onboarding = snapshot.proposals.get(app)
        hint = (
            f"merge its onboarding proposal first ({onboarding.url}), then run this again"
            if onboarding is not None and onboarding.state is ProposalState.OPEN
            else f"`/pgdb create {app}` proposes it"
        )
        raise UpdateRefused(
            f"`{app}` has no Database manifest on branch {snapshot.base_branch} ({path}): {hint}"
        )
    try:
        before = read_database(base_text)
        text = base_text
        listed = snapshot.updates.get(app)
        open_proposal = (
            git.proposal(branch=listed.branch)
            if listed is not None and listed.state is ProposalState.OPEN
            else None
        )
        if open_proposal is not None and open_proposal.state is not ProposalState.OPEN:
            open_proposal = None
        branch_text = (
            git.read_file(ref=open_proposal.head_sha, path=path) if open_proposal else None
        )
        if branch_text is not None:
            # what the open branch already proposes, carried onto the current base
            carried = read_database(branch_text)
            if carried.connection_limit not in (None, before.connection_limit):
                text = edit_database(text, connection_limit=carried.connection_limit)
            text = edit_database(
                text, extensions=tuple(e for e in carried.extensions if e not in before.extensions)
            )
        text = edit_database(text, connection_limit=connection_limit, extensions=extensions)
    except ValueError as exc:
        raise UpdateRefused(f"{path} on branch {snapshot.base_branch}: {exc}") from exc
    problems = validate_database(text, settings=layout.manifests)
    if problems:
        raise UpdateRefused(f"the edited {path} would not validate: {problems[0]}")
    current = (
        open_proposal is not None
        and branch_text == text
        and open_proposal.base_sha == snapshot.base_sha
        and open_proposal.mergeable is not False
    )
    return UpdatePlan(
        app=app,
        path=path,
        snapshot=snapshot,
        text=text,
        before=before,
        after=read_database(text),
        open_proposal=open_proposal,
        current=current,
    )


def propose_update(ctx: CommandContext, plan: UpdatePlan, *, what: str) -> Proposal | None:
    """Commit the plan on the update branch (rebuilt on the current base) and open or reuse its
    proposal; None when the base branch already carries it all (nothing to propose)."""
    if not plan.changes:
        return None
    if plan.current:
        return plan.open_proposal
    git = ctx.services.git
    title = f"pgdb: update {plan.app} ({'; '.join(plan.changes)})"
    sha = git.commit(
        parent=plan.snapshot.base_sha,
        files={plan.path: plan.text},
        message=f"{title}\n\n{what}, requested by {ctx.requester.user_id} through pgdb-bot.\n",
    )
    branch = (
        plan.open_proposal.branch
        if plan.open_proposal is not None
        else ctx.services.settings.layout.update_branch(plan.app)
    )
    git.set_branch(branch=branch, sha=sha)
    body = "\n".join(
        [
            f"Changes the Database manifest of `{plan.app}` (and nothing else):",
            "",
            *(f"- {change}" for change in plan.changes),
            "",
            f"Latest change: {what}, requested by {ctx.requester.user_id} "
            f"({ctx.requester.platform}), correlation id {ctx.correlation_id}.",
        ]
    )
    return git.open_proposal(branch=branch, title=title, body=body)


# --- /pgdb update <app> --extension e ------------------------------------------------------


def run_update(
    ctx: CommandContext, app: AppName, *, extensions: tuple[str, ...], dry_run: bool
) -> Reply:
    """Add allowed extensions to an app on the base branch: a PR changing its Database
    manifest alone. Requesters may for the apps they requested, operators for any (§13)."""
    services = ctx.services
    guardrails = services.settings.guardrails
    refused = not_allowed(extensions, guardrails.allowed_extensions)
    if refused:
        return error_reply(
            allowlist_refusal(refused, guardrails.allowed_extensions),
            title="Extension not allowed",
            correlation_id=ctx.correlation_id,
            outcome="refused",
        )
    if not is_operator(ctx):
        record = next((w for w in services.state.workflows() if w.app == app), None)
        requester = record.app_requester if record is not None else None
        if requester != ctx.requester.user_id:
            who = f"`{requester}` (who onboarded it)" if requester else "nobody (no create record)"
            return error_reply(
                f"only the app's requester — {who} — or an operator (PGDB_OPERATORS) may add "
                f"extensions to `{app}`",
                title="Not allowed",
                correlation_id=ctx.correlation_id,
                outcome="refused",
            )
    reply = Reply(
        title=f"{'Plan for' if dry_run else 'Update of'} `{app}`",
        correlation_id=ctx.correlation_id,
    )
    with services.state.app_lock(app) as acquired:
        if not acquired:
            return error_reply(
                f"a workflow for `{app}` is in progress; run the command again when it ends",
                title=f"`{app}` is busy",
                correlation_id=ctx.correlation_id,
            )
        try:
            plan = plan_update(ctx, app, extensions=extensions)
        except UpdateRefused as exc:
            return error_reply(
                str(exc), title=f"Cannot update `{app}`", correlation_id=ctx.correlation_id
            )
        wanted = ", ".join(extensions)
        if not plan.changes:
            reply.title = f"`{app}`: nothing to change"
            reply.lines.append(
                f"Extension(s) {wanted} are already in {plan.path} on branch "
                f"{plan.snapshot.base_branch}."
            )
            return reply
        if dry_run:
            reply.lines.append(
                f"Would propose on branch {ctx.services.settings.layout.update_branch(app)}: "
                f"{'; '.join(plan.changes)} "
                f"(only {plan.path} changes)."
            )
            reply.lines.append("Dry run: nothing was changed.")
            return reply
        proposal = propose_update(ctx, plan, what=f"extension(s) {wanted}")
    assert proposal is not None
    reply.title = f"Update of `{app}` proposed"
    reply.fields.append(
        ("Pull request" if proposal.number is not None else "Branch to merge", proposal.url)
    )
    reply.lines.append(
        f"{'; '.join(plan.changes)} — only {plan.path} changes. Once merged, CloudNativePG "
        f"creates the extension(s) in database `{app}`; `/pgdb status {app}` shows whether it "
        "could (the image must ship them)."
    )
    return reply
