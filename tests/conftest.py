"""Shared helpers: temporary factory repositories built from real files."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def git(cwd, *args: str, input_text: str | None = None) -> str:
    """Run git in `cwd` (with `input_text` on its stdin); its output, stripped."""
    done = subprocess.run(["git", *args], cwd=cwd, input=input_text, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def copy_project(dest: Path, names) -> None:
    """Copy these files and folders of this repository into `dest` (a fixture repository)."""
    for name in names:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, dest / name)


def commit(cwd, message: str = "init") -> None:
    """Commit everything in the repository at `cwd`."""
    git(cwd, "add", "-A")
    git(cwd, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", message)


def with_origin(work: Path, folder: Path) -> Path:
    """Give the git repository `work` (commits made) a bare clone in `folder` as its origin, its
    branch tracking origin's, as a runner's checkout is: the origin."""
    origin = folder / "origin.git"
    git(folder, "clone", "--quiet", "--bare", str(work), str(origin))
    git(work, "remote", "add", "origin", str(origin))
    git(work, "fetch", "--quiet", "origin")
    git(work, "branch", "--quiet", "--set-upstream-to=origin/main")
    return origin


class Factory:
    """A factory repository in a temporary folder: images.yaml, Dockerfiles and state/."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text(encoding="utf-8")

    def snapshot(self) -> dict[str, bytes]:
        """Every file under the root, for before/after comparisons."""
        return {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file()
        }

    def state_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in (self.root / "state").rglob("*.yaml"))


def pytest_configure(config):
    """Temporary folders in memory (/dev/shm) unless the user chose a place (TMPDIR, --basetemp).
    The suite makes about 1 GB of virtual environments, git clones and image layers, and the tool
    flushes every state write with sync(2), which waits for every dirty page on the disk: on 2 CPUs
    the suite takes 139 s in memory and 197 s on disk. Passing tests' folders are removed as they
    pass (pyproject's tmp_path_retention_policy), so the folder holds what runs and what failed."""
    import os
    import shutil
    import tempfile

    if config.option.basetemp or os.environ.get("TMPDIR") or "PYTEST_XDIST_WORKER" in os.environ:
        return  # a worker inherits the controller's choice
    memory = Path("/dev/shm")
    if not memory.is_dir() or not os.access(memory, os.W_OK) or shutil.disk_usage(memory).free < 4 * 2**30:
        return
    folder = memory / f"image-factory-tests-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():
        return  # someone else's: stay on disk
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: two workers per CPU, at most eight. The slow tests mostly wait on act, dockerd, git
    and local servers, so a second worker per CPU fills that time (2 CPUs: 168 s with 4, 199 s with 2)."""
    import os

    return min(8, 2 * len(os.sched_getaffinity(0)))


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, slow tests first: the workers start on the long ones and the short ones
    fill in the gaps, rather than one worker finishing a long test alone at the end."""
    if getattr(config.option, "numprocesses", None):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="session")
def _own_cache_folder(tmp_path_factory):
    """The tool's cache (compiled validators, parsed state files) in a folder of this process's own,
    inherited by every command the tests start; and the folder every worker of this run shares
    (tests/run_shared.py): pytest-xdist gives each worker a folder inside it."""
    import os

    os.environ["IMAGE_FACTORY_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    base = tmp_path_factory.getbasetemp()
    os.environ["IMAGE_FACTORY_TEST_RUN"] = str(base.parent if "PYTEST_XDIST_WORKER" in os.environ else base)


@pytest.fixture(autouse=True)
def _no_github_write_spacing(monkeypatch):
    """PyGithub waits a second between writes; against a mock that is only lost time."""
    monkeypatch.setenv("IMAGE_FACTORY_GITHUB_WRITE_INTERVAL", "0")


@pytest.fixture
def factory(tmp_path: Path) -> Factory:
    return Factory(tmp_path)


@pytest.fixture
def example_factory(tmp_path: Path) -> Factory:
    """A copy of the repository's own bundled example."""
    root = tmp_path / "factory"
    root.mkdir()
    shutil.copy(REPO_ROOT / "images.yaml", root / "images.yaml")
    shutil.copytree(REPO_ROOT / "examples", root / "examples")
    shutil.copytree(REPO_ROOT / "state", root / "state")
    return Factory(root)


@pytest.fixture
def registry(tmp_path_factory):
    """A real OCI registry (Debian's docker-registry) on 127.0.0.1, stopped after the test."""
    from .registry_server import Registry

    server = Registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def docker_engine():
    """A real Docker engine (Debian's dockerd, as root, in a temporary folder), one per session."""
    from .docker_engine import DockerEngine

    engine = DockerEngine()
    yield engine
    engine.stop()
