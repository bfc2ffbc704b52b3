"""Mattermost, one module per concern:

- ``api``: the REST v4 client (timeouts, the one retry loop, ``MattermostError``);
- ``render``: replies and alerts as markdown posts, escaped and cut to size;
- ``buttons``: the signed, one-time context a button carries back;
- ``conversation``: one command's replies (the inline answer, then one post updated in place
  through :mod:`bot.chat_updates`, private replies to the requester);
- ``groups``: ``group:<name>`` as a Mattermost group's members;
- ``platform``: the two endpoints and the ops-channel alerts (the ``ChatPlatform``).

Built from the configuration by :mod:`bot.wiring.chat`; nothing here reads ``Settings``.
"""
