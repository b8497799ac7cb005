"""The `discover` job at the edges: read images.yaml, Dockerfiles and state; write the new state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from image_factory import timestamps
from image_factory.discovery.dockerfiles import as_read, dockerfile_record, read_discoveries
from image_factory.discovery.merge import Merge, merge_state
from image_factory.enrolment.config import load_config
from image_factory.enrolment.model import Config
from image_factory.errors import FactoryError, Problem
from image_factory.speed import parallel
from image_factory.state import built_on, index, runtime_events
from image_factory.state.files import apply_changes, interrupted
from image_factory.state.store import (
    State,
    assemble,
    journal,
    load_files,
    load_halves,
    load_remembered,
    load_state,
    remember_written,
    render,
    state_files,
    stray_files,
)

if TYPE_CHECKING:
    from image_factory.edges.registry import RegistryClient


@dataclass
class Outcome:
    """What a run of discover did (or, dry, would do)."""

    config: Config | None  # None (and merge): nothing changed since the last discover, nothing read
    merge: Merge | None
    written: list[str]
    unchanged: list[str]
    removed: list[str]
    # Dockerfiles refused (not found, unreadable, invalid, over a bound): their images kept their
    # recorded bases, everything else was written; the command exits 1 with these.
    problems: list[Problem] = field(default_factory=list)


def _listing(paths) -> str:
    """A digest of the names of the state files (images and base images)."""
    return hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()


def _state_listing(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in state_files(root)}


def unchanged(root: Path, source_root: Path | None, digest: str) -> bool:
    """Whether a discover would change nothing: images.yaml, every Dockerfile and the set of state
    files are as the last discover left them (state/index.json, state/discovered.json), and no write
    was interrupted. Runtime data that events changed since is no concern of discover's."""
    read = index.read_discovered(root, digest)
    if read is None or index.read_index(root, digest) is None or index.read_graph(root, digest) is None:
        return False
    if read.listing is None or interrupted(journal(root)) or stray_files(root):
        return False
    if read.tool != index.MERGE:  # another version of the tool may merge otherwise
        return False
    if _listing(_state_listing(root)) != read.listing:
        return False
    return all(as_read(root, source_root, record) for record in read.dockerfiles.values())


def discover(
    root: Path,
    source_root: Path | None = None,
    *,
    dry_run: bool = False,
    registry: RegistryClient | None = None,
    now: datetime | None = None,
    full: bool = False,
) -> Outcome:
    """Bring state/ in line with images.yaml and the Dockerfiles; with a registry client, also
    record the digest each watched tag points at now. Nothing is written on any error. A rerun
    with nothing changed reads only images.yaml's bytes and the Dockerfiles' (see `unchanged`),
    unless `full`."""
    digest = index.config_digest(root)
    if not full and registry is None and digest is not None and unchanged(root, source_root, digest):
        return Outcome(None, None, [], [], [])
    config = load_config(root)
    paths = state_files(root)
    read: dict[str, dict] = {}
    problems: list[Problem] = []
    discoveries = read_discoveries(root, config, source_root, read=read, problems=problems)
    old = assemble(load_remembered(root, paths, lambda misses: load_halves(root, misses)))
    merge = merge_state(config, discoveries, old)
    if registry is not None:
        resolve_digests(merge.state, registry, now or timestamps.now())
    changes, unchanged_paths = changed_files(root, merge, old)
    changes.update(built_on.changes(root, merge.state))
    changes.update(index_changes(root, config, merge, read, changes))
    if not dry_run:
        apply_changes({root / path: text for path, text in changes.items()}, journal(root))
        for stray in stray_files(root):
            stray.unlink(missing_ok=True)
        entries = {entry.path: entry for entry in merge.state.entries()}
        remember_written(root, [(text, entries[path]) for path, text in changes.items() if path in entries and text])
    written = sorted(path for path, text in changes.items() if text is not None)
    return Outcome(config, merge, written, unchanged_paths, merge.removed, problems)


