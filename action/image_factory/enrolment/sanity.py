"""Values a schema cannot bound: durations too long to mean anything, times in the future.

A `rebuildDelay` of `99999999999999d` passes a pattern and then overflows every date sum; a
`firstSeen` a year ahead keeps a digest "not yet eligible" for a year. Both are refused where
they are written, with the line.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from image_factory.enrolment.durations import parse_duration
from image_factory.enrolment.yaml_source import Path_, YamlDocument, load_yaml
from image_factory.errors import Problem
from image_factory.timestamps import format_time

MAX_DURATION = timedelta(days=366)
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead another machine's clock may be


def _value(data: object, path: Path_) -> object:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def duration_problems(document: YamlDocument, paths: list[Path_]) -> list[Problem]:
    problems = []
    for path in paths:
        text = _value(document.data, path)
        if isinstance(text, str) and _too_long(text):
            problems.append(document.problem(path, f"{text!r} is longer than a year (366d): it would never come round"))
    return problems


def date_problems(document: YamlDocument, paths: list[Path_]) -> list[Problem]:
    """`YYYY-MM-DD` texts (the schema's pattern) that name no day, such as 2027-02-30."""
    problems = []
    for path in paths:
        text = _value(document.data, path)
        try:
            date.fromisoformat(text)
        except (TypeError, ValueError):
            problems.append(document.problem(path, f"{text!r} is not a day of the calendar (YYYY-MM-DD)"))
    return problems


def _too_long(text: str) -> bool:
    try:
        return parse_duration(text) > MAX_DURATION
    except OverflowError:
        return True
    except ValueError:
        return False  # not a duration at all: the schema says so


def future_problems(document: YamlDocument, paths: list[Path_], now: datetime) -> list[Problem]:
    """Times (schema-checked `YYYY-MM-DDTHH:MM:SSZ`, which sort as text) later than now allows."""
    limit = format_time(now + CLOCK_SKEW)
    return [
        document.problem(path, f"{text} is in the future (now {format_time(now)})")
        for path in paths
        if isinstance(text := _value(document.data, path), str) and text > limit
    ]


def history_paths(data: object) -> list[Path_]:
    """Every firstSeen of a state file's digest history."""
    history = _value(data, ("runtime", "history"))
    return [("runtime", "history", index, "firstSeen") for index in range(len(history or []))]


def future_sightings(root, entries, now: datetime) -> list[Problem]:
    """`validate`: digests whose firstSeen is later than now allows, named by file and line.
    (Only validate reads the wall clock: plan and dispatch may be asked about another time.)"""
    limit = format_time(now + CLOCK_SKEW)
    problems = []
    for entry in entries:
        if any(item["firstSeen"] > limit for item in entry.runtime.history):
            document = load_yaml(root / entry.path, str(entry.path))
            problems += future_problems(document, history_paths(document.data), now)
    return problems
