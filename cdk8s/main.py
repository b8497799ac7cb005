"""The cdk8s app of Image Factory: `cdk8s synth` here, or `image-factory synth` anywhere.

Reads images.yaml and state/ through the image_factory package (IMAGE_FACTORY_ROOT, default: the
folder above this one) and writes the manifests to CDK8S_OUTDIR (set by the cdk8s CLI).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from image_factory.discovery.discover import load_model
from image_factory.errors import FactoryError
from image_factory.kargo.cluster_notes import verification_note
from image_factory.output.report import problems_text
from image_factory.speed import collector
from image_factory.trust.signatures import public_keys

# A folder of charts made beforehand (`image-factory synth`: charts.json lists `[chart id, file]`,
# each file the chart's objects as JSON, and notes.txt what to print); without it the app reads
# the factory itself, as `cdk8s synth` runs it.
CHARTS = "IMAGE_FACTORY_SYNTH_CHARTS"

# jsii prints a banner at start-up because Node 20 is past its end of life; it is only a warning.
# The variable lists the Node majors to keep quiet about: unsupported or broken ones still warn.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def main() -> int:
    from factory_chart import app_of  # starts jsii and Node.js: after the setting above
    from kargo_manifests import charts

    outdir = os.environ.get("CDK8S_OUTDIR", "dist")
    made = os.environ.get(CHARTS)
    if made:  # only the objects cross into this process: the fleet's state never does
        folder = Path(made)
        listed = json.loads((folder / "charts.json").read_text(encoding="utf-8"))
        app_of([(chart_id, _reader(folder / name)) for chart_id, name in listed], outdir).synth()
        sys.stderr.write((folder / "notes.txt").read_text(encoding="utf-8"))
        return 0
    root = Path(os.environ.get("IMAGE_FACTORY_ROOT", Path(__file__).resolve().parent.parent))
    with collector.paused():
        try:
            # images.yaml's settings suffice while the state index is current (state/index.py)
            config, state = load_model(root, settings_only=True)
            app = app_of(charts(config, state, public_keys(config, root, state)), outdir)
        except FactoryError as error:
            print(problems_text(error.problems), file=sys.stderr)
            return 1
        app.synth()
    note = verification_note(state)
    if note:
        print(note, file=sys.stderr)  # `image-factory synth` passes `note: ` lines on
    return 0


def _reader(path: Path):
    return lambda: json.loads(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    sys.exit(main())
