"""The cdk8s app of Image Factory: `cdk8s synth` here, or `image-factory synth` anywhere.

Reads images.yaml and state/ through the image_factory package (IMAGE_FACTORY_ROOT, default: the
folder above this one) and writes the manifests to CDK8S_OUTDIR (set by the cdk8s CLI).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from image_factory import collector
from image_factory.cluster_notes import verification_note
from image_factory.discover import load_model
from image_factory.errors import FactoryError
from image_factory.report import problems_text
from image_factory.signatures import public_keys

PART = "IMAGE_FACTORY_SYNTH_PART"  # "k/n": this process makes every n-th pipeline file from the k-th

# jsii prints a banner at start-up because Node 20 is past its end of life; it is only a warning.
# The variable lists the Node majors to keep quiet about: unsupported or broken ones still warn.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def main() -> int:
    from factory_chart import build_app  # starts jsii and Node.js: after the setting above

    root = Path(os.environ.get("IMAGE_FACTORY_ROOT", Path(__file__).resolve().parent.parent))
    outdir = os.environ.get("CDK8S_OUTDIR", "dist")
    mine, _, share = os.environ.get(PART, "0/1").partition("/")
    seen: set = set()
    with collector.paused():
        try:
            # images.yaml's settings suffice while the state index is current (index.py)
            config, state = load_model(root, settings_only=True)
            keys = public_keys(config, root, state)
            app = build_app(config, state, outdir, keys, (int(mine), int(share)), seen)
        except FactoryError as error:
            print(problems_text(error.problems), file=sys.stderr)
            return 1
        app.synth()
    if PART in os.environ:  # for the check across the processes sharing the synth
        with open(Path(outdir) / f".names-{mine}.json", "w", encoding="utf-8") as handle:
            json.dump(sorted(seen, key=str), handle)
    note = verification_note(state)
    if note:
        print(note, file=sys.stderr)  # `image-factory synth` passes `note: ` lines on
    return 0


if __name__ == "__main__":
    sys.exit(main())
