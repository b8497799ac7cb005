"""What happens to an image's runtime record when something is seen or built. Pure functions.

Each returns a new Runtime; the caller writes it. Applying the same event twice changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from image_factory.state.store import Build, HistoryEntry, Runtime
from image_factory.timestamps import format_time, parse_time

MAX_HISTORY = 100


# seenBy of a digest an operator named with --force before anything saw it upstream: it is never
# the current digest, and no rebuild uses it unless it is expedited, until a real sighting.
FORCED = "forced"


def _by_time(history: list[HistoryEntry]) -> list[HistoryEntry]:
    """Oldest first; digests first seen in the same second keep the order they arrived in."""
    return sorted(history, key=lambda entry: entry["firstSeen"])


def record_sighting(
    runtime: Runtime,
    digest: str,
    seen_at: datetime,
    seen_by: str,
    freight: str | None = None,
    reported_by: str | None = None,
) -> Runtime:
    """A digest was seen: add it to the history (once, with its earliest sighting and the sender
    who reported it, if any) and make the newest digest current. Out-of-order events land in time
    order."""
    history = [dict(entry) for entry in runtime.history]
    existing = next((entry for entry in history if entry["digest"] == digest), None)
    extra = {**({"freight": freight} if freight else {}), **({"reportedBy": reported_by} if reported_by else {})}
    if existing is None:
        entry: HistoryEntry = {"digest": digest, "firstSeen": format_time(seen_at), "seenBy": seen_by, **extra}
        history.append(entry)
    elif existing["seenBy"] == FORCED:  # now really seen: its delay counts from here
        existing.update({"firstSeen": format_time(seen_at), "seenBy": seen_by, **extra})
    elif parse_time(existing["firstSeen"]) > seen_at:
        existing["firstSeen"] = format_time(seen_at)
    history = _by_time(history)[-MAX_HISTORY:]
    return replace(runtime, history=history, current_digest=_current(history, runtime.current_digest))


def _current(history: list[HistoryEntry], previous: str | None) -> str | None:
    """The newest digest seen upstream; a forced one never becomes current."""
    seen = [entry["digest"] for entry in history if entry["seenBy"] != FORCED]
    return seen[-1] if seen else previous


def record_expedite(runtime: Runtime, digest: str, reason: str, at: datetime, *, force: bool = False) -> Runtime:
    """Let one digest skip the rebuild delay. With `force`, an unseen digest joins the history
    as FORCED (the caller refuses an unseen one otherwise)."""
    seen_by = FORCED if force else "expedite"
    return _mark(runtime, digest, at, seen_by, "expedited", {"reason": reason, "at": format_time(at)})


def _mark(runtime: Runtime, digest: str, at: datetime, seen_by: str, key: str, value: dict) -> Runtime:
    """Set `key` on the history entry of `digest`, adding the digest (seen at `at`) if unseen."""
    if not _has(runtime, digest) and seen_by == FORCED:
        entry: HistoryEntry = {"digest": digest, "firstSeen": format_time(at), "seenBy": FORCED}
        runtime = replace(runtime, history=_by_time([*runtime.history, entry])[-MAX_HISTORY:])
    elif not _has(runtime, digest):
        runtime = record_sighting(runtime, digest, at, seen_by)
    history = [{**entry, key: value} if entry["digest"] == digest else dict(entry) for entry in runtime.history]
    return replace(runtime, history=history)


def record_verification(runtime: Runtime, digest: str, verified: bool, reason: str | None, at: datetime) -> Runtime:
    """The signature check of one digest passed or failed; the latest outcome counts."""
    outcome = {"verified": verified, **({"reason": reason} if reason else {}), "at": format_time(at)}
    return _mark(runtime, digest, at, "verify", "verification", outcome)


def record_rejection(runtime: Runtime, digest: str, reason: str, at: datetime, *, force: bool = False) -> Runtime:
    """A digest known to break our builds: never used again (until `unreject`)."""
    seen_by = FORCED if force else "reject"
    return _mark(runtime, digest, at, seen_by, "rejected", {"reason": reason, "at": format_time(at)})


def clear_rejection(runtime: Runtime, digest: str) -> Runtime:
    """Undo `record_rejection`: the digest may be used again."""
    history = [
        {key: value for key, value in entry.items() if key != "rejected"} if entry["digest"] == digest else dict(entry)
        for entry in runtime.history
    ]
    return replace(runtime, history=history)


def record_build(runtime: Runtime, build: Build) -> Runtime:
    """A build of a managed image finished (or was dispatched). A success becomes the last build,
    its digest the current one; every attempt is kept (the most recent ones). Dispatching the
    same bases again marks an earlier attempt still pending as lost: its report never came."""
    attempts = [dict(attempt) for attempt in runtime.attempts]
    if build["result"] == "pending" and build not in attempts:
        for attempt in attempts:
            if attempt["result"] == "pending" and attempt.get("baseDigests") == build.get("baseDigests"):
                attempt["result"] = "lost"
                attempt["error"] = f"no image-built came; dispatched again at {build['startedAt']}"
    same = next(
        (
            attempt
            for attempt in attempts
            if attempt.get("baseDigests") == build.get("baseDigests") and attempt["result"] == "pending"
        ),
        None,
    )
    if same is not None:  # the dispatched attempt now has its outcome; it started when dispatched
        same.update({key: value for key, value in build.items() if key != "startedAt"})
    elif build not in attempts:
        attempts.append(dict(build))
    runtime = replace(runtime, attempts=attempts)
    if build["result"] == "success":
        seen_at = parse_time(build.get("finishedAt") or build["startedAt"])
        runtime = record_sighting(runtime, build["digest"], seen_at, "build")
        runtime = replace(runtime, last_build=dict(build), current_digest=build["digest"])
    return runtime


def _has(runtime: Runtime, digest: str) -> bool:
    return any(entry["digest"] == digest for entry in runtime.history)
