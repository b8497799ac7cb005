"""Every external image a Dockerfile builds on: the parser, then the stage walk."""

from __future__ import annotations

from image_factory.discovery.dockerfile.lexer import MALFORMED, MAX_TRIGGER_RUNS, ExpansionTooLarge
from image_factory.discovery.dockerfile.model import Discovery, Overridden
from image_factory.discovery.dockerfile.parser import arg_declarations, scan, split_instruction
from image_factory.discovery.dockerfile.stages import Walk
from image_factory.errors import FactoryError, Problem


def find_bases(text: str, build_args: dict[str, str] | None = None, file: str = "Dockerfile") -> Discovery:
    """Every image `text` builds on. Build args override ARG defaults declared before the first FROM."""
    try:
        return _find_bases(text, build_args or {}, file)
    except ExpansionTooLarge as error:
        raise FactoryError(Problem(file, f"refused: {error}")) from None


def _find_bases(text: str, build_args: dict[str, str], file: str) -> Discovery:
    instructions, escape = scan(text)
    walk = Walk(file, escape)
    overridden: list[Overridden] = []
    for instruction in instructions:
        if instruction.keyword == "ARG" and not walk.stages:
            for name, default in arg_declarations(instruction.args):
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
            walk.stages[-1].triggers.append(split_instruction(instruction.args, escape, instruction.line))
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
