"""Events the events workflow received: `drain` applies them all, in one process."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from image_factory.cli.common import PUSH_HELP, config_for, print_error, pushed, trust
from image_factory.errors import FactoryError, Problem


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    drain = commands.add_parser(
        "drain", parents=[root], help="apply every event the events workflow received (its inbox), in one process"
    )
    drain.add_argument("--remote", default="origin", help="the git remote whose inbox to read (default: origin)")
    drain.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="DIR",
        help="apply the event files (*.json) in DIR instead of the remote's inbox (nothing is deleted)",
    )
    drain.add_argument(
        "--subjects",
        type=Path,
        metavar="FILE",
        help="write what the applied events are about to FILE, one per line (for dispatch --base)",
    )
    drain.add_argument("--push", action="store_true", help=PUSH_HELP + "; then delete the applied events' refs")
    drain.set_defaults(run=_drain)


def _drain(args: argparse.Namespace) -> int:
    from image_factory.rebuilds import inbox
    from image_factory.state import inbox_refs
    from image_factory.trust.cosign_cli import Cosign

    if args.source is not None:
        if not args.source.is_dir():
            raise FactoryError(Problem("--from", f"{args.source} is not a folder"))
        texts = {
            str(path): path.read_text(encoding="utf-8", errors="replace") for path in sorted(args.source.glob("*.json"))
        }
    else:
        texts = inbox_refs.fetch(args.root, args.remote)
    received, refused = [], 0
    for name, text in texts.items():
        try:
            received.append(inbox.parse_event(name, text))
        except FactoryError as error:
            print_error(error, args.root)
            refused += 1
    received = inbox.order(received)
    drain = _Drain(args.root, Cosign(args.root))
    subjects = drain.apply(received)
    applied = len(drain.applied)
    refused += len(received) - applied
    print(f"drained {len(texts)} event(s): {applied} applied, {refused} refused")
    try:
        pushed(args, _message(drain.applied), lambda: drain.apply(received, quiet=True))
    except FactoryError as error:  # nothing deleted: the events wait for the next drain
        kept = Problem(
            "drain",
            f"the {len(texts)} event(s) stay in the inbox ({inbox_refs.PREFIX}*), and the next drain applies them "
            "once the push goes through (a protected branch: README, Branch protection)",
        )
        raise FactoryError([*error.problems, kept]) from None
    if args.push and args.source is None and texts:
        left = inbox_refs.delete(args.root, list(texts), args.remote)
        if left:  # applied again by the next drain, which changes nothing
            print(f"warning: {len(left)} inbox ref(s) not deleted ({left[0]}, …)", file=sys.stderr)
    if args.subjects is not None:
        args.subjects.write_text("".join(f"{subject}\n" for subject in subjects), encoding="utf-8")
    return 1 if refused else 0


def _message(applied: list) -> str:
    """The state commit's subject: the event, or how many of each type."""
    if len(applied) == 1:
        return f"state: {applied[0].type} {applied[0].subject}"
    counts: dict[str, int] = {}
    for event in applied:
        counts[event.type] = counts.get(event.type, 0) + 1
    return f"state: {len(applied)} events ({', '.join(f'{n} {kind}' for kind, n in sorted(counts.items()))})"


class _Drain:
    """Applies events with the commands the events workflow ran for each (inbox.commands), in
    this process: the handlers of those commands, with their checks, without their locks."""

    def __init__(self, root: Path, cosign):
        self.root = root
        self.cosign = cosign
        self.verdicts: dict[str, tuple[bool, str] | None] = {}  # by event id: cosign runs once
        self.applied: list = []

    def apply(self, events: list, quiet: bool = False) -> list[str]:
        """Apply `events` in order; the subjects of those applied (sorted, once each). `quiet`:
        again after a rejected push (said the first time)."""
        from image_factory.cli.app import build_parser
        from image_factory.rebuilds import inbox

        parser, self.applied = build_parser(), []
        out = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
        err = contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext()
        with out, err:
            for event in events:
                try:
                    verdict = self._verdict(event)
                    for argv in inbox.commands(event, verdict):
                        self._run(parser, argv)
                except FactoryError as error:
                    print(f"refused event {event.id} ({event.type} of {event.subject}):", file=sys.stderr)
                    print_error(error, self.root)
                    continue
                for argv in inbox.checks(event):
                    try:
                        self._run(parser, argv)
                    except FactoryError as error:  # the event stands; the check says why it failed
                        print(f"warning: {argv[0]} after event {event.id}:", file=sys.stderr)
                        print_error(error, self.root)
                self.applied.append(event)
        return sorted({event.subject for event in self.applied})

    def _verdict(self, event) -> tuple[bool, str] | None:
        """For a reported success of a keyless-signed image: what `cosign verify` says."""
        if event.type != "image-built" or event.text("result") != "success" or not event.text("digest"):
            return None
        if event.id not in self.verdicts:
            required = trust.build_signature(config_for(self.root, event.subject), event.subject)
            self.verdicts[event.id] = self.cosign.verify(required, event.text("digest")) if required.keyless else None
        return self.verdicts[event.id]

    def _run(self, parser: argparse.ArgumentParser, argv: list[str]) -> None:
        try:
            args = parser.parse_args([*argv, f"--root={self.root}"])
        except SystemExit:  # argparse said why on stderr
            raise FactoryError(Problem(argv[0], "the event's values are not a valid command")) from None
        args.run(args)
