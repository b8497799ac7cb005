"""The composite action, run for real by `act` on this machine (no Docker: jobs run on the host).

A fixture team repository calls the action from a workflow; the factory is a real bare git
repository; GitHub's API is a local HTTP stub that records the calls. The run must end green,
and the stub must have received the pull request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image_factory.discovery.discover import discover

from ..conftest import REPO_ROOT, commit, copy_project, git
from ..standins import ACT, ACT_ON_THIS_MACHINE, ACTIONS, TOOL, act_environment, pinned_actions

pytestmark = pytest.mark.slow  # each test runs the action or a workflow under act

BASE, TREE = "a" * 40, "b" * 40


def run_act(
    team, factory, github_stub, *extra: str, env: dict | None = None, event: str = "workflow_dispatch"
) -> subprocess.CompletedProcess:
    """Run the team repository's workflows for `event` with act, against the fixture factory and
    the GitHub stub."""
    args = [
        str(ACT),
        event,
        *extra,
        *ACT_ON_THIS_MACHINE,
        "--defaultbranch",  # github.event.repository.default_branch when there is no event file
        "main",
        "-s",
        "FACTORY_TOKEN=ghs_stubtoken",
        "--var",
        f"FACTORY_URL={factory}",
        "--var",
        f"API_URL={github_stub.url_for('').rstrip('/')}",
        # the actions action.yml pins (setup-python), as their stand-ins
        *[
            f"--local-repository={name}@{sha}={ACTIONS / name}"
            for name, shas in sorted(pinned_actions(REPO_ROOT / "action.yml").items())
            for sha in sorted(shas)
        ],
    ]
    environment = act_environment(
        team.parent,
        IMAGE_FACTORY_GITHUB_WRITE_INTERVAL="0",
        IMAGE_FACTORY_STANDIN_LOG=str(team.parent / "standins.jsonl"),
        IMAGE_FACTORY_STANDIN_TOOL=str(TOOL),
        IMAGE_FACTORY_STANDIN_PYTHON=sys.executable,
        **(env or {}),
    )
    return subprocess.run(args, cwd=team, env=environment, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def github_stub(httpserver):
    """Just enough of GitHub's REST API (documented shapes) for open-pr, recording every call."""
    base = httpserver.url_for("").rstrip("/")
    repo = f"{base}/repos/acme/factory"
    httpserver.expect_request("/repos/acme/factory", method="GET").respond_with_json(
        {
            "id": 1,
            "name": "factory",
            "full_name": "acme/factory",
            "url": repo,
            "default_branch": "main",
            "owner": {"login": "acme", "id": 1, "type": "Organization"},
            "html_url": "https://github.com/acme/factory",
        }
    )
    httpserver.expect_request("/repos/acme/factory/git/ref/heads/main", method="GET").respond_with_json(
        {
            "ref": "refs/heads/main",
            "url": f"{repo}/git/refs/heads/main",
            "object": {"type": "commit", "sha": BASE, "url": f"{repo}/git/commits/{BASE}"},
        }
    )
    httpserver.expect_request(f"/repos/acme/factory/git/commits/{BASE}", method="GET").respond_with_json(
        {
            "sha": BASE,
            "url": f"{repo}/git/commits/{BASE}",
            "message": "seed",
            "parents": [],
            "tree": {"sha": TREE, "url": f"{repo}/git/trees/{TREE}"},
        }
    )
    httpserver.expect_request("/repos/acme/factory/git/trees", method="POST").respond_with_json(
        {"sha": "c" * 40, "url": f"{repo}/git/trees/{'c' * 40}", "tree": [], "truncated": False}, status=201
    )
    httpserver.expect_request("/repos/acme/factory/git/commits", method="POST").respond_with_json(
        {
            "sha": "d" * 40,
            "url": f"{repo}/git/commits/{'d' * 40}",
            "message": "m",
            "parents": [{"sha": BASE}],
            "tree": {"sha": "c" * 40, "url": f"{repo}/git/trees/{'c' * 40}"},
        },
        status=201,
    )
    httpserver.expect_request("/repos/acme/factory/git/refs", method="POST").respond_with_json(
        {
            "ref": "refs/heads/image-factory/acme-payments",
            "url": f"{repo}/git/refs/heads/image-factory/acme-payments",
            "object": {"type": "commit", "sha": "d" * 40, "url": f"{repo}/git/commits/{'d' * 40}"},
        },
        status=201,
    )
    httpserver.expect_request("/repos/acme/factory/pulls", method="GET").respond_with_json([])
    httpserver.expect_request("/repos/acme/factory/pulls", method="POST").respond_with_json(
        {
            "url": f"{repo}/pulls/9",
            "id": 9,
            "number": 9,
            "state": "open",
            "title": "t",
            "body": "b",
            "html_url": "https://github.com/acme/factory/pull/9",
        },
        status=201,
    )
    return httpserver


