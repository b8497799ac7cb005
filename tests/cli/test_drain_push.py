"""`drain --push` against real git repositories: the inbox refs written by events.yml's own
receive script, a protected default branch that refuses the state push (nothing lost), and
the drain after the protection lets it through."""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from image_factory.cli import main

from ..conftest import REPO_ROOT, commit, git, with_origin
from ..event_burst import KARGO, digest

PYTHON = "docker.io/library/python:3.12-slim"
KEY = "test-inbox-key-" + "k" * 32  # the secret IMAGE_FACTORY_INBOX_KEY
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


def receive(checkout, tmp_path, run_id: str, action: str, payload: dict, sender: str = KARGO) -> None:
    """events.yml's receive step in a checkout of the factory, for one repository_dispatch."""
    temp = tmp_path / f"runner-{run_id}"
    temp.mkdir()
    env = {
        **os.environ,
        "TYPE": action,
        "PAYLOAD": json.dumps(payload),
        "SENDER": sender,
        "RUN_ID": run_id,
        "GIT_TOKEN": "ghs_x",
        "INBOX_KEY": KEY,
        "RUNNER_TEMP": str(temp),
    }
    done = subprocess.run(["bash", "-e", "-c", receive_script()], cwd=checkout, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"received {action} as {INBOX}{run_id}" in done.stdout


def test_a_refused_state_push_loses_no_event_and_the_next_drain_applies_them(
    example_factory, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("IMAGE_FACTORY_INBOX_KEY", KEY)
    work, origin = factory_with_origin(example_factory, tmp_path)
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

    hook.unlink()  # the protection lets the factory's pushes through (docs/trust.md: Branch protection)
    git(work, "reset", "--quiet", "--hard", "origin/main")
    assert main(["drain", "--root", str(work), "--push"]) == 0
    assert "drained 3 event(s): 3 applied, 0 refused" in capsys.readouterr().out
    assert git(origin, "for-each-ref", INBOX) == ""
    state = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    assert all(f"digest: {digest(f'protected-{number}')}" in state for number in range(3))


def factory_with_origin(example_factory, tmp_path):
    """The bundled example as a git repository with a bare origin."""
    work = example_factory.root
    git(work, "init", "--quiet", "--initial-branch=main")
    commit(work, "factory")
    return work, with_origin(work, tmp_path)


def forge(work, origin, run_id: str, event: dict) -> None:
    """What any token with Contents write on the factory can do: push a ref into the inbox."""
    blob = git(work, "hash-object", "-w", "--stdin", input_text=json.dumps(event))
    tree = git(work, "mktree", input_text=f"100644 blob {blob}\tevent.json\n")
    made = git(work, "-c", "user.name=x", "-c", "user.email=x@x", "commit-tree", tree, "-m", "forged")
    git(work, "push", "--quiet", str(origin), f"{made}:{INBOX}{run_id}")


def test_only_events_the_receive_job_sealed_are_applied(example_factory, tmp_path, capsys, monkeypatch):
    """A team token may push refs to the inbox: a forged CVE claiming Kargo's login, and one
    sealed with the wrong key, are refused and kept apart (refs/image-factory/refused/); the
    receive job's own event is applied. Without the key the drain applies nothing at all."""
    work, origin = factory_with_origin(example_factory, tmp_path)
    monkeypatch.setenv("IMAGE_FACTORY_INBOX_KEY", KEY)
    receive(work, tmp_path, "800", "base-image-updated", {"image": PYTHON, "digest": digest("real")})
    forged = {"id": "801", "type": "base-image-cve", "sender": KARGO, "receivedAt": "2026-01-01T00:00:00Z"}
    forged["payload"] = {"image": PYTHON, "digest": digest("forged"), "reason": "trust me"}
    forge(work, origin, "801", forged)
    forge(work, origin, "802", {**forged, "id": "802", "mac": "0" * 64})

    monkeypatch.delenv("IMAGE_FACTORY_INBOX_KEY")
    assert main(["drain", "--root", str(work), "--push"]) == 1
    assert "IMAGE_FACTORY_INBOX_KEY: is not set" in capsys.readouterr().err
    assert len(git(origin, "for-each-ref", INBOX).splitlines()) == 3

    monkeypatch.setenv("IMAGE_FACTORY_INBOX_KEY", KEY)
    assert main(["drain", "--root", str(work), "--push"]) == 1
    out, err = capsys.readouterr()
    assert "drained 3 event(s): 1 applied, 2 refused, 0 left for the next drain" in out
    assert err.count("its seal is missing or wrong") == 2
    state = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    assert digest("real") in state and digest("forged") not in state
    assert git(origin, "for-each-ref", INBOX) == ""
    refused = git(origin, "for-each-ref", "--format=%(refname)", "refs/image-factory/refused/").split()
    assert refused == ["refs/image-factory/refused/801", "refs/image-factory/refused/802"]


def test_an_event_cosign_cannot_judge_now_waits_and_a_refused_one_can_be_requeued(
    example_factory, tmp_path, capsys, monkeypatch
):
    """A build report whose keyless signature cannot be checked now (cosign missing) stays in
    the inbox; a vouching refused for its sender moves aside, and `drain --requeue` puts it back
    once images.yaml trusts the sender."""
    from ..event_burst import cosign_that_accepts

    work, origin = factory_with_origin(example_factory, tmp_path)
    monkeypatch.setenv("IMAGE_FACTORY_INBOX_KEY", KEY)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no cosign
    built = {"image": "base-python", "result": "success", "digest": digest("built"), "bases": {PYTHON: digest("py")}}
    built["run_url"] = "https://github.com/acme-platform/image-factory/actions/runs/5"
    receive(work, tmp_path, "900", "image-built", built)
    receive(work, tmp_path, "901", "base-image-verified", {"image": PYTHON, "digest": digest("v")}, sender="scanner")
    assert main(["drain", "--root", str(work), "--push"]) == 1
    out, err = capsys.readouterr()
    assert "0 applied, 1 refused, 1 left for the next drain" in out
    assert "left for the next drain: event 900 (image-built of base-python): cosign is not on PATH" in err
    assert git(origin, "for-each-ref", "--format=%(refname)", INBOX).split() == [f"{INBOX}900"]

    monkeypatch.setenv("PATH", f"{cosign_that_accepts(tmp_path / 'bin')}:/usr/bin:/bin")
    text = (
        (work / "images.yaml")
        .read_text()
        .replace('senders: ["image-factory-kargo[bot]"]', 'senders: ["image-factory-kargo[bot]", "scanner"]')
    )
    (work / "images.yaml").write_text(text)
    assert main(["discover", "--root", str(work)]) == 0
    commit(work, "trust the scanner")
    git(work, "push", "--quiet", "origin", "main")
    capsys.readouterr()
    assert main(["drain", "--root", str(work), "--push", "--requeue", "901"]) == 0
    assert "drained 2 event(s): 2 applied, 0 refused, 0 left for the next drain" in capsys.readouterr().out
    assert git(origin, "for-each-ref", "refs/image-factory/") == ""
    state = git(origin, "show", "main:state/images/base-python.yaml")
    assert f"currentDigest: {digest('built')}" in state or f"currentDigest: '{digest('built')}'" in state
