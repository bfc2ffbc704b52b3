"""Reading and editing ``kustomization.yaml``, which every onboarding shares.

One parse serves both: :func:`parse_kustomization` composes the text into YAML nodes once and
keeps, in a :class:`Kustomization`, the loaded values (what ``resources`` lists, every other
key) next to where each ``resources`` item stands in the file (its lines, its ``  - `` prefix,
its quoting) and the file's indentation style. Listing, validating and editing all read it.

Edits are made in place: new items are inserted as lines copying the neighbouring item's
indentation and quoting, removed items' lines are deleted, and everything else in the file
stays byte-identical (other keys, comments, blank lines, other sequences' indentation), which
a whole-file re-dump cannot promise. Each edit is checked by parsing its result: it must list
exactly the intended entries, every other key unchanged. Shapes that cannot be edited line-wise
(flow lists, ``resources: ~``, an emptied list) fall back to a ruamel.yaml round-trip dump in
the file's detected indentation: the one place that loads ruamel's comment-keeping document,
because it writes the whole file anew.
"""

from __future__ import annotations

import functools
import io
import json
import posixpath
import re
from bisect import bisect_left
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
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

# Where libyaml reads what ruamel.yaml's parser (and kustomize) refuses (tabs, a byte-order mark
# after the start), or counts lines differently from it and from str.splitlines (odd line
# breaks): such text is parsed by ruamel.yaml's parser alone.
_LIBYAML_LAXER: Final = re.compile("[\t\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029\ufeff]")
_DASH_PREFIX: Final = re.compile(r" *- +")


class NotYaml(ValueError):
    """The kustomization is not one valid YAML document; ``reason`` says what and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{KUSTOMIZATION_FILE} is not valid YAML: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class SequenceStyle:
    """How block sequences are indented: the dash's offset and the text after it."""

    offset: int = 2  # the seed's `resources:\n  - a`
    after_dash: int = 1

    @property
    def sequence(self) -> int:
        """ruamel.yaml's ``sequence`` indent: where the item's text starts."""
        return self.offset + 1 + self.after_dash


@dataclass(frozen=True, slots=True)
class Item:
    """One ``resources`` item where it stands in the file."""

    scalar: str  # the item's text as YAML read it (its loaded value when it is a path)
    first_line: int  # index in Kustomization.lines
    last_line: int
    prefix: str | None  # the `  - ` before it; None when the item does not start its own line
    quotes: str | None  # '"' or "'" when quoted; None when plain (or any other style)


@dataclass(frozen=True, eq=False)
class Kustomization:
    """One parse of a kustomization, shared by reading and editing; read-only (parses are
    cached and shared).

    ``data`` is the loaded document: a dict when the file is well formed, None when empty.
    ``key_line`` is None when the mapping has no ``resources`` key of its own. ``items`` are
    set only when ``resources`` is a non-empty block list; ``bare`` when it is ``resources:``
    with nothing after it.
    """

    lines: tuple[str, ...]  # the text's lines, line ends kept
    eol: str  # the line end new lines get
    data: Any
    unknown_tag: str | None = None  # the first tag (``!foo``) YAML's safe loader refuses
    key_line: int | None = None
    key_column: int = 0
    bare: bool = False
    items: tuple[Item, ...] = ()
    flow_mapping: bool = False  # the document is a `{...}` mapping
    first_key_column: int = 0
    mapping_indent: int = 2
    sequence_style: SequenceStyle = field(default_factory=SequenceStyle)

    @property
    def entries(self) -> list[str] | None:
        """The ``resources`` paths in file order; None when the key is absent. Raises
        ValueError, saying what to fix, when the file is not a mapping with a list of paths."""
        data = self.data
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError(
                f"{KUSTOMIZATION_FILE} must be a YAML mapping with a `resources` list, "
                f"not {kind_name(data)}"
            )
        if "resources" not in data:
            return None
        raw = data["resources"]
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise ValueError(
                f"`resources` in {KUSTOMIZATION_FILE} must be a list of paths, not {describe(raw)}"
            )
        for index, entry in enumerate(raw):
            if not isinstance(entry, str):
                raise ValueError(
                    f"`resources[{index}]` in {KUSTOMIZATION_FILE} must be a path, "
                    f"not {describe(entry)}"
                )
        return list(raw)

    @property
    def text(self) -> str:
        """The text parsed."""
        return "".join(self.lines)


