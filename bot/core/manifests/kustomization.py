"""Reading and editing ``kustomization.yaml`` (SPEC §3.2 step 5), which every onboarding shares.

It is edited in place: a YAML parse tells where each ``resources`` item sits, and new items are
inserted as lines copying the neighbouring item's indentation and quoting. Everything else in
the file stays byte-identical (other keys, comments, blank lines, other sequences'
indentation), which a whole-file re-dump cannot promise. Shapes that cannot be edited line-wise
(flow lists, ``resources: ~``) fall back to a ruamel.yaml round-trip dump with the file's
detected indentation.
"""

from __future__ import annotations

import functools
import io
import json
import posixpath
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from bot.core.manifests.layout import KUSTOMIZATION_FILE, relative_path_problem
from bot.core.manifests.yaml_text import (
    describe,
    kind_name,
    one_line,
    round_trip_yaml,
    yaml11_safe,
)

KUSTOMIZE_API_VERSION: Final = "kustomize.config.k8s.io/v1beta1"


class _NeedsRewrite(Exception):
    """The file's shape cannot be edited line-wise; fall back to a round-trip dump."""


@dataclass(frozen=True)
class _Parsed:
    """One parse of a kustomization: plain values for logic, nodes for positions."""

    data: Any  # CommentedMap, or None for an empty document
    root: MappingNode | None
    key: ScalarNode | None  # the ``resources`` key, when present
    value: Node | None  # its value node
    entries: list[str] | None  # None when the key is absent


def _parse_fresh(text: str) -> _Parsed:
    try:
        data = round_trip_yaml().load(text)
        root = round_trip_yaml().compose(text)
    except YAMLError as exc:
        raise ValueError(f"{KUSTOMIZATION_FILE} is not valid YAML: {one_line(exc)}") from exc
    if data is None:
        return _Parsed(None, None, None, None, None)
    if not isinstance(data, dict) or not isinstance(root, MappingNode):
        raise ValueError(
            f"{KUSTOMIZATION_FILE} must be a YAML mapping with a `resources` list, "
            f"not {kind_name(data)}"
        )
    key = value = None
    for key_node, value_node in root.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "resources":
            key, value = key_node, value_node
    if "resources" not in data:
        return _Parsed(data, root, None, None, None)
    raw = data["resources"]
    if raw is None:
        return _Parsed(data, root, key, value, [])
    if not isinstance(raw, list):
        raise ValueError(
            f"`resources` in {KUSTOMIZATION_FILE} must be a list of paths, not {describe(raw)}"
        )
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            raise ValueError(
                f"`resources[{index}]` in {KUSTOMIZATION_FILE} must be a path, not {describe(item)}"
            )
    return _Parsed(data, root, key, value, [str(item) for item in raw])


# A kustomization is parsed many times per command (plan, insert, check, validate, listing) and
# parsing a large one with ruamel is slow: parses are shared, read-only. `_rewrite`, which
# mutates the parsed document, takes a fresh one.
_parse = functools.lru_cache(maxsize=16)(_parse_fresh)


# ----- fast path: plainly laid out files, edited without a round-trip parse
#
# A round-trip parse keeps every comment and position, which makes it slow: about 1.4 s for a
# kustomization listing 10,000 resources, paid several times per onboarding. Nearly every real
# file is laid out plainly (`resources:` at the left margin, then one `- path` per line), so such
# a file is read by scanning its lines, and the scan is confirmed by a C-accelerated safe load
# (libyaml through ruamel.yaml.clib, same YAML 1.2 resolution): the scanned paths must be exactly
# the loaded ones, and the edited text must load to the intended list with every other key
# unchanged. Whatever the scan does not recognise takes the exact path below, unchanged; both
# produce the same text (tests/core/test_manifests.py compares them on generated files).

