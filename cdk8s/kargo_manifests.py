"""The Kargo and ArgoCD objects of a factory, as plain dicts. Pure functions of the model.

Everything is built in Python and handed to cdk8s once per object (the jsii bridge is the
expensive part of a synth). This module puts the objects together and spreads them over files;
a module per kind of object makes them: `kargo_project`, `kargo_watching` (Warehouses, recording
and verification), `kargo_rebuilding` (soak and rebuild Stages), `kargo_scanning` (the scan of
each new digest), `github_steps` (the steps that call GitHub), `argocd_app`; `kargo_objects`
holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from argocd_app import argocd_application
from image_factory.enrolment.model import Config
from image_factory.errors import FactoryError, Problem
from image_factory.kargo import names
from image_factory.state.store import State
from kargo_expressions import refuse_in
from kargo_objects import Watched, watched_images
from kargo_project import namespace, project, project_config
from kargo_rebuilding import rebuild_stage, soak_stage
from kargo_scanning import scan_objects, scan_stage, scan_template
from kargo_watching import (
    advisory_stage,
    analysis_template,
    key_config_map,
    recording_stage,
    verified_stage,
    warehouse,
)

KARGO_CHART = "kargo"  # the chart (file) of the Project, and of everything while it fits in one
ARGOCD_CHART = "argocd-application"

__all__ = ["Watched", "argocd_application", "charts", "factory_manifests", "shards", "watched_images"]


def factory_manifests(config: Config, state: State, keys: dict[str, str] | None = None) -> list[dict]:
    """The Project, its ProjectConfig, and per watched image a Warehouse, a recording Stage (and
    its verification), a soak Stage per delay of the images built on it, and a rebuild Stage for
    each of those that has a Stage of its own, in a stable order.
    `keys`: the public keys images.yaml names (`public_keys`), by path."""
    objects = project_manifests(config)
    for part in parts(watched_images(state)):
        objects += part_manifests(config, state, part, keys or {})
    check_unique(objects)
    return objects


def project_manifests(config: Config) -> list[dict]:
    """The Project and its ProjectConfig."""
    if config.kargo.factory_repo is None:
        raise FactoryError(
            Problem(config.file, "kargo.factoryRepo is not set: the generated stages dispatch to it", field="kargo")
        )
    with _refusing(config, "the Project"):
        refuse_in([asdict(config.kargo), asdict(config.argocd)])
        name = config.kargo.project
        objects = [namespace(name), project(name), project_config(config)]
        if config.kargo.scanner is not None:
            objects += scan_objects(config)
        return objects


def watched_manifests(config: Config, watched: Watched, keys: dict[str, str]) -> list[dict]:
    """A watched image's Warehouse and recording Stage; with a verify policy, also what checks
    its signatures (an AnalysisTemplate, the public key's ConfigMap) and the Stage that reports
    verified Freight; then its soak Stages."""
    objects = [warehouse(config, watched), recording_stage(config, watched)]
    policy = watched.base.verify
    if policy is not None:
        if policy.key_file is not None:
            objects.append(key_config_map(config, watched, keys[policy.key_file]))
        objects.append(analysis_template(config, watched))
        if not policy.required:
            objects.append(advisory_stage(config, watched))
        objects.append(verified_stage(config, watched))
    objects += [soak_stage(config, watched, delay) for delay in watched.soak_delays]
    if watched.scan_severity is not None:  # config refuses scanning without kargo.scanner
        objects += [scan_template(config, watched), scan_stage(config, watched)]
    return objects


@dataclass(frozen=True)
class Part:
    """Objects generated together: a watched image's own (`image` None), its soak Stages
    included, or the Stage of its own rebuilding managed `image` on it."""

    watched: Watched
    image: str | None = None

    @property
    def name(self) -> str:
        return self.watched.name if self.image is None else names.rebuild_name(self.image, self.watched.name)

    @property
    def size(self) -> int:
        """How many objects it makes."""
        if self.image is not None:
            return 1
        policy = self.watched.base.verify
        own = 2 + len(self.watched.soak_delays) + (2 if self.watched.scan_severity is not None else 0)
        if policy is None:
            return own
        return own + 2 + (policy.key_file is not None) + (not policy.required)


def parts(watched: list[Watched]) -> list[Part]:
    """Each watched image's own part, then one per managed image on it with a Stage of its own."""
    return [part for item in watched for part in (Part(item), *(Part(item, i) for i in item.own_stage_images))]


def part_manifests(config: Config, state: State, part: Part, keys: dict[str, str]) -> list[dict]:
    base = part.watched.base
    what = f"Stage {part.name} (image {part.image})" if part.image else f"the Warehouse and Stages of {part.name}"
    with _refusing(config, what):
        # Each text is checked with the part it belongs to: a base's once, an image's once.
        if part.image is None:
            refuse_in([base.ref.canonical, base.warehouse.to_dict(), base.verify.to_dict() if base.verify else {}])
            return watched_manifests(config, part.watched, keys)
        image = state.images[part.image]
        refuse_in([image.name, image.ref.canonical, image.enrolment])
        return [rebuild_stage(config, part.watched, image)]


@contextmanager
def _refusing(config: Config, what: str):
    """Turns a refusal of user text (kargo_expressions) into an error naming what it was for."""
    try:
        yield
    except ValueError as error:
        raise FactoryError(Problem(config.file, f"refusing to generate {what}: {error}")) from None


def shards(watched: list[Watched], per_file: int) -> list[list[Part]]:
    """Every watched image's objects spread over as few files as hold `per_file` objects each.

    One file while everything fits; beyond that a power of two of files, each part in the file
    its object name hashes to, so a change touches few files and doubling the count splits
    every file in two rather than reshuffling the lot. A watched image's soak Stages stay with
    its Warehouse; the Stages of images with one of their own spread like the rest.
    """
    every = parts(watched)
    total = sum(part.size for part in every)
    count = 1
    while total > count * per_file:
        count *= 2
    files: list[list[Part]] = [[] for _ in range(count)]
    for part in every:
        files[names.shard_of(part.name, count) if count > 1 else 0].append(part)
    return files


def check_unique(objects: list[dict], seen: set[tuple[str, str | None, str]] | None = None) -> None:
    """Fails on two objects of the same kind and name (also across calls sharing `seen`)."""
    seen = set() if seen is None else seen
    for item in objects:
        key = (item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"])
        if key in seen:  # names carry hashes of what they stand for: this is a bug, not input
            raise AssertionError(f"two generated objects named {key}")
        seen.add(key)


def charts(
    config: Config, state: State, keys: dict[str, str] | None = None
) -> list[tuple[str, Callable[[], list[dict]]]]:
    """The Project in `kargo.k8s.yaml`, with the Warehouses and Stages while they fit in one file
    (`kargo.objectsPerFile`), else those spread over `kargo-pipelines-N-of-M.k8s.yaml`; and the
    ArgoCD Application in a file of its own, applied once by hand. `keys`: the public keys
    images.yaml names, by path (`signatures.public_keys`). Pure Python: each chart's objects
    are built when asked for, one chart at a time, names checked across all of them.

    Bounded files keep the peak memory of both Python and Node.js low on a large fleet (~1 MB of
    YAML each by default).
    """
    project = project_manifests(config)
    files = shards(watched_images(state), config.kargo.objects_per_file)
    seen: set = set()

    def objects(head: list[dict], parts: list[Part]) -> Callable[[], list[dict]]:
        def build() -> list[dict]:
            made = [*head]
            for part in parts:
                made += part_manifests(config, state, part, keys or {})
            check_unique(made, seen)
            return made

        return build

    made: list[tuple[str, Callable[[], list[dict]]]] = []
    if len(files) == 1:
        made.append((KARGO_CHART, objects(project, files[0])))
    else:
        made.append((KARGO_CHART, objects(project, [])))
        width = len(str(len(files)))
        for number, parts in enumerate(files, 1):
            made.append((f"{KARGO_CHART}-pipelines-{number:0{width}d}-of-{len(files)}", objects([], parts)))
    application = argocd_application(config, f"{KARGO_CHART}*.k8s.yaml")
    made.append((ARGOCD_CHART, lambda: [application]))
    return made
