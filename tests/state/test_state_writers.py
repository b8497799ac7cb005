"""Several real `image-factory` processes on one checkout, and processes killed mid-write.

Each command that writes state holds the state lock from its first read to its last write, so
parallel writers queue instead of losing each other's updates; a killed `discover` leaves the
old state or the new one, never a mix, and no stray file that a commit would pick up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from image_factory.cli import main

from ..conftest import REPO_ROOT, commit, git

PYTHON = "docker.io/library/python:3.12-slim"
SEEN = datetime(2026, 11, 1, tzinfo=UTC)
LATE = ("--image", "python:3.12-slim", "--digest", "sha256:" + "1" * 64)
PUSHED = ("--digest", "sha256:" + "2" * 64, "--push")


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def at(minutes: int) -> str:
    return (SEEN + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tool(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "image_factory", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "state").rglob("*")) if p.is_file()}


@pytest.fixture
def one_app(tmp_path) -> Path:
    root = tmp_path / "factory"
    (root / "app").mkdir(parents=True)
    (root / "images.yaml").write_text(
        "kargo: {factoryRepo: acme/factory}\nimages:\n"
        "  - {name: app, registry: ghcr.io, repository: acme/app,"
        " source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}\n"
    )
    (root / "app" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    assert main(["discover", "--root", str(root)]) == 0
    return root


def state_of(root: Path, folder: str, match) -> dict:
    for path in (root / "state" / folder).glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if match(data):
            return data
    raise AssertionError(f"no such state in {folder}")


def finish(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err


@pytest.mark.slow
def test_thirty_parallel_record_updates_on_one_base_keep_every_digest(one_app):
    processes = [
        tool(
            "record-update",
            "--root",
            str(one_app),
            "--image",
            "python:3.12-slim",
            "--digest",
            digest(f"py-{n}"),
            "--seen-at",
            at(n),
        )
        for n in range(30)
    ]
    finish(processes)
    base = state_of(one_app, "base-images", lambda data: data["ref"] == PYTHON)
    assert sorted(entry["digest"] for entry in base["runtime"]["history"]) == sorted(
        digest(f"py-{n}") for n in range(30)
    )
    assert base["runtime"]["currentDigest"] == digest("py-29")  # the newest sighting, whoever wrote last


@pytest.mark.slow
def test_twenty_parallel_record_builds_of_one_image_keep_every_attempt(one_app):
    processes = [
        tool(
            "record-build",
            "--root",
            str(one_app),
            "--image",
            "app",
            "--result",
            "success",
            "--digest",
            digest(f"app-{n}"),
            "--base",
            f"python:3.12-slim={digest('py')}",
            "--finished-at",
            at(n),
        )
        for n in range(20)
    ]
    finish(processes)
    app = state_of(one_app, "images", lambda data: data["name"] == "app")
    assert sorted(a["digest"] for a in app["runtime"]["attempts"]) == sorted(digest(f"app-{n}") for n in range(20))


def test_a_reader_waits_for_a_writer_holding_the_lock(one_app):
    """plan started while another process holds the lock exclusively runs only after it lets go."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from image_factory.state.lock import state_lock\n"
            "with state_lock(Path(sys.argv[1]), exclusive=True):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(1.5)\n",
            str(one_app),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    started = time.monotonic()
    reader = tool("plan", "--root", str(one_app))
    _, err = reader.communicate(timeout=60)
    waited = time.monotonic() - started
    holder.wait(timeout=60)
    assert reader.returncode == 0, err
    assert "waiting for another image-factory command to finish" in err
    assert waited >= 1.0


