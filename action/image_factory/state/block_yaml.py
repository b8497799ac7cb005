"""State files in PyYAML's block style, written and read without PyYAML's Python layers.

PyYAML represents every value as a node in Python before its C emitter writes it, and builds
nodes again when it reads: ~0.7 ms to write and ~0.5 ms to read a state file, most of a large
fleet's `discover`, and seconds for one file of a base with 20,000 dependents. State files hold
mappings, lists, strings, integers, booleans and nulls:

- `dump` writes those as `yaml.dump(data, default_flow_style=False, sort_keys=False,
  width=1000)` does, character for character, and returns None for anything it is not sure of
  (a string PyYAML might quote otherwise or fold, a list in a list, a float): the caller then
  gives it to PyYAML.
- `load` reads what `dump` writes, and returns None for any other text: it accepts a text only
  in the layout `dump` makes, each scalar written as `dump` writes what it reads, so what it
  reads is what PyYAML reads.

tests/state/test_block_yaml.py compares both with PyYAML on every state file the tests write and on
generated documents.
"""

from __future__ import annotations

import re

import yaml

# Printable ASCII that PyYAML writes plain in block context, spaces allowed inside; not a
# leading indicator, no `: ` or ` #`, no quote or backslash, no trailing colon or space.
_PLAIN = re.compile(r"[A-Za-z0-9_./(][A-Za-z0-9_./:@+=,()~<>;*&!%$?^`|\[\]{} -]*")
_BAD = re.compile(r": | #|  |[ :]$|[\[\]{},]")
_STR = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")
_TAGS: dict[str, str] = {}
_WRITTEN: dict[str, str] = {}  # string → how it is written: state files repeat most of theirs
MAX_LENGTH = 200  # far below the width PyYAML folds at (1000)
MAX_KEY_LENGTH = 120  # PyYAML writes a key as simple below 128 characters


class Unsure(Exception):
    """A value this module leaves to PyYAML."""


def _scalar(value: object) -> str:
    if type(value) is str:
        written = _WRITTEN.get(value)
        if written is None:
            written = _string(value)
            if len(_WRITTEN) < 200_000:
                _WRITTEN[value] = written
        return written
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    raise Unsure


# PyYAML's resolver (resolver.py, Resolver.add_implicit_resolver) reads a plain scalar that starts
# with a letter as a string unless it is one of these words (bool, null): for a word of letters,
# digits, `-` and `_` (no `.`, `:`, space: nothing else of YAML's) that settles it.
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_NOT_STRINGS = {
    *("yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE"),
    *("on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL"),
}


def _string(value: str) -> str:
    if value == "":
        return "''"
    if len(value) <= MAX_LENGTH and _WORD.fullmatch(value):
        return value if value not in _NOT_STRINGS else f"'{value}'"
    if len(value) > MAX_LENGTH or not _PLAIN.fullmatch(value) or _BAD.search(value) or value.startswith("..."):
        raise Unsure  # ("..." ends a document)
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
    return value if tag == _STR else f"'{value}'"  # it would read back as a number, a date…


def _mapping(data: dict, indent: int, out: list[str], first_prefix: str | None = None) -> None:
    pad = " " * indent
    for position, (key, value) in enumerate(data.items()):
        lead = first_prefix if position == 0 and first_prefix is not None else pad
        head = f"{lead}{_key(key)}:"
        if type(value) is dict:
            if value:
                out.append(head + "\n")
                _mapping(value, indent + 2, out)
            else:
                out.append(head + " {}\n")
        elif type(value) is list:
            if value:
                out.append(head + "\n")
                _sequence(value, indent, out)  # PyYAML's sequences in a mapping are not indented
            else:
                out.append(head + " []\n")
        else:
            out.append(f"{head} {_scalar(value)}\n")


def _key(key: object) -> str:
    if type(key) is not str or len(key) > MAX_KEY_LENGTH:  # a longer one is written as `? key`
        raise Unsure
    return _scalar(key)


