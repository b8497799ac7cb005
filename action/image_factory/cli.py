"""The `image-factory` command line: argument parsing and output only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__, discover, report, synth
from .dockerfile import find_bases
from .errors import FactoryError, Problem


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except FactoryError as error:
        print(report.problems_text(error.problems), file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="image-factory",
        description="Rebuild container images safely when the public base images under them change.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", type=Path, default=Path("."), help="factory repository (default: current directory)")

    bases = commands.add_parser("bases", help="list the images a Dockerfile builds on")
    bases.add_argument("dockerfile", type=Path, metavar="DOCKERFILE")
    bases.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE", help="override an ARG default")
    bases.add_argument("--json", action="store_true", help="print one JSON object")
    bases.set_defaults(run=_bases)

    disc = commands.add_parser("discover", parents=[root], help="update state/ from images.yaml and the Dockerfiles")
    disc.add_argument("--source-root", type=Path, help="folder holding checkouts of github sources as OWNER/NAME/")
    disc.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    disc.add_argument("--check", action="store_true", help="write nothing; exit 1 when state/ is not up to date")
    disc.set_defaults(run=_discover)

    val = commands.add_parser("validate", parents=[root], help="check images.yaml and state/ against the schemas")
    val.set_defaults(run=_validate)

    synth = commands.add_parser("synth", parents=[root], help="generate the Kargo and ArgoCD manifests with cdk8s")
    synth.add_argument("--out", type=Path, help="output folder (default: ROOT/dist)")
    synth.add_argument("--check", action="store_true", help="write nothing; exit 1 when the files in --out differ")
    synth.set_defaults(run=_synth)

    prune = commands.add_parser("prune", parents=[root], help="remove state no image refers to any more")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed")
    prune.set_defaults(run=_prune)
    return parser


def _build_args(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise FactoryError(Problem("--build-arg", f"{pair!r} is not NAME=VALUE"))
        values[name] = value
    return values


def _bases(args: argparse.Namespace) -> int:
    display = str(args.dockerfile)
    try:
        text = args.dockerfile.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FactoryError(Problem(display, "file not found")) from None
    except (OSError, UnicodeDecodeError) as error:
        raise FactoryError(Problem(display, f"cannot read: {error}")) from None
    discovery = find_bases(text, _build_args(args.build_arg), display)
    if args.json:
        print(json.dumps(discovery.to_dict(), indent=2))
        return 0
    for use in discovery.uses:
        marker = "unresolved " if not use.resolved else ""
        print(f"{display}:{use.line}: {marker}{use.kind} {use.ref} (stage {use.stage})")
    if not discovery.uses:
        print(f"{display}: builds on no image (scratch or stages only)")
    return 0


def _discover(args: argparse.Namespace) -> int:
    dry_run = args.dry_run or args.check
    outcome = discover.discover(args.root, args.source_root, dry_run=dry_run)
    print(report.discover_summary(outcome, dry_run=dry_run))
    if args.check and (outcome.written or outcome.removed):
        print("state/ is not up to date: run `image-factory discover` and commit the result.", file=sys.stderr)
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
    config, state = discover.load_model(args.root)
    print(
        f"ok: {config.file} ({len(config.images)} images) and state/ "
        f"({len(state.images)} managed, {len(state.base_images)} watched) are valid"
    )
    return 0


def _synth(args: argparse.Namespace) -> int:
    out = args.out or args.root / "dist"
    outcome = synth.synth(args.root, out, check=args.check)
    if args.check:
        if outcome.changed:
            print(f"{out} is not up to date with a fresh synth: {', '.join(outcome.changed)}", file=sys.stderr)
            print("run `image-factory synth` and commit the result.", file=sys.stderr)
            return 1
        print(f"ok: {out} matches a fresh synth ({len(outcome.files)} files)")
        return 0
    for name in sorted(outcome.files):
        state = "written" if name in outcome.changed else "unchanged"
        print(f"{out / name} ({state})")
    return 0


def _prune(args: argparse.Namespace) -> int:
    removed = discover.prune(args.root, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb} {path}")
    if not removed:
        print("nothing to prune: every state file is referenced by images.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
