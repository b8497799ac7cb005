"""Base-image discovery: every external image a Dockerfile builds on, resolved like BuildKit does.

Three steps, each after the BuildKit code it follows (moby/buildkit, frontend/dockerfile/):
`_scan` splits the file into instructions as `parser/parser.go` does (byte-order mark, parser
directives, line continuations with the comment and empty lines inside them skipped, heredoc
bodies); `_Walk` reads the stages as `instructions/parse.go` and `dockerfile2llb/convert.go` do
(FROM operands through the shell lexer of `shell/lex.go`, stage names, `COPY --from` and
`RUN --mount=from=` resolved once every stage is known, ONBUILD triggers run in the stage built
on theirs); `_Walk.check_order` refuses what BuildKit refuses when it builds the last stage.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

from image_factory.enrolment.refs import InvalidReference, parse_ref
from image_factory.errors import FactoryError, Problem

FROM, COPY_FROM, MOUNT_FROM = "from", "copy-from", "mount-from"

_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # parser.go reWhitespace
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")  # directives.go directiveRegexp
_DIRECTIVES = {"syntax", "escape", "check"}
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_HEREDOC_INSTRUCTIONS = {"RUN", "COPY", "ADD"}
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")  # instructions/parse.go validStageName
_STAGE_INDEX = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi reads as a number
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class BaseUse:
    """One place where a build uses an image: `ref` is canonical, or the raw text when unresolved."""

    ref: str
    kind: str
    stage: str
    line: int
    resolved: bool = True
    platform: str | None = None

    def to_dict(self) -> dict:
        data = {"ref": self.ref, "kind": self.kind, "stage": self.stage, "line": self.line}
        if not self.resolved:
            data["unresolved"] = True
        if self.platform:
            data["platform"] = self.platform
        return data


@dataclass(frozen=True)
class Overridden:
    """A global ARG whose default the build args replace: the build uses `value`, not `default`."""

    name: str
    default: str
    value: str
    line: int


@dataclass(frozen=True)
class Discovery:
    """What one Dockerfile builds on, every use in file order."""

    uses: tuple[BaseUse, ...]
    missing: bool = False  # the checkout no longer has the Dockerfile
    overridden: tuple[Overridden, ...] = ()

    @property
    def images(self) -> list[str]:
        """Canonical references, deduplicated, in first-appearance order."""
        return list(dict.fromkeys(use.ref for use in self.uses if use.resolved))

    @property
    def unresolved(self) -> list[str]:
        return list(dict.fromkeys(use.ref for use in self.uses if not use.resolved))

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "unresolved": self.unresolved,
            "details": [use.to_dict() for use in self.uses],
        }


def find_bases(text: str, build_args: dict[str, str] | None = None, file: str = "Dockerfile") -> Discovery:
    """Every image `text` builds on. Build args override ARG defaults declared before the first FROM."""
    try:
        return _find_bases(text, build_args or {}, file)
    except ExpansionTooLarge as error:
        raise FactoryError(Problem(file, f"refused: {error}")) from None


def _find_bases(text: str, build_args: dict[str, str], file: str) -> Discovery:
    instructions, escape = _scan(text)
    walk = _Walk(file, escape)
    overridden: list[Overridden] = []
    for instruction in instructions:
        if instruction.keyword == "ARG" and not walk.stages:
            for name, default in _arg_declarations(instruction.args):
                if name in build_args:
                    own = None if default is None else walk.expand(default, instruction.line, quotes=False)
                    if isinstance(own, str) and own != build_args[name]:
                        overridden.append(Overridden(name, own, build_args[name], instruction.line))
                    walk.args[name] = build_args[name]
                else:
                    value = None if default is None else walk.expand(default, instruction.line, quotes=False)
                    walk.args[name] = None if value is MALFORMED else value
        elif instruction.keyword == "FROM":
            walk.add_stage(instruction)
        elif walk.stages and instruction.keyword == "ONBUILD":
            walk.stages[-1].triggers.append(_split_instruction(instruction.args, escape, instruction.line))
        elif walk.stages:
            walk.stages[-1].commands.append(instruction)
    if not walk.stages and not walk.problems:
        walk.problems.append(Problem(file, "no FROM instruction: not a Dockerfile"))
    for stage in walk.stages:
        walk.resolve_base(stage)
    trigger_runs = sum(
        len(walk.stages[stage.base_stage].triggers) for stage in walk.stages if stage.base_stage is not None
    )
    if trigger_runs > MAX_TRIGGER_RUNS:  # each stage built FROM a stage runs all its triggers again
        raise ExpansionTooLarge(f"ONBUILD triggers would run more than {MAX_TRIGGER_RUNS:,} times")
    for stage in walk.stages:  # every stage is known now
        if stage.base_stage is not None:  # convert.go resolveStages: the base's ONBUILD triggers run first
            for trigger in walk.stages[stage.base_stage].triggers:
                walk.run(stage, trigger)
        for instruction in stage.commands:
            walk.run(stage, instruction)
    walk.check_order()
    if walk.problems:
        raise FactoryError(sorted(walk.problems, key=lambda problem: problem.line or 0))
    return Discovery(tuple(use for stage in walk.stages for use in stage.uses), overridden=tuple(overridden))


@dataclass(frozen=True)
class _Instruction:
    """One instruction as BuildKit's parser splits it (parser.go splitCommand)."""

    keyword: str  # upper case
    flags: tuple[str, ...]  # the leading `--name=value` words, quotes and escapes removed
    args: str  # the rest of the instruction
    line: int  # its first line, 1-based


