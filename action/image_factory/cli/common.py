"""What the command groups share: modules loaded when first used, option help, small helpers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from image_factory.errors import FactoryError, Problem


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
config_excerpt = _lazy("enrolment.config_excerpt")
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


def split_pairs(pairs: list[str], flag: str, shape: str) -> list[tuple[str, str]]:
    """`NAME=VALUE` options split in two; one without `=` is an error naming `flag`."""
    found = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise FactoryError(Problem(flag, f"{pair!r} is not {shape}"))
        found.append((name, value))
    return found


def config_for(root: Path, image: str | None = None, *, verified: bool = False):
    """images.yaml's settings (and `image`'s entry) for a trust decision, read from images.yaml
    itself: never from state/index.json's or a state file's copy, which anyone who can push may
    edit, while reviewers review images.yaml (see config_excerpt). Only an images.yaml a discover
    checked whole (the index says so) is read in part; any other is read and checked whole."""
    if index.read_index(root) is None:
        return load_config(root)
    return config_excerpt.load_config_excerpt(root, image, verified=verified)


TIME_FORMAT = "ISO 8601 in UTC (2026-11-25T10:00:00Z), or relative to now (+7d, -36h)"


def when(text: str | None, what: str):
    """The time an option gives (`what` names it in an error): ISO 8601, or relative to now
    (`+7d`, `-36h`, in images.yaml's duration units); else now."""
    if not text:
        return timestamps.now()
    if text[0] in "+-":
        try:
            offset = parse_duration(text[1:])
        except ValueError as error:
            raise FactoryError(Problem(what, f"{text!r}: {error} (a time is {TIME_FORMAT})")) from None
        return timestamps.now() + (offset if text[0] == "+" else -offset)
    return timestamps.parse_time(text, what)


def digest_command(commands, root: argparse.ArgumentParser, name: str, text: str) -> argparse.ArgumentParser:
    """A command about one digest of a watched image: --image REF --digest DIGEST [--push]."""
    command = commands.add_parser(name, parents=[root], help=text)
    command.add_argument("--image", required=True, metavar="REF", help="the watched reference (e.g. python:3.12-slim)")
    command.add_argument("--digest", required=True)
    command.add_argument("--push", action="store_true", help=PUSH_HELP)
    return command


DISCARD_JOURNAL_HELP = "remove a journal image-factory did not write (after an error naming it) without acting on it"


def discarded(journal: Path) -> None:
    """--discard-journal: the journal goes, nothing it names is touched."""
    from image_factory.state.files import discard_journal

    if discard_journal(journal):
        print(f"note: {journal} removed without acting on it", file=sys.stderr)


def pushed(args: argparse.Namespace, message: str, reapply) -> None:
    """With --push, commit the state change and push it (`reapply` redoes it on a rejected push)."""
    if args.push:
        commit = gitops.commit_and_push(args.root, message, reapply)
        print(f"pushed {commit[:12]}: {message}" if commit else "nothing to push: state already had it")


def print_error(error: FactoryError, root: Path) -> None:
    """A command's problems, once, on stderr; in GitHub Actions also as annotations."""
    print(report.problems_text(error.problems), file=sys.stderr)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        workspace = os.environ.get("GITHUB_WORKSPACE")
        # On stderr, which the runner reads for workflow commands as it reads stdout (actions/runner,
        # src/Runner.Worker/Handlers/ScriptHandler.cs: an OutputManager on each stream): stdout
        # may be a job summary (`plan --markdown >> $GITHUB_STEP_SUMMARY`), where an event's
        # words in an error would be Markdown, links and images included.
        print(report.annotations(error.problems, root, Path(workspace) if workspace else None), file=sys.stderr)


def github_outputs(outputs: dict[str, str], summary: str) -> None:
    """Step outputs and job summary, when running in GitHub Actions."""
    if path := os.environ.get("GITHUB_OUTPUT"):
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in outputs.items())
    if summary and (path := os.environ.get("GITHUB_STEP_SUMMARY")):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(summary)
