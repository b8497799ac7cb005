"""Rebuilds: `plan`, `dispatch`, `build-info`, `platforms`, `check-workflow`, `promote` and `rollback`."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path

from image_factory.cli.common import (
    PUSH_HELP,
    build_info,
    discover,
    dispatch,
    events,
    github_outputs,
    index,
    load_config,
    parse_duration,
    planner,
    pushed,
    report,
    rollback,
    split_pairs,
    when,
)
from image_factory.errors import FactoryError, Problem
from image_factory.user_text import code_block, one_line


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    planning = commands.add_parser("plan", parents=[root], help="what should be rebuilt now, next, and what is blocked")
    planning.add_argument("--now", metavar="TIME", help="plan as of this time (default: now)")
    planning.add_argument(
        "--cascade-delay", metavar="DURATION", help="wait after a parent's rebuild (default: images.yaml)"
    )
    planning.add_argument(
        "--base",
        action="append",
        metavar="REF",
        help="only the images built on REF (a watched reference, or a managed image's name), as dispatch --base",
    )
    planning.add_argument("--json", action="store_true")
    planning.add_argument(
        "--markdown", action="store_true", help="as a Markdown section (a job summary): the text in a code block"
    )
    planning.set_defaults(run=_plan)

    send = commands.add_parser("dispatch", parents=[root], help="trigger the build workflow of every image due now")
    send.add_argument("--dry-run", action="store_true", help="say what would be dispatched, call nothing")
    send.add_argument("--image", metavar="NAME", help="only this image (also when its autoRebuild is off)")
    send.add_argument(
        "--base",
        action="append",
        metavar="REF",
        help="only the images built on REF (a watched reference, or a managed image's name), directly or through "
        "other images: after an event about it, reading only their state (repeat it for several)",
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

    contract = commands.add_parser(
        "check-workflow", parents=[root], help="check a team's build workflow against the build contract"
    )
    contract.add_argument("workflow", type=Path, metavar="WORKFLOW", help="the workflow file (.github/workflows/…)")
    contract.add_argument("--image", required=True, metavar="NAME", help="the managed image it builds")
    contract.set_defaults(run=_check_workflow)

    back = commands.add_parser("rollback", parents=[root], help="put a managed image back on an earlier good build")
    back.add_argument("--image", required=True, metavar="NAME")
    back.add_argument(
        "--to",
        metavar="DIGEST|TAG",
        help="the digest an earlier successful build produced, or the revision tag it got (default: the one before)",
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


def _plan(args: argparse.Namespace) -> int:
    if args.base:
        config, state = discover.load_scope(args.root, args.base)
    else:
        config, state = discover.load_model(args.root, settings_only=True)
    try:
        cascade_delay = parse_duration(args.cascade_delay or config.cascade_delay)
    except ValueError as error:
        raise FactoryError(Problem("--cascade-delay", str(error))) from None
    result = planner.plan(state, when(args.now, "--now"), cascade_delay)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif args.markdown:
        print(f"## Rebuild plan\n\n{code_block(report.plan_text(result))}")
    else:
        print(report.plan_text(result))
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("GITHUB_TOKEN")
    if args.retry and not args.image:
        raise FactoryError(Problem("--retry", "needs --image: which image's build to dispatch again"))
    now = when(args.now, "--now")
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
        pushed(
            args, f"state: dispatched {', '.join(sorted(recorded))}", lambda: events.apply_attempts(args.root, recorded)
        )
    return 1 if any(item.status == "failed" for item in results) else 0


def _build_info(args: argparse.Namespace) -> int:
    config, state = discover.load_model(args.root, settings_only=True)
    image = state.managed(args.image)
    if args.bases:
        given, flag = build_info.parse_pins(args.bases), "--bases"
    else:
        given, flag = build_info.parse_pins(json.dumps(dict(split_pairs(args.base, "--base", "REF=DIGEST")))), "--base"
    pins = dispatch.build_pins(image, state, when(args.now, "--now"), given, flag)
    already = ""
    last = image.runtime.last_build
    if args.base and not args.bases and last and last.get("baseDigests") == pins:
        # Kargo re-sends a dispatch GitHub answered with a 5xx: that rebuild happened already.
        already = (
            f"{image.name} was built on exactly these digests already ({last['digest']}, {last.get('runUrl', '')})"
        )
    policy = index.enrolled(image).signing
    signing = "key" if policy is not None and policy.key_file is not None else "keyless"
    sigstore = _private_sigstore(args.root, config.sigstore) if signing == "keyless" else {}
    print(build_info.build_info(state, args.image, pins, already, signing, sigstore).github_output(), end="")
    return 0


def _private_sigstore(root: Path, settings) -> dict[str, str]:
    """The sign job's view of images.yaml's `sigstore`: its URLs and its TUF root, in base64."""
    if settings is None:
        return {}
    try:
        trusted = (root / settings.tuf_root).read_bytes()
    except OSError as error:
        raise FactoryError(Problem(settings.tuf_root, f"sigstore.tufRoot cannot be read: {error.strerror}")) from None
    return {
        "fulcio-url": settings.fulcio_url,
        "rekor-url": settings.rekor_url,
        "tuf-mirror": settings.tuf_mirror,
        "tuf-root": base64.b64encode(trusted).decode(),
    }


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


def _check_workflow(args: argparse.Namespace) -> int:
    from image_factory.rebuilds import contract

    try:
        text = args.workflow.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FactoryError(Problem(str(args.workflow), f"cannot read: {error}")) from None
    config = load_config(args.root)
    verdict = contract.check(config, args.image, str(args.workflow), text)
    image = config.by_name(args.image)
    if args.workflow.name != image.source.workflow:
        print(
            f"warning: {args.workflow}: images.yaml dispatches {image.source.workflow!r} for {args.image}",
            file=sys.stderr,
        )
    if verdict.problems:
        raise FactoryError(verdict.problems)
    how = (
        "by calling the factory's build.yml"
        if verdict.delegates
        else "as far as its file shows (docs/build-contract.md)"
    )
    print(f"ok: {args.workflow} keeps the build contract for {args.image}, {how}")
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
    done = promote.promote(client, image.ref, args.digest, image.revision_tag)
    if done.revision is not None:
        print(f"{done.revision.canonical} → {done.digest} (this rebuild's own tag, never moved)")
    before = f" (was {done.previous})" if done.previous else " (a new tag)"
    print(f"{done.tag.canonical} → {done.digest}{before}")
    github_outputs({"revision-tag": done.revision.tag if done.revision else ""}, "")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from image_factory.edges import registry  # requests: only for the commands that talk to registries

    config = load_config(args.root)
    client = registry.RegistryClient(
        mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
    )
    at = when(args.at, "--at")
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
        pushed(
            args,
            f"state: roll {args.image} back ({done.how})",
            lambda: events.apply_attempts(args.root, {args.image: attempt}),
        )
    if done.how == "dispatch failed":
        print(
            f"{done.image}: the rollback was not dispatched; `image-factory dispatch --image {done.image} --retry` "
            "sends it again",
            file=sys.stderr,
        )
        return 1
    return 0
