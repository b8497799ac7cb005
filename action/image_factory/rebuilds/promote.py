"""Moving a managed image's tag to a tested, signed digest: a registry operation.

The manifest stored under the digest is put back under the tag, byte for byte (as `crane tag`
does), so the tag names exactly what was tested and signed: the same index, its provenance and
SBOM attestations, and the signature stored beside it by digest. No image is pulled or rebuilt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from image_factory.edges.registry import RegistryClient
from image_factory.enrolment.refs import ImageRef, InvalidReference, parse_digest
from image_factory.errors import FactoryError, Problem


@dataclass(frozen=True)
class Promotion:
    tag: ImageRef
    digest: str
    previous: str | None  # what the tag pointed at before (None: a new tag)


def promote(client: RegistryClient, tag: ImageRef, digest: str) -> Promotion:
    """Point `tag` at `digest`, a manifest already pushed to the tag's repository."""
    try:
        digest = parse_digest(digest)
    except InvalidReference as error:
        raise FactoryError(Problem("--digest", error.reason)) from None
    manifest = client.manifest(tag, digest)
    if manifest is None:
        raise FactoryError(Problem("--digest", f"{tag.name}@{digest} is not in the registry: nothing to tag"))
    body, _ = manifest
    algorithm, _, expected = digest.partition(":")
    if algorithm == "sha256" and hashlib.sha256(body).hexdigest() != expected:
        raise FactoryError(Problem("registry", f"{tag.name}: the manifest served for {digest} does not match it"))
    current = client.manifest(tag, tag.tag or "latest")
    previous = "sha256:" + hashlib.sha256(current[0]).hexdigest() if current else None
    client.tag(tag, manifest)
    return Promotion(tag, digest, previous)
