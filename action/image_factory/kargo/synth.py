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

from image_factory.errors import FactoryError, Problem
from image_factory.speed import parallel
from image_factory.state.files import apply_changes

APP_ENTRY = "main.py"
CHARTS = "IMAGE_FACTORY_SYNTH_CHARTS"  # cdk8s/main.py: the folder of charts made beforehand
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
    bundled = resources.files("image_factory") / "cdk8s_app"
    if bundled.is_dir():
        return Path(str(bundled))
    return Path(__file__).resolve().parents[3] / "cdk8s"


def synthesize(root: Path) -> tuple[dict[str, str], list[str]]:
    """Run the cdk8s app on the factory at `root`: the manifests it writes, by file name, and
    its notes.

    The objects are made in Python first, in a process of their own that exits before the app
    starts (a fleet's state never shares memory with Node.js); the app then hands them to cdk8s.
    """
    if shutil.which("node") is None:
        raise FactoryError(Problem("synth", "cdk8s needs Node.js, and `node` is not on PATH"))
    with tempfile.TemporaryDirectory(prefix="image-factory-synth-") as work:
        made, outdir = Path(work) / "charts", Path(work) / "out"
        made.mkdir()
        outdir.mkdir()
        with parallel.background(_write_charts, root, made) as written:
            problems = written.result()
        if problems:
            raise FactoryError(problems)
        env = {**os.environ, "IMAGE_FACTORY_ROOT": str(root.resolve()), "CDK8S_OUTDIR": str(outdir), CHARTS: str(made)}
        app = app_dir()
        result = subprocess.run(
            [sys.executable, APP_ENTRY], cwd=app, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            errors = [line.removeprefix("error: ") for line in result.stderr.splitlines() if line.startswith("error: ")]
            if errors:
                raise FactoryError([Problem("", line) for line in errors])
            raise FactoryError(Problem(str(app / APP_ENTRY), f"the cdk8s app failed:\n{result.stderr.strip()}"))
        files = {path.name: path.read_text(encoding="utf-8") for path in sorted(outdir.glob("*.yaml"))}
        return files, [line for line in result.stderr.splitlines() if line.startswith("note: ")]


def _write_charts(root: Path, folder: Path) -> list[Problem]:
    """Make every chart's objects (cdk8s/kargo_manifests.py, pure Python) into `folder` for the
    app (cdk8s/main.py); the problems of the factory, if any, instead."""
    from image_factory.discovery.discover import load_model
    from image_factory.kargo.cluster_notes import verification_note
    from image_factory.speed.collector import paused
    from image_factory.trust.signatures import public_keys

    if str(app_dir()) not in sys.path:
        sys.path.insert(0, str(app_dir()))
    import kargo_manifests

    with paused():
        try:
            config, state = load_model(root, settings_only=True)
            made = kargo_manifests.charts(config, state, public_keys(config, root, state))
            listed = []
            for number, (chart_id, objects) in enumerate(made):
                name = f"{number}.json"
                (folder / name).write_text(json.dumps(objects()), encoding="utf-8")
                listed.append([chart_id, name])
        except FactoryError as error:
            return list(error.problems)
    (folder / "charts.json").write_text(json.dumps(listed), encoding="utf-8")
    note = verification_note(state)
    (folder / "notes.txt").write_text(f"{note}\n" if note else "", encoding="utf-8")
    return []


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
        remedy = "If no image-factory command is running, `image-factory synth --discard-journal` removes it"
        apply_changes({**writes, **{out / name: None for name in stale}}, out / JOURNAL, remedy)
    return SynthOutcome(files, changed, stale, notes)
