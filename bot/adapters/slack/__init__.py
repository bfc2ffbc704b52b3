"""Slack, one module per concern:

- ``client``: the Web API client with slack_sdk's bounded retries;
- ``inbound``: what arrives over HTTP, checked first (the signature, the body's shape, the
  command text as typed);
- ``render``: replies and alerts as Block Kit, escaped and fitted to Slack's limits;
- ``conversation``: one command's message, posted then edited in place through
  :mod:`bot.chat_updates` (or the ``response_url``), private answers as ephemeral messages;
- ``groups``: ``group:<handle>`` as a Slack user group's members;
- ``platform``: Bolt, the HTTP route and Socket Mode, and the ops-channel alerts (the
  ``ChatPlatform``).

Built from the configuration by :mod:`bot.wiring.chat`; nothing here reads ``Settings``.
"""
