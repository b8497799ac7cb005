"""Events the events workflow received: `drain` applies them all, in one process."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from image_factory.cli.common import PUSH_HELP, config_for, discover, print_error, pushed, trust
from image_factory.errors import FactoryError, Problem
from image_factory.user_text import one_line

KEY = "IMAGE_FACTORY_INBOX_KEY"  # the secret the receive job seals each event with (inbox.seal)


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
        help="apply the event files (*.json) in DIR instead of the remote's inbox (unsealed; nothing is deleted)",
    )
    drain.add_argument(
        "--subjects",
        type=Path,
        metavar="FILE",
        help="write what the applied events are about to FILE, one per line (for dispatch --base)",
    )
    drain.add_argument(
        "--requeue",
        nargs="+",
        metavar="ID",
        help="put these refused events (refs/image-factory/refused/ID) back in the inbox, then drain",
    )
    drain.add_argument(
        "--push", action="store_true", help=PUSH_HELP + "; then delete the applied events' refs, move the refused"
    )
    drain.set_defaults(run=_drain)


@dataclass
class Outcome:
    """What became of each event of a drain, by its name (a ref, or a file)."""

    applied: list = field(default_factory=list)  # Events
    refused: list[str] = field(default_factory=list)  # final: moved to refs/image-factory/refused/
    kept: list[str] = field(default_factory=list)  # could not be judged now: left for the next drain


def _drain(args: argparse.Namespace) -> int:
    from image_factory.rebuilds import inbox
    from image_factory.state import inbox_refs
    from image_factory.trust.cosign_cli import Cosign

    if args.source is not None:
        if not args.source.is_dir():
            raise FactoryError(Problem("--from", f"{args.source} is not a folder"))
        files = sorted(args.source.glob("*.json"))
        found = {str(path): ("", path.read_text(encoding="utf-8", errors="replace")) for path in files}
        key = None  # an operator's own files
    else:
        key = os.environ.get(KEY)
        if not key:
            raise FactoryError(
                Problem(KEY, "is not set: the inbox's events cannot be told from forged ones, so none is applied")
            )
        if args.requeue:
            missing = inbox_refs.requeue(args.root, args.requeue, args.remote)
            if missing:
                raise FactoryError(Problem("--requeue", f"no refused event {', '.join(missing)}"))
        found = inbox_refs.fetch(args.root, args.remote)
    outcome, received = Outcome(), []
    for name, (_, text) in found.items():
        try:
            received.append((name, inbox.parse_event(name, text, key)))
        except FactoryError as error:
            print_error(error, args.root)
            outcome.refused.append(name)
    received.sort(key=lambda pair: (pair[1].received_at, pair[1].id))
    drain = _Drain(args.root, Cosign(args.root))
    drain.apply(received, outcome)
    print(
        f"drained {len(found)} event(s): {len(outcome.applied)} applied, {len(outcome.refused)} refused, "
        f"{len(outcome.kept)} left for the next drain"
    )
    try:
        pushed(args, _message(outcome.applied), lambda: drain.apply(received, Outcome(), quiet=True))
    except FactoryError as error:  # nothing deleted: the events wait for the next drain
        kept = Problem(
            "drain",
            f"the {len(found)} event(s) stay in the inbox ({inbox_refs.PREFIX}*), and the next drain applies them "
            "once the push goes through (a protected branch: docs/trust.md, Branch protection)",
        )
        raise FactoryError([*error.problems, kept]) from None
    if args.push and args.source is None:
        applied = [name for name, event in received if event in outcome.applied]
        left = inbox_refs.settle(args.root, applied, {name: found[name][0] for name in outcome.refused}, args.remote)
        if left:  # applied again by the next drain, which changes nothing
            print(f"warning: {len(left)} inbox ref(s) not settled ({left[0]}, …)", file=sys.stderr)
    if args.subjects is not None:
        subjects = sorted({event.subject for event in outcome.applied})
        args.subjects.write_text("".join(f"{subject}\n" for subject in subjects), encoding="utf-8")
    return 1 if outcome.refused or outcome.kept else 0


def _message(applied: list) -> str:
    """The state commit's subject: the event, or how many of each type."""
    if len(applied) == 1:
        return f"state: {applied[0].type} {one_line(applied[0].subject)}"
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

    def apply(self, received: list, outcome: Outcome, quiet: bool = False) -> None:
        """Apply the (name, event) pairs in order into `outcome`. `quiet`: again after a rejected
        push (said the first time)."""
        from image_factory.cli.app import build_parser
        from image_factory.rebuilds import inbox
        from image_factory.trust.cosign_cli import Unavailable

        parser = build_parser()
        out = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
        err = contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext()
        with out, err:
            for name, event in received:
                what = f"event {one_line(event.id)} ({event.type} of {one_line(event.subject)})"
                try:
                    if event.type == "base-image-soaked":  # records nothing, but must name an image
                        discover.load_scope(self.root, [event.subject])
                    for argv in inbox.commands(event, self._verdict(event)):
                        self._run(parser, argv)
                except FactoryError as error:
                    print(f"refused {what}:", file=sys.stderr)
                    print_error(error, self.root)
                    outcome.refused.append(name)
                    continue
                except Unavailable as error:
                    print(f"left for the next drain: {what}: {error}", file=sys.stderr)
                    outcome.kept.append(name)
                    continue
                except Exception as error:  # a defect: never lose the event, never stop the others
                    print(f"left for the next drain: {what}: {type(error).__name__}: {error}", file=sys.stderr)
                    outcome.kept.append(name)
                    continue
                for argv in inbox.checks(event):
                    try:
                        self._run(parser, argv)
                    except FactoryError as error:  # the event stands; the check says why it failed
                        print(f"warning: {argv[0]} after {what}:", file=sys.stderr)
                        print_error(error, self.root)
                outcome.applied.append(event)

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
            with contextlib.redirect_stderr(io.StringIO()) as usage:
                args = parser.parse_args([*argv, f"--root={self.root}"])
        except SystemExit:
            why = one_line(usage.getvalue().strip().splitlines()[-1]) if usage.getvalue().strip() else "invalid"
            raise FactoryError(Problem(argv[0], f"the event's values are not a valid command: {why}")) from None
        args.run(args)
