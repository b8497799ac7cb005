"""images.yaml's settings and one managed image's entry, read from images.yaml itself.

A trust decision (who may vouch for a digest, how a build must be signed) must rest on the file
reviewers review, not on state/index.json or a state file's copy, which anyone who can push may
edit. Reading all of images.yaml costs 18 s at 100,000 images (composing 1.9 million YAML nodes);
libyaml's events alone cost 1 s. So the events are scanned, and only the settings and the one
entry are kept and read as a small images.yaml: the same parser, schema and checks (of those
parts: callers read it only once a discover has checked this very images.yaml whole). Anything
out of the ordinary (an anchor or alias, several documents, a shape the scan does not expect,
an error) is left to the full read, which is always right and words every error with its line.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from image_factory.enrolment.config import CONFIG_FILE, load_config, parse_config
from image_factory.enrolment.model import Config
from image_factory.errors import FactoryError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _Unusual(Exception):
    """Something the scan leaves to the full read."""


def load_config_excerpt(root: Path, image: str | None = None, *, verified: bool = False) -> Config:
    """The Config of images.yaml's settings and, of its images, only `image`'s entry (when named)
    and, with `verified`, every entry with a `verify` policy."""
    try:
        text = (root / CONFIG_FILE).read_text(encoding="utf-8")
        excerpt = yaml.emit(_excerpt(yaml.parse(text, Loader=_Loader), image, verified))
        return parse_config(excerpt, CONFIG_FILE)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, FactoryError, _Unusual):
        return load_config(root)  # the full read: right, and it names any error with its line


def _excerpt(events, image: str | None, verified: bool) -> list[yaml.Event]:
    """The events of a document holding the settings and `image`'s entry of the one in `events`."""
    events = iter(events)
    head = [next(events), next(events), next(events)]
    if not isinstance(head[2], yaml.MappingStartEvent) or head[2].anchor:
        raise _Unusual
    kept = [yaml.StreamStartEvent(), yaml.DocumentStartEvent(), yaml.MappingStartEvent(None, None, True)]
    entries: list[yaml.Event] = []
    while not isinstance(key := next(events), yaml.MappingEndEvent):
        if not isinstance(key, yaml.ScalarEvent) or key.anchor:
            raise _Unusual
        if key.value != "images":
            kept += [key, *_node(events)]
            continue
        opening = next(events)
        if not isinstance(opening, yaml.SequenceStartEvent) or opening.anchor:
            raise _Unusual
        while not isinstance(first := next(events), yaml.SequenceEndEvent):
            entry = _node(events, first)
            name, verify = _top_level(entry, "name"), _top_level(entry, "verify")
            named = image is not None and isinstance(name, yaml.ScalarEvent) and name.value == image
            if named or (verified and verify is not None):
                entries += entry
    if not isinstance(next(events), yaml.DocumentEndEvent) or not isinstance(next(events), yaml.StreamEndEvent):
        raise _Unusual  # a second document
    images = [yaml.ScalarEvent(None, None, (True, False), "images"), yaml.SequenceStartEvent(None, None, True)]
    return [*kept, *images, *entries, yaml.SequenceEndEvent(), yaml.MappingEndEvent(), yaml.DocumentEndEvent()]


def _node(events, first: yaml.Event | None = None) -> list[yaml.Event]:
    """The events of one node, from `first` (or the next event) to its end."""
    taken, depth = [], 0
    event = first if first is not None else next(events)
    while True:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Unusual  # an alias here or elsewhere could point into what is dropped
        taken.append(event)
        depth += isinstance(event, _OPEN) - isinstance(event, _CLOSE)
        if depth == 0:
            return taken
        event = next(events)


def _top_level(entry: list[yaml.Event], key: str) -> yaml.Event | None:
    """The first event of `key`'s value in an entry (a mapping's events), if it has that key."""
    depth, is_key = 0, True
    for index, event in enumerate(entry[:-1]):  # the last event closes the entry
        if depth == 1:  # the entry's own keys and values, alternating (a value may open a node)
            if is_key and isinstance(event, yaml.ScalarEvent) and event.value == key:
                return entry[index + 1]
            is_key = not is_key
        depth += isinstance(event, _OPEN) - isinstance(event, _CLOSE)
    return None
