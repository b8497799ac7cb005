"""Enrolment and discovery: `bases`, `discover`, `validate`, `prune` and `digest`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from image_factory.cli.common import (
    DISCARD_JOURNAL_HELP,
    PUSH_HELP,
    cluster_notes,
    discover,
    find_bases,
    gitops,
    index,
    load_config,
    parse_ref,
    pushed,
    refs,
    report,
    sanity,
    split_pairs,
    state,
    stray_files,
    timestamps,
)
from image_factory.enrolment import scan_settings
from image_factory.errors import FactoryError, Problem


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    bases = commands.add_parser("bases", help="list the images a Dockerfile builds on")
    bases.add_argument("dockerfile", type=Path, metavar="DOCKERFILE")
    bases.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE", help="override an ARG default")
    bases.add_argument("--json", action="store_true", help="print one JSON object")
    bases.set_defaults(run=_bases)

    disc = commands.add_parser("discover", parents=[root], help="update state/ from images.yaml and the Dockerfiles")
    disc.add_argument("--source-root", type=Path, help="folder holding checkouts of github sources as OWNER/NAME/")
    disc.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    disc.add_argument("--check", action="store_true", help="write nothing; exit 1 when state/ is not up to date")
    disc.add_argument("--resolve-digests", action="store_true", help="record what every watched tag points at now")
    disc.add_argument(
        "--full",
        action="store_true",
        help="read and merge everything even when images.yaml and every Dockerfile are as the last discover read them",
    )
    disc.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="speak plain HTTP to it")
    disc.add_argument("--discard-journal", action="store_true", help=DISCARD_JOURNAL_HELP)
    disc.add_argument(
        "--check-pr",
        action="store_true",
        help="write state/, then exit 1 when a pull request lacks an image's state file or a local image's is "
        "behind its Dockerfile (validate.yml; the fleet-wide files and team images' links are derived)",
    )
    disc.add_argument(
        "--push",
        action="store_true",
        help=PUSH_HELP + " (synth.yml: the fleet-wide files derived after merged proposals)",
    )
    disc.set_defaults(run=_discover)

    val = commands.add_parser("validate", parents=[root], help="check images.yaml and state/ against the schemas")
    val.set_defaults(run=_validate)

    prune = commands.add_parser("prune", parents=[root], help="remove state no image refers to any more")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed")
    prune.set_defaults(run=_prune)

    dig = commands.add_parser("digest", help="the digest a reference points at now, from its registry")
    dig.add_argument("ref", metavar="REF")
    dig.add_argument("--json", action="store_true", help="one JSON object: ref, digest, mediaType, platforms")
    dig.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="speak plain HTTP to it")
    dig.add_argument(
        "--mirror", action="append", default=[], metavar="REGISTRY=MIRROR", help="read REGISTRY via MIRROR"
    )
    dig.set_defaults(run=_digest)


def _build_args(pairs: list[str]) -> dict[str, str]:
    return dict(split_pairs(pairs, "--build-arg", "NAME=VALUE"))


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
    from image_factory.edges import registry  # requests: only for the commands that talk to registries

    dry_run = args.dry_run or args.check
    if args.source_root is not None and not args.source_root.is_dir():
        raise FactoryError(Problem("--source-root", f"{args.source_root} is not a folder (checkouts as OWNER/NAME/)"))
    client = None
    if args.resolve_digests:
        config = load_config(args.root)
        client = registry.RegistryClient(
            mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
        )

    def run():
        full = args.full or args.check_pr
        return discover.discover(args.root, args.source_root, dry_run=dry_run, registry=client, full=full)

    existed = {path.name for path in (args.root / "state/images").glob("*.yaml")}
    outcome = run()
    print(report.discover_summary(outcome, dry_run=dry_run))
    if args.source_root is not None and outcome.config is not None:
        for image in outcome.config.managed:  # where it looked: the bases recorded before stand
            where = args.source_root / image.source.repo
            if image.source.provider == "github" and not where.is_dir():
                print(
                    f"note: no checkout of {image.source.repo} at {where}: {image.name} keeps its recorded bases",
                    file=sys.stderr,
                )
    if client is not None:
        print(f"{client.requests} registry requests", file=sys.stderr)
    if outcome.problems:  # the rest was written: these images kept the bases recorded before
        raise FactoryError(outcome.problems)
    if args.check and (outcome.written or outcome.removed):
        print("state/ is not up to date: run `image-factory discover` and commit the result.", file=sys.stderr)
        return 1
    if args.check_pr:
        return _behind(outcome, existed)
    if not dry_run:
        pushed(args, "state: discovered (the fleet-wide files derived from every image's bases)", run)
    return 0


def _behind(outcome, existed: set[str]) -> int:
    """What a pull request must carry and does not: the state file of an image it enrols, or a
    local image's file as its Dockerfile makes it. A team image's file that only changed with
    images.yaml on the default branch (a base enrolled since) is derived, not lacking."""
    local = {image.name for image in outcome.config.managed if image.source.provider == "local"}
    lacking = [
        path
        for path in outcome.written
        if path.startswith("state/images/") and (Path(path).name not in existed or Path(path).stem in local)
    ]
    for path in lacking:
        print(f"behind: {path}", file=sys.stderr)
    if lacking:
        print("state/ is not up to date: run `image-factory discover` and commit the result.", file=sys.stderr)
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
    config, model = discover.load_model(args.root)
    problems = sanity.future_sightings(args.root, model.entries(), timestamps.now())
    problems += [
        Problem(str(path.relative_to(args.root)), "left by an interrupted write; `image-factory discover` removes it")
        for path in stray_files(args.root)
    ]
    problems += [
        Problem(str(path.relative_to(args.root)), "not a file image-factory writes (an editor's backup?): remove it")
        for path in index.foreign_files(args.root)
    ]
    problems += [
        Problem(name, "a write journal is committed to git: remove it (`git rm --cached`); every checkout acts on it")
        for name in gitops.tracked(args.root, state.JOURNAL)
    ]
    index_problems, index_warnings = index.check(args.root, config, model)
    problems += index_problems
    if problems:
        raise FactoryError(problems)
    if not config.trust.senders:
        index_warnings.append(
            f"{config.file} lists no trust.senders: the events workflow refuses every new digest, "
            "verification and CVE report (list the logins of Kargo's token and your scanners')"
        )
    index_warnings += scan_settings.ended_ignores(config.images, timestamps.now().date())
    for warning in [*index_warnings, *cluster_notes.receiver_warnings(config, model)]:
        print(f"warning: {warning}", file=sys.stderr)
    if not (args.root / "state").is_dir():
        print(
            f"ok: {config.file} ({len(config.images)} images) is valid; there is no state/ yet: "
            "`image-factory discover` has not run here (it writes state/ from images.yaml and the Dockerfiles)"
        )
        return 0
    print(
        f"ok: {config.file} ({len(config.images)} images) and state/ "
        f"({len(model.images)} managed, {len(model.base_images)} watched) are valid"
    )
    return 0


def _prune(args: argparse.Namespace) -> int:
    removed = discover.prune(args.root, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb} {path}")
    if not removed:
        print("nothing to prune: every state file is referenced by images.yaml")
    return 0


def _digest(args: argparse.Namespace) -> int:
    from image_factory.edges import registry  # requests: only for the commands that talk to registries

    try:
        ref = parse_ref(args.ref)
    except refs.InvalidReference as error:
        raise FactoryError(Problem("REF", str(error))) from None
    client = registry.RegistryClient(
        mirrors=dict(split_pairs(args.mirror, "--mirror", "REGISTRY=MIRROR")), insecure=set(args.insecure_registry)
    )
    resolved = client.resolve(ref)
    print(json.dumps(resolved.to_dict(), indent=2) if args.json else resolved.digest)
    print(f"{client.requests} registry requests", file=sys.stderr)
    return 0
