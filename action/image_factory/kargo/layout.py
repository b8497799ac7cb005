"""Which Kargo Stages rebuild what: the stage layout chosen in docs/scale.md. Pure functions.

Per watched image Kargo keeps one *soak* Stage for each distinct rebuildDelay of its dependents;
its promotion tells the factory (`base-image-soaked`), whose `dispatch --base` rebuilds every
dependent then due. Only an image that needs a Kargo-side gate of its own keeps a rebuild Stage
per base: a manual promotion (autoRebuild off) or its own checks (test.analysisTemplates).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from image_factory.enrolment.durations import parse_duration
from image_factory.trust.scan_report import rank

if TYPE_CHECKING:
    from image_factory.state.store import BaseImageState, ImageState

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def own_rebuild_stage(enrolment: dict) -> bool:
    """Whether Kargo rebuilds the image through a Stage of its own (one per watched base it is
    built on) rather than through the soak Stage of its delay and the factory's fan-out."""
    return not enrolment["autoRebuild"] or bool(enrolment.get("test", {}).get("analysisTemplates"))


def delay_text(duration: timedelta) -> str:
    """A duration as images.yaml writes it, largest units first: 168 hours → `7d`, 36 hours →
    `1d12h`, zero → `0s`. One text per duration: `7d` and `168h` share one soak Stage."""
    rest = int(duration.total_seconds())
    text = ""
    for unit, seconds in _UNITS:
        count, rest = divmod(rest, seconds)
        if count:
            text += f"{count}{unit}"
    return text or "0s"


def soak_delay(enrolment: dict) -> str:
    """The delay of the soak Stage that rebuilds an image without a Stage of its own."""
    return delay_text(parse_duration(enrolment["rebuildDelay"]))


def soak_delays(base: BaseImageState, images: Mapping[str, ImageState]) -> list[str]:
    """The delays of `base`'s soak Stages: one per distinct rebuildDelay among the images built on
    it that have no Stage of their own, shortest first. None when every one has its own."""
    delays = {
        soak_delay(images[d.image].enrolment)
        for d in base.dependents
        if not own_rebuild_stage(images[d.image].enrolment)
    }
    return sorted(delays, key=parse_duration)


def own_stage_images(base: BaseImageState, images: Mapping[str, ImageState]) -> list[str]:
    """The images built on `base` that Kargo rebuilds through a Stage of their own, in state's order."""
    return [d.image for d in base.dependents if own_rebuild_stage(images[d.image].enrolment)]


def scan_severity(base: BaseImageState, images: Mapping[str, ImageState]) -> str | None:
    """The least severity any image built on `base` decides on (scan.expedite or scan.hold): the
    scan Job sends the findings at or above it. None when no image built on it scans."""
    levels = [
        level
        for d in base.dependents
        for level in (images[d.image].enrolment.get("scan") or {}).values()
        if isinstance(level, str) and level != "none"
    ]
    return min(levels, key=rank) if levels else None
