"""YAML documents that remember where each value came from.

PyYAML's node tree carries line numbers; this keeps them beside the plain data so that schema
errors can name the line of the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

from image_factory.errors import FactoryError, Problem

Path_ = tuple[str | int, ...]
# libyaml's parser keeps line marks too and is many times faster than the pure-Python one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class YamlDocument:
    """Plain data of one YAML file, and on demand the line (1-based) of every key and value in it.

    Most documents are valid and never need their lines: those are only worked out (by parsing
    the text again, node by node) when a problem has to be reported.
    """

    file: str
    data: object
    text: str | None = None
    _value_lines: dict[Path_, int] | None = field(default=None, repr=False)
    _key_lines: dict[Path_, int] | None = field(default=None, repr=False)

    def _lines(self) -> tuple[dict[Path_, int], dict[Path_, int]]:
        if self._value_lines is None:
            careful = _parse_with_lines(self.text, self.file) if self.text is not None else None
            self._value_lines = careful._value_lines if careful else {}
            self._key_lines = careful._key_lines if careful else {}
        return self._value_lines, self._key_lines

    def line_of(self, path: Path_) -> int | None:
        """The line of `path` (its key's line for a mapping entry), or of its nearest ancestor."""
        value_lines, key_lines = self._lines()
        path = tuple(path)
        while path:
            line = key_lines.get(path) or value_lines.get(path)
            if line:
                return line
            path = path[:-1]
        return value_lines.get((), 1)

    def problem(self, path: Path_, message: str) -> Problem:
        return Problem(self.file, message, self.line_of(path), format_path(path))


def format_path(path: Path_) -> str | None:
    """`("images", 2, "rebuildDelay")` → `images[2].rebuildDelay`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


class _DuplicateKey(Exception):
    pass


class _Unusual(Exception):
    """A tag the quick path leaves to PyYAML's own constructors (merge keys, timestamps, floats…)."""


class _CheckedLoader(_Loader):
    """PyYAML's own constructors, refusing duplicate keys."""

    def construct_mapping(self, node, deep=False):
        keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
        if len(keys) != len(set(keys)):
            raise _DuplicateKey
        return super().construct_mapping(node, deep)


class _QuickLoader(_Loader):
    """libyaml composes the nodes; the tags of plain scalars are remembered across documents.

    State files repeat the same keys and values thousands of times, and PyYAML resolves each
    one with a chain of regular expressions in Python.
    """

    _tags: ClassVar[dict[tuple[str, tuple[bool, bool]], str]] = {}

    def resolve(self, kind, value, implicit):
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
        return tag


_STR, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


def _plain_data(node: yaml.Node) -> object:
    """Node tree → plain data, for the tags state and config use; PyYAML's constructors are
    general and several times slower. Duplicate keys are refused, which plain PyYAML allows."""
    kind = type(node)
    if kind is yaml.ScalarNode:
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _INT and value.isdigit() and (value[0] != "0" or value == "0"):  # not octal
            return int(value)
        if tag == _BOOL:
            return value.lower() in ("yes", "true", "on")
        if tag == _NULL:
            return None
        raise _Unusual
    if kind is yaml.MappingNode and node.tag == _MAP:
        result = {}
        for key_node, value_node in node.value:
            key = _plain_data(key_node)
            if key in result:
                raise _DuplicateKey
            result[key] = _plain_data(value_node)
        return result
    if kind is not yaml.SequenceNode or node.tag != _SEQ:
        raise _Unusual
    return [_plain_data(item) for item in node.value]


# Aliases may repeat what an anchor holds (merge keys, shared defaults), but not without bound: a
# few lines of nested aliases ("billion laughs") would expand to billions of nodes.
ALIAS_BUDGET = 100_000


class _AliasBomb(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


def _check_expansion(root: yaml.Node) -> None:
    """Refuses a node graph whose aliases expand to more than ALIAS_BUDGET nodes beyond the
    distinct ones. Linear: each distinct node's expanded size is worked out once."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
        if sizes[id(node)] > len(sizes) + ALIAS_BUDGET:
            raise _AliasBomb(node.start_mark.line + 1)


def _quick_load(text: str) -> object:
    loader = _QuickLoader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is None:
        return None
    if "*" in text:  # aliases are rare: only then is the graph measured
        _check_expansion(node)
    try:
        return _plain_data(node)
    except _Unusual:
        return yaml.load(text, Loader=_CheckedLoader)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; broken YAML and duplicate keys are errors naming the line."""
    try:
        return YamlDocument(file, _quick_load(text), text)
    except _AliasBomb as bomb:
        message = f"aliases expand to more than {ALIAS_BUDGET:,} nodes beyond the document's own: refused"
        raise FactoryError(Problem(file, message, bomb.line)) from None
    except (yaml.YAMLError, _DuplicateKey, RecursionError):
        return _parse_with_lines(text, file)  # raises the error with its line


def _parse_with_lines(text: str, file: str) -> YamlDocument:
    """The careful parse: node by node, recording every line."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        reason = error.problem or error.context or "invalid YAML"
        raise FactoryError(Problem(file, f"invalid YAML: {reason}", line)) from None
    except yaml.YAMLError as error:
        raise FactoryError(Problem(file, f"invalid YAML: {error}")) from None
    document = YamlDocument(file, None, text, {}, {})
    if node is not None:
        document.data = _build(node, (), document, _Loader(""))
    return document


def load_yaml(path: Path, display: str | None = None) -> YamlDocument:
    display = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FactoryError(Problem(display, "file not found")) from None
    except (OSError, UnicodeDecodeError) as error:
        raise FactoryError(Problem(display, f"cannot read: {error}")) from None
    return parse_yaml(text, display)


def _build(node: yaml.Node, path: Path_, document: YamlDocument, loader: yaml.SafeLoader) -> object:
    document._value_lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in result:
                raise FactoryError(
                    Problem(document.file, f"duplicate key {key!r}", key_node.start_mark.line + 1, format_path(path))
                )
            document._key_lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, document, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), document, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
