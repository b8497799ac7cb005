"""Which managed images run on an old base digest, for how long, and what happens next. Pure."""

from __future__ import annotations

from datetime import datetime

from .planner import Plan
from .refs import parse_ref
from .state import State
from .timestamps import parse_time


def _age(since: datetime, now: datetime) -> str:
    hours = int((now - since).total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24}h" if hours >= 24 else f"{hours}h"


def stale_images(state: State, plan: Plan, now: datetime) -> list[dict]:
    """One row per (managed image, watched base) whose last build used another digest than the
    base's current one: how old the current digest is, and whether a rebuild is due or pending."""
    due = {(item.image, item.base) for item in plan.due}
    pending = {(item.image, item.base): item.eligible_at for item in plan.pending if item.eligible_at}
    held = {(item.image, item.base, item.digest): item.reason for item in plan.held}
    rows = []
    for name, image in sorted(state.images.items()):
        built = (image.runtime.last_build or {}).get("baseDigests", {})
        for base in image.base_images:
            if base.image:
                continue
            watched = state.base_images.get(parse_ref(base.ref, default_tag=None).without_digest().canonical)
            if watched is None or not watched.runtime.current_digest:
                continue
            key, current = watched.ref.canonical, watched.runtime.current_digest
            used = built.get(key) or parse_ref(base.ref, default_tag=None).digest
            if used is None or used == current:
                continue
            since = next(e["firstSeen"] for e in watched.runtime.history if e["digest"] == current)
            if (name, key) in due:
                rebuild = "rebuild due now"
            elif (name, key) in pending:
                rebuild = f"rebuild pending until {pending[(name, key)]}"
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
