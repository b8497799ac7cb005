"""What every generated object shares: the watched image it serves, its metadata, the Freight fields."""

from __future__ import annotations

from dataclasses import dataclass

from image_factory.enrolment.model import WarehouseConfig
from image_factory.kargo import layout as kargo_layout
from image_factory.kargo import names
from image_factory.state.store import BaseImageState, State
from kargo_expressions import Expr, image_from

KARGO_API = "kargo.akuity.io/v1alpha1"


@dataclass(frozen=True)
class Watched:
    """A watched image: its Warehouse, its recording Stage, and the Stages that rebuild what is
    built on it (kargo_layout): a soak Stage per delay in `soak_delays`, and a rebuild Stage of
    its own for each of `own_stage_images`."""

    name: str
    base: BaseImageState
    warehouse: WarehouseConfig
    soak_delays: tuple[str, ...] = ()
    own_stage_images: tuple[str, ...] = ()
    scan_severity: str | None = None  # the images built on it scan its digests, reporting findings this severe or more


def watched_images(state: State) -> list[Watched]:
    """Every image with something to watch, by name. A digest-only reference has nothing."""
    watched = [
        Watched(
            names.watched_name(b.ref),
            b,
            b.warehouse,
            tuple(kargo_layout.soak_delays(b, state.images)),
            tuple(kargo_layout.own_stage_images(b, state.images)),
            kargo_layout.scan_severity(b, state.images),
        )
        for b in state.base_images.values()
        if b.warehouse
    ]
    return sorted(watched, key=lambda w: w.name)


def meta(name: str, namespace: str | None, labels: dict | None = None, annotations: dict | None = None) -> dict:
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {**names.MANAGED_BY, **(labels or {})}
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def ref_annotation(watched: Watched) -> dict:
    return {names.REF_ANNOTATION: watched.base.ref.canonical}


def image_field(watched: Watched, field: str) -> Expr:
    return image_from(watched.warehouse.repo_url, field)


def config_values(values: dict) -> dict:
    """Values for config fields of their own (each a whole value, not inside a body)."""
    return {key: value.template() if isinstance(value, Expr) else value for key, value in values.items()}
