"""`rollback`: put a managed image back on what an earlier successful build made.

When the image's earlier digest is still in its registry the tag is moved back to it (the same
bits, at once); otherwise the image is rebuilt with every base pinned to the digests that earlier
build used. Either way the rollback is recorded as an attempt with its reason, and the images
built on it cascade as usual (a re-tag is a new current digest for them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from image_factory.discovery.discover import load_model
from image_factory.edges import github_client
from image_factory.enrolment.refs import InvalidReference, parse_digest
from image_factory.errors import FactoryError, Problem
from image_factory.rebuilds.dispatch import target_of
from image_factory.state import built_on, runtime_events
from image_factory.state.files import apply_changes
from image_factory.state.store import Build, ImageState, State, journal, render
from image_factory.timestamps import format_time

if TYPE_CHECKING:
    from image_factory.edges.registry import RegistryClient


@dataclass
class Rollback:
    image: str
    target: Build  # the earlier successful build rolled back to
    how: str = ""  # re-tagged | rebuild dispatched | dispatch failed | dry-run
    detail: str = ""
    attempt: Build | None = None
    warnings: list[str] = field(default_factory=list)


def choose_target(image: ImageState, to: str | None) -> Build:
    """The successful build to go back to: the one that produced `to` (a digest, or the revision
    tag that build got), else the last successful build before the current one (of the attempts
    state keeps)."""
    successes = [attempt for attempt in image.runtime.attempts if attempt["result"] == "success"]
    if to is not None and ":" not in to:  # a tag never holds a colon, a digest always does
        found = next((build for build in reversed(successes) if build.get("revisionTag") == to), None)
        if found is None:
            tagged = [build["revisionTag"] for build in successes if build.get("revisionTag")]
            known = f" (state knows {', '.join(tagged[-5:])})" if tagged else ""
            raise FactoryError(Problem("--to", f"no successful build of {image.name!r} got the tag {to!r}{known}"))
        return found
    if to is not None:
        try:
            to = parse_digest(to)
        except InvalidReference as error:
            raise FactoryError(Problem("--to", error.reason)) from None
        found = next((build for build in reversed(successes) if build.get("digest") == to), None)
        if found is None:
            raise FactoryError(Problem("--to", f"no successful build of {image.name!r} in state produced {to}"))
        return found
    current = (image.runtime.last_build or {}).get("digest")
    earlier = next((build for build in reversed(successes) if build.get("digest") != current), None)
    if earlier is None:
        raise FactoryError(Problem("--image", f"{image.name!r} has no earlier successful build in state to go back to"))
    return earlier


def unrejected_digests(state: State, image: ImageState, target: Build) -> list[str]:
    """Warnings: base digests the current build used instead of the target's that are not
    rejected, so `plan` would rebuild on them again."""
    current = (image.runtime.last_build or {}).get("baseDigests", {})
    warnings = []
    for ref, digest in sorted(current.items()):
        if target.get("baseDigests", {}).get(ref) == digest:
            continue
        watched = state.base_images.get(ref)
        if watched is None:
            continue  # a managed parent: roll it back, or reject what broke it
        entry = next((e for e in watched.runtime.history if e["digest"] == digest), None)
        if entry is None or not runtime_events.rejection(entry):
            warnings.append(
                f"{ref}@{digest[:19]}… is not rejected: plan will rebuild {image.name} on it again "
                f"(image-factory reject --image {ref} --digest {digest} --reason …)"
            )
    return warnings


def rollback(
    root: Path,
    name: str,
    to: str | None,
    reason: str,
    now: datetime,
    *,
    registry: RegistryClient | None = None,
    token: str | None = None,
    rebuild: bool = False,
    dry_run: bool = False,
    connect: Callable = github_client.connect,
) -> Rollback:
    if not reason.strip():
        raise FactoryError(Problem("--reason", "say why the image is rolled back (it is recorded in state)"))
    config, state = load_model(root)
    image = state.managed(name)
    target = choose_target(image, to)
    result = Rollback(name, target, warnings=unrejected_digests(state, image, target))
    why = f"rollback to {target['digest'][:19]}…: {reason.strip()}"
    pins = dict(target.get("baseDigests", {}))
    pinned = ", ".join(f"{ref}@{digest}" for ref, digest in sorted(pins.items())) or "no base"
    if dry_run:  # offline: the registry is not asked whether the earlier manifest is still there
        result.how = "dry-run"
        rebuild_text = f"rebuild {name} pinned to {pinned}"
        result.detail = (
            f"would {rebuild_text}"
            if rebuild
            else f"would re-tag {image.ref} to {target['digest']} if its registry still has it, else {rebuild_text}"
        )
        return result
    earlier = None  # the earlier manifest, when it is still in the registry
    if not rebuild and registry is not None:
        try:
            earlier = registry.manifest(image.ref, target["digest"])
        except FactoryError as error:  # the registry out of reach: a rebuild needs no registry read
            raise FactoryError(
                [
                    *error.problems,
                    Problem(
                        "rollback",
                        f"the registry could not say whether {image.ref.name}@{target['digest']} is still there to "
                        "re-tag: try again, or pass --rebuild to build it again on its base digests",
                    ),
                ]
            ) from None
    stamp = format_time(now)
    if earlier is not None:
        registry.tag(image.ref, earlier)
        attempt: Build = {
            "result": "success",
            "startedAt": stamp,
            "finishedAt": stamp,
            "digest": target["digest"],
            "baseDigests": pins,
            "reason": why,
        }
        before = image.runtime.last_build
        image.runtime = runtime_events.record_build(image.runtime, attempt)
        also = built_on.after_build(root, image, before)
        apply_changes({root / image.path: render(image.to_dict()), **also}, journal(root))
        result.how, result.detail, result.attempt = "re-tagged", f"{image.ref} → {target['digest']}", attempt
        return result
    repo, workflow, branch = target_of(config, image)
    client = connect(token, config.kargo.github_api_url)  # no token: refused before anything is written
    attempt = {"result": "pending", "startedAt": stamp, "baseDigests": pins, "reason": why}
    image.runtime = runtime_events.record_build(image.runtime, attempt)
    apply_changes({root / image.path: render(image.to_dict())}, journal(root))  # recorded before GitHub is called
    first = next(iter(pins), "")
    inputs = {"image": name, "base": first, "digest": pins.get(first, ""), "bases": json.dumps(pins)}
    try:
        github_client.dispatch_workflow(client, repo, workflow, branch, inputs)
    except github_client.DispatchFailed as refused:
        failed: Build = {**attempt, "result": "dispatch-failed", "error": str(refused)}
        image.runtime = runtime_events.record_build(image.runtime, failed)
        apply_changes({root / image.path: render(image.to_dict())}, journal(root))
        result.how, result.detail, result.attempt = "dispatch failed", str(refused), failed
        return result
    result.how, result.detail, result.attempt = "rebuild dispatched", f"{workflow} in {repo} on {branch}", attempt
    return result
