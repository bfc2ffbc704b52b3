"""YAML as the manifests package writes it and tells about it.

YAML is only ever produced by ruamel.yaml's emitter, never by string templates, so an app name
or a setting cannot change a document's structure. Strings that a YAML 1.1 reader (kubectl,
kustomize, Argo CD) would not read back as strings are quoted.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, Final, cast

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

_YAML11: Final = VersionedResolver(version=(1, 1))
_STR_TAG: Final = "tag:yaml.org,2002:str"


def round_trip_yaml() -> YAML:
    """A fresh round-trip YAML instance (instances keep state, so none is shared)."""
    yaml = YAML(typ="rt")
    yaml.width = 4096  # never fold a long value onto a second line
    yaml.preserve_quotes = True
    return yaml


def yaml11_safe(value: str) -> str:
    """Quote strings that a YAML 1.1 reader would not read back as strings.

    ruamel.yaml speaks YAML 1.2, where ``on``/``yes``/``no`` are plain strings; kubectl, kustomize
    and Argo CD read YAML 1.1, where they are booleans. An app called ``on`` must stay ``"on"``.
    """
    if isinstance(value, DoubleQuotedScalarString | SingleQuotedScalarString):
        return value
    if str(_YAML11.resolve(ScalarNode, value, (True, False))) != _STR_TAG:
        return cast(str, DoubleQuotedScalarString(value))
    return str(value)  # plain str: the emitter has no representer for subclasses like AppName


def commented(data: Mapping[str, Any]) -> CommentedMap:
    """``data`` as ruamel's round-trip mapping, every string made YAML 1.1-safe."""
    out = CommentedMap()
    for key, value in data.items():
        out[key] = _to_node(value)
    return out


def _to_node(value: Any) -> Any:
    if isinstance(value, Mapping):
        return commented(value)
    if isinstance(value, list):
        return CommentedSeq(_to_node(item) for item in value)
    if isinstance(value, str):
        return yaml11_safe(value)
    return value


def emit(document: Mapping[str, Any]) -> str:
    """Dump one manifest the way the seed writes them: ``---`` first, 2-space indents."""
    yaml = round_trip_yaml()
    yaml.explicit_start = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(commented(document), buffer)
    return buffer.getvalue()


def one_line(exc: BaseException) -> str:
    """A YAML error as ``<problem> at line L, column C`` rather than ruamel's multi-line dump."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def kind_name(value: Any) -> str:
    """What a loaded YAML value is, as users know it: ``a string``, ``a list``, ``null``."""
    if value is None:
        return "null"
    for kind, name in (
        (bool, "a boolean"),
        (dict, "a mapping"),
        (list, "a list"),
        (str, "a string"),
        (int | float, "a number"),
    ):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def describe(value: Any) -> str:
    """A value as users know it: ``a string 'x'``, ``a list``; containers are not dumped."""
    name = kind_name(value)
    if value is None or isinstance(value, dict | list):
        return name
    return f"{name} {value!r}"
