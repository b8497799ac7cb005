"""Writing several files as one change: all of them land, or none does, even across a crash.

A change goes through a small journal beside the files:

1. *staging*: the journal lists every path; each file that exists gets a hard-linked backup and
   its new text is written to a temporary file beside it; a file that does not exist yet is
   written in place (undoing it is removing it). One filesystem flush.
2. *committing*: the journal says so (flushed), then each temporary file is renamed onto its
   target and each deletion made; the backups go, then the journal.

A process killed in step 1 leaves the old files (the next `recover` removes the temporaries);
killed in step 2, the next `recover` finishes the renames. A failure in this process during
step 2 puts the backups back (*rolling-back*). Readers and writers of the same files must hold
the state lock (`lock.state_lock`), so no one sees a set half-applied.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

STAGING, COMMITTING, ROLLING_BACK = "staging", "committing", "rolling-back"


@dataclass(frozen=True)
class _Entry:
    path: Path
    write: bool  # False: delete
    existed: bool

    def temp(self, token: str) -> Path:
        return self.path.with_name(f".{self.path.name}.{token}.tmp")

    def backup(self, token: str) -> Path:
        return self.path.with_name(f".{self.path.name}.{token}.old")


def apply_changes(changes: dict[Path, str | None], journal: Path) -> None:
    """Write (str) or delete (None) every path as one change, journalled in `journal`.

    A rewritten file keeps its mode; a new one gets what open() would give it. An interrupted
    earlier change is finished or undone first.
    """
    recover(journal)
    if not changes:
        return
    token = secrets.token_hex(6)
    entries = [_Entry(path, text is not None, path.exists()) for path, text in changes.items()]
    _write_journal(journal, token, STAGING, entries)
    try:
        fresh = 0o666 & ~_umask()
        folders: set[Path] = set()
        for entry in entries:
            if entry.existed:
                _link_or_copy(entry.path, entry.backup(token))
            text = changes[entry.path]
            if text is not None:
                if entry.path.parent not in folders:
                    entry.path.parent.mkdir(parents=True, exist_ok=True)
                    folders.add(entry.path.parent)
                if entry.existed:
                    _write_new(entry.temp(token), text, stat.S_IMODE(entry.path.stat().st_mode))
                else:  # a first discover writes a whole fleet: one rename per file saved
                    _write_new(entry.path, text, fresh)
        # One flush makes every new file durable before any rename (one fsync per file costs
        # ~0.3 ms each: seconds for a large fleet).
        os.sync()
        _write_journal(journal, token, COMMITTING, entries)
    except BaseException:
        _roll_back(journal, token, entries)
        raise
    try:
        _rename(token, entries)
    except BaseException:  # the backups are all there: put them back
        _write_journal(journal, token, ROLLING_BACK, entries)
        _roll_back(journal, token, entries)
        raise
    # Every file is in place: an interruption from here on is finished by `recover`, never undone.
    _clean_up(journal, token, entries)


def interrupted(journal: Path) -> bool:
    """Whether a change was interrupted (possibly while its journal was being written)."""
    return journal.exists() or _journal_temp(journal).exists()


def recover(journal: Path) -> str | None:
    """Finish or undo a change a crash interrupted; says what it did (None: nothing to do)."""
    _remove(_journal_temp(journal))
    try:
        recorded = json.loads(journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    token, phase = recorded["token"], recorded["phase"]
    entries = [_Entry(journal.parent / path, write, existed) for path, write, existed in recorded["entries"]]
    if phase == COMMITTING:
        _roll_forward(journal, token, entries)
        return f"finished an interrupted write of {len(entries)} file(s)"
    _roll_back(journal, token, entries)
    return f"undid an interrupted write of {len(entries)} file(s): the files are as before it"


def _roll_forward(journal: Path, token: str, entries: list[_Entry]) -> None:
    _rename(token, entries)
    _clean_up(journal, token, entries)


def _rename(token: str, entries: list[_Entry]) -> None:
    for entry in entries:
        if not entry.write:
            _remove(entry.path)
        elif entry.existed and entry.temp(token).exists():  # a new file was written in place
            os.replace(entry.temp(token), entry.path)


def _clean_up(journal: Path, token: str, entries: list[_Entry]) -> None:
    for entry in entries:
        if entry.existed:  # only a file that was there has a backup
            _remove(entry.backup(token))
    os.sync()  # the renames are on disk before the journal that could redo them goes
    _remove(journal)


def _roll_back(journal: Path, token: str, entries: list[_Entry]) -> None:
    """Every step can be repeated, so a crash here is undone by the next `recover`."""
    for entry in entries:
        if entry.backup(token).exists():
            os.replace(entry.backup(token), entry.path)
            _remove(entry.backup(token))  # rename() leaves both names when they are one file
        elif not entry.existed:
            _remove(entry.path)
        _remove(entry.temp(token))
    os.sync()
    _remove(journal)


def _write_journal(journal: Path, token: str, phase: str, entries: list[_Entry]) -> None:
    """Atomically, and flushed: the phase must be on disk before the step it allows."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    folder = str(journal.parent) + os.sep
    rows = [[_relative(str(e.path), folder), e.write, e.existed] for e in entries]
    temp = _journal_temp(journal)
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump({"token": token, "phase": phase, "entries": rows}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, journal)
    directory = os.open(journal.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _relative(path: str, folder: str) -> str:
    if path.startswith(folder) and "/." not in path[len(folder) - 1 :]:  # no . or .. to resolve
        return path[len(folder) :]
    return os.path.relpath(path, folder)


def _journal_temp(journal: Path) -> Path:
    return journal.with_name(f"{journal.name}.tmp")


def _write_new(path: Path, text: str, mode: int) -> None:
    data = memoryview(text.encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # os.open's mode is masked by the umask; a rewritten file keeps its own
        while data:  # plain writes: a text file object costs three more system calls per file
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def _link_or_copy(source: Path, backup: Path) -> None:
    _remove(backup)
    try:
        os.link(source, backup)
    except OSError:  # a filesystem without hard links
        shutil.copy2(source, backup)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
