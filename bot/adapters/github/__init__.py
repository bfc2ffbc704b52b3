"""GitHub as the GitOps host: ``pgdb/<app>`` branches and pull requests, through GitHub's REST
API over httpx (no client library).

Writes use the git data API (one tree with inline contents, one commit, one ref), so the three
file changes land as a single commit parented on the current base branch. The modules, by what
each one is about:

* :mod:`~bot.adapters.github.host` — ``GitHubHost``, the ``GitHost`` port: checks its
  parameters and hands each method to the module below that does it.
* :mod:`~bot.adapters.github.reading` — the repository as the bot reads it: the base branch's
  manifests folder, a file, the open ``pgdb/*`` pull requests.
* :mod:`~bot.adapters.github.writing` — commits, branches and pull requests (with labels and
  reviewers).
* :mod:`~bot.adapters.github.statuses` — the ``pgdb/*`` checks: commit statuses, and check runs
  when the bot is a GitHub App.
* :mod:`~bot.adapters.github.connection` — the HTTP client, built on first use, and ``call``:
  every request goes through it (credentials, timeout, retries, write spacing, pages).
* :mod:`~bot.adapters.github.errors` — what a failure becomes: ``BackendUnavailable("GitHub",
  "<what failed> — <what to fix>")``, with credentials scrubbed.
* :mod:`~bot.adapters.github.retry` — when a call is tried again and how long it waits,
  following GitHub's rate-limit headers.
* :mod:`~bot.adapters.github.credentials` and :mod:`~bot.adapters.github.refs` — a GitHub
  App's key and its JSON web token, and the names (repository, path, branch, commit) checked
  before any request.

``cryptography`` (to sign the App's token) is imported only when the bot is a GitHub App, and
the composition root imports this package only when GitHub is configured.
"""