# one `- path` line: the dash prefix, a plain or quoted path without escapes, an optional comment
_ITEM_LINE: Final = re.compile(
    r"(?P<prefix> *- +)"
    r"(?P<item>'(?:[^']|'')*'"  # single-quoted
    r"|\"[^\"\\]*\""  # double-quoted, no escapes
    r"|[^-?:,\[\]{}#&*!|>'\"%@`\s](?:[^#\s:]|:(?=\S)|[ ](?=[^ #])|#)*)"  # plain
    r"(?P<tail>[ ]+#.*| *)"
)
_RESOURCES_KEY_LINE: Final = re.compile(r"resources:(?:[ ]+#.*| *)")
_OTHER_TOP_LINE: Final = re.compile(r"[^\s#-]|-[^ ]")  # a top-level key (or `---`) ends the list
# line breaks that str.splitlines honours but YAML does not (or that mark lines differently)
_ODD_BREAKS: Final = re.compile("[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class _Item:
    line: int  # index in the file's lines
    value: str
    style: str | None  # '"', "'" or None (plain)
    prefix: str  # the `  - ` before it


@dataclass(frozen=True)
class _Plain:
    """A kustomization whose ``resources`` is a plain block list, as the line scan found it."""

    key_line: int
    items: tuple[_Item, ...]
    rest: dict[str, Any]  # every other top-level key, as loaded

    @property
    def entries(self) -> list[str]:
        return [item.value for item in self.items]


def _fast_load(text: str) -> Any:
    """A safe load through libyaml when ruamel.yaml.clib is installed (else pure Python)."""
    return YAML(typ="safe").load(text)


def _unquoted(raw: str) -> tuple[str, str | None]:
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'"), "'"
    if raw.startswith('"'):
        return raw[1:-1], '"'
    return raw, None


@functools.lru_cache(maxsize=4)
def _scan(text: str) -> _Plain | None:
    """The plain layout of ``text``, or None when the exact (round-trip) path must handle it."""
    if "\t" in text or _ODD_BREAKS.search(text.replace("\r\n", "\n")):
        return None
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if _RESOURCES_KEY_LINE.fullmatch(line)]
    if len(keys) != 1:
        return None
    items: list[_Item] = []
    for at in range(keys[0] + 1, len(lines)):
        line = lines[at]
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        found = _ITEM_LINE.fullmatch(line)
        if found is None:
            if _OTHER_TOP_LINE.match(line):
                break
            return None  # an indented line that is not an item: a layout the scan does not know
        if items and len(found["prefix"]) - len(found["prefix"].lstrip(" ")) != len(
            items[0].prefix
        ) - len(items[0].prefix.lstrip(" ")):
            return None
        value, style = _unquoted(found["item"])
        items.append(_Item(line=at, value=value, style=style, prefix=found["prefix"]))
    if not items:
        return None  # `resources:` alone, or followed by something else: the exact path decides
    try:
        data = _fast_load(text)
    except Exception:  # any doubt goes to the exact path, which explains errors
        return None
    if not isinstance(data, dict) or data.get("resources") != [item.value for item in items]:
        return None
    rest = {k: v for k, v in data.items() if k != "resources"}
    return _Plain(key_line=keys[0], items=tuple(items), rest=rest)


def _fast_edit(
    text: str, *, inserts: list[_Insert], deletes: list[int], expected: list[str]
) -> str | None:
    """The same edit as the exact line-wise path, on a plainly laid out file; None when the file
    is not plain or the result does not load back as intended."""
    plain = _scan(text)
    if plain is None:
        return None
    lines, eol = _lines(text)
    items = list(plain.items)
    for index in sorted(deletes, reverse=True):
        del lines[items[index].line]
        items = [*items[:index], *(_shifted(item, -1) for item in items[index + 1 :])]
    for index, path in inserts:
        if not items:
            return None  # an emptied list is written anew by the exact path
        at, prefix = _insert_position(plain.key_line, items, index, path)
        scalar = _scalar(path, style=_quote_style_of(items))
        if at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += eol
        lines.insert(at, prefix + scalar + eol)
        new = _Item(line=at, value=path, style=_unquoted(scalar)[1], prefix=prefix)
        items = [*items[:index], new, *(_shifted(item, 1) for item in items[index:])]
    edited = "".join(lines)
    after = _scan(edited)
    if after is None or after.entries != expected or after.rest != plain.rest:
        return None
    if list(after.rest) != list(plain.rest):
        return None
    return edited


def _shifted(item: _Item, by: int) -> _Item:
    return _Item(line=item.line + by, value=item.value, style=item.style, prefix=item.prefix)


def _insert_position(key_line: int, items: list[_Item], index: int, path: str) -> tuple[int, str]:
    """Where `_insert_line` puts a new item, and its dash prefix (the same rules, on lines)."""
    if index >= len(items):
        return items[-1].line + 1, items[-1].prefix
    next_item = items[index]
    if index == 0:
        above, shared_above = key_line + 1, 0
    else:
        above = items[index - 1].line + 1
        shared_above = _common_prefix(path, items[index - 1].value)
    below_comments = shared_above < _common_prefix(path, next_item.value)
    return (next_item.line if below_comments else above), next_item.prefix


