"""Local stand-ins for the third-party actions the workflows pin (tests/fixtures/actions/<owner>/<name>),
and running a workflow with them under `act` on this machine.

act replaces each pinned `owner/name@sha` by its stand-in folder (`--local-repository`) and, with
`--no-skip-checkout`, runs the actions/checkout stand-in too (act would otherwise copy its working
folder into the workspace itself). Every stand-in appends one JSON line to the record file:
`{"action": "owner/name", "ref": sha, "job": id, "inputs": {...}, ...}` (secret inputs as their
sha256); the `cosign` and `docker buildx` they install record `{"action": "cosign", "argv", "env",
"signed"}` and `{"action": "docker buildx", "argv"}`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES, REPO_ROOT
from .run_shared import workflow_environment

ACT = Path(sys.executable).parent / "act"
ACTIONS = FIXTURES / "actions"
TOOL = ACTIONS / "standin_tool.py"
BUILD_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "build.yml"
# `owner/name[/path]@sha`: an action in a folder of its repository (actions/cache/restore) is the repository's
PINNED = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w.-]+)((?:/[\w.-]+)*)@([0-9a-f]{40})\b", re.MULTILINE)


def pinned_actions(*workflows: Path) -> dict[str, set[str]]:
    """Every `owner/name@<40-hex sha>` the workflows use: name → shas."""
    pins: dict[str, set[str]] = {}
    for workflow in workflows:
        for name, _, sha in PINNED.findall(workflow.read_text()):
            pins.setdefault(name, set()).add(sha)
    return pins


class StandIns:
    """The stand-ins for the actions `workflows` pin, their record file, and act's flags and
    environment to use them. `repos` maps `owner/name` to the folder actions/checkout copies."""

    def __init__(self, folder: Path, repos: dict[str, Path], workflows: tuple[Path, ...] = (BUILD_WORKFLOW,)):
        self.folder = folder
        self.log = folder / "standins.jsonl"
        self.repos = repos
        self.pins = pinned_actions(*workflows)
        used = {name + path for workflow in workflows for name, path, _ in PINNED.findall(workflow.read_text())}
        missing = sorted(name for name in used if not (ACTIONS / name / "action.yml").is_file())
        if missing:
            pytest.fail(f"no stand-in in {ACTIONS} for {', '.join(missing)}")

    def uses(self, name: str) -> str:
        """The exact `owner/name@sha` the workflows pin (the only one, if several, fails)."""
        (sha,) = self.pins[name]
        return f"{name}@{sha}"

    def act_args(self) -> list[str]:
        args = ["--no-skip-checkout", "--action-cache-path", str(self.folder / "act-cache")]
        for name, shas in sorted(self.pins.items()):
            args += [f"--local-repository={name}@{sha}={ACTIONS / name}" for sha in sorted(shas)]
        return args

    def env(self) -> dict[str, str]:
        return {
            "IMAGE_FACTORY_STANDIN_LOG": str(self.log),
            "IMAGE_FACTORY_STANDIN_TOOL": str(TOOL),
            "IMAGE_FACTORY_STANDIN_PYTHON": sys.executable,
            "IMAGE_FACTORY_STANDIN_REPOS": json.dumps({name: str(path) for name, path in self.repos.items()}),
        }

    def records(self, action: str | None = None) -> list[dict]:
        """The records so far, in order; only `action`'s when given."""
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [entry for entry in entries if action is None or entry["action"] == action]


# act on this machine (a self-hosted runner: steps run on the host) with every action a local stand-in.
ACT_ON_THIS_MACHINE = ("-P", "ubuntu-latest=-self-hosted", "--action-offline-mode")


def act_environment(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of one act run: the test's, the run's shared wheelhouse and venv (run_shared),
    and act's cache under `folder`: act copies the repository there for each run (80 MB with its
    venvs), which would otherwise pile up in ~/.cache/act and be shared by concurrent runs."""
    caches = {  # actions/cache across runs, and the artifacts runs upload
        "IMAGE_FACTORY_STANDIN_CACHE": str(folder / "actions-cache"),
        "IMAGE_FACTORY_STANDIN_ARTIFACTS": str(folder / "artifacts"),
    }
    return {**os.environ, **workflow_environment(), "XDG_CACHE_HOME": str(folder / "act-xdg-cache"), **caches, **extra}


def run_act(
    cwd: Path,
    event: str,
    workflow: str,
    standins: StandIns,
    *extra: str,
    env: dict[str, str] | None = None,
    payload: dict | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:
    """`act EVENT -W WORKFLOW` in `cwd` on this machine (`-P ubuntu-latest=-self-hosted`) with the stand-ins."""
    args = [str(ACT), event, "-W", workflow, *ACT_ON_THIS_MACHINE, *standins.act_args(), *extra]
    if payload is not None:
        event_file = standins.folder / f"{event}.json"
        event_file.write_text(json.dumps(payload))
        args += ["-e", str(event_file)]
    environment = act_environment(standins.folder, **standins.env(), **(env or {}))
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout, check=False)
