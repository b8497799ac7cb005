"""Durations as written in images.yaml: `7d`, `36h`, `90m`, `1d12h`, `45s`."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

PATTERN = r"^(?=[0-9])(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?$"
_PARTS = re.compile(r"([0-9]+)([dhms])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@lru_cache(maxsize=1024)  # a fleet writes the same few delays: a plan asks once per image
def parse_duration(text: str) -> timedelta:
    """`7d` → 7 days; raises ValueError for anything that is not a duration."""
    if not isinstance(text, str) or not re.match(PATTERN, text):
        raise ValueError(f"{text!r} is not a duration (e.g. 7d, 36h, 90m)")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _PARTS.findall(text)))


def format_hours(duration: timedelta) -> str:
    """Kargo accepts only s/m/h: 7 days → `168h`, 90 minutes → `1h30m`."""
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    text += f"{seconds}s" if seconds else ""
    return text or "0s"