@dataclass(frozen=True)
class _StageUse:
    """A `COPY --from` or `RUN --mount=from=` naming another stage of the same file."""

    stage: int
    written: str
    line: int
    mount_target: str | None = None  # None for COPY


@dataclass
class _Stage:
    index: int
    alias: str | None  # lowercase
    line: int
    base: str | None  # the FROM operand as written
    platform: str | None = None
    base_stage: int | None = None  # the earlier stage it builds on
    commands: list[_Instruction] = field(default_factory=list)
    triggers: list[_Instruction] = field(default_factory=list)  # its ONBUILD instructions
    stage_uses: list[_StageUse] = field(default_factory=list)
    uses: list[BaseUse] = field(default_factory=list)  # the images it reads, in file order

    @property
    def name(self) -> str:
        """How `details` names the stage."""
        return self.alias or str(self.index)


@dataclass
class _Walk:
    """What is known while reading a Dockerfile's stages."""

    file: str
    escape: str
    args: dict[str, str | None] = field(default_factory=dict)  # global ARGs; None: declared, no value
    stages: list[_Stage] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)  # stage alias → index, once its FROM is resolved
    problems: list[Problem] = field(default_factory=list)

    def problem(self, message: str, line: int) -> None:
        self.problems.append(Problem(self.file, message, line))

    def expand(self, word: str, line: int, quotes: bool = True) -> str | _Malformed | None:
        """`word` through the shell lexer with the global ARGs; None when it depends on one without a value."""
        try:
            return _lex(word, self.args, self.escape, quotes)
        except _LexError as error:
            self.problem(str(error), line)
            return MALFORMED

    def add_stage(self, instruction: _Instruction) -> None:
        """A FROM: instructions/parse.go parseFrom and parseBuildStageName."""
        args = _WHITESPACE.split(instruction.args) if instruction.args else []
        platforms = _flag_values(instruction.flags, "platform")
        stage = _Stage(
            len(self.stages), None, instruction.line, args[0] if args else None, platforms[-1] if platforms else None
        )
        self.stages.append(stage)
        if not args:
            self.problem("FROM without an image", instruction.line)
        elif len(args) == 3 and args[1].lower() == "as":
            if _STAGE_NAME.fullmatch(args[2].lower()):
                stage.alias = args[2].lower()
            else:
                self.problem(
                    f"invalid name for build stage: {json.dumps(args[2])}, "
                    "name can't start with a number or contain symbols",
                    instruction.line,
                )
        elif len(args) != 1:
            self.problem("FROM requires either one or three arguments", instruction.line)

    def resolve_base(self, stage: _Stage) -> None:
        """convert.go buildDispatchStates: the operand through the lexer; an earlier stage, scratch or an image."""
        if stage.base is None:
            return
        expanded = self.expand(stage.base, stage.line)
        if expanded is None:
            stage.uses.append(BaseUse(stage.base, FROM, stage.name, stage.line, False, stage.platform))
        elif expanded is not MALFORMED:
            stage.base_stage = self.find_stage(expanded, stage.index)
            if stage.base_stage is None and expanded.lower() != "scratch":
                self.add_image(stage, expanded, FROM, stage.line, stage.platform)
        if stage.alias:
            self.names[stage.alias] = stage.index

    def run(self, stage: _Stage, instruction: _Instruction) -> None:
        """The images and stages one instruction of `stage` reads (convert.go toCommand, detectRunMount)."""
        if instruction.keyword == "COPY":
            for source in _flag_values(instruction.flags, "from"):
                self.copy_from(stage, source, instruction.line)
        elif instruction.keyword == "RUN":
            for mount in _flag_values(instruction.flags, "mount"):
                source = _mount_option(mount, {"from"})
                if source:
                    self.mount_from(
                        stage, source, _mount_option(mount, {"target", "dst", "destination"}), instruction.line
                    )

    def copy_from(self, stage: _Stage, source: str, line: int) -> None:
        """`--from` is not expanded: BuildKit refuses a value the lexer would change."""
        try:
            literal = _lex(source, {}, self.escape) == source
        except _LexError as error:
            self.problem(str(error), line)
            return
        if not literal:
            self.problem(
                "variable expansion is not supported for --from, "
                "define a new stage with FROM using ARG from global scope as a workaround",
                line,
            )
        elif _STAGE_INDEX.fullmatch(source):
            index = int(source)
            if 0 <= index < len(self.stages):
                stage.stage_uses.append(_StageUse(index, source, line))
            else:
                self.problem(f"invalid stage index {index}", line)
        elif (named := self.find_stage(source, len(self.stages))) is not None:
            stage.stage_uses.append(_StageUse(named, source, line))
        elif source.lower() != "scratch":
            self.add_image(stage, source, COPY_FROM, line)

    def mount_from(self, stage: _Stage, raw: str, target: str | None, line: int) -> None:
        source = self.expand(raw, line, quotes=False)
        if source is None:
            stage.uses.append(BaseUse(raw, MOUNT_FROM, stage.name, line, resolved=False))
        elif source is MALFORMED:
            return
        elif (named := self.find_stage(source, len(self.stages))) is not None:
            stage.stage_uses.append(_StageUse(named, source, line, target or ""))
        elif source.lower() != "scratch":
            self.add_image(stage, source, MOUNT_FROM, line)

    def find_stage(self, name: str, count: int) -> int | None:
        """The stage `name` (an alias among those resolved so far, or an index below `count`) names."""
        if name.isascii() and name.isdigit():  # str.isdigit is true for "²" too, which int() refuses
            return int(name) if int(name) < count else None
        return self.names.get(name.lower())

    def add_image(self, stage: _Stage, name: str, kind: str, line: int, platform: str | None = None) -> None:
        try:
            ref = parse_ref(name)
        except InvalidReference as error:
            self.problem(str(error), line)
            return
        stage.uses.append(BaseUse(ref.canonical, kind, stage.name, line, platform=platform))

    def check_order(self) -> None:
        """A cycle between stages, or a stage the last stage needs reading a later one: BuildKit's errors.

        dockerfile2llb/validations.go validateCircularDependency checks every stage; convert.go
        dispatchStages builds the stages the target (the last stage) needs in file order, and a
        stage that reads one not built yet fails. A later stage read by a stage the last one
        does not need is no error: that stage is never built.
        """
        cycle = self._cycle()
        if cycle:
            stage, line = cycle
            self.problem(f"circular dependency detected on stage: {self._build_name(stage)}", line)
            return
        needed = self._needed()
        for stage in self.stages:
            if stage.index not in needed:
                continue
            for use in stage.stage_uses:
                if use.stage <= stage.index:
                    continue
                if use.mount_target is None:
                    message = (
                        f"cannot copy from stage {json.dumps(use.written)}, "
                        f"it needs to be defined before current stage {json.dumps(self._build_name(stage))}"
                    )
                else:
                    message = (
                        f"cannot mount from stage {json.dumps(use.written)} to {json.dumps(use.mount_target)}, "
                        "stage needs to be defined before current command"
                    )
                self.problem(message, use.line)

    def _build_name(self, stage: _Stage) -> str:
        return stage.alias or f"stage-{stage.index}"

    def _cycle(self) -> tuple[_Stage, int] | None:
        """The first stage on a dependency cycle and the line of the use that starts it.

        Depth first like validations.go, without recursion: a file may hold thousands of stages.
        """
        visited: set[int] = set()
        for start in self.stages:
            if start.index in visited:
                continue
            visited.add(start.index)
            on_path = {start.index}
            path: list[tuple[int, Iterator[_StageUse], int | None]] = [(start.index, iter(start.stage_uses), None)]
            while path:
                index, uses, first_line = path[-1]
                use = next(uses, None)
                if use is None:
                    path.pop()
                    on_path.discard(index)
                    continue
                line = use.line if first_line is None else first_line
                if use.stage in on_path:
                    return start, line
                if use.stage not in visited:
                    visited.add(use.stage)
                    on_path.add(use.stage)
                    path.append((use.stage, iter(self.stages[use.stage].stage_uses), line))
        return None

    def _needed(self) -> set[int]:
        """Indexes of the stages building the last stage needs (convert.go allReachableStages)."""
        needed: set[int] = set()
        pending = [len(self.stages) - 1] if self.stages else []
        while pending:
            index = pending.pop()
            if index in needed:
                continue
            needed.add(index)
            stage = self.stages[index]
            if stage.base_stage is not None:
                pending.append(stage.base_stage)
            pending.extend(use.stage for use in stage.stage_uses)
        return needed


