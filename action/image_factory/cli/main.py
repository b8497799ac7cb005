"""The `image-factory` command line: argument parsing and output only."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from image_factory import __version__
from image_factory.errors import FactoryError, Problem
from image_factory.speed import collector
from image_factory.state.lock import state_lock
from image_factory.user_text import code_block, command_data, command_property, one_line


def _lazy(name: str):
    """Module `image_factory.<name>` (dotted below the package), loaded when first used: each
    command pays only for the modules it uses (an event about one image runs in a fraction of a
    second)."""
    import importlib
    import importlib.util

    full = f"image_factory.{name}"
    if full in sys.modules:
        return sys.modules[full]
    parent, _, leaf = full.rpartition(".")
    package = importlib.import_module(parent)  # a subpackage's __init__: a docstring
    spec = importlib.util.find_spec(full)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    setattr(package, leaf, module)  # as `import image_factory.<name>` leaves it
    return module


build_info = _lazy("rebuilds.build_info")
cluster_notes = _lazy("kargo.cluster_notes")
discover = _lazy("discovery.discover")
dispatch = _lazy("rebuilds.dispatch")
events = _lazy("rebuilds.events")
github_client = _lazy("edges.github_client")
gitops = _lazy("state.gitops")
graph = _lazy("state.graph")
index = _lazy("state.index")
planner = _lazy("rebuilds.planner")
proposal = _lazy("federation.proposal")
pull_request = _lazy("federation.pull_request")
report = _lazy("output.report")
rollback = _lazy("rebuilds.rollback")
sanity = _lazy("enrolment.sanity")
status = _lazy("output.status")
synth = _lazy("kargo.synth")
timestamps = _lazy("timestamps")
trust = _lazy("trust.policy")
config_module = _lazy("enrolment.config")
dockerfile = _lazy("discovery.dockerfile")
durations = _lazy("enrolment.durations")
refs = _lazy("enrolment.refs")
state = _lazy("state.store")


def load_config(root: Path):
    return config_module.load_config(root)


def find_bases(*args):
    return dockerfile.find_bases(*args)


def parse_duration(text: str):
    return durations.parse_duration(text)


def parse_ref(text: str):
    return refs.parse_ref(text)


def stray_files(root: Path):
    return state.stray_files(root)


FORCE_HELP = "record a digest never seen yet (it never becomes the current digest; refused without --force)"
PUSH_HELP = "commit the state change and push it, retrying on a rejected push (for CI)"
SENDER_HELP = "the GitHub login that sent the event (the events workflow passes it; none: an operator)"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    stdout, sys.stdout = sys.stdout, _ReaderMayLeave(sys.stdout)
    try:
        with collector.paused(), _lock(args):
            return args.run(args)
    except FactoryError as error:
        print(report.problems_text(error.problems), file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            root = getattr(args, "root", None) or getattr(args, "factory_root", None) or Path(".")
            workspace = os.environ.get("GITHUB_WORKSPACE")
            print(report.annotations(error.problems, root, Path(workspace) if workspace else None))
        return 1
    finally:
        sys.stdout.flush()
        sys.stdout = stdout


class _ReaderMayLeave:
    """stdout for `image-factory plan | head`: when the reader goes away, the rest of the output
    is dropped and the command still finishes its work (a dispatch half-recorded because nobody
    read its last lines would be worse than a traceback)."""

    def __init__(self, stream):
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._leave()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._leave()

    def _leave(self) -> None:
        self._gone = True
        # what is still buffered goes nowhere, also when the interpreter flushes it at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


# Commands that write state (or, for synth, the manifests): each holds the state lock
# exclusively from its first read to its last write; every other command with --root holds it
# shared, so it never reads a write set half-applied.
WRITERS = {"discover", "synth", "record-update", "record-build", "reject", "unreject", "expedite", "dispatch"}
WRITERS |= {"rollback", "verify", "prune"}
WRITERS |= {"site"}  # its output folder, like synth's


def _lock(args: argparse.Namespace):
    root = getattr(args, "root", None)
    if root is None:
        return contextlib.nullcontext()
    reads_only = getattr(args, "dry_run", False) or getattr(args, "check", False)
    if args.command == "verify":
        reads_only = not args.record
    return state_lock(root, exclusive=args.command in WRITERS and not reads_only)


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
    disc.add_argument("--resolve-digests", action="store_true", help="record what every watched tag points at now")
    disc.add_argument(
        "--full",
        action="store_true",
        help="read and merge everything even when images.yaml and every Dockerfile are as the last discover read them",
    )
    disc.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="speak plain HTTP to it")
    disc.set_defaults(run=_discover)

    val = commands.add_parser("validate", parents=[root], help="check images.yaml and state/ against the schemas")
    val.set_defaults(run=_validate)

    synth = commands.add_parser("synth", parents=[root], help="generate the Kargo and ArgoCD manifests with cdk8s")
    synth.add_argument("--out", type=Path, help="output folder (default: ROOT/dist)")
    synth.add_argument("--check", action="store_true", help="write nothing; exit 1 when the files in --out differ")
    synth.set_defaults(run=_synth)

    update = commands.add_parser("record-update", parents=[root], help="record a new digest of a watched image")
    update.add_argument("--image", required=True, metavar="REF", help="the watched reference (e.g. python:3.12-slim)")
    update.add_argument("--digest", required=True)
    update.add_argument("--seen-at", metavar="TIME", help="when it was first seen (default: now)")
    update.add_argument("--freight", metavar="NAME", help="the Kargo Freight that carried it")
    update.add_argument(
        "--seen-by",
        default="operator",
        type=one_line,
        metavar="WHO",
        help="who saw it, stored in the history (default: operator; the events workflow says kargo)",
    )
    update.add_argument(
        "--verified",
        choices=["true", "false"],
        help="record the outcome of the digest's signature check instead of a sighting",
    )
    update.add_argument("--reason", type=one_line, help="with --verified: why it passed or failed")
    update.add_argument("--sender", metavar="LOGIN", help=SENDER_HELP + " (with --verified: one of trust.senders)")
    update.add_argument("--push", action="store_true", help=PUSH_HELP)
    update.set_defaults(run=_record_update)

    targets = commands.add_parser(
        "platforms", parents=[root], help="the platforms a build targets (images.yaml, else all its bases serve)"
    )
    targets.add_argument("--image", required=True, metavar="NAME")
    targets.add_argument("--bases", required=True, metavar="JSON", help="the pinned bases (build-info's bases output)")
    targets.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="plain HTTP to it")
    targets.set_defaults(run=_platforms)

    move = commands.add_parser("promote", parents=[root], help="move a managed image's tag to a pushed digest")
    move.add_argument("--image", required=True, metavar="NAME")
    move.add_argument("--digest", required=True, help="the tested, signed digest, already in the image's repository")
    move.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="plain HTTP to it")
    move.set_defaults(run=_promote)

    back = commands.add_parser("rollback", parents=[root], help="put a managed image back on an earlier good build")
    back.add_argument("--image", required=True, metavar="NAME")
    back.add_argument(
        "--to",
        metavar="DIGEST",
        help="the digest an earlier successful build produced (default: the one before the current)",
    )
    back.add_argument("--reason", required=True, type=one_line, help="why; recorded in state with the attempt")
    back.add_argument(
        "--rebuild", action="store_true", help="rebuild with its base digests even if the old digest can be re-tagged"
    )
    back.add_argument("--dry-run", action="store_true", help="say what would happen, change nothing")
    back.add_argument("--token", help="default: $GITHUB_TOKEN (for a rebuild)")
    back.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="plain HTTP to it")
    back.add_argument("--at", metavar="TIME", help="default: now")
    back.add_argument("--push", action="store_true", help=PUSH_HELP)
    back.set_defaults(run=_rollback)

    refuse = _digest_command(commands, root, "reject", "never build on one digest of a watched image again")
    refuse.add_argument(
        "--reason", required=True, type=one_line, help="why (e.g. the build it broke); recorded in state"
    )
    refuse.add_argument("--at", metavar="TIME", help="default: now")
    refuse.add_argument("--force", action="store_true", help=FORCE_HELP)
    refuse.set_defaults(run=_reject)

    accept = _digest_command(commands, root, "unreject", "undo reject: the digest may be built on again")
    accept.set_defaults(run=_unreject)

    built = commands.add_parser("record-build", parents=[root], help="record the result of a build of a managed image")
    built.add_argument("--image", required=True, metavar="NAME")
    built.add_argument("--digest", help="the digest the build pushed (required on success)")
    built.add_argument("--result", required=True, choices=["success", "failure"])
    built.add_argument(
        "--base", action="append", default=[], metavar="REF=DIGEST", help="a base digest it was built from"
    )
    built.add_argument("--bases", metavar="JSON", help='the base digests as one JSON object {"REF": "DIGEST"}')
    built.add_argument("--run-url", metavar="URL")
    built.add_argument("--signed", choices=["true", "false"], help="whether the pushed digest was signed")
    built.add_argument("--error", metavar="TEXT", type=one_line, help="why it failed (e.g. the test step)")
    built.add_argument("--finished-at", metavar="TIME", help="default: now")
    built.add_argument("--sender", metavar="LOGIN", help=SENDER_HELP + " (recorded as reportedBy)")
    built.add_argument(
        "--require-signature",
        action="store_true",
        help="a success only for a digest signed as the image's signing policy says (key: checked here)",
    )
    built.add_argument(
        "--cosign-verified",
        choices=["true", "false"],
        help="keyless: whether `cosign verify` with the flags of signing-policy passed",
    )
    built.add_argument("--cosign-error", metavar="TEXT", type=one_line, help="why cosign verify failed")
    built.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="plain HTTP to it")
    built.add_argument("--push", action="store_true", help=PUSH_HELP)
    built.set_defaults(run=_record_build)

    fast = _digest_command(commands, root, "expedite", "let one digest skip the rebuild delay")
    fast.add_argument("--reason", required=True, type=one_line, help="why (e.g. the CVE it fixes); recorded in state")
    fast.add_argument("--at", metavar="TIME", help="default: now")
    fast.add_argument("--sender", metavar="LOGIN", help=SENDER_HELP + " (one of trust.senders)")
    fast.add_argument("--force", action="store_true", help=FORCE_HELP)
    fast.set_defaults(run=_expedite)

    planning = commands.add_parser("plan", parents=[root], help="what should be rebuilt now, next, and what is blocked")
    planning.add_argument("--now", metavar="TIME", help="plan as of this time (default: now)")
    planning.add_argument(
        "--cascade-delay", metavar="DURATION", help="wait after a parent's rebuild (default: images.yaml)"
    )
    planning.add_argument(
        "--base",
        metavar="REF",
        help="only the images built on REF (a watched reference, or a managed image's name), as dispatch --base",
    )
    planning.add_argument("--json", action="store_true")
    planning.add_argument(
        "--markdown", action="store_true", help="as a Markdown section (a job summary): the text in a code block"
    )
    planning.set_defaults(run=_plan)

    stale = commands.add_parser(
        "status", parents=[root], help="images built on a base digest older than the current one"
    )
    stale.add_argument("--now", metavar="TIME", help="as of this time (default: now)")
    stale.add_argument("--json", action="store_true")
    stale.set_defaults(run=_status)

    send = commands.add_parser("dispatch", parents=[root], help="trigger the build workflow of every image due now")
    send.add_argument("--dry-run", action="store_true", help="say what would be dispatched, call nothing")
    send.add_argument("--image", metavar="NAME", help="only this image (also when its autoRebuild is off)")
    send.add_argument(
        "--base",
        metavar="REF",
        help="only the images built on REF (a watched reference, or a managed image's name), directly or through "
        "other images: after an event about it, reading only their state",
    )
    send.add_argument("--now", metavar="TIME", help="plan as of this time (default: now)")
    send.add_argument(
        "--retry",
        action="store_true",
        help="with --image: dispatch its build again even if these bases were dispatched already",
    )
    send.add_argument("--token", help="GitHub token (default: $GITHUB_TOKEN)")
    send.add_argument("--push", action="store_true", help=PUSH_HELP)
    send.set_defaults(run=_dispatch)

    pr = commands.add_parser("open-pr", help="propose a team repository's discovered bases to the factory")
    pr.add_argument("--factory-repo", required=True, metavar="OWNER/NAME")
    pr.add_argument("--factory-root", type=Path, default=Path("."), help="a checkout of the factory (default: .)")
    pr.add_argument("--source-root", type=Path, help="the team's checkout (default: $GITHUB_WORKSPACE or .)")
    pr.add_argument("--team-repo", metavar="OWNER/NAME", help="default: $GITHUB_REPOSITORY")
    pr.add_argument("--image", action="append", default=[], metavar="NAME", help="default: every image built here")
    pr.add_argument("--base", default="main", help="the factory's branch to propose to")
    pr.add_argument("--dry-run", action="store_true", help="print the proposal, call nothing")
    pr.add_argument("--token", help="default: $GITHUB_TOKEN")
    pr.add_argument("--api-url", help="GitHub API (default: $GITHUB_API_URL or https://api.github.com)")
    pr.set_defaults(run=_open_pr)

    dig = commands.add_parser("digest", help="the digest a reference points at now, from its registry")
    dig.add_argument("ref", metavar="REF")
    dig.add_argument("--json", action="store_true", help="one JSON object: ref, digest, mediaType, platforms")
    dig.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="speak plain HTTP to it")
    dig.add_argument(
        "--mirror", action="append", default=[], metavar="REGISTRY=MIRROR", help="read REGISTRY via MIRROR"
    )
    dig.set_defaults(run=_digest)

    check = commands.add_parser("verify", parents=[root], help="check the cosign signature of an image digest")
    check.add_argument("--image", required=True, metavar="REF@DIGEST")
    check.add_argument("--key", type=Path, metavar="FILE", help="cosign public key (default: the image's verify.key)")
    check.add_argument(
        "--insecure-registry", action="append", default=[], metavar="HOST", help="speak plain HTTP to it"
    )
    check.add_argument(
        "--record", action="store_true", help="record the outcome in state (exit 0 either way) instead of failing"
    )
    check.add_argument("--push", action="store_true", help=PUSH_HELP)
    check.set_defaults(run=_verify)

    signing = commands.add_parser(
        "signing-policy", parents=[root], help="the signature a managed image's builds carry (cosign verify flags)"
    )
    signing.add_argument("--image", required=True, metavar="NAME")
    signing.add_argument("--text", action="store_true", help="in words, not as workflow outputs")
    signing.set_defaults(run=_signing_policy)

    info = commands.add_parser("build-info", parents=[root], help="paths, tags and pinned build contexts of an image")
    info.add_argument("--image", required=True, metavar="NAME")
    info.add_argument("--bases", metavar="JSON", help="the digests to pin (default: what its next build would use)")
    info.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="REF=DIGEST",
        help="pin this base to this digest (the others as by default)",
    )
    info.add_argument("--now", metavar="TIME", help="for the default pins (default: now)")
    info.set_defaults(run=_build_info)

    picture = commands.add_parser("graph", parents=[root], help="the dependency graph of bases and managed images")
    picture.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    picture.set_defaults(run=_graph)

    page = commands.add_parser("site", parents=[root], help="write the status site: every image's state, the graph")
    page.add_argument("--out", type=Path, help="output folder (default: ROOT/site)")
    page.add_argument("--now", metavar="TIME", help="as of this time (default: now)")
    page.set_defaults(run=_site)

    prune = commands.add_parser("prune", parents=[root], help="remove state no image refers to any more")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed")
    prune.set_defaults(run=_prune)

    board = commands.add_parser(
        "dashboard", parents=[root], help="write where every image stands into the factory's dashboard issue"
    )
    board.add_argument("--repo", metavar="OWNER/NAME", help="default: kargo.factoryRepo, else $GITHUB_REPOSITORY")
    board.add_argument("--now", metavar="TIME", help="as of this time (default: now)")
    board.add_argument("--site-url", metavar="URL", help="the status site, linked for what the issue cannot hold")
    board.add_argument("--dry-run", action="store_true", help="print the issue body, call nothing")
    board.add_argument("--token", help="default: $GITHUB_TOKEN")
    board.add_argument("--api-url", help="GitHub API (default: $GITHUB_API_URL or https://api.github.com)")
    board.set_defaults(run=_dashboard)
    return parser


def _pairs(pairs: list[str], flag: str, shape: str) -> list[tuple[str, str]]:
    found = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise FactoryError(Problem(flag, f"{pair!r} is not {shape}"))
        found.append((name, value))
    return found


def _build_args(pairs: list[str]) -> dict[str, str]:
    return dict(_pairs(pairs, "--build-arg", "NAME=VALUE"))


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
    client = None
    if args.resolve_digests:
        config = load_config(args.root)
        client = registry.RegistryClient(
            mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
        )
    outcome = discover.discover(args.root, args.source_root, dry_run=dry_run, registry=client, full=args.full)
    print(report.discover_summary(outcome, dry_run=dry_run))
    if client is not None:
        print(f"{client.requests} registry requests", file=sys.stderr)
    if args.check and (outcome.written or outcome.removed):
        print("state/ is not up to date: run `image-factory discover` and commit the result.", file=sys.stderr)
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
    config, state = discover.load_model(args.root)
    problems = sanity.future_sightings(args.root, state.entries(), timestamps.now())
    problems += [
        Problem(str(path.relative_to(args.root)), "left by an interrupted write; `image-factory discover` removes it")
        for path in stray_files(args.root)
    ]
    index_problems, index_warnings = index.check(args.root, config, state)
    problems += index_problems
    if problems:
        raise FactoryError(problems)
    for warning in [*index_warnings, *cluster_notes.receiver_warnings(config, state)]:
        print(f"warning: {warning}", file=sys.stderr)
    if not (args.root / "state").is_dir():
        print(
            f"ok: {config.file} ({len(config.images)} images) is valid; there is no state/ yet: "
            "`image-factory discover` has not run here (it writes state/ from images.yaml and the Dockerfiles)"
        )
        return 0
    print(
        f"ok: {config.file} ({len(config.images)} images) and state/ "
        f"({len(state.images)} managed, {len(state.base_images)} watched) are valid"
    )
    return 0


def _synth(args: argparse.Namespace) -> int:
    out = args.out or args.root / "dist"
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


def _config_for(root: Path, image: str | None = None):
    """images.yaml's settings (and managed `image`'s entry) for a command about one image: from
    the state index while it is current, without reading all of images.yaml (see index)."""
    fast = index.read_index(root)
    if fast is not None:
        if image is None:
            return index.slim_config(fast)
        found = index.managed(root, fast, image)
        if found is not None:
            return index.slim_config(fast, (index.enrolled(found),))
    return load_config(root)


def _time(text: str | None, what: str):
    return timestamps.parse_time(text, what) if text else timestamps.now()


def _digest_command(commands, root: argparse.ArgumentParser, name: str, text: str) -> argparse.ArgumentParser:
    """A command about one digest of a watched image: --image REF --digest DIGEST [--push]."""
    command = commands.add_parser(name, parents=[root], help=text)
    command.add_argument("--image", required=True, metavar="REF", help="the watched reference (e.g. python:3.12-slim)")
    command.add_argument("--digest", required=True)
    command.add_argument("--push", action="store_true", help=PUSH_HELP)
    return command


def _pushed(args: argparse.Namespace, message: str, reapply) -> None:
    if args.push:
        commit = gitops.commit_and_push(args.root, message, reapply)
        print(f"pushed {commit[:12]}: {message}" if commit else "nothing to push: state already had it")


def _record_update(args: argparse.Namespace) -> int:
    seen_at = _time(args.seen_at, "--seen-at")
    if seen_at > timestamps.now() + sanity.CLOCK_SKEW:  # it would pin the digest as "not yet eligible"
        raise FactoryError(Problem("--seen-at", f"{args.seen_at} is in the future"))

    verified = None if args.verified is None else args.verified == "true"
    if args.reason and verified is None:
        raise FactoryError(Problem("--reason", "goes with --verified"))
    if verified is not None:  # a plain sighting only starts the delay clock: anyone may report one
        subject = f"{args.image}@{args.digest}"
        trust.check_sender(_config_for(args.root), "base-image-verified", args.sender, subject)

    def apply():
        return events.record_update(
            args.root, args.image, args.digest, seen_at, args.freight, verified, args.reason, args.seen_by
        )

    base = apply()
    entry = next(e for e in base.runtime.history if e["digest"] == args.digest)
    if verified is None:
        print(
            f"{base.ref}: {args.digest} first seen {entry['firstSeen']}; current digest {base.runtime.current_digest}"
        )
        message = f"state: {base.ref} has a new digest {args.digest[:19]}…"
    else:
        outcome = "verified" if verified else "NOT verified"
        print(f"{base.ref}: {args.digest} {outcome}" + (f" ({args.reason})" if args.reason else ""))
        message = f"state: {base.ref} {args.digest[:19]}… {outcome}"
    _pushed(args, message, apply)
    return 0


def _platforms(args: argparse.Namespace) -> int:
    from image_factory.edges import registry  # requests: only for the commands that talk to registries
    from image_factory.rebuilds import platforms

    config, state = discover.load_model(args.root, settings_only=True)
    image = state.managed(args.image)
    client = registry.RegistryClient(
        mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
    )
    configured = tuple(image.enrolment["source"].get("platforms", ()))
    pins = {} if configured else build_info.parse_pins(args.bases)
    bases = {ref: platforms.published(client, ref, digest) for ref, digest in pins.items()}
    print(f"platforms={','.join(platforms.build_platforms(configured, bases, image.name))}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from image_factory.edges import registry  # requests: only for the commands that talk to registries
    from image_factory.rebuilds import promote

    config = load_config(args.root)
    image = config.by_name(args.image)
    if image is None or not image.managed:
        raise FactoryError(Problem("--image", f"{args.image!r} is not a managed image in images.yaml"))
    client = registry.RegistryClient(
        mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
    )
    done = promote.promote(client, image.ref, args.digest)
    before = f" (was {done.previous})" if done.previous else " (a new tag)"
    print(f"{done.tag.canonical} → {done.digest}{before}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from image_factory.edges import registry  # requests: only for the commands that talk to registries

    config = load_config(args.root)
    client = registry.RegistryClient(
        mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
    )
    at = _time(args.at, "--at")
    token = args.token or os.environ.get("GITHUB_TOKEN")
    done = rollback.rollback(
        args.root,
        args.image,
        args.to,
        args.reason,
        at,
        registry=client,
        token=token,
        rebuild=args.rebuild,
        dry_run=args.dry_run,
    )
    print(f"{done.image}: {done.how}: {done.detail} (back to the build of {done.target['finishedAt']})")
    for warning in done.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if done.attempt is not None:
        attempt = done.attempt
        _pushed(
            args,
            f"state: roll {args.image} back ({done.how})",
            lambda: events.apply_attempts(args.root, {args.image: attempt}),
        )
    return 1 if done.how == "dispatch failed" else 0


def _reject(args: argparse.Namespace) -> int:
    at = _time(args.at, "--at")
    return _base_event(
        args,
        lambda: events.reject(args.root, args.image, args.digest, args.reason, at, force=args.force),
        f"rejected ({args.reason.strip()}): no rebuild will use it",
        "reject",
    )


def _unreject(args: argparse.Namespace) -> int:
    return _base_event(
        args, lambda: events.unreject(args.root, args.image, args.digest), "is no longer rejected", "unreject"
    )


def _base_event(args: argparse.Namespace, apply, outcome: str, verb: str) -> int:
    """Apply an event to one digest of a watched image, say so, and push it with --push (the
    event is applied again on top of a rejected push)."""
    base = apply()
    print(f"{base.ref}: {args.digest} {outcome}")
    _pushed(args, f"state: {verb} {base.ref} {args.digest[:19]}…", apply)
    return 0


def _record_build(args: argparse.Namespace) -> int:
    bases = dict(_pairs(args.base, "--base", "REF=DIGEST"))
    if args.bases:
        bases.update(build_info.parse_pins(args.bases))
    finished_at = _time(args.finished_at, "--finished-at")

    signed = None if args.signed is None else args.signed == "true"
    config = _config_for(args.root, args.image) if args.require_signature else None
    checked = _build_signature(args, config) if config is not None and args.result == "success" else None
    if config is not None and args.run_url:  # from an event: only a run of the image's own repository
        expected = trust.run_url_prefix(config, args.image)
        if not args.run_url.startswith(expected):
            print(f"warning: run URL {one_line(args.run_url)!r} ignored: not a run of {expected}", file=sys.stderr)
            args.run_url = None

    def apply():
        return events.record_build(
            args.root,
            args.image,
            args.digest,
            args.result,
            bases,
            args.run_url,
            finished_at,
            signed=signed,
            error=args.error,
            reported_by=args.sender,
            refuse_replay=args.require_signature,
        )

    image = apply()
    if checked:
        print(f"{image.name}: {args.digest} {checked}")
    outcome = f"built {image.runtime.current_digest}" if args.result == "success" else "build failed"
    outcome += (" (signed)" if signed else " (NOT signed)") if signed is not None and args.result == "success" else ""
    outcome += f": {args.error}" if args.error else ""
    print(f"{image.name}: {outcome}")
    _pushed(args, f"state: {args.image} build {args.result}", apply)
    return 0


def _build_signature(args: argparse.Namespace, config) -> str:
    """Refuse a reported success whose digest is not signed as the image's policy says (see trust)."""
    from image_factory.edges import registry  # requests: only for the commands that talk to registries

    if not args.digest:
        raise FactoryError(Problem("--digest", "a successful build needs the digest it pushed"))
    required = trust.build_signature(config, args.image)
    client = registry.RegistryClient(
        mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
    )
    cosign_verified = None if args.cosign_verified is None else args.cosign_verified == "true"
    return trust.check_build_signature(
        required, args.digest, args.root, client, cosign_verified, args.cosign_error, args.sender
    )


