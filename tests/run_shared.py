"""What the tests of one run share, whichever pytest-xdist worker asks first: each thing is made once
under a file lock in the run's shared folder, then only read.

- a wheelhouse of requirements/workflows.lock: every `pip install` a workflow runs under act reads it
  instead of the package index (hashes still checked), so a run asks the index once, not 30 times;
- a virtual environment the setup-python stand-in copies instead of running ensurepip (3 s each).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import REPO_ROOT

RUN_FOLDER = "IMAGE_FACTORY_TEST_RUN"  # set by conftest: the folder every worker of this run sees


def made_once(name: str, make: Callable[[Path], None]) -> Path:
    """`<run folder>/<name>`, made by `make(folder)` the first time any worker asks; a failed make
    leaves nothing behind, so the next caller tries again and fails the same way."""
    root = Path(os.environ[RUN_FOLDER])
    target = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            partial = root / f"{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            make(partial)
            partial.rename(target)
    return target


def _download_lock(folder: Path) -> None:
    lock = REPO_ROOT / "requirements" / "workflows.lock"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
    result = subprocess.run([*command, "-r", str(lock), "-d", str(folder)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pip download -r {lock} failed:\n{result.stdout}{result.stderr}")


def _venv_template(folder: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, capture_output=True)


def workflow_environment() -> dict[str, str]:
    """The environment a workflow run under act gets on top of the test's: pip reads the run's
    wheelhouse only, and the setup-python stand-in copies the run's virtual environment."""
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(made_once("wheelhouse", _download_lock)),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "IMAGE_FACTORY_STANDIN_VENV": str(made_once("venv-template", _venv_template) / "venv"),
    }