def _quote_style_of(items: Sequence[_Item]) -> str | None:
    styles = {item.style for item in items}
    return styles.pop() if len(styles) == 1 else None


def listed_resources(kustomization_text: str) -> list[str]:
    """The ``resources`` entries, in file order (empty when the key is absent or empty)."""
    plain = _scan(kustomization_text)
    if plain is not None:
        return plain.entries
    return list(_parse(kustomization_text).entries or [])


def normalized(path: str) -> str:
    """Kustomize treats ``./a.yaml`` and ``a.yaml`` as one resource; so must duplicate checks."""
    if "://" in path:
        return path
    return posixpath.normpath(path)


def _checked_paths(paths: Sequence[str]) -> list[str]:
    if isinstance(paths, str):
        raise TypeError("paths must be a list of paths, not a single string")
    unique: dict[str, str] = {}
    for path in paths:
        problem = relative_path_problem(path)
        if problem:
            raise ValueError(f"resource path {path!r} {problem}")
        unique.setdefault(normalized(path), path)
    return list(unique.values())


# An edit is a list of operations applied in order to the resources list.
_Insert = tuple[int, str]


def _plan_additions(existing: list[str], new: list[str]) -> list[_Insert]:
    """Insert at the sorted position when the list is sorted, else append (never reorder)."""
    current = list(existing)
    is_sorted = all(a <= b for a, b in pairwise(current))
    plan: list[_Insert] = []
    for path in new:
        index = bisect_left(current, path) if is_sorted else len(current)
        current.insert(index, path)
        plan.append((index, path))
    return plan


def add_resources(kustomization_text: str, paths: list[str]) -> str:
    """Add each path to ``resources`` unless already listed, keeping the rest of the file as is.

    Returns the same text when nothing is missing, so a re-run makes no commit.
    """
    wanted = _checked_paths(paths)
    existing = listed_resources(kustomization_text)
    present = {normalized(entry) for entry in existing}
    missing = [path for path in wanted if normalized(path) not in present]
    if not missing:
        return kustomization_text
    plan = _plan_additions(existing, missing)
    expected = list(existing)
    for index, path in plan:
        expected.insert(index, path)
    fast = _fast_edit(kustomization_text, inserts=plan, deletes=[], expected=expected)
    if fast is not None:
        return fast
    try:
        text = kustomization_text
        for index, path in plan:
            text = _insert_line(text, index, path)
        if _same_apart_from_resources(kustomization_text, text, expected):
            return text
    except _NeedsRewrite:
        pass
    return _rewrite(kustomization_text, inserts=plan, deletes=[], expected=expected)


def remove_resources(kustomization_text: str, paths: list[str]) -> str:
    """Remove each listed path from ``resources`` (offboarding); unchanged text if none listed."""
    unwanted = {normalized(path) for path in _checked_paths(paths)}
    existing = listed_resources(kustomization_text)
    doomed = [i for i, entry in enumerate(existing) if normalized(entry) in unwanted]
    if not doomed:
        return kustomization_text
    expected = [entry for i, entry in enumerate(existing) if i not in doomed]
    fast = _fast_edit(kustomization_text, inserts=[], deletes=doomed, expected=expected)
    if fast is not None:
        return fast
    try:
        if not expected:
            raise _NeedsRewrite  # an emptied block list must become `resources: []`
        text = kustomization_text
        for index in reversed(doomed):
            text = _delete_line(text, index)
        if _same_apart_from_resources(kustomization_text, text, expected):
            return text
    except _NeedsRewrite:
        pass
    return _rewrite(kustomization_text, inserts=[], deletes=doomed, expected=expected)


# ----- line-wise editing


@dataclass(frozen=True)
class _SeqStyle:
    """How block sequences are indented: the dash's offset and the text after it."""

    offset: int = 2  # the seed's `resources:\n  - a`
    after_dash: int = 1

    @property
    def sequence(self) -> int:
        return self.offset + 1 + self.after_dash


def _lines(text: str) -> tuple[list[str], str]:
    return text.splitlines(keepends=True), "\r\n" if "\r\n" in text else "\n"


def _dash_prefix(lines: list[str], item: Node) -> str:
    """The ``  - `` before an item, copied so new items line up with their neighbours."""
    line = lines[item.start_mark.line]
    prefix: str = line[: item.start_mark.column]
    if not re.fullmatch(r" *- +", prefix):
        raise _NeedsRewrite
    return prefix


def _end_line(node: Node) -> int:
    end = node.end_mark
    if end.column == 0 and end.line > node.start_mark.line:
        return int(end.line) - 1
    return int(end.line)


