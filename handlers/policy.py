"""Where an app's Secret may be delivered (``--namespace``): one rule, used by the
command edge and by the create planner alike.

A namespace must match ``PGDB_SECRET_NAMESPACES`` (comma-separated globs, default ``*``) and is
never one of the namespaces where credentials would reach more than the app: Kubernetes' own
(``kube-*``, ``default``), the bot's own, and Argo CD's. The never-list holds for everyone,
operators included; widening the globs is a configuration change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from handlers.settings import Layout

# Always refused, whatever PGDB_SECRET_NAMESPACES says: glob -> why, for the message.
KUBERNETES_NEVER: Mapping[str, str] = {
    "kube-*": "Kubernetes' own namespaces (`kube-*`)",
    "default": "the `default` namespace, shared by everything that names no namespace",
}


def namespace_refusal(
    namespace: str, *, allowed_globs: Sequence[str], never: Mapping[str, str]
) -> str | None:
    """None when ``namespace`` may receive an app's Secret; else the refusal, naming the rule
    that refused it and what to do instead. ``never`` maps a glob to why it is refused."""
    for pattern, why in never.items():
        if fnmatchcase(namespace, pattern):
            return (
                f"`{namespace}` can never receive an app's credentials: it is {why}. Nobody may "
                "deliver a Secret there, operators included; use the app's own namespace, e.g. "
                "`--namespace <app>`."
            )
    globs = [g for g in allowed_globs if g]
    if any(fnmatchcase(namespace, g) for g in globs):
        return None
    allowed = ", ".join(f"`{g}`" for g in globs) or "none"
    return (
        f"`{namespace}` is not a namespace this bot delivers credentials to "
        f"(PGDB_SECRET_NAMESPACES allows {allowed}). Use one of those, or ask a platform "
        "operator to add it to PGDB_SECRET_NAMESPACES."
    )


@dataclass(frozen=True, kw_only=True)
class NamespacePolicy:
    """The rule with this deployment's values filled in."""

    allowed_globs: tuple[str, ...]
    never: Mapping[str, str] = field(default_factory=dict)

    def refusal(self, namespace: str) -> str | None:
        return namespace_refusal(namespace, allowed_globs=self.allowed_globs, never=self.never)


def namespace_policy(layout: Layout) -> NamespacePolicy:
    """``PGDB_SECRET_NAMESPACES`` and the never-list: Kubernetes' own namespaces, the bot's
    namespace (``PGDB_BOT_NAMESPACE``, else the pod's, else ``PGDB_NAMESPACE``) and Argo CD's
    (``PGDB_ARGOCD_NAMESPACE``)."""
    never = dict(KUBERNETES_NEVER)
    never.setdefault(
        layout.own_namespace,
        f"the bot's own namespace (`{layout.own_namespace}`), where its own credentials live",
    )
    never.setdefault(
        layout.argocd_namespace,
        f"Argo CD's namespace (`{layout.argocd_namespace}`, PGDB_ARGOCD_NAMESPACE)",
    )
    return NamespacePolicy(allowed_globs=tuple(layout.secret_namespaces), never=never)