def _signing_policy(args: argparse.Namespace) -> int:
    required = trust.build_signature(_config_for(args.root, args.image), args.image)
    print(required.describe() if args.text else required.github_output(), end="\n" if args.text else "")
    return 0


def _expedite(args: argparse.Namespace) -> int:
    at = _time(args.at, "--at")
    subject = f"{args.image}@{args.digest}"
    trust.check_sender(_config_for(args.root), "base-image-cve", args.sender, subject)
    return _base_event(
        args,
        lambda: events.expedite(args.root, args.image, args.digest, args.reason, at, force=args.force),
        f"may be built on now ({args.reason.strip()})",
        "expedite",
    )


def _plan(args: argparse.Namespace) -> int:
    if args.base:
        config, state = discover.load_scope(args.root, args.base)
    else:
        config, state = discover.load_model(args.root, settings_only=True)
    try:
        cascade_delay = parse_duration(args.cascade_delay or config.cascade_delay)
    except ValueError as error:
        raise FactoryError(Problem("--cascade-delay", str(error))) from None
    result = planner.plan(state, _time(args.now, "--now"), cascade_delay)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif args.markdown:
        print(f"## Rebuild plan\n\n{code_block(report.plan_text(result))}")
    else:
        print(report.plan_text(result))
    return 0


