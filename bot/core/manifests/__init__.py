"""The GitOps files of one app: pure code, text in and text out.

Each name is imported from the module that owns it; this package re-exports nothing.

- :mod:`.layout` — where the files live and what they are called; :class:`ManifestSettings`.
- :mod:`.render` — the ``Database`` and ``InfisicalSecret`` manifests the bot writes.
- :mod:`.kustomization` — reading and editing ``kustomization.yaml`` in place.
- :mod:`.validate` — the ``pgdb/manifests`` status check: CRD schemas (``schemas/``) and rules.
- :mod:`.onboarding` — the files one onboarding commits; whether an app is already on the base.
- :mod:`.offboarding` — what offboarding removes, and what makes removing unsafe.
- :mod:`.runbook_page` — the app's line on the runbook page ("Applications déployées").
- :mod:`.yaml_text` — the one YAML emitter every file goes through, and YAML errors in one line.
"""
