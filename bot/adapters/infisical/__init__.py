"""The Infisical secret store: the team's real secret manager, behind the same port as the file
store.

It speaks to Infisical through the official SDK (``infisicalsdk``) as a machine identity with
Universal Auth, and adds what the SDK leaves to its caller: bounded time, tokens renewed before
they expire, and errors that name what to fix. The modules, by what each one is about:

* :mod:`~bot.adapters.infisical.store` — ``InfisicalSecretStore``, the ``SecretStore`` port:
  checks its parameters and hands each method to the module that does it.
* :mod:`~bot.adapters.infisical.reading` — the app folders and their three keys.
* :mod:`~bot.adapters.infisical.writing` — writing the keys (folder first), and deleting only
  what the bot wrote.
* :mod:`~bot.adapters.infisical.session` — the SDK client, logged in, one operation at a time
  within its total time, and ``call``: every SDK call goes through it, with the one retry loop.
* :mod:`~bot.adapters.infisical.transport` — the HTTP side: the time budget, and the transport
  mounted on the SDK's ``requests`` session that enforces it.
* :mod:`~bot.adapters.infisical.errors` — what a failure becomes: a ``BackendUnavailable`` that
  names what to fix and never carries a secret value, the client secret or the token.

The SDK (and boto3 under it) is imported only when Infisical is configured: the composition
root imports this package only then.
"""
