"""The factory's validate and synth workflows, run by `act` on this machine against a fixture
factory repository (a copy of the bundled example). Their steps install the tool from PyPI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import commit, copy_project, git
from .cosign_signer import new_key, public_pem

ACT = Path(sys.executable).parent / "act"
FACTORY_PATHS = [
    "images.yaml",
    "examples",
    "state",
    "dist",
    "schemas",
    "cdk8s",
    "action",
    "requirements",
    "pyproject.toml",
    "README.md",
    ".github",
]


@pytest.fixture
def factory_repo(tmp_path):
    """The factory as a git repository whose origin is a local bare repository."""
    work = tmp_path / "factory"
    work.mkdir()
    copy_project(work, FACTORY_PATHS)
    git(work, "init", "--quiet", "--initial-branch=main")
    commit(work, "factory")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(origin))
    git(work, "remote", "add", "origin", str(origin))
    git(work, "fetch", "--quiet", "origin")
    git(work, "branch", "--quiet", "--set-upstream-to=origin/main")
    return work, origin


def act(cwd: Path, event: str, workflow: str, *extra: str, payload: dict | None = None) -> tuple[int, str]:
    args = [
        str(ACT),
        event,
        "-W",
        f".github/workflows/{workflow}",
        "-P",
        "ubuntu-latest=-self-hosted",
        "--action-offline-mode",
        *extra,
    ]
    if payload is not None:
        event_file = cwd.parent / f"{event}.json"
        event_file.write_text(json.dumps(payload))
        args += ["-e", str(event_file)]
    result = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return result.returncode, result.stdout + result.stderr


PULL_REQUEST = {"pull_request": {"number": 7, "head": {"ref": "team"}, "base": {"ref": "main"}}}


def test_validate_passes_on_a_valid_factory_and_annotates_a_broken_one(factory_repo):
    work, _ = factory_repo
    code, output = act(work, "pull_request", "validate.yml", payload=PULL_REQUEST)
    assert code == 0, output[-4000:]
    assert "Job succeeded" in output

    text = (work / "images.yaml").read_text().replace("rebuildDelay: 3d", "rebuildDelay: 3 days")
    (work / "images.yaml").write_text(text)
    commit(work, "break it")
    line = text.splitlines().index("    rebuildDelay: 3 days") + 1
    code, output = act(work, "pull_request", "validate.yml", payload=PULL_REQUEST)
    assert code != 0
    assert f"::error file=images.yaml,line={line}::images[1].rebuildDelay: '3 days' is not a duration" in output


@pytest.mark.parametrize("publish_to", ["main", "manifests"])
def test_synth_publishes_changed_manifests(factory_repo, publish_to):
    work, origin = factory_repo
    text = (work / "images.yaml").read_text().replace("  rebuildDelay: 7d\n", "  rebuildDelay: 6d\n", 1)
    (work / "images.yaml").write_text(text)
    assert (
        subprocess.run(
            [str(Path(sys.executable).parent / "image-factory"), "discover", "--root", str(work)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    commit(work, "wait 6 days by default")
    git(work, "push", "--quiet", "origin", "main")
    code, output = act(
        work, "push", "synth.yml", "--var", f"IMAGE_FACTORY_PUBLISH={publish_to}", payload={"ref": "refs/heads/main"}
    )
    assert code == 0, output[-4000:]
    branch = "main" if publish_to == "main" else "manifests"
    published = git(origin, "show", f"{branch}:dist/kargo.k8s.yaml")
    assert "requiredSoakTime: 144h" in published
    subject = git(origin, "log", "-1", "--format=%s", branch)
    assert subject.startswith("dist: synth of" if publish_to == "main" else "manifests: synth of")
    if publish_to == "manifests":
        assert git(origin, "ls-tree", "-r", "--name-only", "manifests").splitlines() == [
            "dist/argocd-application.k8s.yaml",
            "dist/kargo.k8s.yaml",
        ]


def test_events_records_a_new_base_digest_and_pushes_it(factory_repo):
    """repository_dispatch base-image-updated → record-update → commit pushed; nothing is due yet,
    so dispatch calls nothing (no token is needed)."""
    work, origin = factory_repo
    digest = "sha256:" + "7" * 64
    payload = {
        "action": "base-image-updated",
        "client_payload": {"image": "docker.io/library/python:3.12-slim", "digest": digest, "freight": "f-1"},
    }
    code, output = act(work, "repository_dispatch", "events.yml", payload=payload)
    assert code == 0, output[-4000:]
    assert "nothing to dispatch: no build is due" in output
    assert "no verify policy in images.yaml, nothing recorded" in output  # the signature check step
    subject = git(origin, "log", "-1", "--format=%s", "main")
    assert subject.startswith("state: docker.io/library/python:3.12-slim has a new digest sha256:7777")
    state = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    assert f"digest: {digest}" in state and "freight: f-1" in state


def test_events_records_verification_cve_fixes_and_signed_builds(factory_repo):
    """base-image-verified, image-built (failed, with the reason) and base-image-cve. The expedited
    digest makes a rebuild due at once: with no GitHub token here its dispatch fails, after the
    expedite was committed and pushed."""
    work, origin = factory_repo
    python = "docker.io/library/python:3.12-slim"
    digest = "sha256:" + "8" * 64
    runs = [
        {"action": "base-image-verified", "client_payload": {"image": python, "digest": digest, "freight": "f-2"}},
        {
            "action": "image-built",
            "client_payload": {
                "image": "metrics-agent",
                "digest": "",
                "result": "failure",
                "signed": False,
                "error": "the test failed",
                "bases": {},
                "run_url": "https://github.com/acme/agent/actions/runs/9",
            },
        },
    ]
    for payload in runs:
        code, output = act(work, "repository_dispatch", "events.yml", payload=payload)
        assert code == 0, output[-4000:]
    cve = {"action": "base-image-cve", "client_payload": {"image": python, "digest": digest, "reason": "CVE-2026-1"}}
    code, output = act(work, "repository_dispatch", "events.yml", payload=cve)
    assert code != 0 and "GITHUB_TOKEN: no GitHub token" in output
    state = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    assert "verified: true" in state and "reason: verified by Kargo (Freight f-2)" in state
    assert "reason: CVE-2026-1" in state
    agent = git(origin, "show", "main:state/images/metrics-agent.yaml")
    assert "error: the test failed" in agent and "result: failure" in agent
    subjects = git(origin, "log", "-3", "--format=%s", "main").splitlines()
    assert subjects == [
        f"state: expedite {python} {digest[:19]}…",
        "state: metrics-agent build failure",
        f"state: {python} {digest[:19]}… verified",
    ]


def test_an_unreachable_registry_in_the_signature_check_never_skips_the_dispatch(factory_repo):
    """verify --record on a key-verified base fails (no network here); the rebuilds that are due
    are still dispatched (here: nothing is due, and the dispatch step says so)."""
    work, _ = factory_repo
    (work / "keys").mkdir()
    (work / "keys/python.pub").write_bytes(public_pem(new_key()))
    text = (work / "images.yaml").read_text()
    python = "\n  - name: python\n    registry: docker.io\n    repository: library/python\n    tag: 3.12-slim\n"
    (work / "images.yaml").write_text(text + python + "    verify: {key: keys/python.pub}\n")
    subprocess.run([sys.executable, "-m", "image_factory", "discover", "--root", str(work)], check=True)
    commit(work, "verify python with a key")
    git(work, "push", "--quiet", "origin", "main")
    payload = {
        "action": "base-image-updated",
        "client_payload": {"image": "docker.io/library/python:3.12-slim", "digest": "sha256:" + "8" * 64},
    }
    code, output = act(work, "repository_dispatch", "events.yml", payload=payload)
    assert code == 0, output[-4000:]
    assert "Check the new digest's signature" in output and "Failure - Main Check the new digest's signature" in output
    assert "nothing to dispatch: no build is due" in output
