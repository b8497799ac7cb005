"""From config, discovered Dockerfiles and the previous state to the new state. Pure functions.

images.yaml wins for everything it says; runtime data (digests, history, builds) is carried
over, and follows an image when it moves between managed and external or is renamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from image_factory.discovery.dockerfile import Discovery
from image_factory.enrolment.model import Config, EnrolledImage, warehouse_for
from image_factory.enrolment.refs import ImageRef, parse_ref
from image_factory.errors import FactoryError, Problem
from image_factory.state.graph import find_cycle
from image_factory.state.store import BaseImageState, Dependent, DiscoveredBase, ImageState, Runtime, State


@dataclass
class Merge:
    """The new state, and what happened to the old files."""

    state: State
    moved: dict[str, str] = field(default_factory=dict)  # old path → path its runtime moved to
    orphans: list[str] = field(default_factory=list)  # old paths nothing refers to any more
    not_checked: list[str] = field(default_factory=list)  # managed images whose Dockerfile was not read

    @property
    def removed(self) -> list[str]:
        return sorted(self.moved)


def merge_state(config: Config, discoveries: dict[str, Discovery | None], old: State) -> Merge:
    """The state `config` and `discoveries` call for. `None` for an image keeps its recorded bases."""
    runtimes = _RuntimeSource(old)
    images: dict[str, ImageState] = {}
    problems: list[Problem] = []
    not_checked = []
    for image in config.managed:
        discovery = discoveries.get(image.name)
        missing = discovery is not None and discovery.missing
        previous = old.images.get(image.name)
        if discovery is None or missing:
            not_checked.append(image.name)
            bases = list(previous.base_images) if previous else []
            bases = [_relink(base, config) for base in bases]
            unresolved = list(previous.unresolved) if previous else []
        else:
            bases = _bases(discovery, config)
            unresolved = discovery.unresolved
        if any(base.image == image.name for base in bases):
            problems.append(
                Problem(config.file, f"image {image.name!r} depends on itself ({image.ref.name})", image.line, "images")
            )
        images[image.name] = ImageState(
            name=image.name,
            ref=image.ref,
            enrolment=_enrolment(image),
            base_images=bases,
            unresolved=unresolved,
            runtime=runtimes.for_managed(image),
            # not read this time: what the last read found still holds
            dockerfile_missing=missing or (discovery is None and previous is not None and previous.dockerfile_missing),
            # a team's Dockerfile never read: no base is known until its repository proposes them
            bases_unknown=discovery is None
            and image.source.provider == "github"
            and (previous is None or previous.bases_unknown),
        )
    if problems:
        raise FactoryError(problems)
    cycle = find_cycle({name: [b.image for b in state.base_images if b.image] for name, state in images.items()})
    if cycle:
        first = config.by_name(cycle[0])
        raise FactoryError(
            Problem(config.file, "dependency cycle: " + " → ".join(cycle), first.line if first else None, "images")
        )

    base_images = {
        ref.canonical: _base_state(ref, list(dependents.values()), config, runtimes)
        for ref, dependents in _watched(config, images).items()
    }
    new = State(dict(sorted(images.items())), dict(sorted(base_images.items())))
    new_paths = {entry.path for entry in new.entries()}
    moved = {path: target for path, target in runtimes.moved.items() if path not in new_paths}
    orphans = sorted(
        entry.path
        for entry in [*old.images.values(), *old.base_images.values()]
        if entry.path not in new_paths and entry.path not in moved
    )
    return Merge(new, moved, orphans, not_checked)


def _enrolment(image: EnrolledImage) -> dict:
    enrolment = {
        "source": image.source.to_dict(),
        "rebuildDelay": image.policy.rebuild_delay,
        "autoRebuild": image.policy.auto_rebuild,
    }
    if image.test:
        enrolment["test"] = image.test
    if image.signing is not None:  # what an image-built event is checked against, without images.yaml
        enrolment["signing"] = {k: v for k, v in image.signing.to_dict().items() if k != "required"}
    if image.team:
        enrolment["team"] = image.team
    if image.policy.scan is not None:
        enrolment["scan"] = image.policy.scan
    return enrolment


def _bases(discovery: Discovery, config: Config) -> list[DiscoveredBase]:
    first_uses = {}
    for use in discovery.uses:
        if use.resolved:
            first_uses.setdefault(use.ref, use)
    bases = []
    for ref_text, use in first_uses.items():
        managed = config.managed_for(parse_ref(ref_text))
        bases.append(DiscoveredBase(ref_text, use.kind, use.stage, use.platform, managed.name if managed else None))
    return bases


def _relink(base: DiscoveredBase, config: Config) -> DiscoveredBase:
    """A recorded base, re-checked against the current enrolment (it may have become managed)."""
    managed = config.managed_for(parse_ref(base.ref, default_tag=None))
    return DiscoveredBase(base.ref, base.kind, base.stage, base.platform, managed.name if managed else None)


def _watched(config: Config, images: dict[str, ImageState]) -> dict[ImageRef, dict[str, Dependent]]:
    """Every reference a Warehouse watches (external enrolments, then the bases managed images use),
    with the managed images built on it."""
    watched: dict[ImageRef, dict[str, Dependent]] = {image.ref: {} for image in config.external}
    for name, state in sorted(images.items()):
        for base in state.base_images:
            if base.image:
                continue
            ref = parse_ref(base.ref, default_tag=None)
            dependents = watched.setdefault(ref.without_digest(), {})
            dependents.setdefault(name, Dependent(name, ref.digest if ref.tag else None))
    return watched


def _base_state(ref: ImageRef, dependents: list[Dependent], config: Config, runtimes: _RuntimeSource) -> BaseImageState:
    enrolled = config.external_for(ref)
    return BaseImageState(
        ref=ref,
        enrolled_as=enrolled.name if enrolled else None,
        dependents=dependents,
        warehouse=warehouse_for(ref, enrolled.warehouse if enrolled else None),
        rebuild_delay=enrolled.policy.rebuild_delay if enrolled else None,
        auto_rebuild=enrolled.policy.auto_rebuild if enrolled else None,
        runtime=runtimes.for_watched(ref),
        verify=enrolled.verify if enrolled else None,
    )


class _RuntimeSource:
    """Finds the runtime data an entry of the new state inherits, and records moves between files."""

    def __init__(self, old: State):
        self.old = old
        self.moved: dict[str, str] = {}
        # Old entries holding runtime data, by reference: where data comes from when an image
        # is renamed or changes kind. Managed images first, then watched ones.
        self._by_ref: dict[ImageRef, ImageState | BaseImageState] = {}
        for entry in old.entries():
            if not entry.runtime.empty:
                self._by_ref.setdefault(entry.ref, entry)

    def for_managed(self, image: EnrolledImage) -> Runtime:
        previous = self.old.images.get(image.name)
        if previous is not None and not previous.runtime.empty:
            return previous.runtime
        return self._take(image.ref, f"state/images/{image.name}.yaml") or Runtime()

    def for_watched(self, ref: ImageRef) -> Runtime:
        previous = self.old.base_images.get(ref.canonical)
        if previous is not None and not previous.runtime.empty:
            return previous.runtime
        # A managed image whose source was removed: watched from now on, its history kept.
        return self._take(ref, BaseImageState(ref, None, [], None).path) or Runtime()

    def _take(self, ref: ImageRef, target: str) -> Runtime | None:
        source = self._by_ref.get(ref)
        if source is None or source.path == target:
            return None
        self.moved.setdefault(source.path, target)
        return source.runtime