def test_a_lock_held_too_long_is_an_error_that_changes_nothing(one_app, monkeypatch):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from image_factory.state.lock import state_lock\n"
            "with state_lock(Path(sys.argv[1]), exclusive=False):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(30)\n",
            str(one_app),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        before = snapshot(one_app)
        env = {**os.environ, "IMAGE_FACTORY_LOCK_TIMEOUT": "0.3"}
        result = subprocess.run(
            [sys.executable, "-m", "image_factory", "record-update", "--root", str(one_app), *LATE],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 1
        assert result.stderr.splitlines()[-1] == (
            f"error: {one_app}: another image-factory command held the state lock for 0.3 s; "
            "nothing was changed (set IMAGE_FACTORY_LOCK_TIMEOUT to wait longer)"
        )
        assert snapshot(one_app) == before
    finally:
        holder.kill()
        holder.wait()


# --- killed mid-write -------------------------------------------------------------------------


def fleet(root: Path, count: int) -> None:
    spec = importlib.util.spec_from_file_location("bench_scale", REPO_ROOT / "bench" / "scale.py")
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    scale.build_factory(root, count)


@pytest.fixture(scope="module")
def fleet_states(tmp_path_factory):
    """A 300-image fleet, discovered (old), and what discover makes of it after a change that
    rewrites every state file (new)."""
    root = tmp_path_factory.mktemp("fleet") / "factory"
    root.mkdir()
    fleet(root, 300)
    assert main(["discover", "--root", str(root)]) == 0
    old = snapshot(root)
    changed = tmp_path_factory.mktemp("changed") / "factory"
    shutil.copytree(root, changed)
    text = (changed / "images.yaml").read_text().replace("kargo: {", "defaults: {rebuildDelay: 3d}\nkargo: {", 1)
    (changed / "images.yaml").write_text(text)
    assert main(["discover", "--root", str(changed)]) == 0
    new = snapshot(changed)
    assert sum(old[name] != new.get(name) for name in old) >= 300  # the write set is large
    return root, old, text, new


def writing(root: Path) -> bool:
    """A write has begun: a dot file (journal, temporary file) is in state/."""
    folders = [root / "state", root / "state" / "images", root / "state" / "base-images"]
    return any(entry.name.startswith(".") for folder in folders for entry in os.scandir(folder))


@pytest.mark.slow
def test_discover_killed_at_many_points_leaves_old_or_new_state(fleet_states, tmp_path):
    source, old, changed_config, new = fleet_states
    outcomes = []
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.6, 1.0):
        root = tmp_path / f"kill-{delay}"
        shutil.copytree(source, root)
        (root / "images.yaml").write_text(changed_config)
        process = tool("discover", "--root", str(root))
        deadline = time.monotonic() + 120
        while not writing(root) and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        interrupted = (root / "state" / ".journal").exists()
        # the next command (here validate, which only reads) finishes or undoes the write first
        result = subprocess.run(
            [sys.executable, "-m", "image_factory", "validate", "--root", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        after = snapshot(root)
        assert after in (old, new), f"killed {delay}s into the write: a mix of old and new state, or strays"
        outcomes.append((interrupted, "new" if after == new else "old"))
    assert any(interrupted for interrupted, _ in outcomes), "no kill landed during a write"


def test_strays_are_never_committed_are_flagged_and_discover_removes_them(one_app, capsys):
    git(one_app, "init", "--quiet", "--initial-branch=main")
    commit(one_app)
    stray = one_app / "state" / "images" / ".app.yaml.k3j2h1.tmp"  # an older version's temporary file
    stray.write_text("half")
    assert main(["validate", "--root", str(one_app)]) == 1
    assert capsys.readouterr().err == (
        "error: state/images/.app.yaml.k3j2h1.tmp: left by an interrupted write; `image-factory discover` removes it\n"
    )
    origin = one_app.parent / "origin.git"
    git(one_app.parent, "clone", "--quiet", "--bare", str(one_app), str(origin))
    git(one_app, "remote", "add", "origin", str(origin))
    git(one_app, "fetch", "--quiet", "origin")
    git(one_app, "branch", "--quiet", "--set-upstream-to=origin/main")
    assert main(["record-update", "--root", str(one_app), "--image", "python:3.12-slim", *PUSHED]) == 0
    assert git(one_app, "show", "--name-only", "--format=", "HEAD").splitlines() == [
        next(str(p.relative_to(one_app)) for p in (one_app / "state" / "base-images").glob("*.yaml"))
    ]
    assert main(["discover", "--root", str(one_app)]) == 0
    assert not stray.exists()
    assert main(["validate", "--root", str(one_app)]) == 0


def test_dot_files_of_ones_own_are_no_strays(one_app, capsys):
    """A `.gitkeep` or `.gitattributes` under state/ is the user's: neither flagged nor removed."""
    for name in ("state/.gitattributes", "state/images/.gitkeep"):
        (one_app / name).write_text("")
    assert main(["validate", "--root", str(one_app)]) == 0
    assert main(["discover", "--root", str(one_app)]) == 0
    assert (one_app / "state/.gitattributes").exists() and (one_app / "state/images/.gitkeep").exists()


def test_validate_names_files_under_state_the_tool_never_writes(one_app, capsys):
    (one_app / "state" / "images" / "app.yaml~").write_text("an editor's backup\n")
    (one_app / "state" / "notes.txt").write_text("mine\n")
    (one_app / "state" / "images" / "old").mkdir()
    assert main(["validate", "--root", str(one_app)]) == 1
    err = capsys.readouterr().err
    for name in ("state/images/app.yaml~", "state/images/old", "state/notes.txt"):
        assert f"error: {name}: not a file image-factory writes (an editor's backup?): remove it" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e9", "soon"])
def test_a_lock_timeout_that_would_wait_for_ever_is_refused(one_app, monkeypatch, capsys, value):
    monkeypatch.setenv("IMAGE_FACTORY_LOCK_TIMEOUT", value)
    before = snapshot(one_app)
    assert main(["record-update", "--root", str(one_app), *LATE]) == 1
    assert capsys.readouterr().err == (
        f"error: IMAGE_FACTORY_LOCK_TIMEOUT: {value!r} is not a number of seconds from 0 to 86400; "
        "nothing was changed\n"
    )
    assert snapshot(one_app) == before


@pytest.mark.parametrize(
    "code, words", [(28, "No space left on device"), (30, "Read-only file system"), (13, "Permission denied")]
)
def test_an_os_error_while_writing_is_one_line_naming_the_path(one_app, monkeypatch, capsys, code, words):
    from image_factory.state import files

    def failing(path, text, mode):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(files, "_write_new", failing)
    before = snapshot(one_app)
    assert main(["record-update", "--root", str(one_app), *LATE]) == 1
    err = capsys.readouterr().err.splitlines()
    assert (
        len(err) == 1
        and err[0].startswith(f"error: {one_app / 'state'}")
        and err[0].endswith(f"{words}; nothing was changed")
    )
    assert snapshot(one_app) == before
