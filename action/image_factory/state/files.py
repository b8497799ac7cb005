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

A journal is input like any other file in the checkout (a pull request can add one), and
recovering one renames and deletes files. So `recover` acts only on a journal this module could
have written: a hex token, a known phase, entries of a relative path and two booleans, each path
inside the journal's own folder with no symbolic link on the way. Anything else is one error and
nothing is done; `discard_journal` removes such a journal, and only it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from image_factory.errors import FactoryError, Problem

STAGING, COMMITTING, ROLLING_BACK = "staging", "committing", "rolling-back"
_TOKEN = re.compile(r"[0-9a-f]{12}")  # secrets.token_hex(6)
# Every file a change of this command wrote or deleted: `--push` commits exactly these (gitops).
_written: set[Path] = set()


def written() -> frozenset[Path]:
    """The files this command's changes wrote or deleted so far (see `recording`)."""
    return frozenset(_written)


@contextmanager
def recording() -> Iterator[None]:
    """One command's span for `written`: it starts empty (a process may run several commands)."""
    _written.clear()
    try:
        yield
    finally:
        _written.clear()


@dataclass(frozen=True)
class _Entry:
    path: Path
    write: bool  # False: delete
    existed: bool

    def temp(self, token: str) -> Path:
        return self.path.with_name(f".{self.path.name}.{token}.tmp")

    def backup(self, token: str) -> Path:
        return self.path.with_name(f".{self.path.name}.{token}.old")


def apply_changes(changes: dict[Path, str | None], journal: Path, remedy: str = "") -> None:
    """Write (str) or delete (None) every path as one change, journalled in `journal`.

    A rewritten file keeps its mode; a new one gets what open() would give it. An interrupted
    earlier change is finished or undone first (`remedy`: what to do about a journal `recover`
    refuses).
    """
    recover(journal, remedy)
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
    _written.update(entry.path for entry in entries)
    _clean_up(journal, token, entries)


def interrupted(journal: Path) -> bool:
    """Whether a change was interrupted (possibly while its journal was being written)."""
    return journal.exists() or _journal_temp(journal).exists()


def recover(journal: Path, remedy: str = "") -> str | None:
    """Finish or undo a change a crash interrupted; says what it did (None: nothing to do). A
    journal this module could not have written is refused (FactoryError, `remedy` appended)."""
    try:
        text = journal.read_text(encoding="utf-8")
    except FileNotFoundError:
        _remove(_journal_temp(journal))
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise _unreadable(journal, str(error), remedy) from None
    token, phase, entries = _parse_journal(journal, text, remedy)
    _remove(_journal_temp(journal))
    if phase == COMMITTING:
        _roll_forward(journal, token, entries)
        return f"finished an interrupted write of {len(entries)} file(s)"
    _roll_back(journal, token, entries)
    return f"undid an interrupted write of {len(entries)} file(s): the files are as before it"


def discard_journal(journal: Path) -> bool:
    """Remove a journal (and its temporary copy) without acting on it; whether there was one."""
    found = interrupted(journal)
    _remove(_journal_temp(journal))
    _remove(journal)
    return found


def _unreadable(journal: Path, why: str, remedy: str) -> FactoryError:
    message = f"not a journal image-factory wrote ({why}); nothing was done"
    return FactoryError(Problem(str(journal), f"{message}. {remedy}" if remedy else message))


def _parse_journal(journal: Path, text: str, remedy: str) -> tuple[str, str, list[_Entry]]:
    """The token, phase and entries of a journal `_write_journal` could have written, or the error."""
    try:
        recorded = json.loads(text)
    except ValueError as error:
        raise _unreadable(journal, f"not JSON: {error}", remedy) from None
    if not isinstance(recorded, dict) or set(recorded) != {"token", "phase", "entries"}:
        raise _unreadable(journal, "not an object of token, phase and entries", remedy)
    token, phase, rows = recorded["token"], recorded["phase"], recorded["entries"]
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise _unreadable(journal, f"token {str(token)[:40]!r} is not 12 hex digits", remedy)
    if phase not in (STAGING, COMMITTING, ROLLING_BACK):
        raise _unreadable(journal, f"unknown phase {str(phase)[:40]!r}", remedy)
    if not isinstance(rows, list):
        raise _unreadable(journal, "entries is not a list", remedy)
    folder = journal.parent
    entries = []
    for number, row in enumerate(rows, 1):
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)):
            raise _unreadable(journal, f"entry {number} is not [path, write, existed]", remedy)
        if not (isinstance(row[1], bool) and isinstance(row[2], bool)):
            raise _unreadable(journal, f"entry {number} is not [path, write, existed]", remedy)
        why = _outside(folder, row[0])
        if why:
            raise _unreadable(journal, f"entry {number} ({row[0][:80]!r}) {why}", remedy)
        entries.append(_Entry(folder / row[0], row[1], row[2]))
    return token, phase, entries


def _outside(folder: Path, relative: str) -> str | None:
    """Why `relative` is not a file of `folder` a journal may name (None: it is)."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return "is not a plain relative path inside the journal's folder"
    if "\0" in relative or parts[-1] == "" or parts[-1].startswith(".journal"):
        return "names no file a write set holds"
    here = folder
    for part in parts[:-1]:  # every folder on the way is a real folder of `folder`, or not there yet
        here = here / part
        if here.is_symlink():
            return f"goes through the symbolic link {here}"
        if here.exists() and not here.is_dir():
            return f"goes through {here}, which is not a folder"
    return None


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
    outside = [row[0] for row in rows if _outside(journal.parent, row[0])]
    if outside:  # `recover` would refuse it: a change is only ever to files of the journal's folder
        raise ValueError(f"{journal}: cannot journal {outside[0]!r}, which is not a file of {journal.parent}")
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