def _quote_style(items: Sequence[Node]) -> str | None:
    styles = {item.style if isinstance(item, ScalarNode) else None for item in items}
    if len(styles) == 1:
        style = styles.pop()
        return style if style in ('"', "'") else None
    return None


def _scalar(path: str, *, style: str | None) -> str:
    """A path as YAML text, produced by the emitter (quoted only when YAML needs it)."""
    value: str = yaml11_safe(path)
    if style == '"':
        value = DoubleQuotedScalarString(path)
    elif style == "'":
        value = SingleQuotedScalarString(path)
    buffer = io.StringIO()
    round_trip_yaml().dump([value], buffer)
    dumped = buffer.getvalue()
    if not dumped.startswith("- ") or dumped.count("\n") != 1:
        raise _NeedsRewrite
    return dumped[2:-1]


def _common_prefix(a: str, b: str) -> int:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return size


def _detect_style(root: MappingNode | None, lines: list[str]) -> tuple[int, _SeqStyle]:
    """Mapping indent and sequence style used elsewhere in the file (defaults: the seed's)."""
    mapping: int | None = None
    style: _SeqStyle | None = None
    stack: list[Node] = [root] if root is not None else []
    while stack and (mapping is None or style is None):
        node = stack.pop(0)
        if not isinstance(node, MappingNode) or node.flow_style:
            continue
        for key, value in node.value:
            base = key.start_mark.column
            if isinstance(value, MappingNode) and not value.flow_style and value.value:
                if mapping is None and value.start_mark.line > key.start_mark.line:
                    mapping = value.value[0][0].start_mark.column - base
                stack.append(value)
            elif isinstance(value, SequenceNode) and not value.flow_style and value.value:
                first = value.value[0]
                if style is None:
                    try:
                        prefix = _dash_prefix(lines, first)
                    except _NeedsRewrite:
                        prefix = ""
                    if prefix and first.start_mark.line > key.start_mark.line:
                        dash = prefix.index("-")
                        style = _SeqStyle(offset=dash - base, after_dash=len(prefix) - dash - 1)
                stack.extend(item for item in value.value if isinstance(item, MappingNode))
    if style is not None and (style.offset < 0 or style.after_dash < 1):
        style = None
    return (mapping if mapping and mapping > 0 else 2), style or _SeqStyle()


def _insert_line(text: str, index: int, path: str) -> str:
    parsed = _parse(text)
    lines, eol = _lines(text)
    value = parsed.value
    if parsed.key is None or (isinstance(value, ScalarNode) and value.value == ""):
        # No `resources` yet, or a bare `resources:`: write a block list with the file's style.
        _, style = _detect_style(parsed.root, lines)
        if parsed.root is not None and parsed.root.flow_style:
            raise _NeedsRewrite
        item = " " * style.offset + "-" + " " * style.after_dash + _scalar(path, style=None) + eol
        if parsed.key is None:
            column = parsed.root.value[0][0].start_mark.column if parsed.root else 0
            if lines and not lines[-1].endswith(("\n", "\r")):
                lines[-1] += eol
            lines.append(" " * column + "resources:" + eol)
            lines.append(" " * column + item)
        else:
            column = parsed.key.start_mark.column
            at = parsed.key.start_mark.line
            if not lines[at].endswith(("\n", "\r")):
                lines[at] += eol
            lines.insert(at + 1, " " * column + item)
        return "".join(lines)
    if not isinstance(value, SequenceNode) or value.flow_style or not value.value:
        raise _NeedsRewrite
    items = value.value
    if index >= len(items):
        prefix, at = _dash_prefix(lines, items[-1]), _end_line(items[-1]) + 1
    else:
        # Before item `index`: either right under the previous item (above any comment lines
        # that precede the next one) or right above the next item (under those comments).
        # Stay with the neighbour sharing the longer prefix, so a new `databases/...` lands
        # under a `# databases` comment and a new `a.yaml` stays above it.
        next_item = items[index]
        prefix = _dash_prefix(lines, next_item)
        if index == 0:
            above, shared_above = parsed.key.start_mark.line + 1, 0
        else:
            above = _end_line(items[index - 1]) + 1
            shared_above = _common_prefix(path, str(items[index - 1].value))
        below_comments = shared_above < _common_prefix(path, str(next_item.value))
        at = next_item.start_mark.line if below_comments else above
    new_line = prefix + _scalar(path, style=_quote_style(items)) + eol
    if at > len(lines):
        raise _NeedsRewrite
    if at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += eol
    lines.insert(at, new_line)
    return "".join(lines)


