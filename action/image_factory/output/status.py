"""Which managed images run on an old base digest, for how long, and what happens next. Pure."""

from __future__ import annotations

from datetime import datetime

from image_factory.enrolment.refs import parse_ref
from image_factory.output.overview import bases_unknown
from image_factory.rebuilds.dispatch import base_keys, pins_for
from image_factory.rebuilds.planner import Plan
from image_factory.state.store import State
from image_factory.timestamps import parse_time


def _age(since: datetime, now: datetime) -> str:
    hours = int((now - since).total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24}h" if hours >= 24 else f"{hours}h"


def stale_images(state: State, plan: Plan, now: datetime) -> list[dict]:
    """One row per (managed image, watched base) whose last build used another digest than the
    base's current one: how old the current digest is, and whether a rebuild is due or pending."""
    due = {(item.image, item.base): item for item in plan.due}
    pending = {(item.image, item.base): item.eligible_at for item in plan.pending if item.eligible_at}
    failed = {item.image: item.reason for item in plan.blocked}
    held = {(item.image, item.base, item.digest): item.reason for item in plan.held}
    rows = []
    for name, image in sorted(state.images.items()):
        built = (image.runtime.last_build or {}).get("baseDigests", {})
        for base in image.base_images:
            if base.image:  # a managed parent rebuilt since: the cascade
                parent = state.images.get(base.image)
                last = (parent.runtime.last_build or {}) if parent else {}
                key, current = (parent.ref.canonical, last.get("digest")) if parent else ("", None)
                used = built.get(key)
                if not current or used is None or used == current:
                    continue
                since = last.get("finishedAt") or last["startedAt"]
            else:
                watched = state.base_images.get(parse_ref(base.ref, default_tag=None).without_digest().canonical)
                if watched is None or not watched.runtime.current_digest:
                    continue
                key, current = watched.ref.canonical, watched.runtime.current_digest
                used = built.get(key) or parse_ref(base.ref, default_tag=None).digest
                if used is None or used == current:
                    continue
                since = next(e["firstSeen"] for e in watched.runtime.history if e["digest"] == current)
            if (name, key) in due:
                item = due[(name, key)]
                rebuild = "rebuild due now" if item.wave == 1 else "rebuild due after its parents are rebuilt"
                if item.expedited:  # why it skips the delay: an expedite's reason, the CVEs a digest fixes
                    rebuild += f" ({item.reason.removeprefix(f'{item.base}: {item.digest} ')})"
            elif (name, key) in pending:
                rebuild = f"rebuild pending until {pending[(name, key)]}"
            elif name in failed:
                rebuild = failed[name]
            elif (name, key, current) in held:
                rebuild = f"current digest held: {held[(name, key, current)]}"
            else:
                rebuild = "no rebuild planned"
            rows.append(
                {
                    "image": name,
                    "base": key,
                    "built": used,
                    "current": current,
                    "currentSince": since,
                    "age": _age(parse_time(since), now),
                    "rebuild": rebuild,
                }
            )
    return rows


def never_built(state: State, plan: Plan, now: datetime) -> list[dict]:
    """Managed images with no successful build yet: the digests their first build would use
    (None: no digest of that base recorded yet) and what happens next."""
    due = {item.image: item.wave for item in plan.due}
    pending = {item.image: item.eligible_at for item in plan.pending if item.eligible_at}
    blocked = {item.image: item.reason for item in plan.blocked}
    rows = []
    for name, image in sorted(state.images.items()):
        if image.runtime.last_build is not None:
            continue
        pins = pins_for(image, {}, state, now)
        would_use = {key: pins.get(key) for key in base_keys(image, state)}
        parents = {state.images[b.image].ref.canonical: b.image for b in image.base_images if b.image}
        missing = [
            f"{parents[key]}'s first build" if key in parents else f"a first digest of {key}"
            for key, digest in would_use.items()
            if digest is None
        ]
        own = next((item for item in plan.blocked if item.image == name and item.blocked_by == name), None)
        if image.bases_unknown:
            build = bases_unknown(image)
        elif own is not None:  # its first build failed
            build = own.reason
        elif name in blocked:
            build = f"blocked: {blocked[name]}"
        elif name in due:
            build = "first build due now" if due[name] == 1 else "first build due after its parents' builds"
        elif name in pending:
            build = f"first build pending until {pending[name]}"
        elif missing:
            build = f"waiting for {' and '.join(missing)}"
        elif not image.enrolment["autoRebuild"]:
            build = "autoRebuild is off: `image-factory dispatch --image` builds it"
        else:
            build = "no build planned"
        rows.append({"image": name, "wouldBuildOn": would_use, "build": build})
    return rows
