"""What a managed image's next build pins each base to. Pure; the planner and dispatch share it,
so what the plan calls due is exactly what dispatch can send."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from image_factory.enrolment.durations import parse_duration
from image_factory.enrolment.refs import parse_ref
from image_factory.rebuilds.scan_evidence import Evidence, describe
from image_factory.state.runtime_events import rejection, unseen
from image_factory.state.store import HistoryEntry, ImageState, State
from image_factory.timestamps import parse_time

# A build reports within its jobs' timeouts (about 1.5 h) plus GitHub's queue; a dispatch still
# pending this long lost its run (runner gone, run cancelled) and may be sent again.
PENDING_HOURS = 6
PENDING_TIMEOUT = timedelta(hours=PENDING_HOURS)


def hold_reason(
    entry: HistoryEntry, verification_required: bool, evidence: Evidence | None = None, now: datetime | None = None
) -> str | None:
    """Why no rebuild may use this digest, whatever its age; None when one may. `evidence`: what
    its scan findings decide for the image asking (scan_evidence); `now`: the time asked about."""
    if rejected := rejection(entry):
        return f"rejected: {rejected['reason']}"
    if verification_required:
        outcome = entry.get("verification")
        if outcome is None:
            return "not verified yet: its signature is checked before anything is built on it"
        if not outcome["verified"]:
            return "verification failed" + (f": {outcome['reason']}" if outcome.get("reason") else "")
    known = accepted(entry, now)
    if evidence is not None and (found := [f for f in evidence.introduces if f["id"] not in known]):
        return (
            f"its scan found {describe(tuple(found))}, which the digest it is built on lacks "
            "(`image-factory unreject` accepts it)"
        )
    return None


def accepted(entry: HistoryEntry, now: datetime | None = None) -> set[str]:
    """The vulnerability ids an operator accepted in this digest (`unreject`) by `now`: those its
    scan had found then. They hold it no more, however often it is scanned again; one found
    since does."""
    mark = entry.get("accepted")
    if not mark or (now is not None and parse_time(mark["at"]) > now):
        return set()
    return set(mark.get("ids", "").split())


Judge = Callable[[HistoryEntry], Evidence]


def eligible(
    history: list[HistoryEntry],
    delay: timedelta,
    now: datetime,
    verification_required: bool = False,
    judge: Judge | None = None,
) -> HistoryEntry | None:
    """The newest usable digest (not rejected, verified where that is required, not held by its
    scan findings) first seen at least `delay` ago, expedited by `now`, or fixing by its findings
    what the image's policy says must not wait. Neither skips the verification."""
    ready = []
    for entry in history:
        evidence = judge(entry) if judge is not None else None
        if hold_reason(entry, verification_required, evidence, now) is not None:
            continue
        seen = not unseen(entry)  # only named: an operator's expedite alone may use it
        aged = seen and parse_time(entry["firstSeen"]) + delay <= now
        if expedited_by(entry, now) or aged or (seen and evidence is not None and evidence.expedites):
            ready.append(entry)
    return ready[-1] if ready else None  # the history is in the order the digests were seen


def expedited_by(entry: HistoryEntry, now: datetime) -> bool:
    """Expedited at or before `now`: a plan asked about an earlier time does not see it."""
    expedited = entry.get("expedited")
    return bool(expedited) and parse_time(expedited["at"]) <= now


def pins_for(image: ImageState, changed: dict[str, str], state: State, now: datetime) -> dict[str, str]:
    """The digest of every base: the changed ones, else what the last build used, else the newest
    digest past the delay (a watched base) or the current build (a managed parent). A base with
    none of these is left out: `build_pins` refuses that."""
    last = dict((image.runtime.last_build or {}).get("baseDigests", {}))
    pins = {}
    for base in image.base_images:
        key = base_key(base, state)
        if base.image:
            fallback = (state.images[base.image].runtime.last_build or {}).get("digest")
        else:
            ref = parse_ref(base.ref, default_tag=None)
            watched = state.base_images.get(key)
            entry = None
            if watched is not None:
                delay = parse_duration(image.enrolment["rebuildDelay"])
                required = watched.verification_required
                entry = eligible(watched.runtime.history, delay, now, required)
                rejected = {e["digest"] for e in watched.runtime.history if rejection(e)}
                if last.get(key) in rejected:  # built on a digest rejected since: never again
                    del last[key]
            fallback = entry["digest"] if entry else ref.digest
        digest = changed.get(key) or last.get(key) or fallback
        if digest:
            pins[key] = digest
    return dict(sorted(pins.items()))


def base_key(base, state: State) -> str:
    """How pins name a base: its canonical reference without digest (a managed parent's own)."""
    if base.image:
        return state.images[base.image].ref.canonical
    return parse_ref(base.ref, default_tag=None).without_digest().canonical


def base_keys(image: ImageState, state: State) -> list[str]:
    return sorted({base_key(base, state) for base in image.base_images})


def unpinned(image: ImageState, state: State, pins: dict[str, str]) -> list[str]:
    """The bases of `image` that `pins` leaves without a digest."""
    return [key for key in base_keys(image, state) if key not in pins]


def previous_attempt(image: ImageState, pins: dict[str, str]) -> dict | None:
    """The last attempt on exactly these pins that came to something or may still (pending,
    success, failure): a build dispatch will not send again on its own."""
    return next(
        (
            attempt
            for attempt in reversed(image.runtime.attempts)
            if attempt.get("baseDigests") == pins and attempt["result"] not in ("dispatch-failed", "lost")
        ),
        None,
    )