def _scan(text: str) -> tuple[list[_Instruction], str]:
    """Instructions in order and the escape character: a port of parser.go Parse.

    A byte-order mark before the first line is dropped; `# name=value` directives are read
    until the first other line; a comment line or an empty line inside a line continuation is
    skipped; heredoc bodies opened by RUN, COPY and ADD (also after ONBUILD) are no instructions.
    """
    lines = _LINE.findall(text)
    escape, reading_directives, seen = "\\", True, set()
    instructions: list[_Instruction] = []
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
        instruction = _split_instruction("".join(parts), escape, start)
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


def _split_instruction(line: str, escape: str, number: int) -> _Instruction:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    flags, args = _builder_flags(parts[1], escape) if len(parts) == 2 else ([], "")
    return _Instruction(parts[0].upper(), tuple(flags), args.strip(), number)


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


def _heredocs(instruction: _Instruction, escape: str) -> list[tuple[str, str, str]]:
    """The heredocs an instruction opens: (strip tabs, quote, delimiter) for each."""
    if instruction.keyword == "ONBUILD":
        instruction = _split_instruction(instruction.args, escape, instruction.line)
    if instruction.keyword not in _HEREDOC_INSTRUCTIONS or "<<" not in instruction.args:
        return []
    try:  # the JSON (exec) form opens none
        exec_form = json.loads(instruction.args)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any command line
        exec_form = None
    if isinstance(exec_form, list) and all(isinstance(item, str) for item in exec_form):
        return []
    return _HEREDOC.findall(instruction.args)


