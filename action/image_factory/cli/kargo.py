"""The Kargo side: `synth`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from image_factory.cli.common import (
    DISCARD_JOURNAL_HELP,
    discarded,
    synth,
)


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    command = commands.add_parser("synth", parents=[root], help="generate the Kargo and ArgoCD manifests with cdk8s")
    command.add_argument("--out", type=Path, help="output folder (default: ROOT/dist)")
    command.add_argument("--check", action="store_true", help="write nothing; exit 1 when the files in --out differ")
    command.add_argument("--discard-journal", action="store_true", help=DISCARD_JOURNAL_HELP)
    command.set_defaults(run=_synth)


def _synth(args: argparse.Namespace) -> int:
    out = args.out or args.root / "dist"
    if args.discard_journal:
        discarded(out / synth.JOURNAL)
    outcome = synth.synth(args.root, out, check=args.check)
    for note in outcome.notes:
        print(note, file=sys.stderr)
    if args.check:
        if outcome.changed or outcome.stale:
            differ = [*outcome.changed, *(f"{name} (stale)" for name in outcome.stale)]
            print(f"{out} is not up to date with a fresh synth: {', '.join(differ)}", file=sys.stderr)
            print("run `image-factory synth` and commit the result.", file=sys.stderr)
            return 1
        print(f"ok: {out} is up to date: its {len(outcome.files)} files match a fresh synth")
        return 0
    for name in sorted(outcome.files):
        state = "written" if name in outcome.changed else "unchanged"
        print(f"{out / name} ({state})")
    for name in outcome.stale:
        print(f"{out / name} (removed: no longer made)")
    return 0
