"""The stages of a Dockerfile and the images they read, as BuildKit walks them.

`Walk.add_stage` follows instructions/parse.go parseFrom; `resolve_base` and `run` follow
dockerfile2llb/convert.go (FROM operands through the shell lexer, `COPY --from` and
`RUN --mount=from=` resolved once every stage is known); `check_order` refuses what
dockerfile2llb refuses when it builds the last stage (validations.go, convert.go).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from image_factory.discovery.dockerfile.lexer import MALFORMED, LexError, Malformed, lex
from image_factory.discovery.dockerfile.model import COPY_FROM, FROM, MOUNT_FROM, BaseUse
from image_factory.discovery.dockerfile.parser import WHITESPACE, Instruction, flag_values, mount_option
from image_factory.enrolment.refs import InvalidReference, parse_ref
from image_factory.errors import Problem

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")  # instructions/parse.go validStageName
_STAGE_INDEX = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi reads as a number


@dataclass(frozen=True)
class StageUse:
    """A `COPY --from` or `RUN --mount=from=` naming another stage of the same file."""

    stage: int
    written: str
    line: int
    mount_target: str | None = None  # None for COPY


@dataclass
class Stage:
    index: int
    alias: str | None  # lowercase
    line: int
    base: str | None  # the FROM operand as written
    platform: str | None = None
    base_stage: int | None = None  # the earlier stage it builds on
    commands: list[Instruction] = field(default_factory=list)
    triggers: list[Instruction] = field(default_factory=list)  # its ONBUILD instructions
    stage_uses: list[StageUse] = field(default_factory=list)
    uses: list[BaseUse] = field(default_factory=list)  # the images it reads, in file order

    @property
    def name(self) -> str:
        """How `details` names the stage."""
        return self.alias or str(self.index)


@dataclass
class Walk:
    """What is known while reading a Dockerfile's stages."""

    file: str
    escape: str
    args: dict[str, str | None] = field(default_factory=dict)  # global ARGs; None: declared, no value
    stages: list[Stage] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)  # stage alias → index, once its FROM is resolved
    problems: list[Problem] = field(default_factory=list)

    def problem(self, message: str, line: int) -> None:
        self.problems.append(Problem(self.file, message, line))

    def expand(self, word: str, line: int, quotes: bool = True) -> str | Malformed | None:
        """`word` through the shell lexer with the global ARGs; None when it depends on one without a value."""
        try:
            return lex(word, self.args, self.escape, quotes)
        except LexError as error:
            self.problem(str(error), line)
            return MALFORMED

    def add_stage(self, instruction: Instruction) -> None:
        """A FROM: instructions/parse.go parseFrom and parseBuildStageName."""
        args = WHITESPACE.split(instruction.args) if instruction.args else []
        platforms = flag_values(instruction.flags, "platform")
        stage = Stage(
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

    def resolve_base(self, stage: Stage) -> None:
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

    def run(self, stage: Stage, instruction: Instruction) -> None:
        """The images and stages one instruction of `stage` reads (convert.go toCommand, detectRunMount)."""
        if instruction.keyword == "COPY":
            for source in flag_values(instruction.flags, "from"):
                self.copy_from(stage, source, instruction.line)
        elif instruction.keyword == "RUN":
            for mount in flag_values(instruction.flags, "mount"):
                source = mount_option(mount, {"from"})
                if source:
                    self.mount_from(
                        stage, source, mount_option(mount, {"target", "dst", "destination"}), instruction.line
                    )

    def copy_from(self, stage: Stage, source: str, line: int) -> None:
        """`--from` is not expanded: BuildKit refuses a value the lexer would change."""
        try:
            literal = lex(source, {}, self.escape) == source
        except LexError as error:
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
                stage.stage_uses.append(StageUse(index, source, line))
            else:
                self.problem(f"invalid stage index {index}", line)
        elif (named := self.find_stage(source, len(self.stages))) is not None:
            stage.stage_uses.append(StageUse(named, source, line))
        elif source.lower() != "scratch":
            self.add_image(stage, source, COPY_FROM, line)

    def mount_from(self, stage: Stage, raw: str, target: str | None, line: int) -> None:
        source = self.expand(raw, line, quotes=False)
        if source is None:
            stage.uses.append(BaseUse(raw, MOUNT_FROM, stage.name, line, resolved=False))
        elif source is MALFORMED:
            return
        elif (named := self.find_stage(source, len(self.stages))) is not None:
            stage.stage_uses.append(StageUse(named, source, line, target or ""))
        elif source.lower() != "scratch":
            self.add_image(stage, source, MOUNT_FROM, line)

    def find_stage(self, name: str, count: int) -> int | None:
        """The stage `name` (an alias among those resolved so far, or an index below `count`) names."""
        if name.isascii() and name.isdigit():  # str.isdigit is true for "²" too, which int() refuses
            return int(name) if int(name) < count else None
        return self.names.get(name.lower())

    def add_image(self, stage: Stage, name: str, kind: str, line: int, platform: str | None = None) -> None:
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

    def _build_name(self, stage: Stage) -> str:
        return stage.alias or f"stage-{stage.index}"

    def _cycle(self) -> tuple[Stage, int] | None:
        """The first stage on a dependency cycle and the line of the use that starts it.

        Depth first like validations.go, without recursion: a file may hold thousands of stages.
        """
        visited: set[int] = set()
        for start in self.stages:
            if start.index in visited:
                continue
            visited.add(start.index)
            on_path = {start.index}
            path: list[tuple[int, Iterator[StageUse], int | None]] = [(start.index, iter(start.stage_uses), None)]
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
