"""Human-readable summaries of what a command found or did. The core never prints; the CLI does."""

from __future__ import annotations

import re
from pathlib import Path

from image_factory.discovery.discover import Outcome
from image_factory.errors import Problem
from image_factory.rebuilds.planner import Plan
from image_factory.state.store import State
from image_factory.user_text import command_data, command_property, one_line


def discover_summary(outcome: Outcome, *, dry_run: bool = False) -> str:
    if outcome.config is None or outcome.merge is None:
        return (
            "images.yaml and every Dockerfile are as the last discover read them (state/discovered.json), and so "
            "are the state files: state/ is up to date, nothing written."
        )
    config, state = outcome.config, outcome.merge.state
    lines = [
        f"{config.file}: {len(config.managed)} managed, {len(config.external)} external images",
        "",
        "Managed images (rebuilt by the factory):",
    ]
    lines += _managed_lines(state, outcome.merge.not_checked)
    lines += ["", "Watched images (one Kargo Warehouse each):"]
    lines += _watched_lines(state)
    verb = "would write" if dry_run else "wrote"
    lines += [
        "",
        f"State: {len(outcome.written)} {'to write' if dry_run else 'written'}, "
        f"{len(outcome.unchanged)} unchanged, {len(outcome.removed)} {'to remove' if dry_run else 'removed'}.",
    ]
    lines += [f"  {verb} {path}" for path in outcome.written]
    lines += [f"  {'would remove' if dry_run else 'removed'} {path} (its data moved)" for path in outcome.removed]
    if outcome.merge.orphans:
        lines += ["", "No longer referenced by images.yaml (`image-factory prune` removes them):"]
        lines += [f"  {path}" for path in outcome.merge.orphans]
    return "\n".join(lines)


def _managed_lines(state: State, not_checked: list[str]) -> list[str]:
    if not state.images:
        return ["  (none)"]
    width = max(len(name) for name in state.images) + 2
    lines = []
    for name, image in state.images.items():
        lines.append(f"  {name.ljust(width)}{image.ref}")
        for base in image.base_images:
            via = f"managed image {base.image}" if base.image else base.kind
            stage = f", stage {base.stage}" if base.stage else ""
            lines.append(f"  {'':{width}}← {base.ref} ({via}{stage})")
        lines += [f"  {'':{width}}! unresolved: {text} (pass a build arg)" for text in image.unresolved]
        if name in not_checked:
            lines.append(f"  {'':{width}}(Dockerfile not read: no checkout; bases as last recorded)")
    return lines


def _watched_lines(state: State) -> list[str]:
    if not state.base_images:
        return ["  (none)"]
    width = max(len(ref) for ref in state.base_images) + 2
    lines = []
    for ref, base in state.base_images.items():
        if base.warehouse is None:
            watch = "not watched (digest-only reference)"
        elif base.warehouse.strategy == "Digest":
            watch = f"new digests of {base.warehouse.constraint}"
        else:
            patterns = ", ".join(base.warehouse.allow_tags_regexes) or "any tag"
            watch = f"{base.warehouse.strategy} over {patterns}"
        users = [d.image + (f"@{d.pinned_digest[:19]}…" if d.pinned_digest else "") for d in base.dependents]
        who = ", ".join(users) if users else "no dependents"
        enrolled = f"enrolled as {base.enrolled_as}; " if base.enrolled_as else ""
        if base.verify is not None:
            how = "keyless" if base.verify.keyless else "by key"
            watch += f", signatures verified {how}" + ("" if base.verify.required else " (advisory)")
        lines.append(f"  {ref.ljust(width)}{watch}; {enrolled}{who}")
    return lines


def problems_text(problems: list[Problem]) -> str:
    count = len(problems)
    return "\n".join(f"error: {problem}" for problem in problems) + (f"\n{count} problems found." if count > 1 else "")


_DIGEST = re.compile(r"sha256:([0-9a-f]{12})[0-9a-f]{52}")


def _short(text: str) -> str:
    """Digests cut for reading (JSON keeps them whole)."""
    return _DIGEST.sub(r"sha256:\1…", text)


def plan_text(plan: Plan) -> str:
    lines = []
    now = [item for item in plan.due if item.wave == 1]
    later = [item for item in plan.due if item.wave > 1]
    lines.append("Due now:" if now else "Nothing is due now.")
    for item in now:
        manual = "" if item.auto else " [autoRebuild off: promote or dispatch by hand]"
        lines.append(
            f"  {item.image} ← {item.base} @ {_short(item.digest)}{manual}\n      {_short(one_line(item.reason))}"
        )
    if later:
        lines.append("Due after their ancestors are rebuilt:")
        lines += [f"  wave {item.wave}: {item.image} ← {item.base} @ {_short(item.digest)}" for item in later]
    if plan.pending:
        lines.append("Pending:")
        for item in plan.pending:
            if item.after:
                lines.append(f"  {item.image} ← {item.base}: after {item.after}'s rebuild")
            else:
                newer = f" (then {item.later} newer digest{'s' * (item.later != 1)})" if item.later else ""
                lines.append(
                    f"  {item.image} ← {item.base} @ {_short(item.digest)} eligible at {item.eligible_at}{newer}"
                )
                if item.note:
                    lines.append(f"      {_short(one_line(item.note))}")
    if plan.blocked:
        lines.append("Blocked:")
        lines += [f"  {item.image}: {one_line(item.reason)}" for item in plan.blocked]
    if plan.held:
        lines.append("Held (never built on until this changes):")
        lines += [
            f"  {item.image} ← {item.base} @ {_short(item.digest)}: {one_line(item.reason)}" for item in plan.held
        ]
    return "\n".join(lines)


def annotations(problems: list[Problem], root: Path, workspace: Path | None = None) -> str:
    """The problems as GitHub Actions error annotations. A problem about a file in the checkout
    (`workspace`, default the current folder) is placed on it, by its path in the repository:
    GitHub maps nothing else (`../teams/…`, an absolute path, an event or flag name), so those
    keep their place in the message instead."""
    lines = []
    for problem in problems:
        text = f"{problem.field}: {problem.message}" if problem.field else problem.message
        path = _in_repository(problem.file, root, workspace or Path.cwd()) if problem.file else None
        if path is None:
            where = problem.file if problem.line is None else f"{problem.file}:{problem.line}"
            lines.append(f"::error::{command_data(f'{where}: {text}' if where else text)}")
            continue
        place = [f"file={command_property(path)}", *([f"line={problem.line}"] if problem.line else [])]
        lines.append(f"::error {','.join(place)}::{command_data(text)}")
    return "\n".join(lines)


def _in_repository(file: str, root: Path, workspace: Path) -> str | None:
    """`file` (relative to the factory `root`, or absolute) as a path inside `workspace`."""
    path = Path(file) if Path(file).is_absolute() else root / file
    if not path.is_file():
        return None
    try:
        return path.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return None
