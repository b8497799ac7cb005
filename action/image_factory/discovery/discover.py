"""The `discover` job at the edges: read images.yaml, Dockerfiles and state; write the new state."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from image_factory import timestamps
from image_factory.discovery.dockerfile import Discovery, find_bases
from image_factory.discovery.merge import Merge, merge_state
from image_factory.enrolment.config import CONFIG_FILE, load_config
from image_factory.enrolment.model import Config, Source
from image_factory.errors import FactoryError, Problem
from image_factory.speed import parallel
from image_factory.state import index, runtime_events
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


def _checkout(root: Path, source: Source, source_root: Path | None, checkouts: dict[str, Path] | None) -> Path | None:
    """The folder of a managed image's source repository: a local one inside the factory, a
    github one its checkout (`checkouts[owner/name]`, a team's own in its action, or
    `source_root/owner/name`); None when no checkout is at hand."""
    if source.provider == "local":
        return root / source.repo
    checkout = (checkouts or {}).get(source.repo)
    if checkout is None and source_root is not None:
        checkout = source_root / source.repo
    return checkout if checkout is not None and checkout.is_dir() else None


def _real(path: str, memo: dict[str, str]) -> str:
    """os.path.realpath(path) for an absolute path, with the resolved folders above it
    remembered: a fleet's Dockerfiles share most of their folders, and resolving each from the
    root costs a stat per folder."""
    parent, name = os.path.split(path)
    if not name or parent == path:
        return os.path.realpath(path)
    real_parent = memo.get(parent)
    if real_parent is None:
        real_parent = memo[parent] = _real(parent, memo)
    candidate = os.path.join(real_parent, name)
    return os.path.realpath(candidate) if name in (".", "..") or os.path.islink(candidate) else candidate


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _escapes(path: Path, repository: Path, root: Path, local: bool, memo: dict[str, str]) -> bool:
    """Whether `path` (or its repository folder) leads outside where it must stay, through a
    symlink: the factory for a local repository, the repository for its Dockerfile."""
    real_repository = _real(os.path.abspath(repository), memo)
    if local and not _inside(real_repository, _real(os.path.abspath(root), memo)):
        return True
    return not _inside(_real(os.path.abspath(path), memo), real_repository)


MAX_DOCKERFILE_BYTES = 1024 * 1024
NOT_FOUND = "not found"
# The most distinct images one Dockerfile may build on (images.yaml defaults.maxBases): each becomes
# a watched image with a Warehouse polling its registry, so 10,000 FROM lines must not make 10,000.
DEFAULT_MAX_BASES = 50


def read_discoveries(
    root: Path,
    config: Config,
    source_root: Path | None,
    checkouts: dict[str, Path] | None = None,
    only: set[str] | None = None,
    missing_ok: bool = False,
    read: dict[str, dict] | None = None,
    problems: list[Problem] | None = None,
) -> dict[str, Discovery | None]:
    """Discovery for each managed image whose Dockerfile can be read (of `only`, when given);
    every problem reported at once, or, with `problems`, added to it: an image whose Dockerfile
    was refused then has None, as one with no checkout (it keeps its recorded bases). With
    `missing_ok`, a Dockerfile gone from its checkout is recorded as missing (a team removed it)
    instead of being an error. `read`, when given, gets each image's `dockerfile_record` (for
    state/discovered.json; a refused one's without its digest, so the next run reads it again).
    A large fleet's Dockerfiles are read and parsed half in a second process."""
    images = [image for image in config.managed if only is None or image.name in only]
    limit = config.settings.get("defaults", {}).get("maxBases", DEFAULT_MAX_BASES)
    items = [(image.name, image.source) for image in images]
    middle = len(items) // 2
    worthwhile = middle >= parallel.WORTHWHILE_FILES
    with parallel.background(
        _read_some, root, items[middle:], source_root, checkouts, missing_ok, limit, worthwhile=worthwhile
    ) as rest:
        found = _read_some(root, items[:middle], source_root, checkouts, missing_ok, limit)
        found += rest.result()
    discoveries: dict[str, Discovery | None] = {image.name: None for image in config.managed}
    found_problems: list[Problem] = []
    by_name = {image.name: image for image in images}
    for name, outcome, record, trouble in found:
        if isinstance(outcome, str):  # not found: said with the image's line in images.yaml
            image = by_name[name]
            trouble = [Problem(config.file, f"Dockerfile of {name!r} not found: {outcome}", image.line, "images")]
            outcome = None
        if read is not None:
            read[name] = {**record, "sha256": None} if trouble else record
        discoveries[name] = outcome
        found_problems += trouble
    if found_problems and problems is None:
        raise FactoryError(found_problems)
    if problems is not None:
        problems += found_problems
    return discoveries