def _status(args: argparse.Namespace) -> int:
    config, state = discover.load_model(args.root, settings_only=True)
    now = _time(args.now, "--now")
    plan = planner.plan(state, now, parse_duration(config.cascade_delay))
    rows, unbuilt = status.stale_images(state, plan, now), status.never_built(state, plan, now)
    if args.json:
        print(json.dumps({"stale": rows, "neverBuilt": unbuilt}, indent=2))
        return 0
    if not rows and not unbuilt:
        print("every managed image is built on the current digest of its bases (as far as state knows)")
    for row in unbuilt:
        pins = row["wouldBuildOn"].items()
        bases = ", ".join(f"{key}@{digest}" if digest else f"{key} (no digest eligible yet)" for key, digest in pins)
        print(f"{row['image']}: never built; its first build would use {bases or 'no base'}; {row['build']}")
    for row in rows:
        print(
            f"{row['image']} ← {row['base']}: built on {row['built'][:19]}…, current {row['current'][:19]}… "
            f"(since {row['currentSince']}, {row['age']}); {row['rebuild']}"
        )
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("GITHUB_TOKEN")
    if args.retry and not args.image:
        raise FactoryError(Problem("--retry", "needs --image: which image's build to dispatch again"))
    now = _time(args.now, "--now")
    results = dispatch.dispatch(
        args.root, now, token, dry_run=args.dry_run, only=args.image, retry=args.retry, after=args.base
    )
    for item in results:
        pins = ", ".join(f"{ref}@{digest[:19]}…" for ref, digest in item.pins.items())
        print(f"{item.status:10} {item.image}: {item.detail} [{pins}]")
    if not results:
        print("nothing to dispatch: no build is due")
    recorded = {item.image: item.attempt for item in results if item.attempt}
    if recorded:
        _pushed(
            args, f"state: dispatched {', '.join(sorted(recorded))}", lambda: events.apply_attempts(args.root, recorded)
        )
    return 1 if any(item.status == "failed" for item in results) else 0


