"""The state index: what a command about one image needs, without images.yaml and all of state/.

`discover`, `prune` and `open-pr` write three files beside the state files, in the same
journalled change:

- `state/index.json` (small: every event reads it): the digest of the images.yaml they merged,
  its settings (everything but its images), and the state files they left orphaned.
- `state/graph.json` (read by plans scoped to one event): who builds on each managed image.
- `state/discovered.json` (read by discover): a digest of each Dockerfile it read and of the
  list of state files it left.

While images.yaml has the digest the index records, state/ is what merging it gives (images.yaml
wins, and it has not changed since), so an event reads and writes only the files it touches;
otherwise, or when an index file is missing or unreadable, commands take the full load, which
is always right. `validate` checks both files against a full load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from image_factory.enrolment.config import CONFIG_FILE, config_with, source_of
from image_factory.enrolment.model import Config, EnrolledImage, Policy, VerifyPolicy
from image_factory.enrolment.refs import ImageRef, parse_ref
from image_factory.errors import FactoryError, Problem
from image_factory.state.store import (
    BASE_IMAGES_DIR,
    IMAGES_DIR,
    STATE_DIR,
    BaseImageState,
    ImageState,
    State,
    load_base_without_dependents,
    load_files,
    load_state,
    state_files,
)

INDEX = f"{STATE_DIR}/index.json"
GRAPH = f"{STATE_DIR}/graph.json"
DISCOVERED = f"{STATE_DIR}/discovered.json"
DISPATCH_QUEUE = f"{STATE_DIR}/dispatch-queue.json"
BUILT_ON_DIR = f"{STATE_DIR}/built-on"  # state.built_on
VERSION = 1
# Bump when discover would write state/ differently from the same images.yaml and Dockerfiles
# (merge.py, the state format): a rerun then reads and merges everything instead of saying
# "up to date".
MERGE = 2  # 2: state/built-on


@dataclass(frozen=True)
class Index:
    """state/index.json."""

    config_digest: str
    settings: dict
    orphans: frozenset[str] = frozenset()

    def to_dict(self) -> dict:
        return {
            "version": VERSION,
            "configDigest": self.config_digest,
            "settings": self.settings,
            "orphans": sorted(self.orphans),
        }


@dataclass(frozen=True)
class Graph:
    """state/graph.json: read by plans scoped to one event."""

    config_digest: str
    children: dict[str, list[str]]  # managed image → the managed images built on it

    def to_dict(self) -> dict:
        return {"version": VERSION, "configDigest": self.config_digest, "children": self.children}


@dataclass(frozen=True)
class Discovered:
    """state/discovered.json: what discover read, so that a rerun with nothing changed reads no more."""

    config_digest: str
    dockerfiles: dict[str, dict] = field(default_factory=dict)  # managed image → dockerfiles.dockerfile_record
    listing: str | None = None  # a digest of the names of the state files discover left
    tool: int | None = None  # the MERGE version of the discover that wrote it

    def to_dict(self) -> dict:
        return {
            "version": VERSION,
            "configDigest": self.config_digest,
            "listing": self.listing,
            "tool": self.tool,
            "dockerfiles": self.dockerfiles,
        }


def config_digest(root: Path) -> str | None:
    """The sha256 of images.yaml's bytes; None when there is no images.yaml."""
    try:
        return "sha256:" + hashlib.sha256((root / CONFIG_FILE).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def make_index(config: Config, digest: str, orphans: list[str]) -> Index:
    return Index(digest, config.settings, frozenset(orphans))


def make_graph(state: State, digest: str) -> Graph:
    children: dict[str, list[str]] = {}
    for image in state.images.values():
        for parent in sorted({base.image for base in image.base_images if base.image}):
            children.setdefault(parent, []).append(image.name)
    return Graph(digest, {name: sorted(names) for name, names in sorted(children.items())})


def make_discovered(digest: str, dockerfiles: dict[str, dict], listing: str) -> Discovered:
    return Discovered(digest, dict(sorted(dockerfiles.items())), listing, MERGE)


def render(document: Index | Graph | Discovered) -> str:
    """Sorted keys, one entry per line: a change diffs as the lines it changes."""
    return json.dumps(document.to_dict(), indent=0, sort_keys=True, separators=(",", ":")) + "\n"


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None


def read_index(root: Path, digest: str | None = None) -> Index | None:
    """The index, when it was written for images.yaml as it is now; else None (take the full load)."""
    data = _read_json(root / INDEX)
    digest = digest or config_digest(root)
    if data is None or digest is None or data.get("configDigest") != digest:
        return None
    try:
        return Index(data["configDigest"], dict(data["settings"]), frozenset(data["orphans"]))
    except (KeyError, TypeError, ValueError):
        return None


def _read_current(path: Path, digest: str | None, any_config: bool) -> dict | None:
    data = _read_json(path)
    if data is None or any_config:
        return data
    digest = digest or config_digest(path.parent.parent)
    return data if digest is not None and data.get("configDigest") == digest else None


def read_graph(root: Path, digest: str | None = None) -> Graph | None:
    """The graph, when it was written for images.yaml as it is now."""
    data = _read_current(root / GRAPH, digest, False)
    try:
        children = {str(name): [str(kid) for kid in kids] for name, kids in data["children"].items()}
        return Graph(data["configDigest"], children)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def read_discovered(root: Path, digest: str | None = None, *, any_config: bool = False) -> Discovered | None:
    """What discover read, when it was for images.yaml as it is now (or for any, `any_config`)."""
    data = _read_current(root / DISCOVERED, digest, any_config)
    try:
        dockerfiles = {str(name): dict(record) for name, record in data["dockerfiles"].items()}
        return Discovered(data["configDigest"], dockerfiles, data.get("listing"), data.get("tool"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def slim_config(index: Index, images: tuple[EnrolledImage, ...] = ()) -> Config:
    """The Config of the indexed images.yaml with only `images` (read from their state files)."""
    return config_with(index.settings, CONFIG_FILE, images)


def enrolled(image: ImageState) -> EnrolledImage:
    """A managed image's images.yaml entry, as its state file carries it (enrolment)."""
    enrolment = image.enrolment
    signing = enrolment.get("signing")
    return EnrolledImage(
        image.name,
        image.ref,
        Policy(enrolment["rebuildDelay"], enrolment["autoRebuild"], enrolment.get("scan")),
        source_of(enrolment["source"]),
        test=enrolment.get("test"),
        signing=VerifyPolicy.from_dict(signing) if signing is not None else None,
    )


def _load_one(root: Path, path: Path, dependents: bool = True) -> ImageState | BaseImageState | None:
    if not path.is_file():
        return None
    (loaded,) = load_files(root, [path]) if dependents else [load_base_without_dependents(root, path)]
    if isinstance(loaded, list):  # its problems: the same error the full load gives
        raise FactoryError(loaded)
    return loaded


def managed(root: Path, index: Index, name: str) -> ImageState | None:
    """Managed image `name` from its own state file; None when it is not one (or not a plain
    name: the full load says why)."""
    relative = f"{IMAGES_DIR}/{name}.yaml"
    if "/" in name or name.startswith(".") or relative in index.orphans:
        return None
    image = _load_one(root, root / relative)
    return image if isinstance(image, ImageState) and image.name == name else None


def watched(root: Path, index: Index, ref: ImageRef, dependents: bool = True) -> BaseImageState | None:
    """The watched image `ref` (a digest-free reference) from its own state file, if it has one;
    without `dependents`, read without them (`load_base_without_dependents`)."""
    relative = f"{BASE_IMAGES_DIR}/{ref.slug()}.yaml"
    if relative in index.orphans:
        return None
    base = _load_one(root, root / relative, dependents)
    return base if isinstance(base, BaseImageState) and base.ref.canonical == ref.canonical else None


def parents(root: Path, index: Index, image: ImageState) -> dict[str, ImageState]:
    """The managed images `image` is built on, by name, from their state files."""
    found = {}
    for name in sorted({base.image for base in image.base_images if base.image}):
        parent = managed(root, index, name)
        if parent is None:
            raise FactoryError(Problem(INDEX, f"state of {name!r}, a base of {image.name!r}, is missing"))
        found[name] = parent
    return found


def scope(root: Path, index: Index, graph: Graph, subjects: list[str], extra: list[str] = ()) -> State | None:
    """`closure` of `subjects` (and `extra`), read from the state files it names."""
    return closure(
        subjects,
        lambda name: managed(root, index, name),
        lambda ref, dependents: watched(root, index, ref, dependents),
        lambda name: graph.children.get(name, []),
        extra,
    )


def state_closure(state: State, subjects: list[str], extra: list[str] = ()) -> State | None:
    """`closure` of `subjects` (and `extra`) in a fully loaded state."""
    children: dict[str, list[str]] = {}
    for image in state.images.values():
        for parent in {base.image for base in image.base_images if base.image}:
            children.setdefault(parent, []).append(image.name)

    def watched_of(ref: ImageRef, dependents: bool) -> BaseImageState | None:
        base = state.base_images.get(ref.canonical)
        return base if base is None or dependents else replace(base, dependents=[])

    return closure(subjects, state.images.get, watched_of, children.get, extra)


def closure(
    subjects: list[str],
    image_of: Callable[[str], ImageState | None],
    watched_of: Callable[[ImageRef, bool], BaseImageState | None],
    children_of: Callable[[str], list[str] | None],
    extra: list[str] = (),
) -> State | None:
    """The part of state a plan after events about `subjects` needs: every managed image built
    on one (directly or through other managed images), their managed ancestors (whose failures
    block them and whose rebuilds come first), and every watched image all of these are built
    on. A subject: a managed image's name or a watched reference; None when one is neither.
    `extra`: managed images to plan as well (those gone from state are left out).
    `watched_of(ref, dependents)`: a watched image, with its dependents or not: of the watched
    images only the subjects' are read (nothing a plan reads needs the others')."""
    subject_bases: dict[str, BaseImageState] = {}
    start: list[str] = []
    for subject in subjects:
        if image_of(subject) is not None:
            start += list(children_of(subject) or [])
            continue
        try:
            ref = parse_ref(subject).without_digest()
        except ValueError:
            return None
        base = watched_of(ref, True) or watched_of(ref.with_tag(None), True)
        if base is None:
            return None
        subject_bases[base.ref.canonical] = base
        start += [dependent.image for dependent in base.dependents]
    images: dict[str, ImageState] = {}

    def take(pending: list[str], follow: Callable[[ImageState], list[str]]) -> bool:
        while pending:
            name = pending.pop()
            if name in images:
                continue
            image = image_of(name)
            if image is None:
                return False
            images[name] = image
            pending += follow(image)
        return True

    def parents(image: ImageState) -> list[str]:
        return [base.image for base in image.base_images if base.image]

    if not take(start, lambda image: list(children_of(image.name) or [])):
        return None
    for name in extra:
        if name not in images and (image := image_of(name)) is not None:
            images[name] = image
    if not take([name for image in list(images.values()) for name in parents(image)], parents):
        return None
    bases: dict[str, BaseImageState] = {}
    for image in images.values():
        for base in image.base_images:
            if base.image is None:
                ref = parse_ref(base.ref, default_tag=None).without_digest()
                if ref.canonical in bases:
                    continue
                if ref.canonical in subject_bases:
                    bases[ref.canonical] = subject_bases[ref.canonical]
                elif (found := watched_of(ref, False)) is not None:
                    bases[ref.canonical] = found
    return State(dict(sorted(images.items())), dict(sorted(bases.items())))


def foreign_files(root: Path) -> list[Path]:
    """Files under state/ image-factory never writes (an editor's `web.yaml~`, a stray note): never
    committed by `--push`, named by `validate`. Dot files are left to `store.stray_files` and to
    their owners (a `.gitkeep`)."""
    own = {INDEX, GRAPH, DISCOVERED, DISPATCH_QUEUE}
    folders = {IMAGES_DIR, BASE_IMAGES_DIR, BUILT_ON_DIR}
    found = []
    for folder, subfolders, names in os.walk(root / STATE_DIR):  # never into a symbolic link
        here = Path(folder)
        parent = here.relative_to(root).as_posix()
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [here / name for name in subfolders if f"{parent}/{name}" not in folders]
        subfolders[:] = [name for name in subfolders if f"{parent}/{name}" in folders]
        for name in names:
            path = f"{parent}/{name}"
            if name.startswith(".") or path in own:
                continue
            if parent in folders and name.endswith(".yaml") and not (here / name).is_symlink():
                continue
            if parent == BUILT_ON_DIR and name.endswith(".json") and not (here / name).is_symlink():
                continue
            found.append(here / name)
    return sorted(found)


def check(root: Path, config: Config, state: State) -> tuple[list[Problem], list[str]]:
    """`validate`'s check of the index against the full load: problems where an index that
    claims to be current disagrees with it (a command would read the wrong files), warnings
    where it is only out of date (commands take the full load)."""
    if not (root / STATE_DIR).is_dir():
        return [], []
    digest = config_digest(root)
    current, graph = read_index(root, digest), read_graph(root, digest)
    if current is None or graph is None:
        stale = "missing" if not (root / INDEX).exists() else "for another images.yaml, or unreadable"
        warning = f"{INDEX} is {stale}: events read all of state/ until `image-factory discover` writes it"
        return [], [warning]
    live = {entry.path for entry in state.entries()}
    on_disk = {str(path.relative_to(root)) for path in state_files(root)}
    problems = []
    # While the index is current, commands read state files as images.yaml's merge (a signing
    # policy, a source repository): a file that says otherwise was edited, and must not be trusted.
    written = {entry.path: entry for entry in load_state(root).entries()}
    for entry in state.entries():
        found = written.get(entry.path)
        if found is not None and found.to_dict() != entry.to_dict():
            message = f"differs from what {config.file} and the Dockerfiles make of it (edited by hand?): "
            problems.append(Problem(entry.path, message + "`image-factory discover --full` writes it again"))
    if current.settings != config.settings:
        problems.append(Problem(INDEX, f"its settings are not those of {config.file}: run `image-factory discover`"))
    if set(current.orphans) != on_disk - live:
        problems.append(Problem(INDEX, "its orphans are not the state files images.yaml no longer refers to"))
    expected = make_graph(state, digest).children
    if graph.children != expected:
        wrong = sorted(
            name for name in set(expected) | set(graph.children) if expected.get(name) != graph.children.get(name)
        )
        problems.append(
            Problem(
                GRAPH, f"who builds on {', '.join(wrong[:5])} disagrees with state/images: run `image-factory discover`"
            )
        )
    return problems, []


def dispatch_queue(root: Path) -> list[str]:
    """The managed images every dispatch after an event looks at, whatever the event is about
    (state/dispatch-queue.json): a build GitHub refused to dispatch, one waiting out a cascade
    delay. Nothing else would bring them up again."""
    try:
        names = json.loads((root / DISPATCH_QUEUE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def dispatch_queue_change(root: Path, looked_at: set[str], waiting: set[str]) -> dict[Path, str | None]:
    """state/dispatch-queue.json after a dispatch that looked at `looked_at` and found `waiting`
    still waiting, when it changes (None: nothing waits, the file goes)."""
    before = set(dispatch_queue(root))
    after = (before - looked_at) | waiting
    if after == before and (after or not (root / DISPATCH_QUEUE).exists()):
        return {}
    return {root / DISPATCH_QUEUE: json.dumps(sorted(after), indent=0) + "\n" if after else None}


def require_current(root: Path, command: str) -> None:
    """Refuse to act on state that is not images.yaml's as it is now: none at all, or made from
    another images.yaml (the index says which; `discover` writes it with state/). A command that
    went on would plan, publish or record from what images.yaml no longer says: a new image's
    bases never watched, a removed one still built."""
    digest = config_digest(root)
    if digest is None:
        return  # the command's own reading of images.yaml says what is wrong
    fix = "run `image-factory discover` (it reads images.yaml and the Dockerfiles and writes state/)"
    if not (root / STATE_DIR).is_dir():
        raise FactoryError(Problem(STATE_DIR, f"there is no state/ here, so {command} has nothing to act on: {fix}"))
    if read_index(root, digest) is None:
        from image_factory.enrolment.config import load_config

        load_config(root)  # an images.yaml with errors: those are the ones to fix first
        why = "is missing" if not (root / INDEX).exists() else "was written for another images.yaml"
        raise FactoryError(
            Problem(
                INDEX, f"{why}: state/ is not up to date with images.yaml, so {command} would act on old state: {fix}"
            )
        )
