"""Where each managed image stands, in one word and a sentence: what the status page, the dashboard
issue and `status` show. Pure: from the merged state and the plan at one time.

The states, first match wins: `blocked` (an ancestor's last build failed), `due` (the plan would
dispatch it now: exactly what `dispatch` sends), `failed` (its last attempt failed, and nothing
newer is due), `rebuilding` (dispatched, no report yet), `waiting` (a newer
base digest becomes eligible later, or a parent is rebuilt first), `held` (the only newer digests
are rejected or unverified), `bases-unknown` (a team's Dockerfile never read: nothing is built until
its repository proposes its bases), `never-built`, `up-to-date`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from image_factory.rebuilds.dispatch import base_keys, pins_for
from image_factory.rebuilds.planner import Plan
from image_factory.state.store import ImageState, State

STATES = ("failed", "blocked", "rebuilding", "due", "waiting", "held", "bases-unknown", "never-built", "up-to-date")
WORDS = {state: {"due": "due now"}.get(state, state.replace("-", " ")) for state in STATES}  # as people read them


@dataclass(frozen=True)
class BaseStatus:
    """One base of a managed image: what it was built on, and what is newest."""

    ref: str  # canonical, without digest (a managed parent: its enrolled reference)
    parent: str | None  # the managed image it is, if any
    built: str | None  # the digest the last successful build used
    current: str | None  # the newest digest seen (a parent: its last build's)


@dataclass(frozen=True)
class ImageStatus:
    name: str
    ref: str
    state: str  # one of STATES
    detail: str  # one sentence: why, and what happens next
    repository: str  # the source repository (a local source: the factory's)
    team: str = ""  # images.yaml `team`, else the owner of the source repository
    eligible_at: str | None = None  # waiting: when the next rebuild may start
    next_digest: str | None = None  # due or waiting: the base digest it will use
    blocked_by: str | None = None
    error: str | None = None  # failed: the last attempt's error
    run_url: str | None = None
    digest: str | None = None  # what its last successful build pushed
    built_at: str | None = None
    bases: tuple[BaseStatus, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return asdict(self)


def overview(state: State, plan: Plan, now: datetime, factory_repo: str | None) -> list[ImageStatus]:
    """Every managed image's status, by name. Linear in the fleet: the plan is grouped by image
    once, and managed parents are found by reference through one index."""
    items: dict[str, Plan] = {}
    for kind in ("due", "pending", "blocked", "held"):
        for item in getattr(plan, kind):
            getattr(items.setdefault(item.image, Plan()), kind).append(item)
    managed = {image.ref.canonical: image for image in state.images.values()}
    return [
        _status(state, items.get(name, Plan()), now, image, factory_repo, managed)
        for name, image in sorted(state.images.items())
    ]


def counts(statuses: list[ImageStatus]) -> dict[str, int]:
    """How many images are in each state, in the order of STATES (all of them, zeros included)."""
    return {name: sum(1 for s in statuses if s.state == name) for name in STATES}


def _status(
    state: State, plan: Plan, now: datetime, image: ImageState, factory_repo: str | None, managed: dict
) -> ImageStatus:
    name = image.name
    source = image.enrolment["source"]
    repository = source["repo"] if source["provider"] == "github" else (factory_repo or "this repository")
    last = image.runtime.last_build or {}
    attempt = image.runtime.attempts[-1] if image.runtime.attempts else None
    common = {
        "name": name,
        "ref": image.ref.canonical,
        "repository": repository,
        "team": image.enrolment.get("team") or repository.split("/")[0],
        "digest": last.get("digest"),
        "built_at": last.get("finishedAt"),
        "bases": _bases(state, image, managed),
    }
    due, pending, held = plan.due, plan.pending, plan.held
    blocked = next((item for item in plan.blocked if item.blocked_by != name), None)
    if blocked is not None:
        return ImageStatus(**common, state="blocked", detail=blocked.reason, blocked_by=blocked.blocked_by)
    if due:  # what dispatch sends now, whatever came before (a failure on older digests, a lost run)
        first = due[0]
        later = " after its parents are rebuilt" if first.wave > 1 else " now"
        manual = "" if first.auto else " (autoRebuild is off: promote or dispatch it by hand)"
        refused = attempt.get("error") if attempt and attempt["result"] == "dispatch-failed" else None
        again = f"; its last dispatch failed, sent again: {refused}" if refused else ""
        return ImageStatus(
            **common,
            state="due",
            detail=f"a rebuild is due{later}: {first.reason}{manual}{again}",
            next_digest=first.digest,
            error=refused,
        )
    if attempt and attempt["result"] in ("failure", "dispatch-failed"):
        what = "its build failed" if attempt["result"] == "failure" else "its build could not be dispatched"
        error = attempt.get("error")
        return ImageStatus(
            **common,
            state="failed",
            detail=f"{what} ({attempt.get('finishedAt') or attempt['startedAt']})" + (f": {error}" if error else ""),
            error=error,
            run_url=attempt.get("runUrl"),
        )
    if attempt and attempt["result"] == "pending":
        pins = ", ".join(f"{ref}@{digest}" for ref, digest in sorted(attempt.get("baseDigests", {}).items()))
        return ImageStatus(
            **common, state="rebuilding", detail=f"dispatched at {attempt['startedAt']} on {pins or 'no base'}"
        )
    timed = sorted((item for item in pending if item.eligible_at), key=lambda item: item.eligible_at)
    if timed:
        first = timed[0]
        return ImageStatus(
            **common,
            state="waiting",
            detail=f"{first.base}@{first.digest} becomes eligible at {first.eligible_at}",
            eligible_at=first.eligible_at,
            next_digest=first.digest,
        )
    after = next((item for item in pending if item.after), None)
    if after is not None:
        return ImageStatus(**common, state="waiting", detail=f"rebuilt after {after.after}'s rebuild")
    if held:
        first = held[0]
        return ImageStatus(
            **common, state="held", detail=f"{first.base}@{first.digest} is held: {first.reason}", next_digest=None
        )
    if image.bases_unknown and not last:
        return ImageStatus(**common, state="bases-unknown", detail=bases_unknown(image))
    if not last:
        pins = pins_for(image, {}, state, now)
        missing = [key for key in base_keys(image, state) if key not in pins]
        detail = (
            f"waiting for a first digest of {', '.join(missing)}"
            if missing
            else "not built yet: its first build is dispatched with the next event"
        )
        return ImageStatus(**common, state="never-built", detail=detail)
    return ImageStatus(**common, state="up-to-date", detail="built on the current digest of every base")


def bases_unknown(image: ImageState) -> str:
    """What an image whose Dockerfile no discover has read waits for."""
    return f"bases unknown: waiting for {image.enrolment['source']['repo']} to propose them"


def _bases(state: State, image: ImageState, managed: dict[str, ImageState]) -> tuple[BaseStatus, ...]:
    built = (image.runtime.last_build or {}).get("baseDigests", {})
    found = []
    for key in base_keys(image, state):
        parent = managed.get(key)
        if parent is not None:
            current = (parent.runtime.last_build or {}).get("digest")
        else:
            watched = state.base_images.get(key)
            current = watched.runtime.current_digest if watched else None
        found.append(BaseStatus(key, parent.name if parent else None, built.get(key), current))
    return tuple(found)