def _flag_values(flags: tuple[str, ...], name: str) -> list[str]:
    """Values of `--name=value` among an instruction's flags."""
    found = []
    for flag in flags:
        flag_name, _, value = flag[2:].partition("=")
        if flag_name == name and value:
            found.append(value)
    return found


def _mount_option(spec: str, keys: set[str]) -> str | None:
    """The value of one of `keys` in a `--mount` spec (`type=bind,from=img,target=/x`), if any."""
    if len(spec) > 100_000:  # csv refuses fields over 128 KiB; no real mount spec comes near
        raise ExpansionTooLarge(f"a --mount of {len(spec):,} characters")
    for option in next(csv.reader([spec])):
        key, _, value = option.partition("=")
        if key.strip().lower() in keys and value:
            return value
    return None


def _arg_declarations(value: str) -> list[tuple[str, str | None]]:
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


MAX_EXPANSION = 64 * 1024  # characters one expanded value may have
MAX_NESTING = 64  # `${A:-${B:-…}}` levels
MAX_TRIGGER_RUNS = 10_000  # ONBUILD instructions run, over all the stages built on a stage


class ExpansionTooLarge(Exception):
    """An ARG value, reference or ONBUILD triggers that expand past the bounds: a hostile or broken Dockerfile."""


class _Malformed:
    """What `_Walk.expand` returns for a word the lexer refuses (the problem is recorded)."""


MALFORMED = _Malformed()


class _LexError(Exception):
    """A word the shell lexer refuses, in BuildKit's words (an unclosed quote, `${}`)."""


