"""State in git: one YAML file per managed image and per watched base or external image.

`state/images/<name>.yaml` and `state/base-images/<slug>.yaml`. This module defines their
model and reads and renders them; deciding what they should contain is `discovery.merge`'s job.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import yaml

from image_factory.enrolment import sanity, schemas
from image_factory.enrolment.expression_guard import with_expression_problems
from image_factory.enrolment.model import VerifyPolicy, WarehouseConfig
from image_factory.enrolment.refs import ImageRef, InvalidReference, parse_ref
from image_factory.enrolment.yaml_source import YamlDocument, load_yaml
from image_factory.errors import FactoryError, Problem
from image_factory.speed import parallel
from image_factory.state import block_yaml

STATE_DIR = "state"
IMAGES_DIR = f"{STATE_DIR}/images"
BASE_IMAGES_DIR = f"{STATE_DIR}/base-images"
JOURNAL = f"{STATE_DIR}/.journal"  # files.apply_changes: a write set in flight
_STRAY = re.compile(r"\..+\.(tmp|old)")
MAX_ATTEMPTS = 20
HEADER = "# Written by image-factory. Enrol images in images.yaml; runtime data here is kept.\n"


class HistoryEntry(TypedDict, total=False):
    digest: str
    firstSeen: str
    seenBy: str
    freight: str
    reportedBy: str
    expedited: dict  # {reason, at}
    verification: dict  # {verified, reason, at}
    rejected: dict  # {reason, at}
    accepted: dict  # {at}: an operator's unreject; its scan findings hold it no more
    scan: dict  # {scanner, findings: [{id, severity, package, fixed}], omitted, error, at}


class Build(TypedDict, total=False):
    result: str  # pending | success | failure
    startedAt: str
    finishedAt: str
    digest: str
    baseDigests: dict[str, str]
    runUrl: str
    signed: bool
    error: str
    reason: str  # why it was asked for, when not the plan (a rollback)
    reportedBy: str  # the GitHub account that sent the image-built event
    revisionTag: str  # the immutable tag the build's digest got (promote)
    adopted: bool  # not built by the factory: recorded by `adopt` as the image ran when enrolled


@dataclass
class Runtime:
    """What the factory learnt at run time. A config change never drops it; it moves with the image."""

    current_digest: str | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    last_build: Build | None = None
    attempts: list[Build] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "currentDigest": self.current_digest,
            "history": list(self.history),
            "lastBuild": self.last_build,
            "attempts": list(self.attempts[-MAX_ATTEMPTS:]),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Runtime:
        return cls(data["currentDigest"], list(data["history"]), data["lastBuild"], list(data["attempts"]))

    @property
    def empty(self) -> bool:
        return self == Runtime()


@dataclass(frozen=True)
class DiscoveredBase:
    """An image a managed image builds on; `image` names it when it is itself a managed image."""

    ref: str
    kind: str
    stage: str | None = None
    platform: str | None = None
    image: str | None = None

    def to_dict(self) -> dict:
        data = {"ref": self.ref, "kind": self.kind, "stage": self.stage}
        if self.platform:
            data["platform"] = self.platform
        if self.image:
            data["image"] = self.image
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DiscoveredBase:
        return cls(data["ref"], data["kind"], data.get("stage"), data.get("platform"), data.get("image"))


@dataclass
class ImageState:
    """state/images/<name>.yaml: a managed image."""

    name: str
    ref: ImageRef
    enrolment: dict
    base_images: list[DiscoveredBase]
    unresolved: list[str]
    runtime: Runtime = field(default_factory=Runtime)
    dockerfile_missing: bool = False
    bases_unknown: bool = False  # a github source whose Dockerfile no discover has read yet

    @property
    def path(self) -> str:
        return f"{IMAGES_DIR}/{self.name}.yaml"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "ref": self.ref.canonical,
            "enrolment": self.enrolment,
            "baseImages": [base.to_dict() for base in self.base_images],
            "unresolved": list(self.unresolved),
            **({"dockerfileMissing": True} if self.dockerfile_missing else {}),
            **({"basesUnknown": True} if self.bases_unknown else {}),
            "runtime": self.runtime.to_dict(),
        }


@dataclass(frozen=True)
class Dependent:
    image: str
    pinned_digest: str | None = None


@dataclass
class BaseImageState:
    """state/base-images/<slug>.yaml: a base image or an enrolled external image, watched by Kargo."""

    ref: ImageRef
    enrolled_as: str | None
    dependents: list[Dependent]
    warehouse: WarehouseConfig | None
    rebuild_delay: str | None = None
    auto_rebuild: bool | None = None
    runtime: Runtime = field(default_factory=Runtime)
    verify: VerifyPolicy | None = None

    @property
    def path(self) -> str:
        return f"{BASE_IMAGES_DIR}/{self.ref.slug()}.yaml"

    @property
    def verification_required(self) -> bool:
        return self.verify is not None and self.verify.required

    def to_dict(self) -> dict:
        data: dict = {
            "ref": self.ref.canonical,
            "registry": self.ref.registry,
            "repository": self.ref.repository,
            "tag": self.ref.tag,
            "enrolledAs": self.enrolled_as,
        }
        if self.rebuild_delay is not None:
            data["rebuildDelay"] = self.rebuild_delay
        if self.auto_rebuild is not None:
            data["autoRebuild"] = self.auto_rebuild
        data["dependents"] = [{"image": d.image, "pinnedDigest": d.pinned_digest} for d in self.dependents]
        data["warehouse"] = self.warehouse.to_dict() if self.warehouse else None
        if self.verify is not None:
            data["verify"] = self.verify.to_dict()
        data["runtime"] = self.runtime.to_dict()
        return data


@dataclass
class State:
    """Every state file, keyed by managed image name and by canonical base reference."""

    images: dict[str, ImageState] = field(default_factory=dict)
    base_images: dict[str, BaseImageState] = field(default_factory=dict)

    def entries(self) -> list[ImageState | BaseImageState]:
        return [*self.images.values(), *self.base_images.values()]

    def managed(self, name: str) -> ImageState:
        """The managed image `name` (given on the command line as --image), or a clear error."""
        image = self.images.get(name)
        if image is None:
            close = difflib.get_close_matches(name, list(self.images), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise FactoryError(Problem("--image", f"{name!r} is not a managed image in images.yaml{hint}"))
        return image


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    def ignore_aliases(self, data):
        return True


def render(data: dict) -> str:
    """Deterministic YAML: fixed key order, no aliases, no line wrapping (PyYAML's block style;
    block_yaml writes most files the same way, several times faster)."""
    fast = block_yaml.dump(data)
    if fast is not None:
        return HEADER + fast
    return HEADER + yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)


def state_files(root: Path) -> list[Path]:
    """Every state file under `root`: images, then base images, each by name."""
    return [
        *sorted((root / IMAGES_DIR).glob("*.yaml"), key=lambda p: p.name),
        *sorted((root / BASE_IMAGES_DIR).glob("*.yaml"), key=lambda p: p.name),
    ]


def journal(root: Path) -> Path:
    """Where the journal of a state write in flight lives."""
    return root / JOURNAL


def stray_files(root: Path) -> list[Path]:
    """Dot files under state/: what an interrupted write of an older version (or a power loss)
    left behind. Never committed (see gitops); `discover` removes them."""
    folders = [root / STATE_DIR, root / IMAGES_DIR, root / BASE_IMAGES_DIR, root / STATE_DIR / "built-on"]
    # only what this tool writes (`.<name>.<token>.tmp` or `.old`): a `.gitkeep` is someone's own
    found = [path for folder in folders if folder.is_dir() for path in folder.iterdir() if _STRAY.fullmatch(path.name)]
    return sorted(path for path in found if path.is_file())


def load_state(root: Path) -> State:
    """Read and check every state file under `root`; raises FactoryError naming file and line.

    Only files the state cache does not hold are parsed; many of them load in two processes,
    half each.
    """
    return assemble(load_remembered(root, state_files(root), lambda paths: load_halves(root, paths)))


def load_halves(root: Path, paths: list[Path]) -> list[ImageState | BaseImageState | list[Problem]]:
    """`load_files`, half in a second process when there are enough files."""
    middle = len(paths) // 2
    with parallel.background(load_files, root, paths[middle:], worthwhile=middle >= parallel.WORTHWHILE_FILES) as rest:
        first = load_files(root, paths[:middle])
        return [*first, *rest.result()]


def assemble(loaded: list[ImageState | BaseImageState | list[Problem]]) -> State:
    """The state of the files `load_files` read; raises FactoryError with every file's problems."""
    state, problems = State(), []
    for item in loaded:
        if isinstance(item, ImageState):
            state.images[item.name] = item
        elif isinstance(item, BaseImageState):
            state.base_images[item.ref.canonical] = item
        else:
            problems.extend(item)
    if problems:
        raise FactoryError(problems)
    return state


