"""state/built-on/<base>.json: the digest of a watched base each managed image's last build used.

The scan Job reads its base's file through GitHub's contents API (trust/scan_report.targets) and
scans those digests again in every run: only a run that scanned both the new digest and the one
an image is built on compares them (rebuilds.scan_evidence), however far behind the image is.
Builds keep the files current as they are recorded (rebuilds.events, rollback); discover derives
them whole. JSON, one small file per base: the Job reads it with Python's standard library.
"""

from __future__ import annotations

import json
from pathlib import Path

from image_factory.enrolment.refs import parse_ref
from image_factory.state.store import BASE_IMAGES_DIR, ImageState, State

FOLDER = "state/built-on"  # index.BUILT_ON_DIR


def path_of(base_key: str) -> str:
    """The file of a base, named as its state file is."""
    return f"{FOLDER}/{parse_ref(base_key, default_tag=None).slug()}.json"


def render(built_on: dict[str, str]) -> str:
    return json.dumps(dict(sorted(built_on.items())), indent=1) + "\n"


def derive(state: State) -> dict[str, str]:
    """Every base's file, from the images' last builds (an image never built: the digests its
    Dockerfile pins, which the planner takes as what it is built on): {path: text}."""
    files: dict[str, dict[str, str]] = {}
    for name, image in state.images.items():
        used = _watched_digests(image, state.base_images)
        if image.runtime.last_build is None:
            used = {key: digest for key, digest in _pinned(image).items() if key in state.base_images}
        for key, digest in used.items():
            files.setdefault(path_of(key), {})[name] = digest
    return {path: render(entries) for path, entries in files.items()}


def _pinned(image: ImageState) -> dict[str, str]:
    pinned = {}
    for base in image.base_images:
        ref = parse_ref(base.ref, default_tag=None) if not base.image else None
        if ref is not None and ref.digest:
            pinned[ref.without_digest().canonical] = ref.digest
    return pinned


def changes(root: Path, state: State) -> dict[str, str | None]:
    """What discover writes: each base's file as derived, and no file for a base no image builds on."""
    wanted = derive(state)
    found = {f"{FOLDER}/{path.name}" for path in (root / FOLDER).glob("*.json")}
    result: dict[str, str | None] = {path: None for path in found - set(wanted)}
    for path, text in wanted.items():
        if _read_text(root / path) != text:
            result[path] = text
    return result


def after_build(root: Path, image: ImageState, before: dict | None) -> dict[Path, str | None]:
    """The files an image's new last build changes (`before`: its last build until now): its entry
    moves to the digests it now uses, and leaves the bases it no longer builds on."""
    now_used = _digests_of(image.runtime.last_build)
    keys = set(_digests_of(before)) | set(now_used)
    result: dict[Path, str | None] = {}
    for key in sorted(keys):
        if not (root / f"{BASE_IMAGES_DIR}/{parse_ref(key, default_tag=None).slug()}.yaml").is_file():
            continue  # a managed parent: its own builds are in state
        path = root / path_of(key)
        entries = _read(path)
        if key in now_used:
            entries[image.name] = now_used[key]
        else:
            entries.pop(image.name, None)
        text = render(entries) if entries else None
        if text != _read_text(path):
            result[path] = text
    return result


def _watched_digests(image: ImageState, watched: dict) -> dict[str, str]:
    return {key: digest for key, digest in _digests_of(image.runtime.last_build).items() if key in watched}


def _digests_of(build: dict | None) -> dict[str, str]:
    return dict((build or {}).get("baseDigests", {}))


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
