"""Kubernetes: what the cluster really runs, and who leads the schedule.

One module per seam, each importable on its own:

- ``source``: where the credentials come from (``PGDB_KUBERNETES=auto|on|off``); cheap, it does
  not load the client library, so choosing costs nothing when Kubernetes is off.
- ``api``: the one door to the API server, the official client's generic call with JSON in and
  out (no typed API or model classes: they would cost ~20 MiB for the process's life).
- ``parse``: the objects the bot reads (CNPG, Infisical, Argo CD, Secrets, workloads) as the
  core's values; pure functions over the JSON.
- ``cluster``: the ``Cluster`` port (reads of a pass, the forced resync, rollout restarts).
- ``lease``: the ``coordination.k8s.io/v1`` Lease that elects the replica running the schedule.

The composition root (``bot.wiring.kubernetes``) reads the settings and builds them; this
package takes plain parameters.
"""
