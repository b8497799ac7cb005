"""`synth` at the edges: run the cdk8s app, as `cdk8s synth` would, and publish its files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import FactoryError, Problem
from .files import apply_changes

APP_ENTRY = "main.py"
PART = "IMAGE_FACTORY_SYNTH_PART"  # cdk8s/main.py: "k/n", every n-th pipeline file from the k-th
OUTPUT_SUFFIX = ".k8s.yaml"
JOURNAL = ".journal"  # files.apply_changes: a write in flight (not a manifest: ArgoCD skips it)


@dataclass
class SynthOutcome:
    files: dict[str, str]  # file name → text, as synthesised
    changed: list[str]  # files that differ from (or are missing in) the output folder
    stale: list[str]  # manifest files in the output folder that the synth no longer makes
    notes: list[str]  # what the cluster needs for these manifests (`note: …` lines of the app)


def app_dir() -> Path:
    """The cdk8s app: `cdk8s/` at the repository root; a wheel carries a copy inside the package."""
    bundled = resources.files(__package__) / "cdk8s_app"
    if bundled.is_dir():
        return Path(str(bundled))
    return Path(__file__).resolve().parents[2] / "cdk8s"


def synthesize(root: Path) -> tuple[dict[str, str], list[str]]:
    """Run the cdk8s app on the factory at `root`: the manifests it writes, by file name, and
    its notes."""
    if shutil.which("node") is None:
        raise FactoryError(Problem("synth", "cdk8s needs Node.js, and `node` is not on PATH"))
    share = _processes(root)
    if share > 1:  # the model is read (and the state cache filled) once, before the apps start
        from .discover import load_model

        load_model(root, settings_only=True)
    with tempfile.TemporaryDirectory(prefix="image-factory-synth-") as outdir:
        env = {**os.environ, "IMAGE_FACTORY_ROOT": str(root.resolve()), "CDK8S_OUTDIR": outdir}
        app = app_dir()
        command = [sys.executable, APP_ENTRY]
        if share == 1:
            running = [subprocess.Popen(command, cwd=app, env=env, stderr=subprocess.PIPE, text=True)]
        else:  # the pipeline files are independent: each process makes every n-th one
            running = [
                subprocess.Popen(command, cwd=app, env={**env, PART: f"{k}/{share}"}, stderr=subprocess.PIPE, text=True)
                for k in range(share)
            ]
        stderr = [process.communicate()[1] for process in running]
        for process, text in zip(running, stderr, strict=True):
            if process.returncode != 0:
                errors = [line.removeprefix("error: ") for line in text.splitlines() if line.startswith("error: ")]
                if errors:
                    raise FactoryError([Problem("", line) for line in errors])
                raise FactoryError(Problem(str(app / APP_ENTRY), f"the cdk8s app failed:\n{text.strip()}"))
        if share > 1:
            _check_names_across(Path(outdir), share)
        files = {path.name: path.read_text(encoding="utf-8") for path in sorted(Path(outdir).glob("*.yaml"))}
        notes = [line for line in stderr[0].splitlines() if line.startswith("note: ")]
        return files, notes


def _processes(root: Path) -> int:
    """How many app processes share a synth: two for a large fleet on two CPUs, else one."""
    from .parallel import WORTHWHILE_FILES, can_fork
    from .state import state_files

    return 2 if can_fork() and len(state_files(root)) >= WORTHWHILE_FILES else 1


def _check_names_across(outdir: Path, share: int) -> None:
    """No two objects of the same kind and name, made by different processes."""
    seen: dict[tuple, int] = {}
    for k in range(share):
        for key in json.loads((outdir / f".names-{k}.json").read_text(encoding="utf-8")):
            key = tuple(key)
            if key in seen:  # names carry hashes of what they stand for: this is a bug, not input
                raise AssertionError(f"two generated objects named {key}")
            seen[key] = k


def synth(root: Path, out: Path, *, check: bool = False) -> SynthOutcome:
    """Synthesise and write the manifests to `out` (all files or none); with `check`, write nothing.

    Like `cdk8s synth`, which empties its output folder first, manifest files (`*.k8s.yaml`) in
    `out` that this synth did not make are removed: a pipeline file left behind would keep
    objects alive in the cluster.
    """
    files, notes = synthesize(root)
    changed = [
        name
        for name, text in files.items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    ]
    stale = sorted(path.name for path in out.glob(f"*{OUTPUT_SUFFIX}") if path.name not in files)
    if not check:
        writes = {out / name: files[name] for name in changed}
        apply_changes({**writes, **{out / name: None for name in stale}}, out / JOURNAL)
    return SynthOutcome(files, changed, stale, notes)
