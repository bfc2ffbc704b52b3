"""In-memory fakes of every port in ``bot.core.ports``, for tests and benchmarks that need no
PostgreSQL and no server.

Each fake keeps what is written and answers reads from it, raises the port's documented errors
where the real adapter does (``ConflictError``, ``PermissionProblem``...), and can be told to
fail (``fake.fail("observe")``: ``BackendUnavailable``, as an unreachable system). mypy proves
each one satisfies its Protocol (see the end of each module).

* ``faults``          — what every fake shares: the call log, injected failures, a settable clock
* ``secret_store``    — ``SecretStore``
* ``database``        — ``ManagedDatabase`` (roles with real SCRAM verifiers, databases)
* ``bot_state``       — ``BotState`` (audit log, workflow records, locks, replay keys)
* ``alert_store``     — ``AlertStore``
* ``approval_store``  — ``ApprovalStore``
* ``git_host``        — ``GitHost`` (commits, branches as proposals, checks)
* ``cluster``         — ``Cluster`` (CNPG, InfisicalSecrets and the operator that syncs them)
* ``chat``            — ``Conversation``, ``AlertSink``/``ThreadReplier``, ``GroupResolver``
* ``services``        — ``MemoryWorld`` and ``memory_services``: the one place ``Services`` is
  built for fakes

The file secret store and the local git host are real local backends; these exist so that a
use case can be tested in milliseconds.
"""
