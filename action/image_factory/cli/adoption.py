"""Images that run already: `adopt`."""

from __future__ import annotations

import argparse

from image_factory.cli.common import PUSH_HELP, discover, events, load_config, parse_ref, pushed, split_pairs, when
from image_factory.errors import FactoryError, Problem


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    adopt = commands.add_parser(
        "adopt", parents=[root], help="record what a managed image running already is built on (a first build)"
    )
    adopt.add_argument("--image", required=True, metavar="NAME")
    adopt.add_argument("--digest", help="the digest running now (default: what its tag points at)")
    adopt.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="REF=DIGEST",
        help="a base digest it was built on, as the operator knows it (default: read from its provenance or labels)",
    )
    adopt.add_argument("--at", metavar="TIME", help="when it was built, as far as anyone knows (default: now)")
    adopt.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help="plain HTTP to it")
    adopt.add_argument("--push", action="store_true", help=PUSH_HELP)
    adopt.set_defaults(run=_adopt)


def _adopt(args: argparse.Namespace) -> int:
    from image_factory.edges import registry
    from image_factory.enrolment.refs import InvalidReference, parse_digest
    from image_factory.rebuilds import adopt

    config = load_config(args.root)
    _, state = discover.load_model(args.root)
    image = state.managed(args.image)
    if image.runtime.last_build is not None or image.runtime.attempts:
        raise FactoryError(
            Problem(
                "--image", f"{image.name} has builds recorded already: adopt is for an image the factory never built"
            )
        )
    if image.bases_unknown:
        raise FactoryError(Problem("--image", f"{image.name}'s bases are unknown: its team proposes them first"))
    client = registry.RegistryClient(
        mirrors=config.registry_mirrors, insecure=set(config.insecure_registries) | set(args.insecure_registry)
    )
    keys = {
        base.ref: (
            state.images[base.image].ref.canonical if base.image else parse_ref(base.ref).without_digest().canonical
        )
        for base in image.base_images
    }
    try:
        digest = parse_digest(args.digest) if args.digest else client.resolve(image.ref).digest
        given = {
            parse_ref(ref).without_digest().canonical: parse_digest(d)
            for ref, d in split_pairs(args.base, "--base", "REF=DIGEST")
        }
    except InvalidReference as error:
        raise FactoryError(Problem("--base" if args.base else "--digest", str(error))) from None
    strange = sorted(set(given) - set(keys.values()))
    if strange:
        raise FactoryError(
            Problem("--base", f"{', '.join(strange)}: not a base of {image.name} ({', '.join(sorted(keys.values()))})")
        )
    fetched = client.manifest(image.ref, digest)
    if fetched is None:
        raise FactoryError(Problem("--digest", f"{image.ref.name}@{digest} is not in its registry"))
    found, source = adopt.base_digests_from_image(
        fetched[0], fetched[1], lambda d: client.manifest(image.ref, d), lambda d: client.blob(image.ref, d)
    )
    pins, missing = {}, []
    for ref, key in keys.items():
        pinned = given.get(key) or adopt.match(found, key) or parse_ref(ref).digest
        (pins.__setitem__(key, pinned) if pinned else missing.append(key))
    if missing:
        read = f"its {source}" if source else "its provenance or labels (it has neither)"
        raise FactoryError(
            Problem(
                "--base",
                f"{image.name}: {read} name no digest of {', '.join(missing)}, and no --base does: give --base "
                "REF=DIGEST for each (as the team that built it knows them)",
            )
        )
    source = " and ".join(part for part in (source, "the operator" if given else "") if part)
    at = when(args.at, "--at")

    def apply():
        events.adopt(args.root, image.name, digest, pins, at, f"adopted: its bases from {source}")

    apply()
    shown = ", ".join(f"{ref}@{d[:19]}…" for ref, d in sorted(pins.items()))
    print(f"{image.name}: adopted {digest} built on {shown or 'no base'} (from {source})")
    pushed(args, f"state: adopt {image.name}", apply)
    return 0
