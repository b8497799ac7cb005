"""A write journal is input like any file of the checkout (a pull request can add one): the tool acts
only on a journal it could have written, and refuses anything else with one error, doing nothing."""

from __future__ import annotations

import json
import subprocess

import pytest

from image_factory.cli import main
from image_factory.state.files import apply_changes

from ..conftest import commit, git

GOOD_TOKEN = "0123456789ab"


def journal_of(entries, token=GOOD_TOKEN, phase="staging") -> str:
    return json.dumps({"token": token, "phase": phase, "entries": entries})


@pytest.fixture
def victim(tmp_path):
    """A file of the user's, outside the factory."""
    path = tmp_path / "victim.txt"
    path.write_text("mine\n")
    return path


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["status"], ["discover"], ["prune", "--dry-run"]])
@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "symlinked folder"])
def test_a_journal_naming_a_file_outside_its_folder_is_refused_and_nothing_is_done(
    example_factory, victim, command, kind, capsys
):
    root = example_factory.root
    if kind == "dot-dot":
        entry = "../../victim.txt"
    elif kind == "absolute":
        entry = str(victim)
    else:
        (root / "state" / "elsewhere").symlink_to(victim.parent)
        entry = "elsewhere/victim.txt"
    # staging, a file that "did not exist": undoing the write would delete it
    (root / "state" / ".journal").write_text(journal_of([[entry, True, False]]))
    before = example_factory.snapshot()
    assert main([*command, "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert victim.read_text() == "mine\n"
    assert example_factory.snapshot() == before  # the journal too: nothing was done
    assert f"{root / 'state' / '.journal'}: not a journal image-factory wrote" in err
    assert "nothing was done" in err and "discover --discard-journal" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "not JSON"),
        ("null", "not an object of token, phase and entries"),
        ('{"token": "0123456789ab", "phase": "staging", "entries": [', "not JSON"),
        (journal_of([["images/web.yaml", True]]), "entry 1 is not [path, write, existed]"),
        (journal_of([["images/web.yaml", "yes", False]]), "entry 1 is not [path, write, existed]"),
        (journal_of([], token="01234567/9ab"), "is not 12 hex digits"),
        (journal_of([], phase="rolling-forward"), "unknown phase 'rolling-forward'"),
        (json.dumps({"token": GOOD_TOKEN, "phase": "staging", "entries": [], "run": "x"}), "not an object of"),
        (journal_of([["images/", True, False]]), "is not a plain relative path"),
        ("\udcff", "can't decode"),
    ],
)
def test_a_broken_journal_is_one_error_and_discover_discard_journal_clears_it(example_factory, text, why, capsys):
    root = example_factory.root
    journal = root / "state" / ".journal"
    journal.write_text(text, errors="surrogateescape")
    before = example_factory.snapshot()
    for command in (["validate"], ["record-update", "--image", "python:3.12-slim", "--digest", "sha256:" + "1" * 64]):
        assert main([*command, "--root", str(root)]) == 1
        err = capsys.readouterr().err
        assert why in err and err.count("not a journal image-factory wrote") == 1, err
        assert example_factory.snapshot() == before
    assert main(["discover", "--root", str(root), "--discard-journal"]) == 0
    assert f"{journal} removed without acting on it" in capsys.readouterr().err
    assert not journal.exists()
    assert main(["validate", "--root", str(root)]) == 0


def test_discard_journal_touches_nothing_a_journal_names(example_factory, victim, capsys):
    root = example_factory.root
    (root / "state" / ".journal").write_text(journal_of([["../../victim.txt", False, True]], phase="committing"))
    assert main(["discover", "--root", str(root), "--discard-journal"]) == 0
    assert victim.read_text() == "mine\n"
    assert not (root / "state" / ".journal").exists()


def test_a_journal_the_tool_wrote_is_still_recovered(example_factory, capsys):
    """Staging of a new state file, interrupted: the file the journal names goes, as before."""
    root = example_factory.root
    (root / "state" / "images" / "half.yaml").write_text("half written\n")
    (root / "state" / ".journal").write_text(journal_of([["images/half.yaml", True, False]]))
    assert main(["validate", "--root", str(root)]) == 0
    assert "undid an interrupted write of 1 file(s)" in capsys.readouterr().err
    assert not (root / "state" / "images" / "half.yaml").exists()


def test_a_journal_committed_to_git_is_a_validate_error(example_factory, capsys):
    root = example_factory.root
    (root / "state" / ".journal").write_text(journal_of([]))
    git(root, "init", "--quiet", "--initial-branch=main")
    subprocess.run(["git", "add", "-f", "state/.journal"], cwd=root, check=True)
    commit(root)
    assert main(["validate", "--root", str(root)]) == 1
    assert "state/.journal: a write journal is committed to git" in capsys.readouterr().err


@pytest.mark.parametrize("command, folder", [(["synth"], "dist"), (["site", "--now", "2026-11-25T10:00:00Z"], "site")])
def test_synth_and_site_refuse_a_foreign_journal_in_their_folder_and_discard_it_on_request(
    example_factory, victim, command, folder, capsys
):
    root = example_factory.root
    journal = root / folder / ".journal"
    journal.parent.mkdir(exist_ok=True)
    journal.write_text(journal_of([["../../victim.txt", True, False]]))
    assert main([*command, "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"{journal}: not a journal image-factory wrote" in err and f"{command[0]} --discard-journal" in err
    assert victim.read_text() == "mine\n" and journal.exists()
    assert main([*command, "--root", str(root), "--discard-journal"]) == 0
    assert victim.read_text() == "mine\n" and not journal.exists()


def test_the_tool_never_journals_a_file_outside_the_journals_folder(tmp_path):
    (tmp_path / "state").mkdir()
    with pytest.raises(ValueError, match="not a file of"):
        apply_changes({tmp_path / "outside.yaml": "x\n"}, tmp_path / "state" / ".journal")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["state"]
