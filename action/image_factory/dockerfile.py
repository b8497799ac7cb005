"""Base-image discovery: every external image a Dockerfile builds on, resolved like BuildKit does.

dockerfile-parse splits the file into instructions (escape directive, line continuations,
comments, any case); this module adds what it does not do: heredoc bodies, ARG expansion in
`FROM`, stage aliases and `COPY --from` / `RUN --mount=from=` dependencies.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from .errors import FactoryError, Problem
from .refs import InvalidReference, parse_ref

FROM, COPY_FROM, MOUNT_FROM = "from", "copy-from", "mount-from"

_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_HEREDOC_INSTRUCTIONS = {"RUN", "COPY", "ADD"}
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
class Discovery:
    """What one Dockerfile builds on, every use in file order."""

    uses: tuple[BaseUse, ...]
    missing: bool = False  # the checkout no longer has the Dockerfile

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
        return _find_bases(text, build_args, file)
    except ExpansionTooLarge as error:
        raise FactoryError(Problem(file, f"refused: {error}")) from None


def _find_bases(text: str, build_args: dict[str, str] | None, file: str) -> Discovery:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")))
    structure = parser.structure  # a property that re-parses the file on every access
    walk = _Walk(file, _escape_char(structure))
    build_args = build_args or {}
    for instruction in _instructions(structure, parser.lines):
        keyword, value, line = instruction["instruction"], instruction["value"], instruction["startline"] + 1
        if keyword == "ARG" and not walk.stages:
            for name, default in _arg_declarations(value):
                if name in build_args:
                    walk.args[name] = build_args[name]
                else:
                    walk.args[name] = None if default is None else _expand(default, walk.args, walk.escape)
        elif keyword == "FROM":
            image, alias, platform = _parse_from(value)
            if image is None:
                walk.problems.append(Problem(file, "FROM without an image", line))
                continue
            walk.use(image, FROM, alias or str(len(walk.stages)), line, platform)
            walk.stages.append(alias)
        elif keyword == "COPY" and walk.stages:
            for source in _flag_values(value, "from"):
                walk.use(source, COPY_FROM, walk.current_stage, line)
        elif keyword == "RUN" and walk.stages:
            for mount in _flag_values(value, "mount"):
                source = _mount_source(mount)
                if source:
                    walk.use(source, MOUNT_FROM, walk.current_stage, line)
    if not walk.stages and not walk.problems:
        walk.problems.append(Problem(file, "no FROM instruction: not a Dockerfile"))
    if walk.problems:
        raise FactoryError(walk.problems)
    return Discovery(tuple(walk.uses))


@dataclass
class _Walk:
    """What is known while reading a Dockerfile top to bottom."""

    file: str
    escape: str
    args: dict[str, str | None] = field(default_factory=dict)  # global ARGs; None: declared, no value
    stages: list[str | None] = field(default_factory=list)  # alias (lowercase) of each stage so far
    uses: list[BaseUse] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def current_stage(self) -> str:
        return self.stages[-1] or str(len(self.stages) - 1)

    def is_stage(self, name: str) -> bool:
        if name.isdigit():
            return int(name) < len(self.stages)
        return name.lower() in self.stages

    def use(self, raw: str, kind: str, stage: str, line: int, platform: str | None = None) -> None:
        """Record the image `raw` names; a stage or `scratch` is no image, an invalid one a problem."""
        expanded = _expand(raw, self.args, self.escape)
        if expanded is None:
            self.uses.append(BaseUse(raw, kind, stage, line, resolved=False, platform=platform))
            return
        if self.is_stage(expanded) or expanded.lower() == "scratch":
            return
        try:
            ref = parse_ref(expanded)
        except InvalidReference as error:
            self.problems.append(Problem(self.file, str(error), line))
            return
        self.uses.append(BaseUse(ref.canonical, kind, stage, line, platform=platform))


def _instructions(structure: list[dict], lines: list[str]) -> list[dict]:
    """Instructions in order, without comments and without anything inside a heredoc body."""
    result = []
    skip_through = -1
    for instruction in structure:
        if instruction["startline"] <= skip_through or instruction["instruction"] == "COMMENT":
            continue
        result.append(instruction)
        if instruction["instruction"] in _HEREDOC_INSTRUCTIONS:
            skip_through = max(skip_through, _heredoc_end(lines, instruction))
    return result


def _heredoc_end(lines: list[str], instruction: dict) -> int:
    """Index of the last line of the heredoc bodies opened by `instruction` (or its own last line)."""
    end = instruction["endline"]
    for strip_tabs, _quote, delimiter in _HEREDOC.findall(instruction["value"]):
        for index in range(end + 1, len(lines)):
            candidate = lines[index].rstrip("\r\n")
            if strip_tabs:
                candidate = candidate.lstrip("\t")
            if candidate == delimiter:
                end = index
                break
        else:
            return len(lines)  # unterminated: the rest of the file is body
    return end


def _escape_char(structure: list[dict]) -> str:
    for instruction in structure:
        if instruction["instruction"] != "COMMENT":
            break
        match = re.match(r"^escape\s*=\s*([\\`])\s*$", instruction["value"], re.I)
        if match:
            return match.group(1)
    return "\\"


def _parse_from(value: str) -> tuple[str | None, str | None, str | None]:
    """`--platform=$P python:3 AS build` → (image, alias in lowercase, platform)."""
    tokens = value.split()
    platform = None
    while tokens and tokens[0].startswith("--"):
        flag = tokens.pop(0)
        if flag.startswith("--platform="):
            platform = flag.split("=", 1)[1]
    if not tokens:
        return None, None, platform
    alias = tokens[2].lower() if len(tokens) >= 3 and tokens[1].lower() == "as" else None
    return tokens[0], alias, platform


def _flag_values(value: str, flag: str) -> list[str]:
    """Values of `--flag=value` among the leading flags of an instruction."""
    found = []
    for token in value.split():
        if not token.startswith("--"):
            break
        name, _, flag_value = token[2:].partition("=")
        if name == flag and flag_value:
            found.append(flag_value.strip("\"'"))
    return found


def _mount_source(spec: str) -> str | None:
    """The `from=` of a `--mount` spec (`type=bind,from=img,target=/x`), if any."""
    for option in next(csv.reader([spec])):
        key, _, field_value = option.partition("=")
        if key.strip().lower() == "from" and field_value:
            return field_value
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


class ExpansionTooLarge(Exception):
    """An ARG value or reference that expands past the bounds: a hostile or broken Dockerfile."""


def _expand(text: str, args: dict[str, str | None], escape: str = "\\", depth: int = 0) -> str | None:
    """Expand `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:+a}`, `${VAR+a}`, `${VAR:?m}`.

    Returns None when the result depends on an ARG that has no value. Raises ExpansionTooLarge
    past MAX_NESTING levels or MAX_EXPANSION characters (ARGs that double each other grow
    exponentially).
    """
    if depth > MAX_NESTING:
        raise ExpansionTooLarge(f"variable references nested more than {MAX_NESTING} deep")
    out, i, size = [], 0, 0
    while i < len(text):
        char = text[i]
        if char == escape and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
        elif char == "$" and i + 1 < len(text) and text[i + 1] == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                return None
            value = _expand_braced(text[i + 2 : end], args, escape, depth)
            if value is None:
                return None
            out.append(value)
            size += len(value)
            i = end + 1
        elif char == "$" and (match := _NAME.match(text, i + 1)):
            value = args.get(match.group())
            if value is None:
                return None
            out.append(value)
            size += len(value)
            i = match.end()
        else:
            out.append(char)
            size += 1
            i += 1
        if size > MAX_EXPANSION:
            raise ExpansionTooLarge(f"a value expands past {MAX_EXPANSION:,} characters")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _expand_braced(body: str, args: dict[str, str | None], escape: str, depth: int) -> str | None:
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])(.*))?", body, re.S)
    if not match:
        return None
    name, operator, word = match.groups()
    value = args.get(name)
    is_set = value is not None
    non_empty = bool(value)
    if operator is None:
        return value
    present = non_empty if operator.startswith(":") else is_set
    if operator.endswith("-"):
        return value if present else _expand(word, args, escape, depth + 1)
    if operator.endswith("+"):
        return _expand(word, args, escape, depth + 1) if present else ""
    return value if present else None  # `?`: an error in BuildKit, unresolved here
