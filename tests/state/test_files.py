"""Writing a set of files: modes kept, and all-old or all-new even when the writer is killed.

The crash tests run the write in a real child process that sends itself SIGKILL just before
its N-th file-system call, for every N until the write completes: every point of the write is
a crash point. The next `recover` (what every command does once it holds the state lock) must
leave exactly the old set or exactly the new one, and no stray file.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from image_factory.state.files import apply_changes, recover


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_rewritten_files_keep_their_mode_and_new_ones_follow_the_umask(tmp_path):
    shared, private = tmp_path / "shared.yaml", tmp_path / "private.yaml"
    shared.write_text("a: 1\n")
    private.write_text("b: 1\n")
    shared.chmod(0o644)
    private.chmod(0o640)
    previous = os.umask(0o022)
    try:
        apply_changes({shared: "a: 2\n", private: "b: 2\n", tmp_path / "new.yaml": "c: 1\n"}, tmp_path / ".journal")
    finally:
        os.umask(previous)
    assert (shared.read_text(), mode(shared)) == ("a: 2\n", 0o644)  # not mkstemp's 0600
    assert (private.read_text(), mode(private)) == ("b: 2\n", 0o640)
    assert mode(tmp_path / "new.yaml") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.yaml", "private.yaml", "shared.yaml"]  # no strays


# The child: apply one change set, dying by SIGKILL just before file-system call number KILL_AT.
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from image_factory.state import files

    folder, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    calls = 0

    def dying(function):
        def call(*args, **kwargs):
            global calls
            calls += 1
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return function(*args, **kwargs)
        return call

    for name in ("open", "replace", "link", "unlink", "sync", "fsync", "fchmod", "rename"):
        setattr(os, name, dying(getattr(os, name)))
    changes = json.loads((folder.parent / "changes.json").read_text())
    files.apply_changes(
        {folder / name: text for name, text in changes.items()}, folder / "state" / ".journal"
    )
    """
)


def snapshot(folder) -> dict[str, str]:
    return {str(path.relative_to(folder)): path.read_text() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def crash_site(tmp_path):
    """Five files: three rewritten, one deleted, one untouched; two new ones (one in a new folder)."""
    folder = tmp_path / "factory"
    for name in ("state/images/a.yaml", "state/images/b.yaml", "state/base-images/c.yaml", "state/images/gone.yaml"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"old {name}\n")
    (folder / "state/images/same.yaml").write_text("untouched\n")
    changes = {
        "state/images/a.yaml": "new a\n",
        "state/images/b.yaml": "new b\n",
        "state/base-images/c.yaml": "new c\n",
        "state/images/gone.yaml": None,
        "state/images/fresh.yaml": "new fresh\n",
        "state/new-folder/d.yaml": "new d\n",
    }
    (tmp_path / "changes.json").write_text(json.dumps(changes))
    old = snapshot(folder)
    new = {name: text for name, text in old.items() if name not in changes}
    new |= {name: text for name, text in changes.items() if text is not None}
    return folder, old, new


def run_child(folder, kill_at: int) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", CHILD, str(folder), str(kill_at)], env=env, check=False).returncode


def test_a_write_killed_at_any_point_is_all_old_or_all_new_after_recovery(crash_site, tmp_path):
    folder, old, new = crash_site
    pristine = tmp_path / "pristine"
    subprocess.run(["cp", "-a", str(folder), str(pristine)], check=True)
    outcomes = []
    kill_at = 1
    while True:
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        subprocess.run(["cp", "-a", str(pristine), str(folder)], check=True)
        code = run_child(folder, kill_at)
        if code == 0:
            break
        assert code == -signal.SIGKILL
        recover(folder / "state" / ".journal")
        after = snapshot(folder)
        assert after in (old, new), f"killed before call {kill_at}: a mix, or strays: {sorted(after)}"
        outcomes.append("new" if after == new else "old")
        kill_at += 1
    assert snapshot(folder) == new
    # every point was tried: the early ones leave the old set, the late ones the new set
    assert len(outcomes) > 20
    assert outcomes[0] == "old" and outcomes[-1] == "new"
    assert outcomes == sorted(outcomes, key=["old", "new"].index)  # once new, new from then on


def test_recovery_interrupted_again_still_converges(crash_site, tmp_path):
    """A crash during recovery itself: recovering again gives the same all-old or all-new."""
    folder, old, new = crash_site
    journal = folder / "state" / ".journal"
    for kill_at in (8, 30):  # in staging, in committing
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        (tmp_path / "factory").mkdir()
        for name, text in old.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        assert run_child(folder, kill_at) == -signal.SIGKILL
        phase = json.loads(journal.read_text())["phase"]
        recorded = journal.read_bytes()
        # a first recovery that dies after its first rename or removal: do half by hand
        entries = sorted(p for p in folder.rglob(".*") if p != journal)
        if entries:
            entries[0].unlink()
        journal.write_bytes(recorded)
        recover(journal)
        assert snapshot(folder) in (old, new), phase


def test_a_failure_in_this_process_puts_every_file_back(crash_site, monkeypatch):
    folder, old, _ = crash_site
    real_replace = os.replace
    calls = []

    def failing_replace(source, target):
        calls.append(target)
        if len(calls) == 4:  # the journal, then two files renamed into place
            raise OSError("disk full")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    changes = json.loads((folder.parent / "changes.json").read_text())
    with pytest.raises(OSError, match="disk full"):
        apply_changes({folder / name: text for name, text in changes.items()}, folder / "state" / ".journal")
    assert snapshot(folder) == old


def test_recover_with_no_journal_changes_nothing(crash_site):
    folder, old, _ = crash_site
    assert recover(folder / "state" / ".journal") is None
    assert snapshot(folder) == old


def test_an_interruption_after_every_rename_is_finished_not_half_undone(crash_site, monkeypatch):
    """Cancelled (SIGINT) in the last flush, once the backups are gone: the set must stay new for
    `recover` to finish, never be rolled back with half its backups missing."""
    folder, _, new = crash_site
    real_sync, calls = os.sync, []

    def interrupted_sync():
        calls.append(1)
        if len(calls) == 2:  # after the staging flush: the one before the journal goes
            raise KeyboardInterrupt
        real_sync()

    monkeypatch.setattr(os, "sync", interrupted_sync)
    changes = json.loads((folder.parent / "changes.json").read_text())
    with pytest.raises(KeyboardInterrupt):
        apply_changes({folder / name: text for name, text in changes.items()}, folder / "state" / ".journal")
    monkeypatch.setattr(os, "sync", real_sync)
    assert recover(folder / "state" / ".journal") == "finished an interrupted write of 6 file(s)"
    assert snapshot(folder) == new
