"""PostgreSQL: the shared server the bot manages, and the bot's own state kept on it.

One module per concern, each given what it shares rather than inheriting it:

* ``connection`` — the DSN, connection parameters, error translation, advisory-lock classes;
* ``roles`` — the managed server (``ManagedDatabase``): catalogs, role changes;
* ``passwords`` — whether stored passwords open their roles (verifier or login);
* ``migrations`` — the bot's schema (``BotSchema``) and the one ordered list of migrations;
* ``state``, ``alerts``, ``approvals`` — the stores kept in that schema, each given a
  ``BotSchema``;
* ``leader`` — leadership of the diagnostics schedule by a session advisory lock.
"""
