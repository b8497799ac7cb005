"""What happens to an image's runtime record when something is seen or built. Pure functions.

Each returns a new Runtime; the caller writes it. Applying the same event twice changes nothing,
and events applied in any order give the same record: every choice is made by the times the
events carry (the earliest sighting, the latest verdict, the latest build), never by which
arrived last; only an image's attempts without a run that started in the same second keep
the order they were recorded in. The events workflow's drain relies on this: GitHub does not order runs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from image_factory.state.store import Build, HistoryEntry, Runtime
from image_factory.timestamps import format_time, parse_time

MAX_HISTORY = 100


# seenBy of a digest an operator named with --force before anything saw it upstream: it is never
# the current digest, and no rebuild uses it unless it is expedited, until a real sighting.
FORCED = "forced"
# seenBy of a digest only a scan has named so far (the scan Stage may report before the recording
# Stage): as FORCED, and a scan never expedites it either.
SCANNED = "scan"
UNSEEN = (FORCED, SCANNED)


def unseen(entry: HistoryEntry) -> bool:
    """Named (by an operator or a scan), not seen upstream yet."""
    return entry["seenBy"] in UNSEEN


def _by_time(history: list[HistoryEntry]) -> list[HistoryEntry]:
    """Oldest first; digests first seen in the same second by digest, whatever order they came in."""
    return sorted(history, key=lambda entry: (parse_time(entry["firstSeen"]), entry["digest"]))


def _sighting_key(entry: HistoryEntry) -> tuple:
    """Which of two sightings of one digest the history keeps: the earliest, then a fixed order."""
    return (
        parse_time(entry["firstSeen"]),
        entry.get("seenBy", ""),
        entry.get("freight", ""),
        entry.get("reportedBy", ""),
    )


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
    entry: HistoryEntry = {"digest": digest, "firstSeen": format_time(seen_at), "seenBy": seen_by, **extra}
    if existing is None:
        history.append(entry)
    # A forced or scanned entry was only named: now really seen, its delay counts from here.
    # Else the earliest sighting stays, with who saw and reported it.
    elif unseen(existing) or _sighting_key(entry) < _sighting_key(existing):
        marks = {key: value for key, value in existing.items() if key in MARKS}
        existing.clear()
        existing.update(_ordered({**entry, **marks}))
    history = _by_time(history)[-MAX_HISTORY:]
    return replace(runtime, history=history, current_digest=_current(history, runtime.current_digest))


def _current(history: list[HistoryEntry], previous: str | None) -> str | None:
    """The newest digest seen upstream; one only named never becomes current."""
    seen = [entry["digest"] for entry in history if not unseen(entry)]
    return seen[-1] if seen else previous


def record_expedite(runtime: Runtime, digest: str, reason: str, at: datetime) -> Runtime:
    """Let one digest skip the rebuild delay. An operator's word is not a sighting: a digest not
    in the history joins it as FORCED (the caller refuses one without --force), and one only
    named stays so."""
    return _mark(runtime, digest, at, FORCED, "expedited", {"reason": reason, "at": format_time(at)})


def _mark(runtime: Runtime, digest: str, at: datetime, seen_by: str, key: str, value: dict) -> Runtime:
    """Set `key` on the history entry of `digest`, adding the digest (seen at `at`) if unseen.
    `seen_by` FORCED or SCANNED only names it: the earliest naming stays, FORCED's on the same second."""
    named = next((e for e in runtime.history if e["digest"] == digest and unseen(e)), None)
    earlier = named is not None and (parse_time(named["firstSeen"]), UNSEEN.index(named["seenBy"])) > (
        at,
        UNSEEN.index(seen_by) if seen_by in UNSEEN else 0,
    )
    if seen_by in UNSEEN and (not _has(runtime, digest) or earlier):
        entry: HistoryEntry = {"digest": digest, "firstSeen": format_time(at), "seenBy": seen_by}
        others = [e for e in runtime.history if e["digest"] != digest]
        entry = _ordered({**(named or {}), **entry})  # named first at the earliest time; its marks stay
        runtime = replace(runtime, history=_by_time([*others, entry])[-MAX_HISTORY:])
    elif seen_by not in UNSEEN:  # a verdict or an expedite is a sighting too: the earliest one stays
        runtime = record_sighting(runtime, digest, at, seen_by)
    history = [
        _ordered({**entry, key: _later(entry.get(key), value)}) if entry["digest"] == digest else dict(entry)
        for entry in runtime.history
    ]
    return replace(runtime, history=history)


