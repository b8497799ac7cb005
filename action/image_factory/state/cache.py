"""State files already parsed, remembered between commands: a full load of a large fleet parses
only the files that changed since the last one.

Parsing and checking a state file (YAML, schema) costs ~0.3 ms; at 100,000 images that is half
a minute per command. The cache, in the user's cache folder (one file per factory folder), maps
each file's content digest to what it loaded as, and each path's stat to its digest, so an
unchanged file is not even read. A fresh checkout (CI) has other stats, so its files are read
and hashed but still not parsed when the cache folder is kept (a self-hosted runner, or a cache
action). Only files that loaded without a problem are remembered, and only what the latest load
saw is kept. The cache is a speed-up only: a missing, unreadable or foreign one is ignored.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import time
from collections.abc import Callable
from pathlib import Path

from image_factory import __version__
from image_factory.enrolment import schemas

Item = object  # ImageState | BaseImageState | list[Problem], as store.load_files gives them
VERSION = 1
RACY_NS = 2_000_000_000


def cache_path(root: Path) -> Path:
    folder = str(root.resolve())
    return schemas.cache_folder() / "state" / f"{hashlib.sha256(folder.encode()).hexdigest()[:24]}.marshal"


def _key() -> str:
    """What the remembered data depends on besides the files: the schemas and the tool's code
    (a changed parser or check must not be served what the old one made)."""
    return f"{VERSION}:{__version__}:{schemas.bundle_digest()}:{code_digest()}"


def code_digest() -> str:
    """A digest of the package's own modules, every subpackage's (in a wheel, the bundled cdk8s
    app's too): the tool that made (or would make) what is kept."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _read(path: Path, key: str) -> tuple[dict, dict]:
    try:
        data = marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}, {}
    if not isinstance(data, dict) or data.get("key") != key:
        return {}, {}
    return data.get("stats", {}), data.get("parsed", {})


def _stat(path: Path) -> tuple[int, int, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns, found.st_ino, found.st_ctime_ns


def load(
    root: Path,
    paths: list[Path],
    parse: Callable[[list[Path]], list[Item]],
    build: Callable[[Path, str, dict], Item | None],
    dump: Callable[[Item], tuple[str, dict] | None],
) -> list[Item]:
    """What `parse` gives for each of `paths`, in order, parsing only the files not remembered.

    `build(path, kind, data)` makes the item back from what `dump(item)` gave (None: parse the
    file after all, e.g. its name does not match what it holds: `parse` words the error)."""
    key = _key()
    where = cache_path(root)
    # A file changed again within the file system's timestamp granularity could keep its stat:
    # a stat is trusted only for files unchanged for a while before it was taken (as git does).
    settled = time.time_ns() - RACY_NS
    stats, parsed = _read(where, key)
    items: list[Item | None] = [None] * len(paths)
    digests: dict[int, str] = {}  # position in `paths` → content digest
    new_stats: dict[str, tuple] = {}
    missing: list[int] = []
    prefix = "" if str(root) == "." else str(root) + os.sep  # Path(".") / "state" is "state"
    for position, path in enumerate(paths):
        text = str(path)
        relative = text[len(prefix) :] if text.startswith(prefix) else str(path.relative_to(root))
        stat = _stat(path)
        known = stats.get(relative)
        digest = known[4] if known is not None and stat is not None and tuple(known[:4]) == stat else None
        if digest is None:
            try:
                digest = hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()
            except OSError:
                missing.append(position)
                continue
        digests[position] = digest
        if stat is not None and max(stat[1], stat[3]) < settled:
            new_stats[relative] = (*stat, digest)
        remembered = parsed.get(digest)
        item = build(path, *remembered) if remembered is not None else None
        if item is None:
            missing.append(position)
        else:
            items[position] = item
    fresh = parse([paths[position] for position in missing]) if missing else []
    kept = {digest: parsed[digest] for digest in set(digests.values()) if digest in parsed}
    for position, item in zip(missing, fresh, strict=True):
        items[position] = item
        dumped = dump(item)
        if dumped is not None and position in digests:  # (not for a file that could not be read)
            kept[digests[position]] = dumped
    if fresh or new_stats != {k: tuple(v) for k, v in stats.items()} or kept.keys() != parsed.keys():
        _write(where, {"key": key, "stats": new_stats, "parsed": kept})
    return items


def remember(root: Path, written: list[tuple[str, Item]], dump: Callable[[Item], tuple[str, dict] | None]) -> None:
    """Add files just written (their text, and what they load as) to the cache, so that the next
    full load (the first plan after a discover, say) reads and hashes them but parses none."""
    key = _key()
    where = cache_path(root)
    stats, parsed = _read(where, key)
    for text, item in written:
        dumped = dump(item)
        if dumped is not None:
            parsed[hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()] = dumped
    _write(where, {"key": key, "stats": stats, "parsed": parsed})


def _write(path: Path, data: dict) -> None:
    """Best effort, atomic: a cache that cannot be written only costs the next load its parsing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_bytes(marshal.dumps(data))
        os.rename(temp, path)  # atomic on POSIX, as replace()
    except (OSError, ValueError):
        pass
