"""Events at the edges: read state, apply one runtime event, write the one file it changes.

Each command refuses to run on an invalid images.yaml or state, like every other command.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime
from pathlib import Path

from image_factory.enrolment import schemas
from image_factory.enrolment.refs import InvalidReference, parse_digest, parse_ref
from image_factory.enrolment.yaml_source import YamlDocument
from image_factory.errors import FactoryError, Problem
from image_factory.state import built_on, index, runtime_events
from image_factory.state.files import apply_changes
from image_factory.state.store import BaseImageState, Build, ImageState, journal, render
from image_factory.timestamps import format_time, parse_time
from image_factory.user_text import one_line


def load_model(root: Path):
    """The full load (discover.load_model), imported only when an event needs it."""
    from image_factory.discovery.discover import load_model

    return load_model(root)


def _digest(text: str) -> str:
    try:
        return parse_digest(text)
    except InvalidReference as error:
        raise FactoryError(Problem("--digest", error.reason)) from None


def _watched(root: Path, image: str) -> BaseImageState:
    try:
        ref = parse_ref(image).without_digest()
    except InvalidReference as error:
        raise FactoryError(Problem("--image", str(error))) from None
    fast = index.read_index(root)
    if fast is not None:  # only its own file (index.py says when that is the same)
        base = index.watched(root, fast, ref) or index.watched(root, fast, ref.with_tag(None))
        if base is not None:
            return base
    _, state = load_model(root)
    base = state.base_images.get(ref.canonical) or state.base_images.get(ref.with_tag(None).canonical)
    if base is None:
        managed = next((i.name for i in state.images.values() if i.ref.name == ref.name), None)
        # compared by what differs (the repository's last part and the tag), not a registry prefix they share
        short = {key.rsplit("/", 1)[-1]: key for key in state.base_images}
        close = [short[k] for k in difflib.get_close_matches(ref.canonical.rsplit("/", 1)[-1], list(short), n=1)]
        hint = (
            f"it is managed image {managed!r}: its builds are recorded with record-build"
            if managed
            else f"did you mean {close[0]}?"
            if close
            else "no state/base-images file: enrol it or build on it, then run discover"
        )
        raise FactoryError(Problem("--image", f"{ref} is not a watched image ({hint})"))
    return base


def _write(root: Path, entry: ImageState | BaseImageState, also: dict[Path, str | None] | None = None) -> None:
    """Write the one file an event changed, once its schema accepts it: an event that would leave
    a file every later command refuses is refused itself, with nothing written."""
    data = entry.to_dict()
    schema = schemas.BASE_IMAGE_STATE if isinstance(entry, BaseImageState) else schemas.IMAGE_STATE
    problems = schemas.validate(YamlDocument(entry.path, data), schema)
    if problems:
        first = problems[0]
        raise FactoryError(Problem(entry.path, f"the event would make it invalid: {first.field}: {first.message}"))
    apply_changes({root / entry.path: render(data), **(also or {})}, journal(root))


def record_update(
    root: Path,
    image: str,
    digest: str,
    seen_at: datetime,
    freight: str | None,
    verified: bool | None = None,
    reason: str | None = None,
    seen_by: str = "kargo",
    *,
    reported_by: str | None = None,
) -> BaseImageState:
    """A new digest of a watched image was seen (Kargo's recording Stage reported it, as the
    sender `reported_by`), or its signature check passed or failed (`verified`; Kargo's verified
    Stage, or `verify`)."""
    digest = _digest(digest)
    base = _watched(root, image)
    if verified is None:
        base.runtime = runtime_events.record_sighting(base.runtime, digest, seen_at, seen_by, freight, reported_by)
    else:
        base.runtime = runtime_events.record_verification(base.runtime, digest, verified, reason, seen_at)
    _write(root, base)
    return base


def reject(root: Path, image: str, digest: str, reason: str, at: datetime, *, force: bool = False) -> BaseImageState:
    """A digest of a watched image breaks our builds: `plan` never uses it again."""

    def event(runtime, digest, why):
        return runtime_events.record_rejection(runtime, digest, why, at)

    missing = "say why the digest is rejected (it is recorded in state)"
    return _with_reason(root, image, digest, reason, missing, event, force)


def unreject(root: Path, image: str, digest: str, at: datetime) -> BaseImageState:
    """An operator accepts a digest at `at`: a rejection dated at or before it, and the
    vulnerabilities its scan has found, hold it no more. A digest not in the history (a typo?)
    is refused."""
    digest = _digest(digest)
    base = _watched(root, image)
    entry = next((entry for entry in base.runtime.history if entry["digest"] == digest), None)
    if entry is None:
        raise FactoryError(Problem("--digest", f"{digest} was never seen for {base.ref} (a typo?)"))
    rejected = runtime_events.rejection(entry)
    if rejected and parse_time(rejected["at"]) > at:
        raise FactoryError(
            Problem("--at", f"it was rejected at {rejected['at']}, after {format_time(at)}: accept it then or later")
        )
    # every id any of its scans found: what it is accepted with
    found = [runtime_events.past_scan(entry.get("scan")), *runtime_events.past_scans(entry)]
    ids = set().union(*(set(item["ids"].split()) for item in found if item))
    ids |= {f["id"] for f in (entry.get("scan") or {}).get("findings", [])}
    ids |= set((entry.get("accepted") or {}).get("ids", "").split())  # accepted before, still accepted
    base.runtime = runtime_events.clear_rejection(base.runtime, digest, at, " ".join(sorted(ids)))
    _write(root, base)
    return base


def record_scan(
    root: Path, image: str, digest: str, scan: dict, at: datetime, *, force: bool = False
) -> BaseImageState:
    """A scanner's findings for a digest of a watched image (the scan Job's `base-image-scanned`,
    or an operator's report), or why the scan could not run. A digest not seen yet (a typo?) is
    refused unless `force`; a scan is never a sighting."""
    digest = _digest(digest)
    base = _watched(root, image)
    if not force and not any(entry["digest"] == digest for entry in base.runtime.history):
        raise FactoryError(
            Problem("--digest", f"{digest} was never seen for {base.ref} (a typo?); --force keeps its scan until it is")
        )
    base.runtime = runtime_events.record_scan(base.runtime, digest, scan, at)
    _write(root, base)
    return base


def _with_reason(root: Path, image: str, digest: str, reason: str, missing: str, event, force: bool) -> BaseImageState:
    """Apply `event(runtime, digest, reason)` to a watched image; a blank reason is refused, and
    a digest never seen (a typo?) unless `force`."""
    digest = _digest(digest)
    if not reason.strip():
        raise FactoryError(Problem("--reason", missing))
    base = _watched(root, image)
    if not force and not any(entry["digest"] == digest for entry in base.runtime.history):
        raise FactoryError(
            Problem(
                "--digest",
                f"{digest} was never seen for {base.ref} (a typo? `image-factory status` and state list the digests "
                "seen); --force records it anyway, as named by an operator: it never becomes the current digest",
            )
        )
    base.runtime = event(base.runtime, digest, reason.strip())
    _write(root, base)
    return base


def expedite(root: Path, image: str, digest: str, reason: str, at: datetime, *, force: bool = False) -> BaseImageState:
    """Let one digest of a watched image skip the rebuild delay (a critical fix upstream)."""

    def event(runtime, digest, why):
        return runtime_events.record_expedite(runtime, digest, why, at)

    return _with_reason(root, image, digest, reason, "say why the delay is skipped", event, force)


def record_build(
    root: Path,
    name: str,
    digest: str | None,
    result: str,
    bases: dict[str, str],
    run_url: str | None,
    finished_at: datetime,
    *,
    signed: bool | None = None,
    error: str | None = None,
    reported_by: str | None = None,
    refuse_replay: bool = False,
    revision_tag: str | None = None,
) -> ImageState:
    """A build of a managed image finished. On success its dependents become due (the cascade)."""
    refs = {}
    for ref_text in bases:
        try:
            refs[ref_text] = parse_ref(ref_text).without_digest()
        except InvalidReference as error:
            raise FactoryError(Problem("--base", str(error))) from None
    image, managed = _built(root, name, list(refs.values()))
    if result == "success" and not digest:
        raise FactoryError(Problem("--digest", "a successful build needs the digest it pushed"))
    if result == "success" and image.base_images and not bases:
        raise FactoryError(
            Problem(
                "--bases",
                f"a successful build of {name} needs the digests it was built on (--base REF=DIGEST, or --bases "
                "JSON): without them the plan cannot know which base digests it is built on",
            )
        )
    base_digests = {}
    for ref_text, base_digest in bases.items():
        ref = refs[ref_text]
        # a managed parent is keyed by its enrolled reference, whatever tag the Dockerfile used
        parent = managed.get(ref.name)
        base_digests[parent.ref.canonical if parent else ref.canonical] = _digest(base_digest)
    build: Build = {"result": result, "startedAt": format_time(finished_at), "finishedAt": format_time(finished_at)}
    if digest:
        build["digest"] = _digest(digest)
    if base_digests:
        build["baseDigests"] = dict(sorted(base_digests.items()))
    if run_url:
        build["runUrl"] = run_url
    if signed is not None:
        build["signed"] = signed
    if error:
        build["error"] = error
    if reported_by is not None:
        build["reportedBy"] = reported_by
    if revision_tag and result == "success":
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", revision_tag):
            raise FactoryError(Problem("--revision-tag", f"{one_line(revision_tag)[:140]!r} is not a tag"))
        build["revisionTag"] = revision_tag
    if refuse_replay and result == "success":
        _refuse_replay(image, build, reported_by)
    before = image.runtime.last_build
    image.runtime = runtime_events.record_build(image.runtime, build)
    _write(root, image, built_on.after_build(root, image, before))
    return image


def _built(root: Path, name: str, refs: list) -> tuple[ImageState, dict[str, ImageState]]:
    """Managed image `name` and the managed images `refs` may name, by repository: from their
    own files when the index is current and every ref is a base of the image; else a full load."""
    fast = index.read_index(root)
    image = index.managed(root, fast, name) if fast is not None else None
    if image is not None:
        parents = {parent.ref.name: parent for parent in index.parents(root, fast, image).values()}
        watched = {parse_ref(base.ref, default_tag=None).without_digest().canonical for base in image.base_images}
        if all(ref.name in parents or ref.canonical in watched for ref in refs):
            return image, parents
    _, state = load_model(root)
    image = state.managed(name)
    by_repository: dict[str, ImageState] = {}
    for other in state.images.values():
        by_repository.setdefault(other.ref.name, other)
    return image, by_repository


def _refuse_replay(image: ImageState, build: Build, sender: str | None) -> None:
    """An old report sent again with other bases: its digest is genuinely signed, but it would put
    the image back on an old build while state believed it built on the new bases (and so never
    rebuilt it). A digest built before counts only with the bases it was built on."""
    digest = build["digest"]
    if not any(entry["digest"] == digest for entry in image.runtime.history):
        return  # a new build
    earlier = [a for a in [*image.runtime.attempts, image.runtime.last_build or {}] if a.get("digest") == digest]
    if any(a.get("baseDigests", {}) == build.get("baseDigests", {}) for a in earlier):
        return  # the same report again: recording it changes nothing
    who = f" from sender {sender!r}" if sender is not None else ""
    why = (
        f"{digest} was built before, on other bases: a report of an old build cannot claim new bases "
        "(a replay would put the image back on it and hide the rebuild it needs)"
    )
    raise FactoryError(Problem("image-built", f"{image.name}@{digest}{who} refused: {why}. Nothing recorded"))


def adopt(root: Path, name: str, digest: str, pins: dict[str, str], at: datetime, reason: str) -> ImageState:
    """A managed image the factory never built, as it runs now: a successful build marked adopted."""
    image = load_model(root)[1].images[name]
    stamp = format_time(at)
    build: Build = {"result": "success", "startedAt": stamp, "finishedAt": stamp, "digest": _digest(digest)}
    build.update({"baseDigests": dict(sorted(pins.items())), "adopted": True, "reason": reason})
    before = image.runtime.last_build
    image.runtime = runtime_events.record_build(image.runtime, build)
    _write(root, image, built_on.after_build(root, image, before))
    return image


def apply_attempts(root: Path, attempts: dict[str, Build]) -> None:
    """Record build attempts again (after a rejected push), without dispatching anything."""
    fast, state = index.read_index(root), None
    changes = {}
    for name, attempt in attempts.items():
        image = index.managed(root, fast, name) if fast is not None else None
        if image is None:
            state = state or load_model(root)[1]
            image = state.images[name]
        image.runtime = runtime_events.record_build(image.runtime, attempt)
        changes[root / image.path] = render(image.to_dict())
    waiting = {name for name, attempt in attempts.items() if attempt["result"] == "dispatch-failed"}
    changes.update(index.dispatch_queue_change(root, set(attempts), waiting))
    apply_changes(changes, journal(root))
