"""Moving a managed image's tag to a tested, signed digest: a registry operation.

The manifest stored under the digest is put back under the tag, byte for byte (as `crane tag`
does), so the tag names exactly what was tested and signed: the same index, its provenance and
SBOM attestations, and the signature stored beside it by digest. No image is pulled or rebuilt.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import date

from image_factory.edges.registry import RegistryClient
from image_factory.enrolment.refs import ImageRef, InvalidReference, parse_digest
from image_factory.errors import FactoryError, Problem


@dataclass(frozen=True)
class Promotion:
    tag: ImageRef
    digest: str
    previous: str | None  # what the tag pointed at before (None: a new tag)
    revision: ImageRef | None = None  # the immutable tag this rebuild also got


def next_revision(pattern: str, tag: str, existing: list[str], today: date) -> str:
    """The tag `pattern` gives the next rebuild: `{tag}` and `{date}` (YYYYMMDD) filled in, `{n}`
    one more than the highest such tag in `existing` (1 for the first), so no tag is ever reused."""
    filled = pattern.replace("{tag}", tag).replace("{date}", today.strftime("%Y%m%d"))
    before, _, after = filled.partition("{n}")
    shape = re.compile(re.escape(before) + r"([1-9][0-9]{0,8})" + re.escape(after))
    taken = [int(found.group(1)) for name in existing if (found := shape.fullmatch(name))]
    return f"{before}{max(taken, default=0) + 1}{after}"


def promote(
    client: RegistryClient, tag: ImageRef, digest: str, revision: str | None = None, today: date | None = None
) -> Promotion:
    """Point `tag` at `digest`, a manifest already pushed to the tag's repository; with `revision`
    (a pattern, see `next_revision`), first give the digest a new immutable tag too."""
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
    pinned = None
    if revision is not None:  # before the moving tag: a rebuild is never tagged without its revision
        name = next_revision(revision, tag.tag or "latest", client.tags(tag), today or date.today())
        pinned = replace(tag, tag=name)
        client.tag(pinned, manifest)
    current = client.manifest(tag, tag.tag or "latest")
    previous = "sha256:" + hashlib.sha256(current[0]).hexdigest() if current else None
    client.tag(tag, manifest)
    return Promotion(tag, digest, previous, pinned)