@pytest.fixture
def team_and_factory(tmp_path):
    """A bare factory repository enrolling acme/payments' image, and the team's repository."""
    seed = tmp_path / "factory-seed"
    seed.mkdir()
    (seed / "images.yaml").write_text(
        "kargo: {factoryRepo: acme/factory}\nimages:\n"
        "  - {name: payments-api, registry: ghcr.io, repository: acme/payments-api,"
        " source: {provider: github, repo: acme/payments, dockerfile: api/Dockerfile, workflow: build.yml}}\n"
    )
    discover(seed)
    git(seed, "init", "--quiet", "--initial-branch=main")
    commit(seed)
    factory = tmp_path / "factory.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(factory))

    team = tmp_path / "payments"
    (team / "api").mkdir(parents=True)
    (team / "api" / "Dockerfile").write_text(
        "ARG PY=3.12\nFROM python:${PY}-slim AS build\nFROM gcr.io/distroless/python3\n"
    )
    # the action as a team gets it (uses: acme/image-factory@ref), here a local copy of this repository's action
    shutil.copy(REPO_ROOT / "action.yml", team / "action.yml")
    workflows = team / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "image-factory.yml").write_text(
        "name: image-factory\n"
        "on: workflow_dispatch\n"
        "permissions: {}\n"
        "jobs:\n"
        "  discover:\n"
        "    runs-on: ubuntu-latest\n"
        "    permissions: {contents: read}\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - id: factory\n"
        "        uses: ./\n"
        "        with:\n"
        "          factory-repo: acme/factory\n"
        "          factory-url: ${{ vars.FACTORY_URL }}\n"
        "          token: ${{ secrets.FACTORY_TOKEN }}\n"
        "          api-url: ${{ vars.API_URL }}\n"
        "          install: 'false'\n"
        "      - env: {URL: '${{ steps.factory.outputs.pr-url }}', CHANGED: '${{ steps.factory.outputs.changed }}'}\n"
        "        run: 'echo \"result: $CHANGED $URL\"'\n"
    )
    git(team, "init", "--quiet", "--initial-branch=main")
    git(team, "remote", "add", "origin", "https://github.com/acme/payments.git")
    commit(team)
    return team, factory


