"""Cosign signatures checked in Python, following cosign's published signature format.

A key-based cosign signature of `<repo>@sha256:<hex>` is stored in the same repository under the
tag `sha256-<hex>.sig`: an OCI manifest whose layers have the media type
`application/vnd.dev.cosign.simplesigning.v1+json`. Each such layer is a JSON payload (the
"simple signing" claims, whose `critical.image.docker-manifest-digest` names the signed digest)
and carries the base64 signature over the payload's exact bytes in its
`dev.cosignproject.cosign/signature` annotation. One layer that verifies with the key is enough.
Keyless signatures (Fulcio certificates, Rekor) are left to cosign itself, in the Kargo analysis.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from image_factory.enrolment.model import Config
from image_factory.enrolment.refs import ImageRef
from image_factory.errors import FactoryError, Problem

if TYPE_CHECKING:
    from image_factory.edges.registry import RegistryClient
    from image_factory.state.store import State

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class Verification:
    """The outcome for one image digest: verified or not, and why, in words."""

    image: str  # <repo>@<digest>
    verified: bool
    reason: str


def signature_tag(digest: str) -> str:
    """`sha256:ab…` → `sha256-ab….sig`, where cosign stores the digest's signatures."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.sig"


def load_public_key(pem: bytes, source: str) -> PublicKey:
    """A cosign public key (PEM `PUBLIC KEY`: ECDSA, RSA or Ed25519); a clear error naming `source`."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise FactoryError(Problem(source, f"not a PEM public key: {error}")) from None
    if not isinstance(key, PublicKey):
        raise FactoryError(Problem(source, f"unsupported key type {type(key).__name__} (ECDSA, RSA or Ed25519)"))
    return key


def read_public_key(path: Path) -> PublicKey:
    try:
        return load_public_key(path.read_bytes(), str(path))
    except OSError as error:
        raise FactoryError(Problem(str(path), f"cannot read the public key: {error.strerror}")) from None


def public_keys(config: Config, root: Path, state: State | None = None) -> dict[str, str]:
    """The PEM text of every public key file images.yaml names (by its path there), each checked
    to be a key; a missing or broken one is an error naming images.yaml's line. With only
    images.yaml's settings at hand (`load_model(settings_only=True)`), the keys are those the
    watched images of `state` name, as images.yaml gave them."""
    keys, problems = {}, []
    if config.images or state is None:
        enrolled = [(image.name, image.verify, image.line) for image in config.external]
    else:
        enrolled = [(base.enrolled_as, base.verify, None) for base in state.base_images.values() if base.enrolled_as]
    for name, verify, line in enrolled:
        if verify is None or verify.key_file is None:
            continue
        path = verify.key_file
        try:
            text = (root / path).read_text(encoding="utf-8")
            load_public_key(text.encode(), path)
            keys[path] = text
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            problems.append(Problem(config.file, f"verify.key of {name!r}: cannot read {path}: {reason}", line))
        except FactoryError as error:
            problems += [
                Problem(config.file, f"verify.key of {name!r}: {p.file}: {p.message}", line) for p in error.problems
            ]
    if problems:
        raise FactoryError(problems)
    return keys


def check_signature(payload: bytes, signature: str, key: PublicKey, digest: str) -> str | None:
    """Why the signed `payload` does not vouch for `digest` under `key`; None when it does."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return "the signature annotation is not base64"
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(raw, payload)
    except InvalidSignature:
        return "the signature does not verify with the key (another key signed it, or the payload was altered)"
    try:
        claims = json.loads(payload)
        critical = claims["critical"]
        kind, signed = critical["type"], critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError):
        return "the signed payload is not a cosign simple-signing payload"
    if kind != PAYLOAD_TYPE:
        return f"the signed payload is a {kind!r}, not a {PAYLOAD_TYPE!r}"
    if signed != digest:
        return f"the signature is for {signed}, not {digest}"
    return None


def verify_image(client: RegistryClient, ref: ImageRef, key: PublicKey) -> Verification:
    """Check the cosign signatures of `ref` (which carries the digest) in its registry."""
    if not ref.digest:
        raise FactoryError(Problem("--image", f"{ref}: give the digest to verify (REF@sha256:…)"))
    image = f"{ref.registry}/{ref.repository}@{ref.digest}"
    tag = signature_tag(ref.digest)
    found = client.manifest(ref, tag)
    if found is None:
        return Verification(image, False, f"no signature: {ref.registry}/{ref.repository}:{tag} does not exist")
    try:
        layers = json.loads(found[0]).get("layers") or []
    except (ValueError, AttributeError):
        return Verification(image, False, f"the signature manifest {tag} is not JSON")
    signed = [layer for layer in layers if layer.get("mediaType") == SIMPLE_SIGNING]
    if not signed:
        return Verification(image, False, f"{tag} holds no {SIMPLE_SIGNING} layer")
    reasons = []
    for number, layer in enumerate(signed, 1):
        signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if not signature:
            reasons.append(f"signature {number}: no {SIGNATURE_ANNOTATION} annotation")
            continue
        reason = check_signature(client.blob(ref, layer["digest"]), signature, key, ref.digest)
        if reason is None:
            return Verification(image, True, f"signature {number} of {len(signed)} verifies with the key")
        reasons.append(f"signature {number}: {reason}")
    return Verification(image, False, "; ".join(reasons))
