"""`dispatch` at the edges: trigger the builds the plan says are due, pinned, exactly once each."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from image_factory.discovery.discover import load_model, load_scope
from image_factory.edges import github_client
from image_factory.enrolment.durations import parse_duration
from image_factory.enrolment.model import Config
from image_factory.errors import FactoryError, Problem
from image_factory.kargo.layout import own_rebuild_stage
from image_factory.rebuilds import planner
from image_factory.rebuilds.pins import PENDING_HOURS, PENDING_TIMEOUT, base_key, base_keys, pins_for, unpinned
from image_factory.state import index, runtime_events
from image_factory.state.files import apply_changes
from image_factory.state.store import Build, ImageState, State, journal, render
from image_factory.timestamps import format_time, parse_time


@dataclass
class Dispatch:
    """One build to trigger, or why not."""

    image: str
    repo: str
    workflow: str
    ref: str
    pins: dict[str, str]  # every base of the build → the digest it must use
    changed: dict[str, str]  # the bases whose new digest makes it due
    status: str = "planned"  # dispatched | dry-run | skipped | failed
    detail: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    attempt: Build | None = None  # what was recorded in state for it


def build_pins(image: ImageState, state: State, now: datetime, given: dict[str, str], flag: str) -> dict[str, str]:
    """The pins of one build: `given` (from `flag`) over what the image's next build would use.
    A build is never left floating on a tag: a given base the image is not built on, or a base
    with no digest to pin, is an error naming it."""
    keys = base_keys(image, state)
    unknown = sorted(set(given) - set(keys))
    if unknown:
        raise FactoryError(
            Problem(flag, f"{', '.join(unknown)}: not a base of {image.name} (its bases: {', '.join(keys) or 'none'})")
        )
    pins = pins_for(image, given, state, now)
    missing = unpinned(image, state, pins)
    if missing:
        raise FactoryError(
            [
                Problem(image.name, f"no digest to pin {key} to: {_why_unpinned(image, state, key, now)}")
                for key in missing
            ]
        )
    return pins


def _why_unpinned(image: ImageState, state: State, key: str, now: datetime) -> str:
    """Why a base has no digest a build could use now, and what gives it one."""
    given = "or give one with --bases or --base"
    parent = next((state.images[b.image] for b in image.base_images if b.image and base_key(b, state) == key), None)
    if parent is not None:
        return f"{parent.name} has no successful build yet (build it first, {given})"
    watched = state.base_images.get(key)
    history = watched.runtime.history if watched is not None else []
    if not history:
        return (
            "none recorded in state yet (Kargo reports new digests; `discover --resolve-digests` reads them now), "
            + given
        )
    newest = history[-1]
    delay = parse_duration(image.enrolment["rebuildDelay"])
    held = planner.hold_reason(newest, watched.verification_required)
    if held is not None:
        return f"its newest digest {newest['digest']} is held ({held}), {given}"
    ready = format_time(parse_time(newest["firstSeen"]) + delay)
    return (
        f"its newest digest {newest['digest']}, first seen {newest['firstSeen']}, becomes eligible at {ready} "
        f"(the {image.enrolment['rebuildDelay']} delay; `expedite` skips it), {given}"
    )


def target_of(config: Config, image: ImageState) -> tuple[str, str, str]:
    """Where the image's build workflow is: repository, workflow file, branch."""
    source = image.enrolment["source"]
    repo = source["repo"] if source["provider"] == "github" else config.kargo.factory_repo
    if not repo:
        raise FactoryError(
            Problem(
                config.file, f"kargo.factoryRepo is not set: needed to build local image {image.name!r}", field="kargo"
            )
        )
    return repo, source["workflow"], source["branch"]