def test_the_action_opens_the_pull_request(team_and_factory, github_stub):
    team, factory = team_and_factory
    result = run_act(
        team, factory, github_stub, env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "result: true https://github.com/acme/factory/pull/9" in output
    assert "ghs_stubtoken" not in output  # masked, never echoed
    requests = [(request.method, request.path) for request, _ in github_stub.log]
    assert requests == [
        ("GET", "/repos/acme/factory"),
        ("GET", "/repos/acme/factory/git/ref/heads/main"),
        ("GET", f"/repos/acme/factory/git/commits/{BASE}"),
        ("POST", "/repos/acme/factory/git/trees"),
        ("POST", "/repos/acme/factory/git/commits"),
        ("POST", "/repos/acme/factory/git/refs"),
        ("GET", "/repos/acme/factory/pulls"),
        ("POST", "/repos/acme/factory/pulls"),
    ]
    tree = json.loads(github_stub.log[3][0].data)
    api = next(entry for entry in tree["tree"] if entry["path"] == "state/images/payments-api.yaml")
    assert "ref: docker.io/library/python:3.12-slim" in api["content"]
    assert "ref: gcr.io/distroless/python3:latest" in api["content"]
    pull = json.loads(github_stub.log[7][0].data)
    assert pull["head"] == "image-factory/acme-payments" and pull["base"] == "main"
    assert all(request.headers["Authorization"].endswith("ghs_stubtoken") for request, _ in github_stub.log)


@pytest.mark.parametrize("runner_python", ["3.12", "3.10"])
def test_the_reusable_discover_workflow_opens_the_pull_request(team_and_factory, github_stub, runner_python, tmp_path):
    """discover.yml as a team calls it. In production its `uses: $/./` names the action of the
    workflow's own repository (the factory); act does not know that syntax, so here the workflow
    is a local reusable workflow of a repository that carries the action (and the package the
    action installs) at its root, where `./` means the same. On a runner whose python3 is older
    than the tool needs (3.10 on ubuntu-22.04, here a stand-in that answers as pip would), the
    action installs with the Python it sets up itself."""
    team, factory = team_and_factory
    env = None
    if runner_python == "3.10":
        old = tmp_path / "old-python"
        old.mkdir()
        (old / "python3").write_text(
            "#!/bin/sh\n"
            "echo \"ERROR: Package 'image-factory' requires a different Python: 3.10.12 not in '>=3.11'\" >&2\n"
            "exit 1\n"
        )
        (old / "python3").chmod(0o755)
        env = {"PATH": f"{old}{os.pathsep}{os.environ['PATH']}"}
    copy_project(team, ("action", "schemas", "cdk8s", "requirements", "pyproject.toml", "README.md"))
    workflow = (REPO_ROOT / ".github" / "workflows" / "discover.yml").read_text()
    assert "uses: $/./ " in workflow
    (team / ".github" / "workflows" / "discover.yml").write_text(workflow.replace("uses: $/./ ", "uses: ./ "))
    (team / ".github" / "workflows" / "image-factory.yml").write_text(
        "name: image-factory\n"
        "on: workflow_dispatch\n"
        "permissions: {}\n"
        "jobs:\n"
        "  discover:\n"
        "    permissions: {contents: read}\n"
        "    uses: ./.github/workflows/discover.yml\n"
        "    with:\n"
        "      factory-repo: acme/factory\n"
        "      factory-url: ${{ vars.FACTORY_URL }}\n"
        "      api-url: ${{ vars.API_URL }}\n"
        "    secrets: {FACTORY_TOKEN: '${{ secrets.FACTORY_TOKEN }}'}\n"
    )
    commit(team, "call the reusable workflow")
    result = run_act(team, factory, github_stub, "-W", ".github/workflows/image-factory.yml", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "ghs_stubtoken" not in output
    assert [request.path for request, _ in github_stub.log][-1] == "/repos/acme/factory/pulls"
    pull = json.loads(github_stub.log[-1][0].data)
    assert pull["head"] == "image-factory/acme-payments"
    assert "| payments-api | (new) |" in pull["body"]


@pytest.mark.parametrize(
    ("event", "payload", "why"),
    [
        (
            "pull_request",
            {
                "pull_request": {"number": 3, "head": {"ref": "bump"}, "base": {"ref": "main"}},
                "repository": {"default_branch": "main"},
            },
            "a pull_request run proposes nothing: only a push to the default branch (main) does",
        ),
        (
            "push",
            {"ref": "refs/heads/bump", "repository": {"default_branch": "main"}},
            "refs/heads/bump is not the default branch (main)",
        ),
        (
            "push",
            {"ref": "refs/heads/main", "repository": {"default_branch": "main", "fork": True}},
            "this repository is a fork",
        ),
    ],
    ids=["pull-request", "other-branch", "fork"],
)
def test_the_action_proposes_only_from_a_push_to_the_default_branch(
    team_and_factory, github_stub, tmp_path, event, payload, why
):
    """Dockerfiles nobody merged are never proposed: the action says why, succeeds, and neither
    the factory nor GitHub's API hears from it."""
    team, factory = team_and_factory
    workflow = team / ".github" / "workflows" / "image-factory.yml"
    workflow.write_text(workflow.read_text().replace("on: workflow_dispatch\n", "on: [push, pull_request]\n"))
    commit(team, "on pushes and pull requests")
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(payload))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = run_act(team, factory, github_stub, "-e", str(event_file), event=event, env={"PATH": path})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert why in output and "nothing proposed" in output
    assert "result:  " in output  # no pr-url, not changed
    assert github_stub.log == []