def _read_some(
    root: Path,
    items: list[tuple[str, Source]],
    source_root: Path | None,
    checkouts: dict[str, Path] | None,
    missing_ok: bool,
    limit: int,
) -> list[tuple[str, Discovery | str | None, dict, list[Problem]]]:
    """For each managed image (name, source): its discovery (None: no checkout, or refused; a
    str: the Dockerfile's display path, not found), its `dockerfile_record`, and its problems.
    `limit`: the most distinct images one Dockerfile may build on."""
    memo: dict[str, str] = {}
    root = Path(os.path.abspath(root))  # relative paths would cost a getcwd() per use
    return [_read_one(root, name, source, source_root, checkouts, missing_ok, limit, memo) for name, source in items]


def _read_one(
    root: Path,
    name: str,
    source: Source,
    source_root: Path | None,
    checkouts: dict[str, Path] | None,
    missing_ok: bool,
    limit: int,
    memo: dict[str, str],
) -> tuple[str, Discovery | str | None, dict, list[Problem]]:
    record = dockerfile_record(source)
    checkout = _checkout(root, source, source_root, checkouts)
    if checkout is None:
        return name, None, record, []
    path = checkout / source.dockerfile
    display = _display(root, path)
    if _escapes(path, checkout, root, source.provider == "local", memo):
        # Said before anything is read, the same whether the target exists or not.
        return (
            name,
            None,
            record,
            [Problem(display, f"Dockerfile of {name!r} leads outside its repository (a symlink)")],
        )
    try:
        size = path.stat().st_size
        if size > MAX_DOCKERFILE_BYTES:  # not read at all: one team's file never stops the fleet
            return (
                name,
                None,
                record,
                [Problem(display, f"Dockerfile of {name!r} is {size:,} bytes, over 1 MiB: refused")],
            )
        data = path.read_bytes()
        record["sha256"] = hashlib.sha256(data).hexdigest()
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads it
    except (FileNotFoundError, NotADirectoryError):
        if missing_ok and source.provider == "github":
            return name, Discovery((), missing=True), record, []
        return name, display, record, []
    except (OSError, UnicodeDecodeError) as error:
        return name, None, record, [Problem(display, f"cannot read Dockerfile of {name!r}: {error}")]
    try:
        found = find_bases(text, source.build_args, display)
    except FactoryError as error:
        return name, None, record, list(error.problems)
    distinct = {use.ref for use in found.uses}
    if len(distinct) > limit:  # each would be a watched image, a Warehouse polling its registry
        message = f"Dockerfile of {name!r} builds on {len(distinct):,} distinct images, over defaults.maxBases"
        return name, None, record, [Problem(display, f"{message} ({limit}) in {CONFIG_FILE}: refused")]
    return name, found, record, []


def dockerfile_record(source: Source) -> dict:
    """What state/discovered.json keeps of a managed image's Dockerfile: its provider, its path from
    the factory (local) or from a --source-root (github), and the sha256 of the bytes last read."""
    return {"provider": source.provider, "path": f"{source.repo}/{source.dockerfile}", "sha256": None}


def _as_read(root: Path, source_root: Path | None, record: dict) -> bool:
    """Whether a Dockerfile is as discover last read it, so that reading it again changes nothing."""
    if record.get("provider") not in ("local", "github") or not isinstance(record.get("path"), str):
        return False
    local = record["provider"] == "local"
    if not local and source_root is None:
        return True  # no checkout: discover keeps the bases it recorded
    path = (root if local else source_root) / str(record.get("path"))
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == record.get("sha256")
    except OSError:
        # a github checkout that is not here keeps its recorded bases; anything else is an error
        return not local and not (source_root / str(record.get("path")).split("/")[0]).exists()


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
    return all(_as_read(root, source_root, record) for record in read.dockerfiles.values())


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
    listing = _state_listing(root) - {path for path, text in changes.items() if text is None}
    listing |= {path for path, text in changes.items() if text is not None}
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


def _display(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
