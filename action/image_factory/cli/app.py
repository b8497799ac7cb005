"""`image-factory`: the parser assembled from the command groups, the state lock each command
holds, and errors printed once."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from image_factory import __version__
from image_factory.cli import adoption, enrol, events, federation, kargo, output, rebuilds, records, trust
from image_factory.cli.common import TIME_FORMAT, print_error
from image_factory.errors import FactoryError, Problem
from image_factory.speed import collector
from image_factory.state.files import recording
from image_factory.state.lock import state_lock


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stdout, sys.stdout = sys.stdout, _ReaderMayLeave(sys.stdout)
    try:
        if hasattr(args, "root"):
            args.root = factory_root(args.root)
        with collector.paused(), _lock(args), recording():
            if args.command in NEEDS_CURRENT_STATE and not (args.command == "verify" and not args.record):
                from image_factory.cli.common import index

                index.require_current(args.root, args.command)
            if getattr(args, "push", False):  # before anything is written: see gitops
                from image_factory.cli.common import gitops

                gitops.ready_to_push(args.root)
            return args.run(args)
    except FactoryError as error:
        print_error(error, getattr(args, "root", None) or getattr(args, "factory_root", None) or Path("."))
        return 1
    except KeyboardInterrupt:  # one line: what became of state
        root = getattr(args, "root", None)
        if root is not None and (root / "state/.journal").exists():
            print("interrupted: the next command finishes the write (state/.journal)", file=sys.stderr)
        else:
            print("interrupted: state unchanged", file=sys.stderr)
        return 130
    except OSError as error:  # a full disk, a read-only or forbidden folder: a write set is undone whole
        where = error.filename or "image-factory"
        print(f"error: {where}: {error.strerror or error}; nothing was changed", file=sys.stderr)
        return 1
    finally:
        sys.stdout.flush()
        sys.stdout = stdout


def factory_root(given: Path | None) -> Path:
    """The factory repository: `--root`, else the folder holding images.yaml, here or above (never
    past the root of this git repository). Elsewhere one error that says what to do."""
    if given is not None:
        if not (given / "images.yaml").is_file():
            raise FactoryError(
                Problem(str(given), f"no images.yaml in {given}: run inside the factory repository or pass --root")
            )
        return given
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "images.yaml").is_file():
            return Path(os.path.relpath(folder)) if folder != here else Path(".")
        if (folder / ".git").exists():
            break
    raise FactoryError(
        Problem(str(here), f"no images.yaml in {here}: run inside the factory repository or pass --root")
    )


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
WRITERS |= {"drain", "adopt", "record-scan"}


# Commands that read state to plan, publish, show or record: they refuse state that is not
# images.yaml's as it is now (index.require_current). `discover` writes it; `validate` reports;
# `prune` clears what images.yaml no longer names.
NEEDS_CURRENT_STATE = (WRITERS - {"discover", "prune"}) | {"plan", "status", "dashboard", "build-info", "graph"}


def _lock(args: argparse.Namespace):
    root = getattr(args, "root", None)
    if root is None:
        return contextlib.nullcontext()
    reads_only = getattr(args, "dry_run", False) or getattr(args, "check", False)
    if args.command == "verify":
        reads_only = not args.record
    exclusive = args.command in WRITERS and not reads_only
    return state_lock(
        root, exclusive=exclusive, discard_journal=exclusive and args.command == "discover" and args.discard_journal
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="image-factory",
        description="Rebuild container images safely when the public base images under them change.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    root = argparse.ArgumentParser(add_help=False)
    root.add_argument(
        "--root",
        type=Path,
        default=None,
        help="factory repository (default: the folder holding images.yaml, here or above, within this git repository)",
    )

    for group in (enrol, kargo, records, rebuilds, adoption, events, trust, federation, output):
        group.register(commands, root)
    # `COMMAND --help` opens with what the command does (the line `image-factory --help` lists),
    # and every time option says what it takes
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    for name, command in commands.choices.items():
        command.description = command.description or helps.get(name)
        for action in command._actions:
            if action.metavar == "TIME" and action.help and "ISO 8601" not in action.help:
                action.help = f"{action.help}; {TIME_FORMAT}"
    return parser
