"""The inbox of received events in git: one ref per event, `refs/image-factory/inbox/<run id>`,
each a commit holding `event.json`. Git at the edge.

A ref per event because concurrent writers then never touch the same thing: each receive job
creates a ref of its own, which no other push can reject or overwrite (no branch to race for,
no merge). Refs outside refs/heads and refs/tags are not branches: branch protection and
rulesets (which target branches and tags) do not apply to them. The drain deletes a ref only
after the state its event changed is pushed; a ref it could not delete is applied again by the
next drain, which changes nothing (state/runtime_events). A refused event's ref moves to
refs/image-factory/refused/<run id>: never lost, and put back by `drain --requeue`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from image_factory.errors import FactoryError, Problem
from image_factory.state.gitops import auth_environment, run_git

PREFIX = "refs/image-factory/inbox/"
EVENT_FILE = "event.json"
DELETE_BATCH = 100  # refs per push: a command line of a few kilobytes


REFUSED = "refs/image-factory/refused/"


def fetch(root: Path, remote: str = "origin") -> dict[str, tuple[str, str]]:
    """Every event in the remote's inbox: its ref name → (its commit, the text of its
    event.json). A ref without that file has '' for text (the drain refuses it)."""
    auth = auth_environment(root, remote)
    run_git(root, "fetch", "--quiet", "--no-tags", "--prune", remote, f"+{PREFIX}*:{PREFIX}*", env=auth)
    listed = run_git(root, "for-each-ref", "--format=%(objectname) %(refname)", PREFIX).stdout.split("\n")
    refs = [line.split(" ", 1) for line in listed if line]
    if not refs:
        return {}
    # one git process for all of them: a burst may leave hundreds
    texts = _git_batch(root, "".join(f"{sha}:{EVENT_FILE}\n" for sha, _ in refs))
    return {name: (sha, text) for (sha, name), text in zip(refs, texts, strict=True)}


def _git_batch(root: Path, request: str) -> list[str]:
    """`git cat-file --batch` answers, in order: each object's text, or '' when it is missing."""
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
        if len(header) != 3:  # "<name> missing", or not a blob: no event.json
            texts.append("")
            continue
        size = int(header[2])
        texts.append(data[position : position + size].decode("utf-8", errors="replace"))
        position += size + 1
    return texts


def settle(root: Path, applied: list[str], refused: dict[str, str], remote: str = "origin") -> list[str]:
    """After the state is pushed: delete the applied events' refs, and move the refused ones
    (name → commit) to refs/image-factory/refused/ (kept for a person to read, and to put back
    with `drain --requeue`). The refs a push could not settle; the next drain sees them again,
    and applying an event twice changes nothing."""
    auth = auth_environment(root, remote)
    updates = [f":{name}" for name in applied if name.startswith(PREFIX)]
    for name, sha in refused.items():
        if name.startswith(PREFIX):
            updates += [f"+{sha}:{REFUSED}{name.removeprefix(PREFIX)}", f":{name}"]
    left: list[str] = []
    for start in range(0, len(updates), DELETE_BATCH):
        chunk = updates[start : start + DELETE_BATCH]
        pushed = run_git(root, "push", "--quiet", remote, *chunk, check=False, env=auth)
        if pushed.returncode != 0:
            left += [update.rsplit(":", 1)[1] for update in chunk if update.startswith(":")]
    for name in [*applied, *refused]:
        run_git(root, "update-ref", "-d", name, check=False)
    return left


def requeue(root: Path, ids: list[str], remote: str = "origin") -> list[str]:
    """Put refused events back in the inbox (after a person fixed what refused them); the ids
    that were not found among the refused."""
    auth = auth_environment(root, remote)
    run_git(root, "fetch", "--quiet", "--no-tags", remote, f"+{REFUSED}*:{REFUSED}*", env=auth)
    found, missing = [], []
    for event_id in ids:
        sha = run_git(root, "rev-parse", "--verify", "--quiet", f"{REFUSED}{event_id}", check=False).stdout.strip()
        (found.append((event_id, sha)) if sha else missing.append(event_id))
    if found:
        updates = [item for event_id, sha in found for item in (f"{sha}:{PREFIX}{event_id}", f":{REFUSED}{event_id}")]
        run_git(root, "push", "--quiet", remote, *updates, env=auth)
    return missing
