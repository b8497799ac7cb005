"""Signatures: `verify` and `signing-policy`."""

from __future__ import annotations

import argparse
from pathlib import Path

from image_factory.cli.common import (
    PUSH_HELP,
    config_for,
    events,
    parse_ref,
    pushed,
    refs,
    trust,
    when,
)
from image_factory.errors import FactoryError, Problem


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    check = commands.add_parser("verify", parents=[root], help="check the cosign signature of an image digest")
    check.add_argument("--image", required=True, metavar="REF@DIGEST")
    check.add_argument("--key", type=Path, metavar="FILE", help="cosign public key (default: the image's verify.key)")
    check.add_argument(
        "--insecure-registry", action="append", default=[], metavar="HOST", help="speak plain HTTP to it"
    )
    check.add_argument(
        "--record", action="store_true", help="record the outcome in state (exit 0 either way) instead of failing"
    )
    check.add_argument("--at", metavar="TIME", help="with --record: the verdict's time (default: now)")
    check.add_argument("--push", action="store_true", help=PUSH_HELP)
    check.set_defaults(run=_verify)

    signing = commands.add_parser(
        "signing-policy", parents=[root], help="the signature a managed image's builds carry (cosign verify flags)"
    )
    signing.add_argument("--image", required=True, metavar="NAME")
    signing.add_argument("--text", action="store_true", help="in words, not as workflow outputs")
    signing.set_defaults(run=_signing_policy)


def _verify(args: argparse.Namespace) -> int:
    # requests and cryptography: only here
    from image_factory.edges import registry
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
        at = when(args.at, "--at")

        def apply():
            watched = ref.without_digest().canonical
            return events.record_update(args.root, watched, ref.digest, at, None, outcome.verified, outcome.reason)

        apply()
        verdict = "verified" if outcome.verified else "NOT verified"
        print(f"{outcome.image}: {verdict}: {outcome.reason} (recorded)")
        pushed(args, f"state: {ref.name} {ref.digest[:19]}… {verdict}", apply)
        return 0
    if not outcome.verified:
        raise FactoryError(Problem("verify", f"{outcome.image}: not verified: {outcome.reason}"))
    print(f"{outcome.image}: verified: {outcome.reason} ({key_path})")
    return 0


def _verify_config(root: Path, ref):
    """images.yaml's settings and the verify policy it gives `ref`, read from images.yaml itself
    (never a state file's copy: see config_excerpt)."""
    config = config_for(root, verified=True)
    return config, _verify_policy(config, ref)


def _verify_policy(config, ref):
    """The verify policy images.yaml gives `ref` (by reference, else by repository), if any."""
    enrolled = config.external_for(ref)
    if enrolled is None or enrolled.verify is None:
        enrolled = next((image for image in config.external if image.ref.name == ref.name and image.verify), None)
    return enrolled.verify if enrolled is not None else None


def _signing_policy(args: argparse.Namespace) -> int:
    required = trust.build_signature(config_for(args.root, args.image), args.image)
    print(required.describe() if args.text else required.github_output(), end="\n" if args.text else "")
    return 0
