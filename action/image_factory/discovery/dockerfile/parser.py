"""A Dockerfile split into instructions as BuildKit's parser does (frontend/dockerfile/parser/).

`scan` is parser.go Parse: the byte-order mark, the parser directives (directives.go), line
continuations with the comment and empty lines inside them skipped, and heredoc bodies.
`builder_flags` is split_command.go extractBuilderFlags. The helpers at the end read an
instruction's flags and ARG declarations as instructions/parse.go does.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from dataclasses import dataclass

from image_factory.discovery.dockerfile.lexer import ExpansionTooLarge

_LINE = re.compile(r"[^\n]*\n|[^\n]+")
WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # parser.go reWhitespace
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")  # directives.go directiveRegexp
_DIRECTIVES = {"syntax", "escape", "check"}
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_HEREDOC_INSTRUCTIONS = {"RUN", "COPY", "ADD"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Instruction:
    """One instruction as BuildKit's parser splits it (parser.go splitCommand)."""

    keyword: str  # upper case
    flags: tuple[str, ...]  # the leading `--name=value` words, quotes and escapes removed
    args: str  # the rest of the instruction
    line: int  # its first line, 1-based


def scan(text: str) -> tuple[list[Instruction], str]:
    """Instructions in order and the escape character: a port of parser.go Parse.

    A byte-order mark before the first line is dropped; `# name=value` directives are read
    until the first other line; a comment line or an empty line inside a line continuation is
    skipped; heredoc bodies opened by RUN, COPY and ADD (also after ONBUILD) are no instructions.
    """
    lines = _LINE.findall(text)
    escape, reading_directives, seen = "\\", True, set()
    instructions: list[Instruction] = []
    index = 0
    while index < len(lines):
        raw = lines[index].removeprefix("\ufeff") if index == 0 else lines[index]
        token = raw.rstrip("\r\n").lstrip()
        if reading_directives:
            directive = _DIRECTIVE.match(token[1:].lstrip()) if token.startswith("#") else None
            name = directive.group(1).lower() if directive else None
            if name not in _DIRECTIVES or name in seen:
                reading_directives = False
            else:
                seen.add(name)
                if name == "escape" and directive.group(2) in ("\\", "`"):
                    escape = directive.group(2)
        index += 1
        start = index
        token, ended = _trim_continuation("" if token.startswith("#") else token, escape)
        if ended and not token:
            continue
        parts = [token]
        while not ended and index < len(lines):
            token = lines[index].rstrip("\r\n")
            index += 1
            if token.lstrip().startswith("#") or not token.strip():
                continue
            token, ended = _trim_continuation(token, escape)
            parts.append(token)
        instruction = split_instruction("".join(parts), escape, start)
        instructions.append(instruction)
        for strip_tabs, _quote, delimiter in _heredocs(instruction, escape):
            while index < len(lines):  # unterminated: the rest of the file is body
                candidate = lines[index].rstrip("\r\n")
                index += 1
                if (candidate.lstrip("\t") if strip_tabs else candidate) == delimiter:
                    break
    return instructions, escape


_CONTINUATION = {escape: re.compile(rf"(^|[^{re.escape(escape)}]){re.escape(escape)}[ \t]*$") for escape in "\\`"}


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """`line` without its continuation character, and whether the instruction ends with it."""
    match = _CONTINUATION[escape].search(line)
    if match is None:
        return line, True
    return line[: match.start()] + match.group(1), False


def split_instruction(line: str, escape: str, number: int) -> Instruction:
    parts = WHITESPACE.split(line.strip(), maxsplit=1)
    flags, args = _builder_flags(parts[1], escape) if len(parts) == 2 else ([], "")
    return Instruction(parts[0].upper(), tuple(flags), args.strip(), number)


def _builder_flags(line: str, escape: str) -> tuple[list[str], str]:
    """The leading `--flag` words and the rest of the line: parser/split_command.go extractBuilderFlags."""
    words: list[str] = []
    pos = 0
    while True:
        while pos < len(line) and line[pos].isspace():
            pos += 1
        if not line.startswith("--", pos):
            return words, line[pos:]
        word: list[str] = []
        quote, blank_ok = None, False
        while pos < len(line):
            char = line[pos]
            pos += 1
            if quote is None and char.isspace():
                break
            if quote is None and char in "'\"":
                quote, blank_ok = char, True
                continue
            if quote is not None and char == quote:
                quote = None
                continue
            if char == escape:
                if pos == len(line):
                    break
                char = line[pos]
                pos += 1
            word.append(char)
        if "".join(word) == "--":
            return words, line[pos:]
        if word or blank_ok:
            words.append("".join(word))


def _heredocs(instruction: Instruction, escape: str) -> list[tuple[str, str, str]]:
    """The heredocs an instruction opens: (strip tabs, quote, delimiter) for each."""
    if instruction.keyword == "ONBUILD":
        instruction = split_instruction(instruction.args, escape, instruction.line)
    if instruction.keyword not in _HEREDOC_INSTRUCTIONS or "<<" not in instruction.args:
        return []
    try:  # the JSON (exec) form opens none
        exec_form = json.loads(instruction.args)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any command line
        exec_form = None
    if isinstance(exec_form, list) and all(isinstance(item, str) for item in exec_form):
        return []
    return _HEREDOC.findall(instruction.args)


def flag_values(flags: tuple[str, ...], name: str) -> list[str]:
    """Values of `--name=value` among an instruction's flags."""
    found = []
    for flag in flags:
        flag_name, _, value = flag[2:].partition("=")
        if flag_name == name and value:
            found.append(value)
    return found


def mount_option(spec: str, keys: set[str]) -> str | None:
    """The value of one of `keys` in a `--mount` spec (`type=bind,from=img,target=/x`), if any."""
    if len(spec) > 100_000:  # csv refuses fields over 128 KiB; no real mount spec comes near
        raise ExpansionTooLarge(f"a --mount of {len(spec):,} characters")
    for option in next(csv.reader([spec])):
        key, _, value = option.partition("=")
        if key.strip().lower() in keys and value:
            return value
    return None


def arg_declarations(value: str) -> list[tuple[str, str | None]]:
    """`A=1 B C="x y"` → [("A", "1"), ("B", None), ("C", "x y")]."""
    declarations = []
    try:
        tokens = shlex.split(value, posix=True) if any(c in value for c in "\"'\\") else value.split()
    except ValueError:
        tokens = value.split()
    for token in tokens:
        name, sep, default = token.partition("=")
        if _NAME.fullmatch(name):
            declarations.append((name, default if sep else None))
    return declarations
