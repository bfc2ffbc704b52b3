"""The runbook page's "Applications déployées" list: the app's line added by onboarding and
removed by offboarding, every other byte of the page kept."""

from __future__ import annotations

import difflib

import pytest

from bot.core.manifests.layout import ManifestSettings
from bot.core.manifests.offboarding import removal
from bot.core.manifests.onboarding import build_manifest_set
from bot.core.manifests.runbook_page import app_line, read_page, with_app, without_app
from bot.core.names import AppName

FOLDER = "apps/04-databases/postgresql-shared/base"
DOCSPELL = "- **Docspell**: Document management system (database: `docspell`, user: `docspell`)"
# The seed runbook's page, cut to what matters here: a section before, the list, the section
# after, and a code block whose `# comment` lines look like headings.
PAGE = f"""# PostgreSQL Shared Cluster

Cluster PostgreSQL mutualisé pour toutes les applications.

### 6. Connexion depuis l'application

```bash
# Vérifier si le user existe
kubectl exec -n databases postgresql-shared-1 -- psql -U postgres -c "\\du"
```

## Applications déployées

{DOCSPELL}

## Tâches à venir

- [ ] Automatiser la création de users PostgreSQL via Job/Script
- [ ] Intégrer monitoring Prometheus

## Troubleshooting

```bash
# Applications déployées
```
"""


def app(name: str) -> AppName:
    return AppName(name)


def added_lines(before: str, after: str) -> list[str]:
    """The lines ``after`` adds; fails when it removes or changes any line of ``before``."""
    diff = list(difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True)))
    assert not [d for d in diff if d.startswith("- ")], "".join(diff)
    return [d[2:] for d in diff if d.startswith("+ ")]


def section(page: str) -> list[str]:
    lines = page.splitlines()
    start = lines.index("## Applications déployées")
    end = lines.index("## Tâches à venir")
    return lines[start + 1 : end]


def test_the_apps_line_joins_the_list_in_its_format_keeping_every_other_byte() -> None:
    edited = with_app(PAGE, app("nextcloud"))

    line = "- **Nextcloud**: onboarded with pgdb-bot (database: `nextcloud`, user: `nextcloud`)"
    assert added_lines(PAGE, edited) == [line + "\n"]
    assert section(edited) == ["", DOCSPELL, line, ""]
    assert edited.replace(line + "\n", "", 1) == PAGE


def test_a_sorted_list_stays_sorted_and_an_unsorted_one_gains_the_line_last() -> None:
    two = with_app(with_app(PAGE, app("zammad")), app("bookstack"))
    assert [line.split("**")[1] for line in section(two) if line] == [
        "Bookstack",
        "Docspell",
        "Zammad",
    ]
    unsorted = PAGE.replace(DOCSPELL, DOCSPELL.replace("Docspell", "Wiki") + "\n" + DOCSPELL)
    edited = with_app(unsorted, app("bookstack"))
    assert [line.split("**")[1] for line in section(edited) if line] == [
        "Wiki",
        "Docspell",
        "Bookstack",
    ]


def test_adding_is_idempotent_and_recognises_a_hand_written_line() -> None:
    once = with_app(PAGE, app("nextcloud"))
    assert with_app(once, app("nextcloud")) == once
    # the seed's own line: its bold name, whatever the case, or its database
    assert with_app(PAGE, app("docspell")) == PAGE
    renamed = PAGE.replace("**Docspell**", "**Docs**")
    assert with_app(renamed, app("docspell")) == renamed


def test_removing_takes_only_the_apps_line_and_is_idempotent() -> None:
    both = with_app(PAGE, app("nextcloud"))

    assert without_app(both, app("nextcloud")) == PAGE
    assert without_app(PAGE, app("nextcloud")) == PAGE
    gone = without_app(both, app("docspell"))
    assert added_lines(gone, both) == [DOCSPELL + "\n"]


