"""Committing state to git and pushing it, safely when several writers race. Git at the edge.

A rejected push is retried on a fresh copy of the branch: fetch, reset to it, apply the same
state edit again (edits are idempotent and free of side effects), commit, push. Nothing is
lost when two events arrive together, nor when a burst of them does: each round one writer
lands, and the others wait a random, growing while before they go again.

That reset must never cost a person their work, so `ready_to_push` refuses up front a checkout
with anything a reset could take (a change to a tracked file, a commit not on the remote, a
detached HEAD); the reset is `--keep`, which leaves untracked files be or refuses; and a commit
holds exactly the files this process wrote (`files.written`): never what someone had staged, nor
an editor's backup beside a state file.
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from image_factory.errors import FactoryError, Problem
from image_factory.state.files import written

# A burst of 50-100 writers racing for one branch (Kargo refreshes many Warehouses together, builds
# report together, people push) must all land. Each round of pushes one of them wins; without a
# wait the losers collide again in step, so each waits a random time in a window that doubles
# with every rejection ("full jitter"), up to a cap: at most 4.7 minutes of waiting in all, about
# half that on average.
PUSH_ATTEMPTS = 40
BACKOFF_FIRST = 0.25  # seconds: the first window
BACKOFF_CAP = 8.0


def backoff(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th rejected push (1, 2, ...): random, in a growing window."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1)))


# The token `--push` authenticates with over HTTPS: a workflow's pushing steps set it (github.token).
TOKEN_VARIABLE = "IMAGE_FACTORY_GIT_TOKEN"


def auth_environment(root: Path, remote: str) -> dict[str, str] | None:
    """git's environment for fetch and push: with IMAGE_FACTORY_GIT_TOKEN set and an http(s)
    remote, the auth header for exactly that remote's URL (so GitHub Enterprise's too) in
    GIT_CONFIG_* variables: never on git's command line, which any process of the runner can read
    in /proc, nor in .git/config. None when there is no token to send."""
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        return None
    url = run_git(root, "remote", "get-url", remote).stdout.strip()
    if not url.startswith(("https://", "http://")):
        return None
    environment = {name: value for name, value in os.environ.items() if name != TOKEN_VARIABLE}
    index = int(environment.get("GIT_CONFIG_COUNT") or 0)  # after any the caller set
    credentials = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    environment.update(
        {
            "GIT_CONFIG_COUNT": str(index + 1),
            f"GIT_CONFIG_KEY_{index}": f"http.{url}.extraheader",
            f"GIT_CONFIG_VALUE_{index}": f"AUTHORIZATION: basic {credentials}",
        }
    )
    return environment


def run_git(
    root: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False, env=env)
    if check and result.returncode != 0:
        raise FactoryError(Problem("git", f"git {' '.join(args)} failed: {result.stderr.strip()}"))
    return result


def tracked(root: Path, *paths: str) -> list[str]:
    """Which of `paths` (relative to `root`) git tracks; none outside a git work tree."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *paths], cwd=root, capture_output=True, text=True, check=False
        )
    except OSError:  # no git
        return []
    return [name for name in listed.stdout.split("\0") if name] if listed.returncode == 0 else []


def _branch(root: Path) -> str:
    return run_git(root, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()


def ready_to_push(root: Path, remote: str = "origin") -> None:
    """Refuse `--push` before anything is written when the checkout holds work a lost race's reset
    to the remote branch could take: a detached HEAD (no branch to push), a change to any tracked
    file, or commits the remote branch does not have."""
    if run_git(root, "rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
        raise FactoryError(Problem(str(root), "--push: not a git checkout"))
    branch = _branch(root)
    if branch == "HEAD":
        raise FactoryError(Problem(str(root), "--push: HEAD is detached; check out the branch to push to"))
    listed = run_git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--", ".").stdout
    dirty = [line[3:] for line in listed.split("\0") if line]
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise FactoryError(
            Problem(
                str(root),
                f"--push: the checkout has changes of its own ({shown}); a push that loses a race resets "
                "the branch to the remote's, so commit or stash them first (nothing was changed)",
            )
        )
    upstream = f"refs/remotes/{remote}/{branch}"
    if run_git(root, "rev-parse", "--verify", "--quiet", upstream, check=False).returncode == 0:
        ahead = run_git(root, "log", "--format=%h %s", f"{upstream}..HEAD").stdout.splitlines()
        if ahead:
            raise FactoryError(
                Problem(
                    str(root),
                    f"--push: {branch} has {len(ahead)} commit(s) {remote}/{branch} does not ({ahead[0]}); "
                    "push or drop them first (nothing was changed)",
                )
            )


def _ours(root: Path) -> list[str]:
    """The files this process wrote or deleted under `root` that git can commit: relative paths."""
    inside = []
    for path in written():
        try:
            relative = path.relative_to(root)
        except ValueError:
            continue
        inside.append(relative.as_posix())
    if not inside:
        return []
    known = set(run_git(root, "ls-files", "-z", "--", *inside).stdout.split("\0"))
    return sorted(name for name in inside if name in known or (root / name).exists())


# What git says when the server will not take this push however often it is tried. Anything
# else (a lost race, a 5xx, a dropped connection) is tried again: the sender of the event already
# got its answer, and this checkout is thrown away when the run ends.
REFUSALS = (
    "Authentication failed",
    "Permission to",
    "permission denied",
    "returned error: 401",
    "returned error: 403",
    "returned error: 404",
    "protected branch",
    "hook declined",
)


def _refused(stderr: str) -> bool:
    folded = stderr.lower()
    return any(marker.lower() in folded for marker in REFUSALS)


def commit_and_push(
    root: Path,
    message: str,
    reapply: Callable[[], object],
    *,
    remote: str = "origin",
    attempts: int = PUSH_ATTEMPTS,
    sleep: Callable[[float], object] = time.sleep,
) -> str | None:
    """Commit the state edit already made in `root` and push it; on a rejected push, wait
    (`backoff`), redo the edit with `reapply` on top of the remote branch and try again. Returns
    the pushed commit, or None when the edit changed nothing."""
    branch = _branch(root)
    auth = auth_environment(root, remote)
    for attempt in range(1, attempts + 1):
        paths = _ours(root)
        if not paths:
            return None  # nothing written: the event was already recorded
        run_git(root, "add", "--all", "--", *paths)
        if not run_git(root, "diff", "--cached", "--quiet", "--", *paths, check=False).returncode:
            return None  # nothing to commit: the event was already recorded
        run_git(
            root,
            "-c",
            "user.name=image-factory",
            "-c",
            "user.email=image-factory@users.noreply.github.com",
            "commit",
            "--quiet",
            "--only",
            "-m",
            message,
            "--",
            *paths,
        )
        pushed = run_git(root, "push", "--quiet", remote, f"HEAD:{branch}", check=False, env=auth)
        if pushed.returncode == 0:
            return run_git(root, "rev-parse", "HEAD").stdout.strip()
        if _refused(pushed.stderr):  # credentials, permissions, a protected branch: retrying cannot help
            raise FactoryError(Problem("git", f"push to {remote}/{branch} failed: {pushed.stderr.strip()}"))
        if attempt == attempts:
            raise FactoryError(
                Problem("git", f"push to {remote}/{branch} rejected {attempts} times: {pushed.stderr.strip()}")
            )
        sleep(backoff(attempt))
        run_git(root, "fetch", "--quiet", remote, branch, env=auth)
        # --keep, not --hard: git itself refuses rather than overwrite anything that is not ours
        run_git(root, "reset", "--quiet", "--keep", f"{remote}/{branch}")
        reapply()
    return None