def _ordered(entry: HistoryEntry) -> HistoryEntry:
    """The entry's keys in one order (the sighting's, then the marks'), whatever order set them."""
    marks = {key: entry[key] for key in MARKS if key in entry}
    return {**{key: value for key, value in entry.items() if key not in MARKS}, **marks}


# What _mark sets on a digest's entry: kept when a sighting replaces the entry's own fields.
MARKS = ("expedited", "verification", "rejected", "accepted", "scan", "scanFailed", "pastScans")


def _later(old: dict | None, new: dict) -> dict:
    """Of two marks of one kind (an expedite, a verdict, a rejection), the one given last by its
    time; on the same second a fixed choice, so the order of arrival never decides."""
    if old is None:
        return new
    return max(old, new, key=lambda mark: (parse_time(mark["at"]), json.dumps(mark, sort_keys=True)))


def record_verification(runtime: Runtime, digest: str, verified: bool, reason: str | None, at: datetime) -> Runtime:
    """The signature check of one digest passed or failed; the latest outcome counts."""
    outcome = {"verified": verified, **({"reason": reason} if reason else {}), "at": format_time(at)}
    return _mark(runtime, digest, at, "verify", "verification", outcome)


def record_rejection(runtime: Runtime, digest: str, reason: str, at: datetime) -> Runtime:
    """A digest known to break our builds: never used again, until an acceptance dated at or after
    it (`clear_rejection`). Not a sighting, as `record_expedite`."""
    return _mark(runtime, digest, at, FORCED, "rejected", {"reason": reason, "at": format_time(at)})


def clear_rejection(runtime: Runtime, digest: str, at: datetime, ids: str = "") -> Runtime:
    """An operator accepts the digest at `at` (`unreject`): a rejection dated at or before it no
    longer holds it, nor do the vulnerability `ids` (separated by spaces) its scan had found
    (rebuilds.pins). Both marks stay, each the latest by its time, so the order they are
    recorded in never decides."""
    return _mark(runtime, digest, at, FORCED, "accepted", {"at": format_time(at), **({"ids": ids} if ids else {})})


def rejection(entry: HistoryEntry) -> dict | None:
    """The rejection that holds the digest: its latest, unless accepted at or after it."""
    rejected, accepted = entry.get("rejected"), entry.get("accepted")
    if rejected and accepted and parse_time(accepted["at"]) >= parse_time(rejected["at"]):
        return None
    return rejected


# Earlier scans of a digest kept as ids, by run: a scan Job scans each digest once new and
# `rescan` times again (3 by default), so a digest's runs with its neighbours all stay.
MAX_PAST_SCANS = 3


def record_scan(runtime: Runtime, digest: str, scan: dict, at: datetime) -> Runtime:
    """A scanner's findings for one digest (or why its scan could not run): the latest scan in
    full, the MAX_PAST_SCANS before it as their run and ids (`pastScans`, what the comparisons
    of rebuilds.scan_evidence rest on). `scan`: `scanner`, `run`, then `minSeverity`, `findings`
    and `otherIds` (and what was left out), or `error`. The scans kept are the latest by time,
    whatever order they came in. A scan is not a sighting: a digest no sighting has reported
    yet is only named (SCANNED)."""
    before = next((entry for entry in runtime.history if entry["digest"] == digest), {})
    given = {**scan, "at": format_time(at)}
    runtime = _mark(runtime, digest, at, SCANNED, "scan", given)  # names the digest if unseen
    # A failed scan adds nothing and takes nothing away: the latest scan that ran stays `scan`,
    # and a later failure is shown beside it (`scanFailed`).
    scans = [item for item in (before.get("scan"), before.get("scanFailed"), given) if item]
    ran = [item for item in scans if not item.get("error")]
    failed = [item for item in scans if item.get("error")]
    latest = _latest(ran) if ran else _latest(failed)
    failure = _latest(failed) if ran and failed else None
    if failure is not None and parse_time(failure["at"]) <= parse_time(latest["at"]):
        failure = None
    known = [*past_scans(before), *(past_scan(item) for item in scans)]
    unique = {(item["at"], item["run"]): item for item in known if item}
    newest = past_scan(latest)
    past = [unique[key] for key in sorted(unique) if unique[key] != newest][-MAX_PAST_SCANS:]
    marks = {"scan": latest, **({"scanFailed": failure} if failure else {})}
    marks.update({"pastScans": [_against(item, newest) for item in past]} if past else {})
    history = [
        _ordered({**{k: v for k, v in entry.items() if k not in SCAN_MARKS}, **marks})
        if entry["digest"] == digest
        else entry
        for entry in runtime.history
    ]
    return replace(runtime, history=history)