def load_files(root: Path, paths: list[Path]) -> list[ImageState | BaseImageState | list[Problem]]:
    """Each state file's content, or its problems."""
    loaded: list[ImageState | BaseImageState | list[Problem]] = []
    for path in paths:
        try:
            loaded.append(_load_image(root, path) if path.parent.name == "images" else _load_base(root, path))
        except FactoryError as error:
            loaded.append(error.problems)
    return loaded


def load_base_without_dependents(root: Path, path: Path) -> BaseImageState | list[Problem]:
    """A base image's state file read as `load_files` reads it, but for its dependents (left
    empty): a toolchain image's list of 20,000 dependents is most of its file, and a plan after
    an event about another image does not look at it. A file not as `render` wrote it, or with a
    problem, is read whole (so that its errors name the right lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    cut = _DEPENDENTS_BLOCK.sub("dependents: []\n", text, count=1) if text.startswith(HEADER) else None
    data = block_yaml.load(cut[len(HEADER) :]) if cut else None
    if data is not None:
        document = YamlDocument(str(path.relative_to(root)), data, cut)
        try:
            return _base(root, path, _checked(document, schemas.BASE_IMAGE_STATE))
        except FactoryError:
            pass
    return load_files(root, [path])[0]


# The `dependents:` list as `render` writes it: its items, and the lines of their keys, start with
# `- ` and `  `; the next key of the file does not.
_DEPENDENTS_BLOCK = re.compile(r"^dependents:\n(?:[- ].*\n)*", re.MULTILINE)


def _document(root: Path, path: Path, schema: str) -> YamlDocument:
    display = str(path.relative_to(root))
    return _checked(_read_as_written(path, display) or load_yaml(path, display), schema)


def _checked(document: YamlDocument, schema: str) -> YamlDocument:
    if not isinstance(document.data, dict):
        raise FactoryError(Problem(document.file, "expected a mapping"))
    problems = with_expression_problems(document, schemas.validate(document, schema))
    if not problems:  # schema-valid: the values a schema cannot bound
        durations = [("enrolment", "rebuildDelay"), ("rebuildDelay",), ("warehouse", "interval")]
        problems = sanity.duration_problems(document, durations)
    if problems:
        raise FactoryError(problems)
    return document


def _read_as_written(path: Path, display: str) -> YamlDocument | None:
    """A state file as `render` wrote it, read without PyYAML (block_yaml); None for any other
    text (edited by hand, unreadable…), which load_yaml reads and words the errors of."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    data = block_yaml.load(text[len(HEADER) :]) if text.startswith(HEADER) else None
    return YamlDocument(display, data, text) if data is not None else None


