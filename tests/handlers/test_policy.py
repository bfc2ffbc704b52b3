"""Where an app's Secret may go (``--namespace``): the never-list, then PGDB_SECRET_NAMESPACES."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import Settings, load_settings, pod_namespace
from bot.core.errors import ConfigError
from bot.wiring import core_settings
from handlers.policy import KUBERNETES_NEVER, namespace_policy, namespace_refusal

NEVER = {**KUBERNETES_NEVER, "databases": "the bot's own namespace", "argocd": "Argo CD's"}


def refusal(namespace: str, *globs: str) -> str | None:
    return namespace_refusal(namespace, allowed_globs=globs or ("*",), never=NEVER)


def test_any_namespace_by_default() -> None:
    assert refusal("docspell") is None
    assert refusal("team-a") is None


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "default"])
def test_kubernetes_own_namespaces_are_never_allowed(namespace: str) -> None:
    message = refusal(namespace)
    assert message is not None
    assert f"`{namespace}` can never receive an app's credentials" in message
    assert "operators included" in message
    # not even when the globs name it
    assert refusal(namespace, namespace, "kube-*") == message


def test_the_bots_and_argocds_namespaces_are_never_allowed() -> None:
    assert "the bot's own namespace" in (refusal("databases") or "")
    assert "Argo CD's" in (refusal("argocd") or "")
    assert refusal("databases-two") is None  # names, not prefixes


def test_globs_decide_the_rest_and_the_refusal_names_the_variable() -> None:
    assert refusal("team-docs", "team-*", "apps") is None
    assert refusal("apps", "team-*", "apps") is None
    message = refusal("billing", "team-*", "apps")
    assert message == (
        "`billing` is not a namespace this bot delivers credentials to (PGDB_SECRET_NAMESPACES "
        "allows `team-*`, `apps`). Use one of those, or ask a platform operator to add it to "
        "PGDB_SECRET_NAMESPACES."
    )
    assert "allows none" in (namespace_refusal("x", allowed_globs=(), never={}) or "")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings from defaults only: no PGDB_* variable, no .env file."""
    for name in [n for n in os.environ if n.startswith("PGDB_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.skipif(pod_namespace() is not None, reason="runs in a pod")
def test_the_policy_from_settings() -> None:
    policy = namespace_policy(core_settings(Settings(secret_namespaces=["team-*"])).layout)
    assert policy.allowed_globs == ("team-*",)
    assert "the bot's own namespace (`databases`)" in (policy.refusal("databases") or "")
    assert "PGDB_ARGOCD_NAMESPACE" in (policy.refusal("argocd") or "")
    assert policy.refusal("team-a") is None

    own = namespace_policy(
        core_settings(Settings(bot_namespace="pgdb", argocd_namespace="gitops")).layout
    )
    assert "`pgdb`" in (own.refusal("pgdb") or "")
    assert own.refusal("databases") is None
    assert "`gitops`" in (own.refusal("gitops") or "")


def test_the_bots_namespace_comes_from_the_pod(tmp_path: Path) -> None:
    account = tmp_path / "namespace"
    assert pod_namespace(account) is None
    account.write_text("platform-bots\n")
    assert pod_namespace(account) == "platform-bots"
    assert Settings(bot_namespace="set-here").own_namespace == "set-here"


def test_bad_globs_are_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGDB_SECRET_NAMESPACES", "team-*, Bad_NS")
    with pytest.raises(ConfigError, match="PGDB_SECRET_NAMESPACES"):
        load_settings()
