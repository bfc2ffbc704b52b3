"""The runbook's own page: the ``README.md`` of the GitOps folder lists the deployed
applications under "Applications déployées", one line per app::

    - **Docspell**: Document management system (database: `docspell`, user: `docspell`)

Onboarding adds the app's line to that list, offboarding removes it; every other byte of the
page is kept (line endings, the other lines, the order of a list that is not sorted). A page
without that section, or no page at all, is left alone. Pure text in, text out.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from bot.core.manifests.layout import checked
from bot.core.names import AppName

RUNBOOK_PAGE: Final = "README.md"  # in the GitOps folder, beside kustomization.yaml
SECTION: Final = "Applications déployées"
DESCRIPTION: Final = "onboarded with pgdb-bot"

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ITEM = re.compile(r"^([-*+])[ \t]+(.*)$")
_BOLD = re.compile(r"^\*\*(.+?)\*\*")
_DATABASE = re.compile(r"database:\s*`([^`]+)`")


@dataclass(frozen=True, kw_only=True)
class _Item:
    start: int  # index of its first line
    end: int  # one past its last line (continuation lines included)
    bullet: str
    name: str  # its bold name, as written ("" when none)
    database: str  # its `database:` value ("" when none)

    def is_app(self, app: str) -> bool:
        return app in (self.name.casefold(), self.database)


@dataclass(frozen=True, kw_only=True)
class _Section:
    heading: int  # index of the heading line
    end: int  # index of the next heading of the same or a higher level, or len(lines)
    items: tuple[_Item, ...]


def page_path(folder: str) -> str:
    """The page's repository path in the GitOps folder ``folder``."""
    return posixpath.join(folder.strip("/"), RUNBOOK_PAGE)


def read_page(
    files_on_base: frozenset[str], *, folder: str, read: Callable[[str], str | None]
) -> str | None:
    """The page's text on the base branch, None when the folder has none (``files_on_base`` is
    relative to the folder; ``read`` takes a repository path): nothing is read then."""
    if RUNBOOK_PAGE not in files_on_base:
        return None
    return read(page_path(folder))


def app_line(app: AppName, *, bullet: str = "-") -> str:
    """The app's line, in the page's format (its name as a title, like ``**Docspell**``)."""
    app = checked(app)
    title = app[:1].upper() + app[1:]
    return f"{bullet} **{title}**: {DESCRIPTION} (database: `{app}`, user: `{app}`)"


def with_app(page: str, app: AppName) -> str:
    """``page`` with the app's line in the list (in name order when the list is sorted, else
    last); the page itself when the app has a line already or the page has no such section."""
    app = checked(app)
    lines = page.splitlines(keepends=True)
    section = _find_section(lines)
    if section is None or any(item.is_app(app) for item in section.items):
        return page
    newline = "\r\n" if "\r\n" in page else "\n"
    items = section.items
    line = app_line(app, bullet=items[0].bullet if items else "-")
    if not items:
        last = max(
            (i for i in range(section.heading, section.end) if lines[i].strip()),
            default=section.heading,
        )
        new = [newline, line + newline]
        if last + 1 < len(lines) and lines[last + 1].strip():
            new.append(newline)  # the next heading right below: keep a blank line before it
        return _insert(lines, last + 1, new, newline)
    keys = [_key(item.name) for item in items]
    mine = _key(app)
    if keys == sorted(keys):
        after = [item for item, key in zip(items, keys, strict=True) if key > mine]
        if after:
            return _insert(lines, after[0].start, [line + newline], newline)
    return _insert(lines, items[-1].end, [line + newline], newline)


def without_app(page: str, app: AppName) -> str:
    """``page`` without the app's line (and its continuation lines); the page itself when it
    has none. A list left empty keeps one blank line between the heading and what follows."""
    app = checked(app)
    lines = page.splitlines(keepends=True)
    section = _find_section(lines)
    if section is None:
        return page
    gone: set[int] = set()
    for item in section.items:
        if item.is_app(app):
            gone.update(range(item.start, item.end))
    if not gone:
        return page
    kept = [line for i, line in enumerate(lines) if i not in gone]
    if all(item.is_app(app) for item in section.items):
        # the list is gone: of the blank lines around it, one stays
        first = min(gone)
        if 0 < first < len(kept) and not kept[first - 1].strip() and not kept[first].strip():
            del kept[first]
    return "".join(kept)


def _insert(lines: list[str], at: int, new: list[str], newline: str) -> str:
    """``lines`` with ``new`` inserted before index ``at``; at the end of a page whose last
    line has no line break, the break moves to the end of the inserted lines' last one."""
    lines = list(lines)
    if at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
        new = [*new[:-1], new[-1].removesuffix(newline)]
    return "".join(lines[:at] + new + lines[at:])


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _find_section(lines: list[str]) -> _Section | None:
    """The "Applications déployées" section (outside code blocks), with its list items."""
    wanted = _key(SECTION)
    heading: tuple[int, int] | None = None  # (index, level)
    fence: str | None = None
    items: list[_Item] = []
    for index, raw in enumerate(lines):
        line = raw.rstrip("\r\n")
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        found = _HEADING.match(line)
        if found:
            level = len(found.group(1))
            if heading is not None and level <= heading[1]:
                return _Section(heading=heading[0], end=index, items=tuple(items))
            if heading is None and _key((found.group(2) or "").strip()) == wanted:
                heading = (index, level)
            continue
        if heading is None:
            continue
        item = _ITEM.match(line)
        if item:
            bold = _BOLD.match(item.group(2))
            database = _DATABASE.search(item.group(2))
            items.append(
                _Item(
                    start=index,
                    end=index + 1,
                    bullet=item.group(1),
                    name=bold.group(1).strip() if bold else item.group(2).strip(),
                    database=database.group(1) if database else "",
                )
            )
        elif items and line.strip() and line[:1] in (" ", "\t") and items[-1].end == index:
            items[-1] = replace(items[-1], end=index + 1)
    if heading is None:
        return None
    return _Section(heading=heading[0], end=len(lines), items=tuple(items))
