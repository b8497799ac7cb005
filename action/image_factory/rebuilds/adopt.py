"""Adopting an image that runs already: what it is built on, so the factory starts from the truth.

After enrolment every image is "never built": nothing records the base digests of the image in
production. `adopt` records them as a successful build marked `adopted`, from (first that names
every base) the image's SLSA provenance (BuildKit's attestation manifest, `materials`), its OCI
base labels (`org.opencontainers.image.base.name` / `.digest`), or the operator's `--base`.
Never from the image config's `created` time: distroless and reproducible builds set it to 1970
or to a commit date, which would make an old base look soaked.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from image_factory.enrolment.refs import InvalidReference, parse_digest, parse_ref

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
PROVENANCE = ("https://slsa.dev/provenance/v0.2", "https://slsa.dev/provenance/v1")
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


def base_digests_from_image(
    manifest: bytes, media_type: str | None, fetch: Callable[[str], tuple[bytes, str | None] | None], blob
) -> tuple[dict[str, str], str]:
    """What the image names as its bases: {repository (registry/path, no tag): digest} and where
    it was read (provenance, labels); ({}, "") when it names none. `fetch(digest)` reads a manifest
    of the image's repository, `blob(digest)` a blob."""
    data = json.loads(manifest)
    if media_type in INDEX_TYPES or "manifests" in data:
        found = _from_attestations(data, fetch, blob)
        if found:
            return found, "provenance"
        image = next((m for m in data.get("manifests", []) if _is_image(m)), None)
        if image is None:
            return {}, ""
        fetched = fetch(image["digest"])
        if fetched is None:
            return {}, ""
        data = json.loads(fetched[0])
    config = json.loads(blob(data["config"]["digest"]))
    labels = (config.get("config") or {}).get("Labels") or {}
    name, digest = labels.get(BASE_NAME), labels.get(BASE_DIGEST)
    if name and digest:
        try:
            return {parse_ref(name, default_tag=None).canonical: parse_digest(digest)}, "labels"
        except InvalidReference:
            return {}, ""
    return {}, ""


def _is_image(descriptor: dict) -> bool:
    annotations = descriptor.get("annotations") or {}
    platform = descriptor.get("platform") or {}
    return annotations.get("vnd.docker.reference.type") != "attestation-manifest" and platform.get("os") != "unknown"


def _from_attestations(index: dict, fetch, blob) -> dict[str, str]:
    """The `materials` of the SLSA provenance in BuildKit's attestation manifests: docker images
    (`pkg:docker/<name>@<tag>?…`) with their sha256 digests."""
    found: dict[str, str] = {}
    for descriptor in index.get("manifests", []):
        if (descriptor.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest":
            continue
        fetched = fetch(descriptor["digest"])
        if fetched is None:
            continue
        for layer in json.loads(fetched[0]).get("layers", []):
            if (layer.get("annotations") or {}).get("in-toto.io/predicate-type") not in PROVENANCE:
                continue
            statement = json.loads(blob(layer["digest"]))
            predicate = statement.get("predicate") or {}
            materials = predicate.get("materials") or (predicate.get("buildDefinition") or {}).get(
                "resolvedDependencies", []
            )
            for material in materials:
                uri, digest = material.get("uri", ""), (material.get("digest") or {}).get("sha256")
                if not uri.startswith("pkg:docker/") or not digest:
                    continue
                # pkg:docker/<name>@<tag>?platform=…: the reference with its tag, as BuildKit resolved it
                name, _, tag = uri.removeprefix("pkg:docker/").split("?", 1)[0].partition("@")
                try:
                    ref = parse_ref(f"{name}:{tag}" if tag else name, default_tag=None)
                except InvalidReference:
                    continue
                found[ref.canonical] = f"sha256:{digest}"
    return found


def match(found: dict[str, str], base: str) -> str | None:
    """The digest `found` (reference → digest) names for `base` (canonical, tag and no digest):
    its exact reference, else the one reference of its repository (a label names no tag)."""
    if base in found:
        return found[base]
    repository = parse_ref(base, default_tag=None).name
    same = [digest for ref, digest in found.items() if parse_ref(ref, default_tag=None).name == repository]
    return same[0] if len(same) == 1 else None
