"""The platforms a rebuild targets: those images.yaml names, else every platform that all of its
pinned bases are published for, so a rebuild never drops a platform the tag had (an arm64 user
of a multi-arch base keeps getting arm64 images)."""

from __future__ import annotations

import json

from image_factory.edges.registry import RegistryClient
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError, Problem

ATTESTATION = "unknown/unknown"  # BuildKit's attestation manifests in an index


def published(client: RegistryClient, ref: str, digest: str) -> set[str]:
    """The platforms `ref@digest` serves: an index's entries, or a single image's own os/arch."""
    pinned = parse_ref(f"{parse_ref(ref).name}@{digest}")
    resolved = client.resolve(pinned)
    if resolved.platforms:
        return {platform for platform in resolved.platforms if platform != ATTESTATION}
    manifest = client.manifest(pinned, digest)
    if manifest is None:
        raise FactoryError(Problem("--bases", f"{pinned.canonical} is not in the registry"))
    config = json.loads(client.blob(pinned, json.loads(manifest[0])["config"]["digest"]))
    variant = f"/{config['variant']}" if config.get("variant") else ""
    return {f"{config.get('os', 'linux')}/{config['architecture']}{variant}"}


def build_platforms(configured: tuple[str, ...], bases: dict[str, set[str]], image: str) -> list[str]:
    """`configured` if any; else the platforms every base serves (none in common is an error)."""
    if configured:
        return list(configured)
    if not bases:
        return []  # FROM scratch only: the builder's own platform
    common = set.intersection(*bases.values())
    if not common:
        offered = "; ".join(f"{ref}: {', '.join(sorted(found))}" for ref, found in sorted(bases.items()))
        raise FactoryError(
            Problem(image, f"its bases share no platform ({offered}): set source.platforms in images.yaml")
        )
    return sorted(common)
