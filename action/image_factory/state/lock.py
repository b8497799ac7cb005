"""One writer at a time per factory checkout: an advisory lock on the factory's folder.

Every command that reads state and writes it back holds the lock exclusively from the first read
to the last write (and through `--push`); commands that only read hold it shared, so they never
see a write set half-applied. The lock is `flock` on the folder itself: no lock file to commit
or leave behind, and the kernel drops it when the process dies. A write a crash interrupted is
finished or undone (`files.recover`) as soon as the lock is taken.
"""

from __future__ import annotations

import fcntl
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from image_factory.errors import FactoryError, Problem
from image_factory.state.files import discard_journal as discard
from image_factory.state.files import interrupted, recover
from image_factory.state.store import journal

TIMEOUT_VARIABLE = "IMAGE_FACTORY_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 600.0  # seconds: longer than any one command (a dispatch of a large fleet)
POLL = 0.05


# What to do about a journal `files.recover` refuses (a file it did not write: see files).
REMEDY = (
    "If no image-factory command is running on this checkout, `image-factory discover --discard-journal` "
    "removes the journal, acting on nothing it names, and brings state/ up to date"
)


@contextmanager
def state_lock(root: Path, *, exclusive: bool, discard_journal: bool = False) -> Iterator[None]:
    """Hold the lock on `root` (shared or exclusive) for the block; waits for other holders. With
    `discard_journal` (exclusive only), a journal is removed unread rather than recovered."""
    timeout = _timeout()  # a bad value is refused whether or not anyone holds the lock
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield  # no factory here: the command itself says so
        return
    try:
        if exclusive:
            _take(folder, root, fcntl.LOCK_EX, timeout)
            if discard_journal and discard(journal(root)):
                print(f"note: {journal(root)} removed without acting on it", file=sys.stderr)
            _recover(root)
        else:
            _take(folder, root, fcntl.LOCK_SH, timeout)
            if interrupted(journal(root)):  # an interrupted write: only an exclusive holder repairs it
                _take(folder, root, fcntl.LOCK_EX, timeout)
                _recover(root)
                _take(folder, root, fcntl.LOCK_SH, timeout)
        yield
    finally:
        os.close(folder)  # releases the lock


def _recover(root: Path) -> None:
    done = recover(journal(root), REMEDY)
    if done:
        print(f"note: {root / 'state'}: {done}", file=sys.stderr)


def _take(folder: int, root: Path, mode: int, timeout: float) -> None:
    try:
        fcntl.flock(folder, mode | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    print(f"waiting for another image-factory command to finish with {root} …", file=sys.stderr)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(folder, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise FactoryError(
                    Problem(
                        str(root),
                        f"another image-factory command held the state lock for {timeout:g} s; "
                        f"nothing was changed (set {TIMEOUT_VARIABLE} to wait longer)",
                    )
                ) from None
            time.sleep(POLL)


MAX_TIMEOUT = 86400.0  # a day: nan, inf or a typo's 1e9 would wait for ever


def _timeout() -> float:
    value = os.environ.get(TIMEOUT_VARIABLE, "")
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_TIMEOUT:  # nan compares false: refused too
        message = f"{value!r} is not a number of seconds from 0 to {MAX_TIMEOUT:g}; nothing was changed"
        raise FactoryError(Problem(TIMEOUT_VARIABLE, message))
    return seconds