def index_changes(
    root: Path, config: Config, merge: Merge, read: dict[str, dict], changes: dict[str, str | None]
) -> dict[str, str]:
    """state/index.json, graph.json and discovered.json for the state `changes` leave, where they differ.
    `read`: the Dockerfiles read (`read_discoveries`); for the others, what was read before holds."""
    digest = index.config_digest(root)
    if digest is None:
        return {}
    previous = index.read_discovered(root, any_config=True)
    for name, record in read.items():
        kept = previous.dockerfiles.get(name) if previous is not None else None
        if record["sha256"] is None and kept is not None and kept.get("path") == record["path"]:
            read[name] = kept
    for image in config.managed:
        if image.name not in read:  # not even looked for
            kept = previous.dockerfiles.get(image.name) if previous is not None else None
            read[image.name] = kept or dockerfile_record(image.source)
    listed = {path: text for path, text in changes.items() if not path.startswith(f"{built_on.FOLDER}/")}
    listing = _state_listing(root) - {path for path, text in listed.items() if text is None}
    listing |= {path for path, text in listed.items() if text is not None}
    documents = {
        index.INDEX: index.make_index(config, digest, merge.orphans),
        index.GRAPH: index.make_graph(merge.state, digest),
        index.DISCOVERED: index.make_discovered(digest, read, _listing(listing)),
    }
    found = {}
    for path, document in documents.items():
        text = index.render(document)
        try:
            if (root / path).read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        found[path] = text
    return found


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
    if not dry_run and merge.orphans:
        changes: dict[Path, str | None] = {root / path: None for path in merge.orphans}
        digest = index.config_digest(root)
        current = index.read_index(root, digest)
        if current is not None:  # still for this images.yaml: it lists no orphans now
            changes[root / index.INDEX] = index.render(index.make_index(config, current.config_digest, []))
            read = index.read_discovered(root, digest)
            if read is not None:
                listing = _state_listing(root) - set(merge.orphans)
                changes[root / index.DISCOVERED] = index.render(replace(read, listing=_listing(listing)))
        apply_changes(changes, journal(root))
    return merge.orphans


def load_model(root: Path, *, settings_only: bool = False) -> tuple[Config, State]:
    """images.yaml and state/ checked and merged: what every generator reads.

    images.yaml wins; the bases come from state (as last discovered). Orphaned state files are
    left out. Raises FactoryError on a schema violation or a dependency cycle.

    `settings_only`: the caller needs images.yaml's settings, not its images. While the state
    index is current, state/ is what the merge would give (index.py), so neither images.yaml nor
    the merge is read or done again: a plan of a large fleet costs its state files only.
    """
    if settings_only and (fast := index.read_index(root)) is not None:
        paths = [path for path in state_files(root) if str(path.relative_to(root)) not in fast.orphans]
        state = assemble(load_remembered(root, paths, lambda misses: load_halves(root, misses)))
        return index.slim_config(fast), State(
            dict(sorted(state.images.items())), dict(sorted(state.base_images.items()))
        )
    problems = []
    paths = state_files(root)

    def parse(misses: list[Path]) -> list:
        # Many files load mostly in a second process while this one reads images.yaml (about
        # half as long as all the state files) and the rest: both finish at about the same time.
        cut = len(misses) * 2 // 5
        worthwhile = len(misses) - cut >= parallel.WORTHWHILE_FILES
        with parallel.background(load_files, root, misses[cut:], worthwhile=worthwhile) as rest:
            configs.append(_config_or_problems(root))
            return [*load_files(root, misses[:cut]), *rest.result()]

    configs: list[Config | list[Problem]] = []
    loaded = load_remembered(root, paths, parse)
    found = configs[0] if configs else _config_or_problems(root)  # else: every file was remembered
    config = None
    if isinstance(found, list):
        problems.extend(found)
    else:
        config = found
    try:
        state = assemble(loaded)
    except FactoryError as error:
        problems.extend(error.problems)
    if problems:
        raise FactoryError(problems)
    merge = merge_state(config, {image.name: None for image in config.managed}, state)
    return config, merge.state


def load_scope(root: Path, subjects: list[str]) -> tuple[Config, State]:
    """images.yaml's settings and the part of the merged state a plan after events about
    `subjects` (watched references, or managed images' names) needs (`index.closure`), with
    the images queued for any event's dispatch (`index.dispatch_queue`): read from those files
    alone while the index is current, else cut from the full load."""
    digest = index.config_digest(root)
    fast, graph = index.read_index(root, digest), index.read_graph(root, digest)
    retry = index.dispatch_queue(root)
    if fast is not None and graph is not None:
        scoped = index.scope(root, fast, graph, subjects, retry)
        if scoped is not None:
            return index.slim_config(fast), scoped
    config, state = load_model(root)
    scoped = index.state_closure(state, subjects, retry)
    if scoped is None:
        unknown = [s for s in subjects if index.state_closure(state, [s]) is None]
        raise FactoryError(
            Problem(
                "--base",
                f"{', '.join(map(repr, unknown))}: neither a watched image nor a managed image in {config.file}",
            )
        )
    return config, scoped


def _config_or_problems(root: Path) -> Config | list[Problem]:
    try:
        return load_config(root)
    except FactoryError as error:
        return list(error.problems)


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