def _lex(text: str, args: dict[str, str | None], escape: str = "\\", quotes: bool = True) -> str | None:
    """`text` as BuildKit's shell lexer reads one word (frontend/dockerfile/shell/lex.go).

    Quotes are removed (`'…'` literal, `"…"` expanded), the escape character escapes the next
    character, and `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:+a}`, `${VAR+a}`, `${VAR:?m}`
    are expanded. Returns None when the result depends on an ARG that has no value, or on a
    pattern operator (`#`, `%`, `/`) not evaluated here. With `quotes=False` (ARG defaults,
    already unquoted), quotes are plain text and the escape character only escapes `$`.
    Raises _LexError for a malformed word, ExpansionTooLarge past MAX_NESTING levels or
    MAX_EXPANSION characters (ARGs that double each other grow exponentially).
    """
    if "$" not in text and not (quotes and ("'" in text or '"' in text or escape in text)):
        return text  # nothing to expand, unquote or unescape: most words
    return _Lexer(text, args, escape, quotes).word(None, 0)


@dataclass
class _Lexer:
    text: str
    args: dict[str, str | None]
    escape: str
    quotes: bool
    pos: int = 0

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def word(self, stop: str | None, depth: int) -> str | None:
        """lex.go processStopOn: up to `stop` (consumed) or the end."""
        if depth > MAX_NESTING:
            raise ExpansionTooLarge(f"variable references nested more than {MAX_NESTING} deep")
        out = _Buffer()
        while (char := self.peek()) is not None:
            if char == stop:
                self.pos += 1
                return out.text()
            if char == "$":
                piece = self.dollar(depth)
            elif self.quotes and char == "'":
                piece = self.single_quoted()
            elif self.quotes and char == '"':
                piece = self.double_quoted(depth)
            else:
                self.pos += 1
                if char == self.escape and (self.quotes or self.peek() == "$"):
                    if self.peek() is None:
                        break  # an escape at the end is dropped
                    char = self.text[self.pos]
                    self.pos += 1
                piece = char
            out.add(piece)
        if stop is not None:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return out.text()

    def single_quoted(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise _LexError("unexpected end of statement while looking for matching single-quote")
        piece, self.pos = self.text[self.pos + 1 : end], end + 1
        return piece

    def double_quoted(self, depth: int) -> str | None:
        self.pos += 1
        out = _Buffer()
        while (char := self.peek()) != '"':
            if char is None:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if char == "$":
                out.add(self.dollar(depth))
                continue
            self.pos += 1
            if char == self.escape and self.peek() in ('"', "$", self.escape):
                char = self.text[self.pos]
                self.pos += 1
            out.add(char)
        self.pos += 1
        return out.text()

    def dollar(self, depth: int) -> str | None:
        """lex.go processDollar, without the pattern operators."""
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            return self.args.get(name) if name else "$"
        self.pos += 1
        if self.peek() is None:
            raise _LexError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        operator = self.peek()
        self.pos += 1
        if operator is None:
            raise _LexError("syntax error: missing '}'")
        if operator == "}":
            return self.args.get(name)
        colon = operator == ":"
        if colon:
            operator = self.peek()
            self.pos += 1
        if operator not in ("-", "+", "?", "#", "%", "/") or (colon and operator in "#%/"):
            raise _LexError(f"unsupported modifier ({':' if colon else ''}{operator or ''}) in substitution")
        try:
            word = self.word("}", depth + 1)
        except _LexError:
            if self.peek() is None:
                raise _LexError("syntax error: missing '}'") from None
            raise
        if operator in "#%/":
            return None
        value = self.args.get(name)
        present = bool(value) if colon else value is not None
        if operator == "-":
            return value if present else word
        if operator == "+":
            return word if present else ""
        return value if present else None  # `?`: an error in BuildKit, unresolved here

    def name(self) -> str:
        """lex.go processName: digits, one special parameter, or letters, digits and `_`."""
        start = self.pos
        char = self.peek()
        if char is not None and char.isdigit():
            while (char := self.peek()) is not None and char.isdigit():
                self.pos += 1
        elif char is not None and char in "@*#?-$!0":
            self.pos += 1
        else:
            while (char := self.peek()) is not None and (char.isalnum() or char == "_"):
                self.pos += 1
        return self.text[start : self.pos]


@dataclass
class _Buffer:
    """The pieces of a word; unresolved once any piece is (the rest of the word is still read)."""

    parts: list[str] = field(default_factory=list)
    size: int = 0
    resolved: bool = True

    def add(self, piece: str | None) -> None:
        if piece is None:
            self.resolved = False
            return
        self.parts.append(piece)
        self.size += len(piece)
        if self.size > MAX_EXPANSION:
            raise ExpansionTooLarge(f"a value expands past {MAX_EXPANSION:,} characters")

    def text(self) -> str | None:
        return "".join(self.parts) if self.resolved else None