def _build_info(args: argparse.Namespace) -> int:
    _, state = discover.load_model(args.root, settings_only=True)
    image = state.managed(args.image)
    if args.bases:
        given, flag = build_info.parse_pins(args.bases), "--bases"
    else:
        given, flag = build_info.parse_pins(json.dumps(dict(_pairs(args.base, "--base", "REF=DIGEST")))), "--base"
    pins = dispatch.build_pins(image, state, _time(args.now, "--now"), given, flag)
    already = ""
    last = image.runtime.last_build
    if args.base and not args.bases and last and last.get("baseDigests") == pins:
        # Kargo re-sends a dispatch GitHub answered with a 5xx: that rebuild happened already.
        already = (
            f"{image.name} was built on exactly these digests already ({last['digest']}, {last.get('runUrl', '')})"
        )
    policy = index.enrolled(image).signing
    signing = "key" if policy is not None and policy.key_file is not None else "keyless"
    print(build_info.build_info(state, args.image, pins, already, signing).github_output(), end="")
    return 0


def _open_pr(args: argparse.Namespace) -> int:
    team_repo = args.team_repo or os.environ.get("GITHUB_REPOSITORY")
    if not team_repo:
        raise FactoryError(
            Problem("--team-repo", "which repository is this? pass --team-repo or set GITHUB_REPOSITORY")
        )
    checkout = args.source_root or Path(os.environ.get("GITHUB_WORKSPACE", "."))
    found = proposal.propose(args.factory_root, team_repo, checkout, args.image or None)
    for item in found.unresolved:  # never silent: the image would lose a watched base
        print(f"warning: {item.dockerfile}:{item.line}: {item.warning()}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            where = f"file={command_property(item.dockerfile)},line={item.line}"
            print(f"::warning {where}::{command_data(item.warning())}")
    url = ""
    if not found.changed:
        print(f"nothing changed: the factory already has the bases of {', '.join(found.images)}")
    elif args.dry_run:
        print(found.body())
    else:
        token = args.token or os.environ.get("GITHUB_TOKEN")
        api_url = args.api_url or os.environ.get("GITHUB_API_URL") or "https://api.github.com"
        client = github_client.connect(token, api_url)
        url = pull_request.open_or_update(client, args.factory_repo, args.base, found)
        print(f"pull request: {url}")
    _github_outputs(
        {"pr-url": url, "changed": "true" if found.changed else "false"}, found.body() if found.changed else ""
    )
    return 0


def _github_outputs(outputs: dict[str, str], summary: str) -> None:
    """Step outputs and job summary, when running in GitHub Actions."""
    if path := os.environ.get("GITHUB_OUTPUT"):
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in outputs.items())
    if summary and (path := os.environ.get("GITHUB_STEP_SUMMARY")):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(summary)


