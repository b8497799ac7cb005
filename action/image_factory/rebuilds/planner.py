"""What should be rebuilt now, what will be and when, and what is blocked. Pure functions.

For a managed image and a watched base it builds on, the *eligible digest* is the newest digest
of that base first seen at least the image's rebuildDelay ago (or expedited). The image is due
when that digest is newer than the one its last successful build used. Because the newest *aged*
digest is taken, a base that changes more often than the delay still yields rebuilds: it never
starves. A managed image rebuilt successfully makes the images built on it due (the cascade),
after `cascade_delay` (default none); a failed one blocks them until it succeeds. A rejected
digest is never used, nor an unverified one of a base that requires verification: those are
listed as held, with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from image_factory.enrolment.durations import parse_duration
from image_factory.enrolment.refs import parse_ref
from image_factory.rebuilds.pins import (
    PENDING_TIMEOUT,
    eligible,
    expedited_by,
    hold_reason,
    pins_for,
    previous_attempt,
    unpinned,
)
from image_factory.rebuilds.scan_evidence import Evidence, Runs, ScanPolicy, describe, judge, runs_of
from image_factory.state.runtime_events import unseen
from image_factory.state.store import HistoryEntry, ImageState, State
from image_factory.timestamps import format_time, parse_time


@dataclass(frozen=True)
class Due:
    image: str  # the managed image to rebuild
    base: str  # the canonical reference it is built on
    digest: str  # the digest to build with
    reason: str
    wave: int  # 1: can be built now; n: after its ancestors in earlier waves
    auto: bool = True  # autoRebuild: dispatched without a human
    expedited: bool = False  # the digest skips the delay (its Kargo Stage, if any, would wait it)


@dataclass(frozen=True)
class Pending:
    image: str
    base: str
    digest: str | None  # None: the digest a parent's coming rebuild will produce
    eligible_at: str | None  # None: when that parent's rebuild succeeds
    after: str | None = None
    later: int = 0  # newer digests of the same base that become eligible after this one
    waiting_for: str | None = None  # what the build cannot be pinned without (a first digest, a first build)
    dispatched: str | None = None  # when the build on these digests was dispatched: its report is awaited
    note: str | None = None  # what its scan findings say, when they decide nothing (scan_evidence)


@dataclass(frozen=True)
class Blocked:
    image: str
    blocked_by: str
    reason: str


@dataclass(frozen=True)
class Held:
    """A digest newer than what the image was built with that no rebuild will use (yet)."""

    image: str
    base: str
    digest: str
    reason: str  # rejected (why), not verified yet, or its verification failed (why)


@dataclass
class Plan:
    due: list[Due] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "due": [asdict(item) for item in self.due],
            "pending": [asdict(item) for item in self.pending],
            "blocked": [asdict(item) for item in self.blocked],
            "held": [asdict(item) for item in self.held],
        }

    def builds(self, wave: int = 1) -> dict[str, dict[str, str]]:
        """Image → {base: digest} for every image due in `wave`, ready to dispatch."""
        builds: dict[str, dict[str, str]] = {}
        for item in self.due:
            if item.wave == wave:
                builds.setdefault(item.image, {})[item.base] = item.digest
        return builds


def _first_newer(history: list[HistoryEntry], than: str | None) -> int:
    """Where the digests seen after `than` (a digest the image was built with) start in the
    history, which is in the order the digests were seen; 0 when `than` is not in it."""
    for index, entry in enumerate(history):
        if entry["digest"] == than:
            return index + 1
    return 0


def _last_attempt_failed(image: ImageState) -> bool:
    """Its last build failed: what blocks the images built on it. A dispatch GitHub refused built
    nothing (a rollback not sent included): the image still runs its last good build."""
    finished = [a for a in image.runtime.attempts if a["result"] in ("success", "failure")]
    return bool(finished) and finished[-1]["result"] == "failure"


def _topological(state: State) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for base in state.images[name].base_images:
            if base.image and base.image in state.images:
                visit(base.image)
        order.append(name)

    for name in sorted(state.images):
        visit(name)
    return order


def plan(state: State, now: datetime, cascade_delay: timedelta = timedelta(0), retry: str | None = None) -> Plan:
    """The rebuild plan at `now` for the (merged) state. `retry`: an image whose build on its due
    digests failed, or was dispatched and not reported yet, is due again (`dispatch --retry`)."""
    result = Plan()
    waves: dict[str, int] = {}  # images due now or waiting for a due ancestor → their wave
    runs: dict[str, Runs] = {}  # each scanned base's runs, worked out once for all its dependents
    failing: dict[str, str] = {}  # image → the image whose failure blocks it
    for name in _topological(state):
        image = state.images[name]
        parents = [base.image for base in image.base_images if base.image and base.image in state.images]
        blocker = next((failing[p] for p in parents if p in failing), None)
        if blocker is not None:
            failing[name] = blocker
            result.blocked.append(Blocked(name, blocker, f"{blocker}'s last build failed"))
            continue
        if _last_attempt_failed(image):
            failing[name] = name
        due, pending, held = _image_plan(state, image, now, cascade_delay, runs)
        result.held += held
        waiting_on = [p for p in parents if p in waves]
        wave = 1 + max((waves[p] for p in waiting_on), default=0)
        if due and wave == 1:  # what dispatch would send now: the plan says due only if it would
            due, stopped = _sendable(state, image, due, now, retry == name)
            if isinstance(stopped, Blocked):
                failing[name] = name
                result.blocked.append(stopped)
                continue
            pending += stopped
        if due or waiting_on:
            waves[name] = wave
        result.due += [Due(**item, wave=wave, auto=image.enrolment["autoRebuild"]) for item in due]
        result.pending += pending
        for parent in waiting_on:
            parent_ref = state.images[parent].ref.canonical
            if not any(item["base"] == parent_ref for item in due):
                result.pending.append(Pending(name, parent_ref, None, None, after=parent))
    return result


def _sendable(state: State, image: ImageState, due: list[dict], now: datetime, retry: bool = False):
    """`due` as dispatch would take it: (due, []) when it would send the build; ([], why not)
    when a base cannot be pinned yet (Pendings naming what they wait for), when the build on
    these very digests failed (Blocked: `dispatch --retry` sends it again), or when it was
    dispatched and its report is awaited (Pending, dispatched)."""
    pins = pins_for(image, {item["base"]: item["digest"] for item in due}, state, now)
    missing = unpinned(image, state, pins)
    if missing:
        parents = {state.images[b.image].ref.canonical: b.image for b in image.base_images if b.image}
        return [], [
            Pending(
                image.name,
                key,
                None,
                None,
                after=parents.get(key),
                waiting_for=f"{parents[key]}'s first build" if key in parents else f"a first digest of {key}",
            )
            for key in missing
        ]
    previous = previous_attempt(image, pins)
    if previous is None or retry:
        return due, []
    if previous["result"] == "failure":
        why = (
            f"its build on these digests failed ({previous.get('finishedAt') or previous['startedAt']}): "
            f"`image-factory dispatch --image {image.name} --retry` builds them again"
        )
        return [], Blocked(image.name, image.name, why)
    if previous["result"] == "pending" and now - parse_time(previous["startedAt"]) < PENDING_TIMEOUT:
        first = due[0]
        return [], [Pending(image.name, first["base"], first["digest"], None, dispatched=previous["startedAt"])]
    return due, []  # a report that never came: dispatched again


def _image_plan(state: State, image: ImageState, now: datetime, cascade_delay: timedelta, runs: dict[str, Runs]):
    built = dict((image.runtime.last_build or {}).get("baseDigests", {}))
    delay = parse_duration(image.enrolment["rebuildDelay"])
    due: list[dict] = []
    pending: list[Pending] = []
    held: list[Held] = []
    for base in image.base_images:
        if base.image:
            parent = state.images.get(base.image)
            build = parent.runtime.last_build if parent else None
            if not build or build["result"] != "success":
                continue
            key = parent.ref.canonical
            if build["digest"] == built.get(key):
                continue
            ready_at = parse_time(build.get("finishedAt") or build["startedAt"]) + cascade_delay
            if ready_at <= now:
                due.append(
                    {
                        "image": image.name,
                        "base": key,
                        "digest": build["digest"],
                        "reason": f"{base.image} was rebuilt ({build['digest']})",
                    }
                )
            else:
                pending.append(Pending(image.name, key, build["digest"], format_time(ready_at)))
            continue
        ref = parse_ref(base.ref, default_tag=None)
        watched = state.base_images.get(ref.without_digest().canonical)
        if watched is None or watched.warehouse is None:
            continue  # a digest-only reference never changes
        key = watched.ref.canonical
        history = watched.runtime.history
        baseline = built.get(key) or ref.digest  # a Dockerfile pin counts as what it was built with
        required = watched.verification_required
        start = _first_newer(history, baseline)
        policy = ScanPolicy.of(image.enrolment)
        if policy is not None and key not in runs:
            runs[key] = runs_of(history, now)
        evidence = _evidence(history, start, baseline, policy, now, runs.get(key, {}))
        candidate = eligible(history, delay, now, required, evidence)
        if candidate is not None and history.index(candidate) >= start:
            found = evidence(candidate)
            if expedited_by(candidate, now):
                why = f"expedited: {candidate['expedited']['reason']}"
            elif found.expedites:
                why = f"fixes {describe(found.fixes)}, which the digest it is built on has"
            else:
                why = f"first seen {candidate['firstSeen']}, past the {image.enrolment['rebuildDelay']} delay"
                why += f" ({found.note})" if found.note else ""
            reason = f"{key}: {candidate['digest']} {why}"
            expedited = expedited_by(candidate, now) or found.expedites
            item = {"image": image.name, "base": key, "digest": candidate["digest"], "reason": reason}
            due.append({**item, "expedited": expedited})
        after = history.index(candidate) + 1 if candidate else 0
        waiting = []
        for position, entry in enumerate(history[start:], start):
            why = hold_reason(entry, required, evidence(entry), now)
            if why is not None:
                held.append(Held(image.name, key, entry["digest"], why))
            elif position >= after and not unseen(entry):  # a digest only named waits for a sighting
                waiting.append(entry)
        if waiting:  # the next one to become eligible; the newer ones only counted
            ready_at = format_time(parse_time(waiting[0]["firstSeen"]) + delay)
            note = evidence(waiting[0]).note
            pending.append(Pending(image.name, key, waiting[0]["digest"], ready_at, later=len(waiting) - 1, note=note))
    return due, pending, held


def _evidence(history: list[HistoryEntry], start: int, baseline: str | None, policy, now: datetime, runs: Runs):
    """What each digest's scan findings decide for the image, against the one it is built on:
    nothing for a digest not newer than that one, or when the image has no scan policy."""
    built_on = next((entry for entry in history if entry["digest"] == baseline), None)
    newer = {entry["digest"] for entry in history[start:]} if baseline is not None else set()

    def decide(entry: HistoryEntry) -> Evidence:
        return judge(entry, built_on, policy, now, runs) if entry["digest"] in newer else Evidence()

    return decide
