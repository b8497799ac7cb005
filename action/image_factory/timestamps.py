"""UTC timestamps as state stores them: `2026-11-25T10:00:00Z`."""

from __future__ import annotations

from datetime import UTC, datetime

from image_factory.errors import FactoryError, Problem


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str = "time") -> datetime:
    """An ISO 8601 time with a zone (`Z` or an offset); refused without one, never guessed."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FactoryError(Problem(what, f"{text!r} is not an ISO 8601 time (e.g. 2026-11-25T10:00:00Z)")) from None
    if moment.tzinfo is None:
        raise FactoryError(Problem(what, f"{text!r} has no time zone: add Z for UTC")) from None
    return moment.astimezone(UTC).replace(microsecond=0)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
