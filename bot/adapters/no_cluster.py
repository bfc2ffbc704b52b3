"""The cluster port when Kubernetes is not configured: every Kubernetes check says so."""

from __future__ import annotations


class NoCluster:
    configured = False