# A kustomization is read several times per command (plan, edit, check, validate, listing) and
# long ones list thousands of resources (about 4 MB a parse at 10,000): parses are shared,
# read-only, and the last few kept (one command: the base, and the text after each edit).
@functools.lru_cache(maxsize=4)
def parse_kustomization(text: str) -> Kustomization:
    """The one parse of ``text``. Raises :class:`NotYaml` when it is not one YAML document."""
    try:
        root, data, unknown_tag = _load(text)
    except YAMLError as exc:
        raise NotYaml(one_line(exc)) from exc
    lines = tuple(text.splitlines(keepends=True))
    eol = "\r\n" if "\r\n" in text else "\n"
    if not isinstance(root, MappingNode):
        return Kustomization(lines=lines, eol=eol, data=data, unknown_tag=unknown_tag)
    mapping_indent, sequence_style = _detect_style(root, lines)
    key: Node | None = None
    value: Node | None = None
    for key_node, value_node in root.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "resources":
            key, value = key_node, value_node
    items: tuple[Item, ...] = ()
    if isinstance(value, SequenceNode) and not value.flow_style:
        items = tuple(_item(node, lines) for node in value.value)
    return Kustomization(
        lines=lines,
        eol=eol,
        data=data,
        unknown_tag=unknown_tag,
        key_line=key.start_mark.line if key is not None else None,
        key_column=key.start_mark.column if key is not None else 0,
        bare=isinstance(value, ScalarNode) and value.value == "",
        items=items,
        flow_mapping=bool(root.flow_style),
        first_key_column=root.value[0][0].start_mark.column if root.value else 0,
        mapping_indent=mapping_indent,
        sequence_style=sequence_style,
    )


def _load(text: str) -> tuple[Node | None, Any, str | None]:
    """The document's node tree, its value and the first tag the safe loader does not know.

    libyaml (ruamel.yaml.clib, when installed) composes first: several times faster on a long
    list. What it refuses, and text where it is laxer than ruamel.yaml's own parser or counts
    lines differently (``_LIBYAML_LAXER``), ruamel.yaml's round-trip parser reads, and explains
    in its own words when it refuses too."""
    if not _LIBYAML_LAXER.search(text.lstrip("\ufeff").replace("\r\n", "\n")):
        try:
            return _construct(YAML(typ="safe").compose(text))
        except Exception:  # noqa: S110 - any doubt: ruamel.yaml's own parser decides
            pass
    return _construct(round_trip_yaml().compose(text))


def _construct(root: Node | None) -> tuple[Node | None, Any, str | None]:
    if root is None:
        return None, None, None
    loader = YAML(typ="safe", pure=True)
    loader.Constructor = _Constructor
    constructor = loader.constructor
    constructor.deep_construct = True
    return root, constructor.construct_document(root), constructor.unknown_tag


