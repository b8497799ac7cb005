"""The `discover` job at the edges: read images.yaml, Dockerfiles and state; write the new state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import parallel, runtime_events, timestamps
from .config import load_config
from .dockerfile import Discovery, find_bases
from .errors import FactoryError, Problem
from .files import apply_changes
from .merge import Merge, merge_state
from .model import Config, EnrolledImage
from .state import State, assemble, journal, load_files, load_state, render, state_files, stray_files

if TYPE_CHECKING:
    from .registry import RegistryClient


@dataclass
class Outcome:
    """What a run of discover did (or, dry, would do)."""

    config: Config
    merge: Merge
    written: list[str]
    unchanged: list[str]
    removed: list[str]


def dockerfile_path(
    root: Path, image: EnrolledImage, source_root: Path | None, checkouts: dict[str, Path] | None = None
) -> Path | None:
    """Where the Dockerfile of a managed image is on this machine; None when no checkout is at hand.

    A github source is read from `checkouts[owner/name]` (a team's own checkout, in its action)
    or from `source_root/owner/name`.
    """
    checkout = repository_path(root, image, source_root, checkouts)
    return checkout / image.source.dockerfile if checkout is not None else None


def repository_path(
    root: Path, image: EnrolledImage, source_root: Path | None, checkouts: dict[str, Path] | None = None
) -> Path | None:
    """The folder of a managed image's source repository: a local one inside the factory, a
    github one its checkout; None when no checkout is at hand."""
    source = image.source
    if source.provider == "local":
        return root / source.repo
    checkout = (checkouts or {}).get(source.repo)
    if checkout is None and source_root is not None:
        checkout = source_root / source.repo
    return checkout if checkout is not None and checkout.is_dir() else None


def _escapes(path: Path, repository: Path, root: Path, local: bool) -> bool:
    """Whether `path` (or its repository folder) leads outside where it must stay, through a
    symlink: the factory for a local repository, the repository for its Dockerfile."""
    real_repository = repository.resolve()
    if local and not real_repository.is_relative_to(root.resolve()):
        return True
    return not path.resolve().is_relative_to(real_repository)


MAX_DOCKERFILE_BYTES = 1024 * 1024


def read_discoveries(
    root: Path,
    config: Config,
    source_root: Path | None,
    checkouts: dict[str, Path] | None = None,
    only: set[str] | None = None,
    missing_ok: bool = False,
) -> dict[str, Discovery | None]:
    """Discovery for each managed image whose Dockerfile can be read (of `only`, when given);
    every problem reported at once. With `missing_ok`, a Dockerfile gone from its checkout is
    recorded as missing (a team removed it) instead of being an error."""
    discoveries: dict[str, Discovery | None] = {}
    problems: list[Problem] = []
    for image in config.managed:
        if only is not None and image.name not in only:
            discoveries[image.name] = None
            continue
        path = dockerfile_path(root, image, source_root, checkouts)
        if path is None:
            discoveries[image.name] = None
            continue
        display = _display(root, path)
        repository = repository_path(root, image, source_root, checkouts)
        if _escapes(path, repository, root, image.source.provider == "local"):
            # Said before anything is read, the same whether the target exists or not.
            problems.append(Problem(display, f"Dockerfile of {image.name!r} leads outside its repository (a symlink)"))
            continue
        try:
            size = path.stat().st_size
            if size > MAX_DOCKERFILE_BYTES:  # not read at all: one team's file never stops the fleet
                message = f"Dockerfile of {image.name!r} is {size:,} bytes, over 1 MiB: refused"
                problems.append(Problem(display, message))
                continue
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            if missing_ok and image.source.provider == "github":
                discoveries[image.name] = Discovery((), missing=True)
                continue
            problems.append(
                Problem(config.file, f"Dockerfile of {image.name!r} not found: {display}", image.line, "images")
            )
            continue
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem(display, f"cannot read Dockerfile of {image.name!r}: {error}"))
            continue
        try:
            discoveries[image.name] = find_bases(text, image.source.build_args, display)
        except FactoryError as error:
            problems.extend(error.problems)
    if problems:
        raise FactoryError(problems)
    return discoveries


def discover(
    root: Path,
    source_root: Path | None = None,
    *,
    dry_run: bool = False,
    registry: RegistryClient | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Bring state/ in line with images.yaml and the Dockerfiles; with a registry client, also
    record the digest each watched tag points at now. Nothing is written on any error."""
    config = load_config(root)
    paths = state_files(root)
    # A large state loads in a second process while this one reads the Dockerfiles.
    with parallel.background(load_files, root, paths, worthwhile=len(paths) >= parallel.WORTHWHILE_FILES) as loaded:
        discoveries = read_discoveries(root, config, source_root)
        old = assemble(loaded.result())
    merge = merge_state(config, discoveries, old)
    if registry is not None:
        resolve_digests(merge.state, registry, now or timestamps.now())
    changes, unchanged = changed_files(root, merge, old)
    if not dry_run:
        apply_changes({root / path: text for path, text in changes.items()}, journal(root))
        for stray in stray_files(root):
            stray.unlink(missing_ok=True)
    written = sorted(path for path, text in changes.items() if text is not None)
    return Outcome(config, merge, written, unchanged, merge.removed)


def resolve_digests(state: State, registry: RegistryClient, now: datetime) -> None:
    """Ask the registry what every watched tag points at; a new digest joins the history, first
    seen now. Every tag is resolved before any state changes, so an error changes nothing."""
    watched = [base for base in state.base_images.values() if base.warehouse and base.ref.tag]
    resolved = {base.ref.canonical: registry.resolve(base.ref).digest for base in watched}
    for base in watched:
        base.runtime = runtime_events.record_sighting(base.runtime, resolved[base.ref.canonical], now, "registry")


def prune(root: Path, *, dry_run: bool = False) -> list[str]:
    """Delete the state files nothing in images.yaml refers to any more; returns their paths."""
    config = load_config(root)
    old = load_state(root)
    merge = merge_state(config, {image.name: None for image in config.managed}, old)
    if not dry_run:
        apply_changes({root / path: None for path in merge.orphans}, journal(root))
    return merge.orphans


def load_model(root: Path) -> tuple[Config, State]:
    """images.yaml and state/ checked and merged: what every generator reads.

    images.yaml wins; the bases come from state (as last discovered). Orphaned state files are
    left out. Raises FactoryError on a schema violation or a dependency cycle.
    """
    problems = []
    paths = state_files(root)
    # A large state loads mostly in a second process while this one reads images.yaml (about
    # half as long as all the state files) and the rest: both finish at about the same time.
    cut = len(paths) * 2 // 5
    worthwhile = len(paths) - cut >= parallel.WORTHWHILE_FILES
    with parallel.background(load_files, root, paths[cut:], worthwhile=worthwhile) as rest:
        try:
            config = load_config(root)
        except FactoryError as error:
            problems.extend(error.problems)
        loaded = load_files(root, paths[:cut])
        loaded += rest.result()
    try:
        state = assemble(loaded)
    except FactoryError as error:
        problems.extend(error.problems)
    if problems:
        raise FactoryError(problems)
    merge = merge_state(config, {image.name: None for image in config.managed}, state)
    return config, merge.state


def changed_files(root: Path, merge: Merge, old: State) -> tuple[dict[str, str | None], list[str]]:
    """Files whose content changes (None: delete)."""
    loaded = {entry.path: entry for entry in old.entries()}
    changes: dict[str, str | None] = {}
    unchanged = []
    for entry in merge.state.entries():
        path, data = entry.path, entry.to_dict()
        previous = loaded.get(path)
        if previous is not None and previous.to_dict() == data:
            unchanged.append(path)  # same data as the file holds: no need to render it
            continue
        text = render(data)
        current = root / path
        if current.exists() and current.read_text(encoding="utf-8") == text:
            unchanged.append(path)
        else:
            changes[path] = text
    for path in merge.removed:
        changes[path] = None
    return changes, sorted(unchanged)


def _display(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
