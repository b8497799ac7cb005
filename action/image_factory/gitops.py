"""Committing state to git and pushing it, safely when several writers race. Git at the edge.

A rejected push is retried on a fresh copy of the branch: fetch, reset to it, apply the same
state edit again (edits are idempotent and free of side effects), commit, push. Nothing is
lost when two events arrive together.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from .errors import FactoryError, Problem

STATE_PATHS = ("state",)


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise FactoryError(Problem("git", f"git {' '.join(args)} failed: {result.stderr.strip()}"))
    return result


def _branch(root: Path) -> str:
    return _git(root, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()


def commit_and_push(
    root: Path, message: str, reapply: Callable[[], object], *, remote: str = "origin", attempts: int = 5
) -> str | None:
    """Commit the state edit already made in `root` and push it; on a rejected push, redo the
    edit with `reapply` on top of the remote branch and try again. Returns the pushed commit,
    or None when the edit changed nothing."""
    branch = _branch(root)
    for attempt in range(1, attempts + 1):
        _git(root, "add", "--all", "--", *STATE_PATHS)
        if not _git(root, "diff", "--cached", "--quiet", check=False).returncode:
            return None  # nothing to commit: the event was already recorded
        _git(
            root,
            "-c",
            "user.name=image-factory",
            "-c",
            "user.email=image-factory@users.noreply.github.com",
            "commit",
            "--quiet",
            "-m",
            message,
        )
        pushed = _git(root, "push", "--quiet", remote, f"HEAD:{branch}", check=False)
        if pushed.returncode == 0:
            return _git(root, "rev-parse", "HEAD").stdout.strip()
        if attempt == attempts:
            raise FactoryError(
                Problem("git", f"push to {remote}/{branch} rejected {attempts} times: {pushed.stderr.strip()}")
            )
        _git(root, "fetch", "--quiet", remote, branch)
        _git(root, "reset", "--quiet", "--hard", f"{remote}/{branch}")
        reapply()
    return None