def _delete_line(text: str, index: int) -> str:
    parsed = _parse(text)
    value = parsed.value
    if not isinstance(value, SequenceNode) or value.flow_style or index >= len(value.value):
        raise _NeedsRewrite
    item = value.value[index]
    lines, _ = _lines(text)
    _dash_prefix(lines, item)  # only whole `- item` lines are removed
    first, last = item.start_mark.line, _end_line(item)
    del lines[first : last + 1]
    return "".join(lines)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _same_apart_from_resources(before: str, after: str, expected: list[str]) -> bool:
    """Safety net for the line-wise edit: the result parses to exactly what was intended."""
    try:
        old, new = _parse(before), _parse(after)
    except ValueError:
        return False
    if new.entries != expected:
        return False
    old_rest = {k: v for k, v in (old.data or {}).items() if k != "resources"}
    new_rest = {k: v for k, v in (new.data or {}).items() if k != "resources"}
    return bool(list(old_rest) == list(new_rest) and _plain(old_rest) == _plain(new_rest))


def _rewrite(text: str, *, inserts: list[_Insert], deletes: list[int], expected: list[str]) -> str:
    """Round-trip dump for shapes the line-wise edit cannot handle, in the file's indentation."""
    parsed = _parse(text)
    lines, _ = _lines(text)
    mapping, style = _detect_style(parsed.root, lines)
    yaml = round_trip_yaml()
    yaml.indent(mapping=mapping, sequence=style.sequence, offset=style.offset)
    yaml.explicit_start = text.lstrip().startswith("---")
    data = parsed.data if parsed.data is not None else CommentedMap()
    seq = data.get("resources")
    if not isinstance(seq, CommentedSeq):
        seq = CommentedSeq()
        data["resources"] = seq
    if not seq:
        seq.fa.set_block_style()
    for index in sorted(deletes, reverse=True):
        del seq[index]
    for index, path in inserts:
        seq.insert(index, yaml11_safe(path))
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    result = buffer.getvalue()
    if listed_resources(result) != expected:  # pragma: no cover - ruamel bug guard
        raise ValueError(f"could not edit {KUSTOMIZATION_FILE} safely; please edit it by hand")
    return result


def validate_kustomization(text: str) -> list[str]:
    """Problems with a kustomization file (well-formed mapping, unique relative resources)."""
    plain = _scan(text)
    try:
        data = (
            {**plain.rest, "resources": plain.entries}
            if plain is not None
            else YAML(typ="safe", pure=True).load(text)
        )
    except YAMLError as exc:
        return [f"not valid YAML: {one_line(exc)}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return [f"(document): expected a mapping, got {describe(data)}"]
    errors: list[str] = []
    kind = data.get("kind")
    if kind is not None and kind != "Kustomization":
        errors.append(f"kind: expected 'Kustomization', got {kind!r}")
    api_version = data.get("apiVersion")
    if api_version is not None and api_version != KUSTOMIZE_API_VERSION:
        errors.append(f"apiVersion: expected {KUSTOMIZE_API_VERSION!r}, got {api_version!r}")
    resources = data.get("resources")
    if resources is None:
        return errors
    if not isinstance(resources, list):
        return [*errors, f"resources: expected a list of paths, got {describe(resources)}"]
    seen: dict[str, int] = {}
    for index, entry in enumerate(resources):
        where = f"resources[{index}]"
        if not isinstance(entry, str):
            errors.append(f"{where}: expected a path, got {describe(entry)}")
            continue
        problem = relative_path_problem(entry)
        if problem:
            errors.append(f"{where}: {entry!r} {problem}")
            continue
        key = normalized(entry)
        if key in seen:
            errors.append(f"{where}: {entry!r} is already listed at resources[{seen[key]}]")
        else:
            seen[key] = index
    return errors


def new_kustomization() -> str:
    """The kustomization written when the base branch has none yet."""
    yaml = round_trip_yaml()
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(
        CommentedMap([("apiVersion", KUSTOMIZE_API_VERSION), ("kind", "Kustomization")]), buffer
    )
    return buffer.getvalue()


@functools.lru_cache(maxsize=8)
def listed_set(kustomization_text: str) -> frozenset[str]:
    """The normalized ``resources`` entries, parsed once per text: status and diagnostics ask
    about every app against the same kustomization."""
    return frozenset(normalized(path) for path in listed_resources(kustomization_text))