def _digest(args: argparse.Namespace) -> int:
    from image_factory.edges import registry  # requests: only for the commands that talk to registries

    try:
        ref = parse_ref(args.ref)
    except refs.InvalidReference as error:
        raise FactoryError(Problem("REF", str(error))) from None
    client = registry.RegistryClient(
        mirrors=dict(_pairs(args.mirror, "--mirror", "REGISTRY=MIRROR")), insecure=set(args.insecure_registry)
    )
    resolved = client.resolve(ref)
    print(json.dumps(resolved.to_dict(), indent=2) if args.json else resolved.digest)
    print(f"{client.requests} registry requests", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from image_factory.edges import registry  # requests and cryptography: only here
    from image_factory.trust import signatures

    try:
        ref = parse_ref(args.image)
    except refs.InvalidReference as error:
        raise FactoryError(Problem("--image", str(error))) from None
    mirrors, insecure, key_path, policy = {}, set(args.insecure_registry), args.key, None
    if (args.root / "images.yaml").is_file():
        config, policy = _verify_config(args.root, ref)
        mirrors, insecure = config.registry_mirrors, insecure | set(config.insecure_registries)
        if key_path is None and policy is not None and policy.key_file is not None:
            key_path = args.root / policy.key_file
    if key_path is None:
        how = "images.yaml names no verify.key file for it"
        if policy is not None:
            how = "images.yaml verifies it " + (
                "keyless" if policy.keyless else f"with the Secret {policy.key_secret!r}"
            )
        if args.record:  # from the events workflow: what cosign checks in the cluster is Kargo's to report
            why = "no verify policy in images.yaml" if policy is None else f"{how}: left to Kargo's verification"
            print(f"{ref}: {why}, nothing recorded")
            return 0
        raise FactoryError(Problem("--key", f"{ref}: no key given, and {how}; give the public key with --key FILE"))
    client = registry.RegistryClient(mirrors=mirrors, insecure=insecure)
    outcome = signatures.verify_image(client, ref, signatures.read_public_key(key_path))
    if args.record:
        at = timestamps.now()

        def apply():
            watched = ref.without_digest().canonical
            return events.record_update(args.root, watched, ref.digest, at, None, outcome.verified, outcome.reason)

        apply()
        verdict = "verified" if outcome.verified else "NOT verified"
        print(f"{outcome.image}: {verdict}: {outcome.reason} (recorded)")
        _pushed(args, f"state: {ref.name} {ref.digest[:19]}… {verdict}", apply)
        return 0
    if not outcome.verified:
        raise FactoryError(Problem("verify", f"{outcome.image}: not verified: {outcome.reason}"))
    print(f"{outcome.image}: verified: {outcome.reason} ({key_path})")
    return 0


def _verify_config(root: Path, ref):
    """images.yaml's settings and the verify policy it gives `ref`: from the state index and the
    watched image's own state file when it names one (an event), else from all of images.yaml."""
    fast = index.read_index(root)
    if fast is not None:
        watched = index.watched(root, fast, ref.without_digest())
        if watched is not None and watched.verify is not None:
            return index.slim_config(fast), watched.verify
    config = load_config(root)
    return config, _verify_policy(config, ref)


def _verify_policy(config, ref):
    """The verify policy images.yaml gives `ref` (by reference, else by repository), if any."""
    enrolled = config.external_for(ref)
    if enrolled is None or enrolled.verify is None:
        enrolled = next((image for image in config.external if image.ref.name == ref.name and image.verify), None)
    return enrolled.verify if enrolled is not None else None


def _graph(args: argparse.Namespace) -> int:
    _, state = discover.load_model(args.root, settings_only=True)
    print(graph.render(state, args.format))
    return 0


def _site(args: argparse.Namespace) -> int:
    from image_factory.output import site

    out = args.out or args.root / "site"
    outcome = site.build(args.root, out, _time(args.now, "--now"))
    pages = sum(1 for path in outcome.files if path.startswith("images/"))
    print(
        f"{out / 'index.html'}: {pages} image pages, {len(outcome.changed)} files written, "
        f"{len(outcome.removed)} removed"
    )
    print(f"graph: {outcome.graph.note}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from image_factory.edges import dashboard_issue
    from image_factory.output import dashboard, overview

    config, state = discover.load_model(args.root, settings_only=True)
    repo = args.repo or config.kargo.factory_repo or os.environ.get("GITHUB_REPOSITORY")
    if not repo:
        raise FactoryError(
            Problem(
                "--repo",
                "which repository holds the dashboard? pass --repo OWNER/NAME, or set kargo.factoryRepo in "
                "images.yaml or $GITHUB_REPOSITORY",
            )
        )
    if not dashboard_issue.valid_repo(repo):
        raise FactoryError(Problem("--repo", f"{repo!r} is not a GitHub repository (OWNER/NAME)"))
    if args.site_url is not None and not dashboard.valid_site_url(args.site_url):
        raise FactoryError(Problem("--site-url", f"not an http(s) address: {args.site_url!r}"))
    now = _time(args.now, "--now")
    plan = planner.plan(state, now, parse_duration(config.cascade_delay))
    statuses = overview.overview(state, plan, now, config.kargo.factory_repo)
    text = dashboard.body(statuses, factory_repo=repo, site_url=args.site_url)
    if args.dry_run:
        print(text, end="")
        return 0
    token = args.token or os.environ.get("GITHUB_TOKEN")
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    outcome = dashboard_issue.update(github_client.connect(token, api_url), repo, dashboard.TITLE, text)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(f"::warning::{command_data(warning)}")
    print(f"dashboard issue #{outcome.number} {outcome.action}: {outcome.url}")
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