def test_a_list_emptied_and_filled_again_keeps_the_page_layout() -> None:
    empty = without_app(PAGE, app("docspell"))
    assert section(empty) == [""]

    again = with_app(empty, app("docspell"))

    assert section(again) == ["", app_line(app("docspell")), ""]
    assert without_app(again, app("docspell")) == empty


def test_continuation_lines_go_with_their_item() -> None:
    wrapped = PAGE.replace(DOCSPELL, DOCSPELL + "\n  backups: nightly")
    edited = with_app(wrapped, app("zammad"))
    assert section(edited)[1:4] == [DOCSPELL, "  backups: nightly", app_line(app("zammad"))]
    assert without_app(wrapped, app("docspell")) == without_app(PAGE, app("docspell"))


def test_crlf_pages_the_bullet_in_use_and_a_page_without_a_final_line_break() -> None:
    crlf = PAGE.replace("\n", "\r\n")
    edited = with_app(crlf, app("nextcloud"))
    assert edited.replace(app_line(app("nextcloud")) + "\r\n", "") == crlf
    assert "\n" not in edited.replace("\r\n", "")

    starred = PAGE.replace(f"\n{DOCSPELL}", f"\n* {DOCSPELL[2:]}")
    assert "* **Nextcloud**" in with_app(starred, app("nextcloud"))

    at_end = f"## Applications déployées\n\n{DOCSPELL}"
    edited = with_app(at_end, app("nextcloud"))
    assert edited == f"{at_end}\n{app_line(app('nextcloud'))}"
    assert without_app(edited, app("nextcloud")) == f"{at_end}\n"


@pytest.mark.parametrize(
    "page",
    [
        "",
        "# PostgreSQL Shared Cluster\n\n## Tâches à venir\n\n- [ ] backups\n",
        # only inside a code block: not the page's section
        "# Runbook\n\n```\n## Applications déployées\n\n- **Docspell**: x\n```\n",
        "# Runbook\n\n## Applications déployées (archive)\n\n- **Docspell**: x\n",
    ],
)
def test_a_page_without_the_section_is_left_alone(page: str) -> None:
    assert with_app(page, app("nextcloud")) == page
    assert without_app(page, app("docspell")) == page


# --- what onboarding and offboarding commit --------------------------------------------------


def test_onboarding_commits_the_page_only_when_it_changes() -> None:
    settings = ManifestSettings(manifests_path=FOLDER)
    page_path = f"{FOLDER}/README.md"

    with_page = build_manifest_set(
        app("nextcloud"), settings=settings, base_kustomization=None, runbook_page=PAGE
    )
    listed = build_manifest_set(
        app("docspell"), settings=settings, base_kustomization=None, runbook_page=PAGE
    )
    without = build_manifest_set(app("nextcloud"), settings=settings, base_kustomization=None)

    assert with_page.files[page_path] == with_app(PAGE, app("nextcloud"))
    assert page_path not in listed.files
    assert page_path not in without.files
    assert with_page.validate(settings=settings) == []


def test_offboarding_removes_the_line_with_the_manifests_never_alone() -> None:
    on_base = frozenset({"databases/docspell.yaml", "credentials/docspell-secret.yaml"})

    changes = removal(
        app("docspell"), folder=FOLDER, files_on_base=on_base, kustomization=None, runbook_page=PAGE
    )
    nothing_else = removal(
        app("docspell"),
        folder=FOLDER,
        files_on_base=frozenset({"README.md"}),
        kustomization=None,
        runbook_page=PAGE,
    )

    assert changes[f"{FOLDER}/README.md"] == without_app(PAGE, app("docspell"))
    assert nothing_else == {}


def test_the_page_is_read_only_when_the_folder_has_one() -> None:
    asked: list[str] = []

    def read(path: str) -> str | None:
        asked.append(path)
        return PAGE

    assert read_page(frozenset({"kustomization.yaml"}), folder=FOLDER, read=read) is None
    assert asked == []
    assert read_page(frozenset({"README.md"}), folder=f"/{FOLDER}/", read=read) == PAGE
    assert asked == [f"{FOLDER}/README.md"]
