"""`synth` at the edges: run the cdk8s app, as `cdk8s synth` would, and publish its files."""

from __future__ import annotations

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
    with tempfile.TemporaryDirectory(prefix="image-factory-synth-") as outdir:
        env = {
            **os.environ,
            "IMAGE_FACTORY_ROOT": str(root.resolve()),
            "CDK8S_OUTDIR": outdir,
        }
        app = app_dir()
        result = subprocess.run(
            [sys.executable, APP_ENTRY], cwd=app, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            errors = [line.removeprefix("error: ") for line in result.stderr.splitlines() if line.startswith("error: ")]
            if errors:
                raise FactoryError([Problem("", line) for line in errors])
            raise FactoryError(Problem(str(app / APP_ENTRY), f"the cdk8s app failed:\n{result.stderr.strip()}"))
        files = {path.name: path.read_text(encoding="utf-8") for path in sorted(Path(outdir).glob("*.yaml"))}
        return files, [line for line in result.stderr.splitlines() if line.startswith("note: ")]


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
