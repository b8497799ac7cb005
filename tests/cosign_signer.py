"""A small signer for the tests: cosign-format key-based signatures, written to a real registry.

It follows cosign's published layout (the `sha256-<hex>.sig` tag, a simple-signing payload layer
and the base64 signature annotation), so the code under test reads what cosign would write.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .registry_server import OCI_CONFIG, OCI_MANIFEST, Registry

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def new_key(kind: str = "ecdsa"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def payload(reference: str, digest: str) -> bytes:
    claims = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(claims, separators=(",", ":")).encode()


def sign(key, data: bytes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(data)
    else:
        raw = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(raw).decode()


def push_signatures(registry: Registry, repository: str, digest: str, layers: list[tuple[bytes, str | None]]) -> str:
    """Store (payload, signature) layers as the cosign signature manifest of `digest`."""
    config = b"{}"
    entries = []
    for data, signature in layers:
        annotations = {"dev.cosignproject.cosign/signature": signature} if signature is not None else {}
        entries.append(
            {
                "mediaType": SIMPLE_SIGNING,
                "digest": registry._blob(repository, data),
                "size": len(data),
                "annotations": annotations,
            }
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": registry._blob(repository, config), "size": len(config)},
        "layers": entries,
    }
    tag = digest.replace(":", "-") + ".sig"
    body = json.dumps(manifest).encode()
    registry._manifest(repository, tag, body, OCI_MANIFEST)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def cosign_sign(registry: Registry, repository: str, digest: str, key) -> None:
    """What `cosign sign --key` does for one digest (without a transparency log)."""
    data = payload(f"{registry.host}/{repository}", digest)
    push_signatures(registry, repository, digest, [(data, sign(key, data))])