def plan_dispatches(
    config: Config,
    state: State,
    now: datetime,
    only: str | None = None,
    retry: bool = False,
    plan: planner.Plan | None = None,
) -> list[Dispatch]:
    """What dispatch would do at `now` (by `plan`, else the plan at `now`), without doing it.
    The same bases are never dispatched twice, unless the first dispatch's report never came
    (PENDING_TIMEOUT) or `retry` (with `only`) says so."""
    if only:
        state.managed(only)  # refuses an unknown name
    retrying = only if retry else None
    plan = plan or planner.plan(state, now, parse_duration(config.cascade_delay), retrying)
    auto = {item.image: item.auto for item in plan.due}
    expedited = {(item.image, item.base) for item in plan.due if item.expedited}
    dispatches = []
    for name, changed in sorted(plan.builds().items()):
        if only and name != only:
            continue
        image = state.images[name]
        repo, workflow, ref = target_of(config, image)
        pins = pins_for(image, changed, state, now)
        item = Dispatch(name, repo, workflow, ref, pins, changed)
        first_base = next(iter(sorted(changed)))
        item.inputs = {"image": name, "base": first_base, "digest": changed[first_base], "bases": json.dumps(pins)}
        previous = next(
            (
                a
                for a in reversed(image.runtime.attempts)
                if a.get("baseDigests") == pins and a["result"] not in ("dispatch-failed", "lost")
            ),
            None,
        )
        missing = unpinned(image, state, pins)
        if missing:
            item.status, item.detail = "skipped", f"no digest to pin {', '.join(missing)} to yet"
        elif previous is not None and not (retry and only == name):
            since = now - parse_time(previous["startedAt"])
            if previous["result"] == "pending" and since >= PENDING_TIMEOUT:
                item.detail = f"again: dispatched at {previous['startedAt']}, no image-built within {PENDING_HOURS}h"
            else:
                item.status, item.detail = (
                    "skipped",
                    f"already dispatched at {previous['startedAt']} ({previous['result']})"
                    + (
                        f"; dispatched again after {PENDING_HOURS}h without image-built, or now with "
                        f"`dispatch --image {name} --retry`"
                        if previous["result"] == "pending"
                        else ""
                    ),
                )
        elif not auto[name] and only != name:
            item.status, item.detail = "skipped", "autoRebuild is off: promote its Kargo stage or run dispatch --image"
        elif (
            own_rebuild_stage(image.enrolment)
            and only != name
            and set(changed) <= set(state.base_images)
            and not any((name, base) in expedited for base in changed)
        ):
            # its Kargo Stage for that base dispatches it once the delay is over (an expedited
            # digest, which skips the delay, is the factory's to dispatch)
            item.status, item.detail = "skipped", "its own Kargo rebuild Stage dispatches it (test.analysisTemplates)"
        dispatches.append(item)
    if retry and only and not any(item.image == only for item in dispatches):
        dispatches += _unsent_rollback(config, state.images[only])
    dispatches += _not_sent(config, state, plan, only)
    return dispatches


def _unsent_rollback(config: Config, image: ImageState) -> list[Dispatch]:
    """`dispatch --image X --retry` after a rollback GitHub did not take: the rollback's build, on
    the base digests it named, sent again."""
    last = image.runtime.attempts[-1] if image.runtime.attempts else None
    if last is None or last["result"] != "dispatch-failed" or not last.get("reason"):
        return []
    repo, workflow, ref = target_of(config, image)
    pins = dict(last.get("baseDigests", {}))
    item = Dispatch(image.name, repo, workflow, ref, pins, pins, detail="again: the rollback's dispatch failed")
    first = next(iter(sorted(pins)), "")
    item.inputs = {"image": image.name, "base": first, "digest": pins.get(first, ""), "bases": json.dumps(pins)}
    return [item]