class _Constructor(SafeConstructor):
    """ruamel.yaml's safe constructor (plain dicts, lists and strings), behaving like its
    round-trip one where they differ: a tag it does not know (``!foo``, which kustomize
    accepts) gives a tagged value instead of an error, the first one remembered for the status
    check; and values are built depth first (a duplicate key's message shows both values)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unknown_tag: str | None = None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """As the safe constructor, but a mapping with a merge key (``<<``) is also checked for
        duplicate keys of its own, as the round-trip constructor (and kustomize) do."""
        if isinstance(node, MappingNode):
            self.flatten_mapping(node)
            merged = getattr(node, "merge", None)
            if merged is not None:
                own: dict[Any, Any] = {}
                for key_node, value_node in node.value[len(merged) :]:
                    key = self.construct_object(key_node, deep=True)
                    value = self.construct_object(value_node, deep=deep)
                    if isinstance(key, Hashable) and self.check_mapping_key(
                        node, key_node, own, key, value
                    ):
                        own[key] = value
        return super().construct_mapping(node, deep=deep)

    def construct_unknown(self, node: Node) -> Any:
        if self.unknown_tag is None:
            self.unknown_tag = one_line(
                ConstructorError(
                    None,
                    None,
                    f"could not determine a constructor for the tag {node.tag!r}",
                    node.start_mark,
                )
            )
        if isinstance(node, ScalarNode):
            tagged = TaggedScalar(value=self.construct_scalar(node), style=node.style or None)
            tagged.yaml_set_ctag(node.ctag)
            return tagged
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        return self.construct_mapping(node, deep=True)


_Constructor.add_constructor(None, _Constructor.construct_unknown)


def _item(node: Node, lines: tuple[str, ...]) -> Item:
    start, end = node.start_mark, node.end_mark
    last = int(end.line) - 1 if end.column == 0 and end.line > start.line else int(end.line)
    prefix: str = lines[start.line][: start.column] if start.line < len(lines) else ""
    scalar, style = (str(node.value), node.style) if isinstance(node, ScalarNode) else ("", None)
    return Item(
        scalar=scalar,
        first_line=int(start.line),
        last_line=last,
        prefix=prefix if _DASH_PREFIX.fullmatch(prefix) else None,
        quotes=style if style in ('"', "'") else None,
    )


def _detect_style(root: MappingNode, lines: tuple[str, ...]) -> tuple[int, SequenceStyle]:
    """Mapping indent and sequence style used elsewhere in the file (defaults: the seed's)."""
    mapping: int | None = None
    style: SequenceStyle | None = None
    queue: list[Node] = [root]
    while queue and (mapping is None or style is None):
        node = queue.pop(0)
        if not isinstance(node, MappingNode) or node.flow_style:
            continue
        for key, value in node.value:
            base = key.start_mark.column
            if isinstance(value, MappingNode) and not value.flow_style and value.value:
                if mapping is None and value.start_mark.line > key.start_mark.line:
                    mapping = value.value[0][0].start_mark.column - base
                queue.append(value)
            elif isinstance(value, SequenceNode) and not value.flow_style and value.value:
                first = value.value[0]
                if style is None:
                    prefix = _item(first, lines).prefix or ""
                    if prefix and first.start_mark.line > key.start_mark.line:
                        dash = prefix.index("-")
                        style = SequenceStyle(offset=dash - base, after_dash=len(prefix) - dash - 1)
                queue.extend(item for item in value.value if isinstance(item, MappingNode))
    if style is not None and (style.offset < 0 or style.after_dash < 1):
        style = None
    return (mapping if mapping and mapping > 0 else 2), style or SequenceStyle()


# --------------------------------------------------------------------------- reading


def listed_resources(kustomization_text: str) -> list[str]:
    """The ``resources`` entries, in file order (empty when the key is absent or empty)."""
    return parse_kustomization(kustomization_text).entries or []


@functools.lru_cache(maxsize=8)
def listed_set(kustomization_text: str) -> frozenset[str]:
    """The normalized ``resources`` entries, parsed once per text: status and diagnostics ask
    about every app against the same kustomization."""
    return frozenset(normalized(path) for path in listed_resources(kustomization_text))


def normalized(path: str) -> str:
    """Kustomize treats ``./a.yaml`` and ``a.yaml`` as one resource; so must duplicate checks."""
    if "://" in path:
        return path
    return posixpath.normpath(path)


def new_kustomization() -> str:
    """The kustomization written when the base branch has none yet."""
    yaml = round_trip_yaml()
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(
        CommentedMap([("apiVersion", KUSTOMIZE_API_VERSION), ("kind", "Kustomization")]), buffer
    )
    return buffer.getvalue()


# --------------------------------------------------------------------------- editing


class _NeedsRewrite(Exception):
    """The file's shape cannot be edited line-wise; fall back to a round-trip dump."""


# An edit is a list of operations applied in order to the resources list.
_Insert = tuple[int, str]


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

    Returns the same text when nothing is missing, so a re-run makes no commit. Raises
    ValueError when the file is not a mapping with a list of paths (the message says why).
    """
    wanted = _checked_paths(paths)
    parsed = parse_kustomization(kustomization_text)
    existing = parsed.entries or []
    present = {normalized(entry) for entry in existing}
    missing = [path for path in wanted if normalized(path) not in present]
    if not missing:
        return kustomization_text
    plan = _plan_additions(existing, missing)
    expected = list(existing)
    for index, path in plan:
        expected.insert(index, path)
    try:
        text = kustomization_text
        for index, path in plan:
            text = _insert_line(parse_kustomization(text), index, path)
        if _same_apart_from_resources(parsed, text, expected):
            return text
    except _NeedsRewrite:
        pass
    return _rewrite(parsed, inserts=plan, deletes=[], expected=expected)


def remove_resources(kustomization_text: str, paths: list[str]) -> str:
    """Remove each listed path from ``resources`` (offboarding); unchanged text if none listed."""
    unwanted = {normalized(path) for path in _checked_paths(paths)}
    parsed = parse_kustomization(kustomization_text)
    existing = parsed.entries or []
    doomed = [i for i, entry in enumerate(existing) if normalized(entry) in unwanted]
    if not doomed:
        return kustomization_text
    expected = [entry for i, entry in enumerate(existing) if i not in doomed]
    try:
        if not expected:
            raise _NeedsRewrite  # an emptied block list must become `resources: []`
        edited = _delete_lines(parsed, doomed)
        if _same_apart_from_resources(parsed, edited, expected):
            return edited
    except _NeedsRewrite:
        pass
    return _rewrite(parsed, inserts=[], deletes=doomed, expected=expected)


def _dash_prefix(item: Item) -> str:
    """The ``  - `` before an item, copied so new items line up with their neighbours."""
    if item.prefix is None:
        raise _NeedsRewrite
    return item.prefix


def _quote_style(items: Sequence[Item]) -> str | None:
    styles = {item.quotes for item in items}
    return styles.pop() if len(styles) == 1 else None


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


def _insert_line(parsed: Kustomization, index: int, path: str) -> str:
    """The text with ``path`` inserted as item ``index`` of ``resources``, as one new line."""
    lines, eol = list(parsed.lines), parsed.eol
    if parsed.key_line is None or parsed.bare:
        # No `resources` yet, or a bare `resources:`: write a block list with the file's style.
        if parsed.flow_mapping:
            raise _NeedsRewrite
        style = parsed.sequence_style
        item = " " * style.offset + "-" + " " * style.after_dash + _scalar(path, style=None) + eol
        if parsed.key_line is None:
            column = parsed.first_key_column
            if lines and not lines[-1].endswith(("\n", "\r")):
                lines[-1] += eol
            lines.append(" " * column + "resources:" + eol)
            lines.append(" " * column + item)
        else:
            at = parsed.key_line
            if not lines[at].endswith(("\n", "\r")):
                lines[at] += eol
            lines.insert(at + 1, " " * parsed.key_column + item)
        return "".join(lines)
    items = parsed.items
    if not items:
        raise _NeedsRewrite  # a flow list, `resources: ~`, or not a list
    if index >= len(items):
        prefix, at = _dash_prefix(items[-1]), items[-1].last_line + 1
    else:
        # Before item `index`: either right under the previous item (above any comment lines
        # that precede the next one) or right above the next item (under those comments).
        # Stay with the neighbour sharing the longer prefix, so a new `databases/...` lands
        # under a `# databases` comment and a new `a.yaml` stays above it.
        next_item = items[index]
        prefix = _dash_prefix(next_item)
        if index == 0:
            above, shared_above = parsed.key_line + 1, 0
        else:
            above = items[index - 1].last_line + 1
            shared_above = _common_prefix(path, items[index - 1].scalar)
        below_comments = shared_above < _common_prefix(path, next_item.scalar)
        at = next_item.first_line if below_comments else above
    new_line = prefix + _scalar(path, style=_quote_style(items)) + eol
    if at > len(lines):
        raise _NeedsRewrite
    if at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += eol
    lines.insert(at, new_line)
    return "".join(lines)


def _delete_lines(parsed: Kustomization, indexes: list[int]) -> str:
    """The text without the lines of items ``indexes`` (only whole ``- item`` lines)."""
    if parsed.key_line is None or max(indexes) >= len(parsed.items):
        raise _NeedsRewrite
    lines = list(parsed.lines)
    for index in sorted(indexes, reverse=True):
        item = parsed.items[index]
        _dash_prefix(item)
        del lines[item.first_line : item.last_line + 1]
    return "".join(lines)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _same_apart_from_resources(before: Kustomization, after: str, expected: list[str]) -> bool:
    """Safety net for the line-wise edit: the result parses to exactly what was intended."""
    try:
        new = parse_kustomization(after)
        if new.entries != expected:
            return False
    except ValueError:
        return False
    old_rest = {k: v for k, v in (before.data or {}).items() if k != "resources"}
    new_rest = {k: v for k, v in (new.data or {}).items() if k != "resources"}
    return bool(list(old_rest) == list(new_rest) and _plain(old_rest) == _plain(new_rest))


def _rewrite(
    parsed: Kustomization, *, inserts: list[_Insert], deletes: list[int], expected: list[str]
) -> str:
    """Round-trip dump for shapes the line-wise edit cannot handle, in the file's indentation."""
    text = parsed.text
    yaml = round_trip_yaml()
    style = parsed.sequence_style
    yaml.indent(mapping=parsed.mapping_indent, sequence=style.sequence, offset=style.offset)
    yaml.explicit_start = text.lstrip().startswith("---")
    unsafe = ValueError(f"could not edit {KUSTOMIZATION_FILE} safely; please edit it by hand")
    try:
        # ruamel's comment-keeping document, loaded for this dump alone (the dump changes it)
        data = round_trip_yaml().load(text)
    except YAMLError as exc:
        raise NotYaml(one_line(exc)) from exc
    if data is None:
        data = CommentedMap()
    seq = data.get("resources")
    if not isinstance(seq, CommentedSeq):
        seq = CommentedSeq()
        data["resources"] = seq
    if list(seq) != (parsed.entries or []):  # it reads what the parse read (`%YAML 1.1`...)
        raise unsafe
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
        raise unsafe
    return result