def _sequence(items: list, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for item in items:
        if type(item) is dict:
            if not item:
                out.append(f"{pad}- {{}}\n")
            else:
                _mapping(item, indent + 2, out, first_prefix=f"{pad}- ")
        elif type(item) is list:
            raise Unsure
        else:
            out.append(f"{pad}- {_scalar(item)}\n")


def dump(data: dict) -> str | None:
    """`data` (a mapping) in PyYAML's block style, or None when PyYAML must write it."""
    if type(data) is not dict or not data:
        return None
    out: list[str] = []
    try:
        _mapping(data, 0, out)
    except Unsure:
        return None
    return "".join(out)


def load(text: str) -> dict | None:
    """The mapping `text` holds when `dump` wrote it; None for any other text, which the caller
    gives to PyYAML. Every line must be the one `dump` writes for what it reads: the layout is
    the only one `dump` makes, and each scalar and key reads as a value `dump` writes as exactly
    that text (so what it reads is what PyYAML reads)."""
    lines = text.split("\n")
    if lines[-1] != "":
        return None
    reader = _Reader(lines[:-1])
    try:
        data = reader.mapping(0)
        if reader.position != len(reader.lines):
            return None
    except (Unsure, IndexError, ValueError):
        return None
    return data or None  # dump writes no empty mapping


class _Reader:
    def __init__(self, lines: list[str]):
        self.lines, self.position = lines, 0

    def mapping(self, indent: int, first: str | None = None) -> dict:
        """The mapping whose keys are at `indent`; `first`: its first line's text after `- `."""
        result: dict = {}
        pad = " " * indent
        while self.position < len(self.lines) or first is not None:
            if first is not None:
                line, first = first, None
            else:
                line = self.lines[self.position]
                if not line.startswith(pad) or line[indent : indent + 1] in (" ", "-", ""):
                    break
                line = line[indent:]
            self.position += 1
            key, sep, rest = line.partition(":")
            if not sep or (rest and not rest.startswith(" ")):
                raise Unsure
            text = key
            key = _plain(text)
            if type(key) is not str or key in result or (text not in _KEYS and _key(key) != text):
                raise Unsure
            _KEYS.add(text)
            if rest:
                result[key] = _value(rest[1:])
            elif self._next_starts(pad + "- "):
                result[key] = self.sequence(indent)
            elif self._next_starts(pad + "  "):
                result[key] = self.mapping(indent + 2)
            else:
                raise Unsure
        return result

    def sequence(self, indent: int) -> list:
        result: list = []
        dash = " " * indent + "- "
        while self.position < len(self.lines) and self.lines[self.position].startswith(dash):
            item = self.lines[self.position][len(dash) :]
            if ": " in item or item.endswith(":"):  # a mapping, its first key on the dash's line
                start = self.position
                result.append(self.mapping(indent + 2, first=item))
                if self.position - start == len(result[-1]) > 0:  # one line per key: a record
                    result += self.records(indent, list(result[-1]))
            else:
                self.position += 1
                result.append(_value(item))
        return result

    def records(self, indent: int, keys: list[str]) -> list[dict]:
        """The items that follow a record (a mapping of scalars) with the same keys, one line
        each: a base's thousands of dependents, read without asking what each line is."""
        heads = [(" " * indent + "- " + keys[0] + ": ", keys[0])]
        heads += [(" " * (indent + 2) + key + ": ", key) for key in keys[1:]]
        lines, found, width = self.lines, [], len(keys)
        position = self.position
        while position + width <= len(lines):
            record = {}
            for offset, (head, key) in enumerate(heads):
                line = lines[position + offset]
                if not line.startswith(head):
                    break
                value = _value(line[len(head) :])
                if type(value) is list or type(value) is dict:
                    break  # `[]`, `{}`: the general reader takes it from here
                record[key] = value
            else:
                found.append(record)
                position += width
                continue
            break
        self.position = position
        return found

    def _next_starts(self, prefix: str) -> bool:
        return self.position < len(self.lines) and self.lines[self.position].startswith(prefix)


def _value(text: str) -> object:
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return _plain(text)


_KEYS: set[str] = set()  # key texts already read as keys
_READ: dict[str, object] = {}  # scalar texts already read: state files repeat most of them
_MISSING = object()


def _plain(text: str) -> object:
    """A scalar as `_scalar` writes it: quoted (a string), or plain, typed as PyYAML types it;
    Unsure unless `_scalar` writes what it reads as exactly `text`."""
    value = _READ.get(text, _MISSING)
    if value is not _MISSING:
        return value
    value = _read_scalar(text)
    if len(_READ) < 100_000:
        _READ[text] = value
    return value


def _read_scalar(text: str) -> object:
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'" and "'" not in text[1:-1]:
        value: object = text[1:-1]
    elif text == "null":
        value = None
    elif text in ("true", "false"):
        value = text == "true"
    elif _DECIMAL.fullmatch(text):
        value = int(text)
    elif len(text) <= MAX_LENGTH and _WORD.fullmatch(text) and text not in _NOT_STRINGS:
        return text  # a string, and _scalar writes it as it is (see _WORD)
    else:
        tag = _TAGS.get(text)
        if tag is None:
            tag = _TAGS[text] = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
        if tag != _STR:
            raise Unsure
        value = text
    if _scalar(value) != text:
        raise Unsure
    return value
