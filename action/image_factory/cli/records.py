"""Runtime events: `record-update`, `reject`, `unreject`, `expedite`, `record-scan` and `record-build`."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from image_factory.cli.common import (
    FORCE_HELP,
    PUSH_HELP,
    SENDER_HELP,
    build_info,
    config_for,
    digest_command,
    events,
    pushed,
    sanity,
    split_pairs,
    timestamps,
    trust,
    when,
)
from image_factory.enrolment.refs import parse_digest
from image_factory.errors import FactoryError, Problem
from image_factory.trust import scan_report
from image_factory.trust.scan_report import SEVERITIES
from image_factory.user_text import one_line


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
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

    refuse = digest_command(commands, root, "reject", "never build on one digest of a watched image again")
    refuse.add_argument(
        "--reason", required=True, type=one_line, help="why (e.g. the build it broke); recorded in state"
    )
    refuse.add_argument("--at", metavar="TIME", help="default: now")
    refuse.add_argument("--force", action="store_true", help=FORCE_HELP)
    refuse.set_defaults(run=_reject)

    accept = digest_command(
        commands, root, "unreject", "accept a digest: neither its rejection nor what its scan has found holds it"
    )
    accept.add_argument("--at", metavar="TIME", help="default: now")
    accept.set_defaults(run=_unreject)

    scanned = digest_command(
        commands, root, "record-scan", "record a vulnerability scan of one digest of a watched image"
    )
    found = scanned.add_mutually_exclusive_group(required=True)
    found.add_argument("--report", metavar="FILE", help="the scanner's JSON report: Trivy (-f json) or Grype (-o json)")
    found.add_argument(
        "--findings",
        metavar="JSON",
        help='the findings as the scan Job sends them: [{"id", "severity", "package", "fixed"}]',
    )
    found.add_argument(
        "--error", metavar="TEXT", type=one_line, help="why the scan could not run: recorded, the delay applies"
    )
    scanned.add_argument("--scanner", metavar="NAME", help="which scanner (default: read from --report, else trivy)")
    scanned.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        help="with --report: keep the findings this severe or more; with --findings: the least severity the "
        "sender kept (default low)",
    )
    scanned.add_argument(
        "--omitted", metavar="N", type=int, help="with --findings: findings the sender left out past its limit"
    )
    scanned.add_argument(
        "--other-ids", metavar="IDS", help="with --findings: every other id the scan found, separated by spaces"
    )
    scanned.add_argument(
        "--other-ids-omitted", metavar="N", type=int, help="with --findings: other ids the sender left out"
    )
    scanned.add_argument(
        "--run",
        dest="scan_run",
        metavar="NAME",
        help="with --report or --findings: the scan run it was part of; only scans of one run (one vulnerability "
        "database) are compared (default: a run of its own)",
    )
    scanned.add_argument("--at", metavar="TIME", help="when it was scanned (default: now)")
    scanned.add_argument("--sender", metavar="LOGIN", help=SENDER_HELP + " (only from trust.senders)")
    scanned.add_argument(
        "--force", action="store_true", help="record the scan of a digest not seen yet: it counts once one is"
    )
    scanned.set_defaults(run=_record_scan)

    fast = digest_command(commands, root, "expedite", "let one digest skip the rebuild delay")
    fast.add_argument("--reason", required=True, type=one_line, help="why (e.g. the CVE it fixes); recorded in state")
    fast.add_argument("--at", metavar="TIME", help="default: now")
    fast.add_argument("--sender", metavar="LOGIN", help=SENDER_HELP + " (one of trust.senders)")
    fast.add_argument("--force", action="store_true", help=FORCE_HELP)
    fast.set_defaults(run=_expedite)

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
    built.add_argument("--revision-tag", metavar="TAG", help="the immutable tag the digest got beside the moving one")
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


def _record_update(args: argparse.Namespace) -> int:
    seen_at = when(args.seen_at, "--seen-at")
    if seen_at > timestamps.now() + sanity.CLOCK_SKEW:  # it would pin the digest as "not yet eligible"
        raise FactoryError(Problem("--seen-at", f"{args.seen_at} is in the future"))

    verified = None if args.verified is None else args.verified == "true"
    if args.reason and verified is None:
        raise FactoryError(Problem("--reason", "goes with --verified"))
    # A sighting becomes the digest rebuilds pin once it has soaked: only a trusted sender may report one.
    event = "base-image-updated" if verified is None else "base-image-verified"
    trust.check_sender(config_for(args.root), event, args.sender, f"{args.image}@{args.digest}")

    def apply():
        return events.record_update(
            args.root,
            args.image,
            args.digest,
            seen_at,
            args.freight,
            verified,
            args.reason,
            args.seen_by,
            reported_by=args.sender,
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
    pushed(args, message, apply)
    return 0


def _operators_time(args: argparse.Namespace):
    """--at of a verdict: never in the future, where it would outlive what is said after it."""
    at = when(args.at, "--at")
    if at > timestamps.now() + sanity.CLOCK_SKEW:
        raise FactoryError(Problem("--at", f"{args.at} is in the future"))
    return at


def _reject(args: argparse.Namespace) -> int:
    at = _operators_time(args)
    return _base_event(
        args,
        lambda: events.reject(args.root, args.image, args.digest, args.reason, at, force=args.force),
        f"rejected ({args.reason.strip()}): no rebuild will use it",
        "reject",
    )


def _unreject(args: argparse.Namespace) -> int:
    at = _operators_time(args)
    return _base_event(
        args,
        lambda: events.unreject(args.root, args.image, args.digest, at),
        "is accepted: neither its rejection nor what its scan has found holds it",
        "unreject",
    )


def _record_scan(args: argparse.Namespace) -> int:
    at = when(args.at, "--at")
    if at > timestamps.now() + sanity.CLOCK_SKEW:  # the latest scan counts: one from the future would stay
        raise FactoryError(Problem("--at", f"{args.at} is in the future"))
    subject = f"{args.image}@{args.digest}"
    trust.check_sender(config_for(args.root), "base-image-scanned", args.sender, subject)
    listed = {"--omitted": args.omitted, "--other-ids": args.other_ids, "--other-ids-omitted": args.other_ids_omitted}
    for option, value in listed.items():
        if value is not None and args.findings is None:
            raise FactoryError(Problem(option, "goes with --findings: a report's findings are counted here"))
        if isinstance(value, int) and value < 0:
            raise FactoryError(Problem(option, "is a count: 0 or more"))
    if args.min_severity is not None and args.error is not None:
        raise FactoryError(Problem("--min-severity", "goes with --report or --findings, not --error"))
    try:
        scanner = scan_report.scanner_name(args.scanner or "trivy")
    except ValueError as error:
        raise FactoryError(Problem("--scanner", str(error))) from None
    try:
        scan = {"scanner": scanner, **_scan_of(args)}
    except ValueError as error:
        given = args.report or ("--findings" if args.findings is not None else "--error")
        raise FactoryError(Problem(given, str(error))) from None
    found_by = scan.pop("found by", None)
    if found_by and not args.scanner:
        scan["scanner"] = found_by
    if "error" not in scan:
        try:
            name = scan_report.run_name(args.scan_run or _own_run(args, at))
            scan = {"scanner": scan.pop("scanner"), "run": name, **scan}
        except ValueError as error:
            raise FactoryError(Problem("--run", str(error))) from None
    elif args.scan_run is not None:
        raise FactoryError(Problem("--run", "goes with --report or --findings, not --error"))

    def apply():
        return events.record_scan(args.root, args.image, args.digest, scan, at, force=args.force)

    base = apply()
    kept = next(entry["scan"] for entry in base.runtime.history if entry["digest"] == parse_digest(args.digest))
    print(f"{base.ref}: {args.digest} {_scan_outcome(scan, kept, at)}")
    pushed(args, f"state: scan {base.ref} {args.digest[:19]}…", apply)
    return 0


def _own_run(args: argparse.Namespace, at) -> str:
    """A run of its own: compared with nothing until another scan names it with --run."""
    return f"record-scan-{timestamps.format_time(at)}-{parse_digest(args.digest)[7:19]}"


def _scan_of(args: argparse.Namespace) -> dict:
    """The scan as state keeps it, from --report, --findings or --error; ValueError names what is wrong."""
    if args.report:
        found_by, findings = scan_report.parse_report(_read_json(args.report))
        return {**scan_report.cut(findings, args.min_severity or "low"), "found by": found_by}
    if args.findings is None:
        return {"error": scan_report.error_text(args.error)}
    # a sender that does not say where it cut its list is taken to have kept criticals only
    scan = {"minSeverity": args.min_severity or "critical", "findings": scan_report.from_payload(args.findings)}
    if args.other_ids is not None:
        scan["otherIds"] = scan_report.ids_from_text(args.other_ids)
    scan.update({"omitted": args.omitted} if args.omitted else {})
    scan.update({"otherIdsOmitted": args.other_ids_omitted} if args.other_ids_omitted else {})
    return scan


def _scan_outcome(scan: dict, kept: dict, at) -> str:
    """What `record-scan` did: the scan as recorded, or the newer one that stays."""
    if kept["at"] != timestamps.format_time(at):
        return f"keeps its scan of {kept['at']}, newer than this one"
    if "error" in scan:
        return f"not scanned: {scan['error']}"
    counts = Counter(finding["severity"] for finding in scan["findings"])
    worst = ", ".join(f"{counts[level]} {level}" for level in reversed(SEVERITIES) if counts[level]) or "no findings"
    omitted = scan.get("omitted")
    return f"scanned by {scan['scanner']}: {worst} at or above {scan['minSeverity']}" + (
        f" ({omitted} more left out)" if omitted else ""
    )


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except OSError as error:
        raise FactoryError(Problem(path, f"cannot read the report: {error.strerror or error}")) from None
    except ValueError as error:
        raise FactoryError(Problem(path, f"not JSON: {error}")) from None


def _expedite(args: argparse.Namespace) -> int:
    at = _operators_time(args)
    subject = f"{args.image}@{args.digest}"
    trust.check_sender(config_for(args.root), "base-image-cve", args.sender, subject)
    return _base_event(
        args,
        lambda: events.expedite(args.root, args.image, args.digest, args.reason, at, force=args.force),
        f"may be built on now ({args.reason.strip()})",
        "expedite",
    )


def _base_event(args: argparse.Namespace, apply, outcome: str, verb: str) -> int:
    """Apply an event to one digest of a watched image, say so, and push it with --push (the
    event is applied again on top of a rejected push)."""
    base = apply()
    print(f"{base.ref}: {args.digest} {outcome}")
    pushed(args, f"state: {verb} {base.ref} {args.digest[:19]}…", apply)
    return 0


def _record_build(args: argparse.Namespace) -> int:
    bases = dict(split_pairs(args.base, "--base", "REF=DIGEST"))
    if args.bases:
        bases.update(build_info.parse_pins(args.bases))
    finished_at = when(args.finished_at, "--finished-at")

    signed = None if args.signed is None else args.signed == "true"
    config = config_for(args.root, args.image) if args.require_signature else None
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
            revision_tag=args.revision_tag,
        )

    image = apply()
    if checked:
        print(f"{image.name}: {args.digest} {checked}")
    outcome = f"built {image.runtime.current_digest}" if args.result == "success" else "build failed"
    outcome += (" (signed)" if signed else " (NOT signed)") if signed is not None and args.result == "success" else ""
    outcome += f": {args.error}" if args.error else ""
    print(f"{image.name}: {outcome}")
    pushed(args, f"state: {args.image} build {args.result}", apply)
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
