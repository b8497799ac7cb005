"""`drain --push` against real git repositories: the inbox refs written by events.yml's own
receive script, a protected default branch that refuses the state push (nothing lost), and
the drain after the protection lets it through."""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from image_factory.cli import main

from ..conftest import REPO_ROOT, commit, git
from ..event_burst import KARGO, digest

PYTHON = "docker.io/library/python:3.12-slim"
INBOX = "refs/image-factory/inbox/"
# GitHub's answer to a push a branch ruleset or protection refuses (git prints "protected branch
# hook declined" beside it)
PROTECTED = """#!/bin/sh
while read old new ref; do
  if [ "$ref" = refs/heads/main ]; then
    echo "error: GH006: Protected branch update failed for refs/heads/main." >&2
    exit 1
  fi
done
"""


def receive_script() -> str:
    """The `run` of events.yml's receive step, as GitHub runs it."""
    jobs = yaml.safe_load((REPO_ROOT / ".github/workflows/events.yml").read_text())["jobs"]
    (step,) = [s for s in jobs["receive"]["steps"] if s.get("name") == "Write the event down"]
    return step["run"]


def receive(checkout, tmp_path, run_id: str, action: str, payload: dict) -> None:
    """events.yml's receive step in a checkout of the factory, for one repository_dispatch."""
    temp = tmp_path / f"runner-{run_id}"
    temp.mkdir()
    env = {
        **os.environ,
        "TYPE": action,
        "PAYLOAD": json.dumps(payload),
        "SENDER": KARGO,
        "RUN_ID": run_id,
        "GIT_TOKEN": "ghs_x",
        "RUNNER_TEMP": str(temp),
    }
    done = subprocess.run(["bash", "-e", "-c", receive_script()], cwd=checkout, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"received {action} as {INBOX}{run_id}" in done.stdout


def test_a_refused_state_push_loses_no_event_and_the_next_drain_applies_them(example_factory, tmp_path, capsys):
    work = example_factory.root
    git(work, "init", "--quiet", "--initial-branch=main")
    commit(work, "factory")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(origin))
    git(work, "remote", "add", "origin", str(origin))
    git(work, "fetch", "--quiet", "origin")
    git(work, "branch", "--quiet", "--set-upstream-to=origin/main")
    for number in range(3):
        payload = {"image": PYTHON, "digest": digest(f"protected-{number}"), "freight": f"f{number}"}
        receive(work, tmp_path, str(700 + number), "base-image-updated", payload)
    assert len(git(origin, "for-each-ref", INBOX).splitlines()) == 3
    hook = origin / "hooks/pre-receive"
    hook.write_text(PROTECTED)
    hook.chmod(0o755)
    before = git(origin, "rev-parse", "main")

    assert main(["drain", "--root", str(work), "--push"]) == 1
    err = capsys.readouterr().err
    assert "GH006: Protected branch update failed" in err
    assert f"the 3 event(s) stay in the inbox ({INBOX}*), and the next drain applies them" in err
    assert git(origin, "rev-parse", "main") == before
    assert len(git(origin, "for-each-ref", INBOX).splitlines()) == 3  # nothing lost

    hook.unlink()  # the protection lets the factory's pushes through (README: Branch protection)
    git(work, "reset", "--quiet", "--hard", "origin/main")
    assert main(["drain", "--root", str(work), "--push"]) == 0
    assert "drained 3 event(s): 3 applied, 0 refused" in capsys.readouterr().out
    assert git(origin, "for-each-ref", INBOX) == ""
    state = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    assert all(f"digest: {digest(f'protected-{number}')}" in state for number in range(3))
