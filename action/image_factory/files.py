"""Writing several files as one change: all of them land, or none does."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def apply_changes(changes: dict[Path, str | None]) -> None:
    """Write (str) or delete (None) every path; on any failure restore what was there before.

    Each file is written to a temporary file beside it and renamed into place, so a reader
    never sees a half-written file. One filesystem flush before the renames makes the new
    contents durable first (one per file costs ~0.3 ms each, seconds for a large fleet).
    """
    staged: list[tuple[Path, Path | None]] = []
    fresh = 0o666 & ~_umask()  # what open() would give a new file
    try:
        for path, text in changes.items():
            if text is None:
                staged.append((path, None))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            # mkstemp makes the file 0600: a rewritten file keeps its mode, a new one gets the usual.
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode) if path.exists() else fresh)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            staged.append((path, Path(temp)))
        if any(temp is not None for _, temp in staged):
            os.sync()
    except BaseException:
        _discard(staged)
        raise

    originals: dict[Path, bytes | None] = {path: path.read_bytes() if path.exists() else None for path, _ in staged}
    done: list[Path] = []
    try:
        for path, temp in staged:
            if temp is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(temp, path)
            done.append(path)
    except BaseException:
        _discard(staged)
        for path in done:
            _restore(path, originals[path])
        raise


def _discard(staged: list[tuple[Path, Path | None]]) -> None:
    for _, temp in staged:
        if temp is not None:
            temp.unlink(missing_ok=True)


def _restore(path: Path, original: bytes | None) -> None:
    if original is None:
        path.unlink(missing_ok=True)
    else:
        temp = path.with_name(f".{path.name}.restore")
        temp.write_bytes(original)
        os.replace(temp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