def _ref(document: YamlDocument, key: str = "ref") -> ImageRef:
    try:
        return parse_ref(document.data[key], default_tag=None)
    except InvalidReference as error:
        raise FactoryError(document.problem((key,), error.reason)) from None


def _load_image(root: Path, path: Path) -> ImageState:
    document = _document(root, path, schemas.IMAGE_STATE)
    data = document.data
    if path.stem != data["name"]:
        raise FactoryError(document.problem(("name",), f"{data['name']!r} does not match the file name {path.name}"))
    return _image_from(data, _ref(document))


def _image_from(data: dict, ref: ImageRef) -> ImageState:
    return ImageState(
        name=data["name"],
        ref=ref,
        enrolment=data["enrolment"],
        base_images=[DiscoveredBase.from_dict(base) for base in data["baseImages"]],
        unresolved=list(data["unresolved"]),
        runtime=Runtime.from_dict(data["runtime"]),
        dockerfile_missing=data.get("dockerfileMissing", False),
        bases_unknown=data.get("basesUnknown", False),
    )


def _load_base(root: Path, path: Path) -> BaseImageState:
    return _base(root, path, _document(root, path, schemas.BASE_IMAGE_STATE))


def _base(root: Path, path: Path, document: YamlDocument) -> BaseImageState:
    data = document.data
    ref = _ref(document)
    if path.stem != ref.slug():
        raise FactoryError(document.problem(("ref",), f"{ref} belongs in {ref.slug()}.yaml, not {path.name}"))
    if (ref.registry, ref.repository, ref.tag) != (data["registry"], data["repository"], data["tag"]):
        raise FactoryError(document.problem(("ref",), "ref disagrees with registry/repository/tag"))
    return _base_from(data, ref)


