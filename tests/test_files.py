"""Writing a set of files: each rewritten file keeps its mode, a new one gets the usual."""

from __future__ import annotations

import os
import stat

from image_factory.files import apply_changes


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
        apply_changes({shared: "a: 2\n", private: "b: 2\n", tmp_path / "new.yaml": "c: 1\n"})
    finally:
        os.umask(previous)
    assert (shared.read_text(), mode(shared)) == ("a: 2\n", 0o644)  # not mkstemp's 0600
    assert (private.read_text(), mode(private)) == ("b: 2\n", 0o640)
    assert mode(tmp_path / "new.yaml") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.yaml", "private.yaml", "shared.yaml"]  # no strays
