"""The inbox of received events in git: one ref per event, `refs/image-factory/inbox/<run id>`,
each a commit holding `event.json`. Git at the edge.

A ref per event because concurrent writers then never touch the same thing: each receive job
creates a ref of its own, which no other push can reject or overwrite (no branch to race for,
no merge). Refs outside refs/heads and refs/tags are not branches: branch protection and
rulesets (which target branches and tags) do not apply to them. The drain deletes a ref only
after the state its event changed is pushed; a ref it could not delete is applied again by the
next drain, which changes nothing (state/runtime_events).
"""

from __future__ import annotations

from pathlib import Path

from image_factory.errors import FactoryError, Problem
from image_factory.state.gitops import _auth_environment, _git

PREFIX = "refs/image-factory/inbox/"
EVENT_FILE = "event.json"
DELETE_BATCH = 100  # refs per push: a command line of a few kilobytes


def fetch(root: Path, remote: str = "origin") -> dict[str, str]:
    """Every event in the remote's inbox: its ref name → the text of its event.json. A ref
    without that file maps to '' (the drain refuses it, and deletes it)."""
    auth = _auth_environment(root, remote)
    _git(root, "fetch", "--quiet", "--no-tags", "--prune", remote, f"+{PREFIX}*:{PREFIX}*", env=auth)
    names = _git(root, "for-each-ref", "--format=%(refname)", PREFIX).stdout.split()
    if not names:
        return {}
    # one git process for all of them: a burst may leave hundreds
    request = "".join(f"{name}:{EVENT_FILE}\n" for name in names)
    batch = _git_batch(root, request)
    return dict(zip(names, batch, strict=True))


def _git_batch(root: Path, request: str) -> list[str]:
    """`git cat-file --batch` answers, in order: each object's text, or '' when it is missing."""
    import subprocess

    out = subprocess.run(
        ["git", "cat-file", "--batch"], cwd=root, input=request.encode(), capture_output=True, check=False
    )
    if out.returncode != 0:
        raise FactoryError(Problem("git", f"git cat-file --batch failed: {out.stderr.decode(errors='replace')}"))
    data, texts, position = out.stdout, [], 0
    while position < len(data):
        end = data.index(b"\n", position)
        header = data[position:end].decode(errors="replace").split()
        position = end + 1
        if len(header) == 2 and header[1] == "missing":
            texts.append("")
            continue
        size = int(header[2])
        texts.append(data[position : position + size].decode("utf-8", errors="replace"))
        position += size + 1
    return texts


def delete(root: Path, names: list[str], remote: str = "origin") -> list[str]:
    """Delete these inbox refs on the remote (and here); the ones a push could not delete (the
    next drain applies them again, changing nothing)."""
    auth = _auth_environment(root, remote)
    left: list[str] = []
    for start in range(0, len(names), DELETE_BATCH):
        chunk = [name for name in names[start : start + DELETE_BATCH] if name.startswith(PREFIX)]
        pushed = _git(root, "push", "--quiet", remote, *(f":{name}" for name in chunk), check=False, env=auth)
        if pushed.returncode != 0:
            left += chunk
        for name in chunk:
            _git(root, "update-ref", "-d", name, check=False)
    return left