SCAN_MARKS = ("scan", "scanFailed", "pastScans")


def _latest(scans: list[dict]) -> dict:
    return max(scans, key=lambda mark: (parse_time(mark["at"]), json.dumps(mark, sort_keys=True)))


def past_scan(scan: dict | None) -> dict | None:
    """A scan as a comparison needs it: its run, time and every id it found; None for one that
    cannot be compared (no run, a failure, ids left out)."""
    if not scan or "run" not in scan or "otherIds" not in scan or scan.get("error") or scan.get("otherIdsOmitted"):
        return None
    ids = {finding["id"] for finding in scan.get("findings", [])} | set(scan["otherIds"].split())
    return {"run": scan["run"], "at": scan["at"], "ids": " ".join(sorted(ids))}


def past_scans(entry: HistoryEntry) -> list[dict]:
    """A digest's earlier scans, each as `past_scan` gives it."""
    newest = past_scan(entry.get("scan"))
    return [_expanded(item, newest) for item in entry.get("pastScans", [])]


def _against(item: dict, newest: dict | None) -> dict:
    """An earlier scan as state keeps it: what it found besides (`plus`) and short of (`minus`)
    the latest scan of the digest, a few ids where all of them would be hundreds; all its ids
    when the latest cannot be compared."""
    if newest is None:
        return item
    ids, base = set(item["ids"].split()), set(newest["ids"].split())
    differs = {"plus": " ".join(sorted(ids - base)), "minus": " ".join(sorted(base - ids))}
    return {"run": item["run"], "at": item["at"], **{key: value for key, value in differs.items() if value}}


def _expanded(item: dict, newest: dict | None) -> dict:
    if "ids" in item or newest is None:
        return {"run": item["run"], "at": item["at"], "ids": item.get("ids", "")}
    ids = (set(newest["ids"].split()) - set(item.get("minus", "").split())) | set(item.get("plus", "").split())
    return {"run": item["run"], "at": item["at"], "ids": " ".join(sorted(ids))}


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
    reported = next((attempt for attempt in attempts if _same_report(attempt, build)), None)
    if reported is not None:  # the same report delivered again: it finished when first reported
        for key in ("startedAt", "finishedAt"):
            reported[key] = _earliest(reported.get(key), build.get(key))
        build = reported
    elif same is not None:  # the dispatched attempt now has its outcome; it started when dispatched
        same.update({key: value for key, value in build.items() if key != "startedAt"})
        build = same
    elif build not in attempts:
        attempts.append(dict(build))
    attempts.sort(key=_attempt_key)
    runtime = replace(runtime, attempts=attempts)
    if build["result"] == "success":
        seen_at = parse_time(build.get("finishedAt") or build["startedAt"])
        runtime = record_sighting(runtime, build["digest"], seen_at, "build")
        last = runtime.last_build
        if last is None or _same_report(last, build) or _build_key(build) > _build_key(last):
            runtime = replace(runtime, last_build=dict(build), current_digest=build["digest"])
    return runtime


def _same_report(attempt: Build, build: Build) -> bool:
    """One build's outcome reported twice (a sender's retry, a re-run receipt): same run, result and digest."""
    keys = ("runUrl", "result", "digest", "baseDigests")
    return bool(build.get("runUrl")) and all(attempt.get(key) == build.get(key) for key in keys)


def _earliest(first: str | None, second: str | None) -> str | None:
    times = [stamp for stamp in (first, second) if stamp]
    return min(times, key=parse_time) if times else None


def _attempt_key(attempt: Build) -> tuple:
    """Attempts in the order they started; on the same second, reported builds by their run (so
    the order reports arrive in never decides), others as they were recorded."""
    return (parse_time(attempt["startedAt"]), attempt.get("runUrl", ""))


def _build_key(build: Build) -> tuple:
    """Which success is the image's last build: the one that finished last."""
    return (parse_time(build.get("finishedAt") or build["startedAt"]), build.get("digest", ""))


def _has(runtime: Runtime, digest: str) -> bool:
    return any(entry["digest"] == digest for entry in runtime.history)