def _base_from(data: dict, ref: ImageRef) -> BaseImageState:
    warehouse = data["warehouse"]
    return BaseImageState(
        ref=ref,
        enrolled_as=data["enrolledAs"],
        dependents=[Dependent(d["image"], d["pinnedDigest"]) for d in data["dependents"]],
        warehouse=WarehouseConfig.from_dict(warehouse) if warehouse else None,
        rebuild_delay=data.get("rebuildDelay"),
        auto_rebuild=data.get("autoRebuild"),
        runtime=Runtime.from_dict(data["runtime"]),
        verify=VerifyPolicy.from_dict(data["verify"]) if "verify" in data else None,
    )


def load_remembered(
    root: Path, paths: list[Path], parse: Callable[[list[Path]], list[ImageState | BaseImageState | list[Problem]]]
) -> list[ImageState | BaseImageState | list[Problem]]:
    """`load_files` of `paths`, parsing (with `parse`: in one process or two) only the files the
    state cache (`state.cache`) does not hold as they are."""
    from image_factory.state import cache as state_cache

    return state_cache.load(root, paths, parse, _rebuilt, _remembered)


def remember_written(root: Path, written: list[tuple[str, ImageState | BaseImageState]]) -> None:
    """Tell the state cache what state files were just written as (`render` text, entry)."""
    from image_factory.state import cache as state_cache

    state_cache.remember(root, written, _remembered)


def _remembered(item) -> tuple[str, dict] | None:
    """What the state cache keeps of a loaded file: its kind and data, when they give it back."""
    if isinstance(item, list):
        return None
    kind = "image" if isinstance(item, ImageState) else "base"
    data = item.to_dict()
    return (kind, data) if _from(kind, data) == item else None


def _rebuilt(path: Path, kind: str, data: dict) -> ImageState | BaseImageState | None:
    """A remembered file back, if it still belongs at `path` (else None: it is parsed and refused)."""
    item = _from(kind, data)
    expected = f"{IMAGES_DIR}/{item.name}.yaml" if kind == "image" else f"{BASE_IMAGES_DIR}/{item.ref.slug()}.yaml"
    return item if f"/{path}".endswith("/" + expected) else None  # (str: 100,000 Path operations cost a second)


def _from(kind: str, data: dict) -> ImageState | BaseImageState:
    ref = parse_ref(data["ref"], default_tag=None)
    return _image_from(data, ref) if kind == "image" else _base_from(data, ref)
