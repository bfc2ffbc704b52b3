"""The one door to the API server: the official client's generic call, JSON in and out.

Why not ``CoreV1Api``, ``CustomObjectsApi`` and ``CoordinationV1Api``: importing them loads
about 250 model modules (some 20 MiB resident for the life of the process), and every list
answer would become model objects, while the bot reads a few JSON paths. Every request here
goes through ``ApiClient``'s ``param_serialize``, ``call_api`` and ``response_deserialize``
with the response type ``object``: the client still does the authentication (token refresh
included), TLS, urllib3's retries and the ``ApiException`` of an error status, and the answer
is plain dicts and lists. The requests are the ones the typed classes would send (same paths,
``Accept: application/json``, a ``Content-Type`` only for a patch).

Every call has a timeout; GETs are retried at most twice on connection errors, 429 and 5xx,
honouring ``Retry-After`` up to a few seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import load_incluster_config
from kubernetes.config.kube_config import load_kube_config
from urllib3.util.retry import Retry

from bot.adapters.kubernetes.source import KubeSource
from bot.core.errors import ConfigError

MAX_RETRY_AFTER: Final = 5.0
MERGE_PATCH: Final = "application/merge-patch+json"
# Any 2xx answer is JSON read as plain objects; an error status raises ApiException.
AS_JSON: Final[dict[str, str | None]] = {"2XX": "object"}

Timeout = tuple[float, float]  # (connect, read) seconds


class BoundedRetry(Retry):
    """urllib3's retry, with ``Retry-After`` honoured but capped: a pass must stay short."""

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER)


def bounded_retries() -> Retry:
    """At most two retries of a GET, on connection errors, 429 and 5xx; writes never."""
    return BoundedRetry(
        total=3,
        connect=2,
        read=0,  # a read that timed out is not retried: the timeout bounds the pass
        status=2,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=0.2,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def timeout_pair(seconds: float) -> Timeout:
    """Connect within at most 5 s, answer within ``seconds``."""
    return (min(5.0, seconds), seconds)


def custom_path(group: str, version: str, plural: str) -> str:
    """The collection of a namespaced kind (``/apis/…`` or, for the core group, ``/api/v1``);
    ``{namespace}`` and ``{name}`` are filled from the call's parameters."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{{namespace}}/{plural}"


class KubeApi:
    """An ``ApiClient`` and what it points at (``host via source``), for messages."""

    def __init__(self, client: ApiClient, *, where: str) -> None:
        self._client = client
        self.where = where

    @classmethod
    def connect(cls, source: KubeSource) -> KubeApi:
        """Load the credentials now, so a bad kubeconfig stops the bot at start with its name."""
        config = Configuration()
        problem: str | None = None
        try:
            if source.in_cluster:
                load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            else:
                load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(source.kubeconfig),
                    context=source.context,
                    client_configuration=config,
                    persist_config=False,
                )
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
            problem = " ".join(str(exc).split()) or type(exc).__name__
        if problem is not None:
            variable = (
                "PGDB_KUBE_CONTEXT / PGDB_KUBECONFIG" if source.context else "PGDB_KUBECONFIG"
            )
            raise ConfigError(
                f"{variable}: cannot load the Kubernetes configuration from {source.describe()}: "
                f"{problem} (PGDB_KUBERNETES=off runs without Kubernetes)"
            )
        config.retries = bounded_retries()
        return cls(ApiClient(config), where=f"{config.host} via {source.describe()}")

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        timeout: Timeout,
        body: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Any:
        """One request; the answer's JSON. ``params`` fill the ``{…}`` of ``path`` (quoted as
        the client quotes them). Raises ``ApiException`` on an error status, and urllib3's
        ``HTTPError`` or ``OSError`` when the API server cannot be reached."""
        headers: dict[str, str] = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = self._client.param_serialize(
            method=method,
            resource_path=path,
            path_params=dict(params),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*request, _request_timeout=timeout)
        response.read()  # type: ignore[no-untyped-call]
        return self._client.response_deserialize(
            response_data=response, response_types_map=AS_JSON
        ).data

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
