"""Leader election among the replicas through a ``coordination.k8s.io/v1`` Lease.

Only one replica runs the diagnostics schedule; this is how the others know to stay
followers, and how one of them takes over within a lease period when the leader dies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import urllib3
from kubernetes.client.exceptions import ApiException

from bot.adapters.kubernetes.api import KubeApi, custom_path, timeout_pair
from bot.adapters.kubernetes.parse import as_dict, as_int, as_str, parse_time, status_body

log = logging.getLogger(__name__)

LEASES: Final = custom_path("coordination.k8s.io", "v1", "leases")


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that have a value: an unset field is left out, as the typed client does."""
    return {key: value for key, value in fields.items() if value is not None}


class KubernetesLease:
    """Leadership of the diagnostics schedule through a ``coordination.k8s.io/v1`` Lease.

    The holder renews ``spec.renewTime``; another replica takes the Lease over once
    ``renewTime + leaseDurationSeconds`` has passed. Every write is an update guarded by
    ``resourceVersion`` (or a create): of two candidates racing, one gets a 409 and stays a
    follower. A holder that cannot renew stops leading when its own lease would expire.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: int = 30,
        timeout: float = 5.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``name``: the Lease's; ``identity``: this replica's name as the holder;
        ``timeout``: seconds for each call's answer."""
        self._api = api
        self.namespace = namespace
        self.lease_name = name
        self.identity = identity
        self.duration = duration_seconds
        self._timeout = timeout_pair(timeout)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._leading_until: datetime | None = None
        self.name = f"Kubernetes Lease {namespace}/{name}"
        self._problem: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the last attempt could not ask the API server (None: it asked)."""
        return self._problem

    @property
    def leading(self) -> bool:
        return self._leading_until is not None and self._clock() < self._leading_until

    def try_lead(self) -> bool:
        """Acquire or renew; False when another replica holds a live Lease (or on errors)."""
        now = self._clock()
        self._problem = None
        try:
            won = self._acquire_or_renew(now)
        except ApiException as exc:
            if exc.status == 409:
                won = False  # another candidate wrote first
            else:
                message = status_body(exc.body).get("message")
                self._problem = f"HTTP {exc.status} {message}"
                log.warning("leader election: %s", self._problem)
                return self.leading  # unknown: lead on until our own Lease would expire
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._problem = f"the API server is unreachable: {type(exc).__name__}"
            log.warning("leader election: %s", self._problem)
            return self.leading
        if won:
            self._leading_until = now + timedelta(seconds=self.duration)
            return True
        self._leading_until = None
        return False

    # -- calls ------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        params = {"namespace": self.namespace, "name": self.lease_name}
        return as_dict(
            self._api.call("GET", LEASES + "/{name}", params=params, timeout=self._timeout)
        )

    def _create(self, spec: dict[str, Any]) -> None:
        body = {"metadata": {"name": self.lease_name, "namespace": self.namespace}, "spec": spec}
        params = {"namespace": self.namespace}
        self._api.call("POST", LEASES, params=params, body=body, timeout=self._timeout)

    def _replace(self, spec: dict[str, Any], *, resource_version: Any) -> None:
        """A PUT guarded by ``resourceVersion``: a 409 when the Lease changed since read."""
        metadata = _present(
            {
                "name": self.lease_name,
                "namespace": self.namespace,
                "resourceVersion": resource_version,
            }
        )
        params = {"namespace": self.namespace, "name": self.lease_name}
        self._api.call(
            "PUT",
            LEASES + "/{name}",
            params=params,
            body={"metadata": metadata, "spec": spec},
            timeout=self._timeout,
        )

    # -- election ---------------------------------------------------------------------------

    def _acquire_or_renew(self, now: datetime) -> bool:
        try:
            lease = self._read()
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._create(
                {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": self.duration,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                }
            )
            log.info("leader election: %s created %s", self.identity, self.name)
            return True
        spec = as_dict(lease.get("spec"))
        holder = as_str(spec.get("holderIdentity"))
        duration = as_int(spec.get("leaseDurationSeconds")) or self.duration
        renewed = parse_time(spec.get("renewTime"))
        expired = renewed is None or renewed + timedelta(seconds=duration) <= now
        if holder not in ("", self.identity) and not expired:
            return False
        taking_over = holder != self.identity
        transitions = as_int(spec.get("leaseTransitions")) + (1 if taking_over and holder else 0)
        self._replace(
            {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": now if taking_over else (parse_time(spec.get("acquireTime")) or now),
                "renewTime": now,
                "leaseTransitions": transitions,
            },
            resource_version=as_dict(lease.get("metadata")).get("resourceVersion"),
        )
        if taking_over:
            log.info("leader election: %s leads now (was %r)", self.identity, holder or None)
        return True

    def release(self) -> None:
        """Give the Lease up at shutdown, so the next leader need not wait for it to expire."""
        if self._leading_until is None:
            return
        self._leading_until = None
        try:
            lease = self._read()
            spec = as_dict(lease.get("spec"))
            if spec.get("holderIdentity") != self.identity:
                return
            self._replace(
                _present(
                    {
                        "leaseDurationSeconds": 1,
                        "acquireTime": parse_time(spec.get("acquireTime")),
                        "renewTime": self._clock(),
                        "leaseTransitions": spec.get("leaseTransitions"),
                    }
                ),
                resource_version=as_dict(lease.get("metadata")).get("resourceVersion"),
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("leader election: could not release the Lease: %s", type(exc).__name__)