def _not_sent(config: Config, state: State, plan: planner.Plan, only: str | None) -> list[Dispatch]:
    """The builds the plan holds back and why, as dispatch reports them: a base with no digest
    to pin yet, a dispatch whose report is awaited, a build on these digests that failed."""
    skipped: dict[str, Dispatch] = {}

    def add(name: str, detail: str) -> None:
        if (only and name != only) or name in skipped:
            return
        repo, workflow, ref = target_of(config, state.images[name])
        skipped[name] = Dispatch(name, repo, workflow, ref, {}, {}, status="skipped", detail=detail)

    for item in plan.pending:
        if item.dispatched:
            add(
                item.image,
                f"already dispatched at {item.dispatched} (pending); dispatched again after {PENDING_HOURS}h "
                f"without image-built, or now with `dispatch --image {item.image} --retry`",
            )
        elif item.waiting_for and not item.after:
            missing = [p.base for p in plan.pending if p.image == item.image and p.waiting_for and not p.after]
            add(item.image, f"no digest to pin {', '.join(missing)} to yet")
    for item in plan.blocked:
        if item.blocked_by == item.image:
            add(item.image, item.reason)
    return sorted(skipped.values(), key=lambda item: item.image)


def dispatch(
    root: Path,
    now: datetime,
    token: str | None,
    *,
    dry_run: bool = False,
    only: str | None = None,
    retry: bool = False,
    connect: Callable = github_client.connect,
    after: list[str] | None = None,
) -> list[Dispatch]:
    """Trigger every due build (of the images built on `after`, when given: watched references
    or managed images, see `load_scope`). Each attempt is recorded (pending) before GitHub is
    called, and marked dispatch-failed with GitHub's reason when the call fails: an attempt is
    never lost."""
    config, state = load_scope(root, after) if after else load_model(root, settings_only=True)
    plan = planner.plan(state, now, parse_duration(config.cascade_delay), only if retry else None)
    dispatches = plan_dispatches(config, state, now, only, retry, plan)
    todo = [d for d in dispatches if d.status == "planned"]
    if dry_run:
        for item in todo:
            item.status, item.detail = "dry-run", "would dispatch"
        return dispatches
    try:
        if todo:
            _send(root, state, todo, connect(token, config.kargo.github_api_url), now)
    finally:  # what still waits is looked at by the next event's dispatch, whatever it is about
        looked_at = set(state.images) if only is None else {only}
        change = index.dispatch_queue_change(root, looked_at, waiting(state, plan) & looked_at)
        apply_changes(change, journal(root))
    return dispatches


def waiting(state: State, plan: planner.Plan) -> set[str]:
    """The images no event might bring up again: GitHub refused their last dispatch, or they
    wait out a cascade delay after a parent's rebuild. (A dispatch never reported is sent again
    after PENDING_TIMEOUT by the next dispatch about its bases, or by a full `dispatch`: queuing
    every build in flight would make each event of a rebuild wave read them all.)"""
    found = set()
    for name, image in state.images.items():
        attempts = image.runtime.attempts
        if attempts and attempts[-1]["result"] == "dispatch-failed":
            found.add(name)
    managed_refs = {image.ref.canonical for image in state.images.values()}
    found |= {item.image for item in plan.pending if item.base in managed_refs and item.eligible_at is not None}
    return found


def _send(root: Path, state: State, todo: list[Dispatch], client, now: datetime) -> None:
    for item in todo:
        image = state.images[item.image]
        attempt: Build = {"result": "pending", "startedAt": format_time(now), "baseDigests": item.pins}
        image.runtime = runtime_events.record_build(image.runtime, attempt)
        apply_changes({root / image.path: render(image.to_dict())}, journal(root))
        try:
            github_client.dispatch_workflow(client, item.repo, item.workflow, item.ref, item.inputs)
        except github_client.DispatchFailed as refused:
            failed: Build = {**attempt, "result": "dispatch-failed", "error": str(refused)}
            image.runtime = runtime_events.record_build(image.runtime, failed)
            apply_changes({root / image.path: render(image.to_dict())}, journal(root))
            item.status, item.detail, item.attempt = "failed", str(refused), failed
            continue
        item.status, item.detail, item.attempt = "dispatched", f"{item.workflow} in {item.repo} on {item.ref}", attempt
