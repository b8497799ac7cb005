"""Cosign signatures: written to a real registry in cosign's format, checked by `image-factory verify`.

No cosign binary can run here: the tests sign with their own small signer (tests/cosign_signer.py)
and also check one signature the real cosign made (containers/image's fixture, offline).
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import yaml

from image_factory.cli import main
from image_factory.edges.registry import RegistryClient
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError
from image_factory.trust import signatures

from ..conftest import FIXTURES
from ..cosign_signer import cosign_sign, new_key, payload, public_pem, push_signatures, sign

REAL_COSIGN = FIXTURES / "cosign" / "containers-image"


@pytest.fixture
def signed(registry, tmp_path):
    """An image pushed and signed with an ECDSA P-256 key; the public key in a file."""
    digest, _ = registry.push_image("team/app", "1", "first")
    key = new_key()
    cosign_sign(registry, "team/app", digest, key)
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(key))
    return registry, digest, key, pem


def verify(registry, digest: str, pem, *extra: str, root=None) -> int:
    image = f"{registry.host}/team/app@{digest}"
    args = ["verify", "--image", image, "--insecure-registry", registry.host, *extra]
    if pem is not None:
        args += ["--key", str(pem)]
    if root is not None:
        args += ["--root", str(root)]
    return main(args)


def test_a_valid_signature_verifies(signed, capsys):
    registry, digest, _, pem = signed
    assert verify(registry, digest, pem) == 0
    assert capsys.readouterr().out == (
        f"{registry.host}/team/app@{digest}: verified: signature 1 of 1 verifies with the key ({pem})\n"
    )


def test_a_missing_signature_is_rejected(registry, tmp_path, capsys):
    digest, _ = registry.push_image("team/app", "1", "unsigned")
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(new_key()))
    assert verify(registry, digest, pem) == 1
    tag = digest.replace(":", "-") + ".sig"
    assert capsys.readouterr().err == (
        f"error: verify: {registry.host}/team/app@{digest}: not verified: "
        f"no signature: {registry.host}/team/app:{tag} does not exist\n"
    )


def test_a_wrong_key_is_rejected(signed, tmp_path, capsys):
    registry, digest, _, _ = signed
    other = tmp_path / "other.pub"
    other.write_bytes(public_pem(new_key()))
    assert verify(registry, digest, other) == 1
    assert "signature 1: the signature does not verify with the key" in capsys.readouterr().err


def test_a_tampered_payload_is_rejected(registry, tmp_path, capsys):
    digest, _ = registry.push_image("team/app", "1", "first")
    key = new_key()
    genuine = payload(f"{registry.host}/team/app", digest)
    tampered = genuine.replace(b'"optional":null', b'"optional":{"note":"added later"}')
    push_signatures(registry, "team/app", digest, [(tampered, sign(key, genuine))])
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(key))
    assert verify(registry, digest, pem) == 1
    assert "the signature does not verify with the key" in capsys.readouterr().err


def test_a_signature_for_another_digest_is_rejected(registry, tmp_path, capsys):
    digest, _ = registry.push_image("team/app", "1", "first")
    other, _ = registry.push_image("team/app", "2", "second")
    key = new_key()
    data = payload(f"{registry.host}/team/app", other)  # a genuine signature of the other image...
    push_signatures(registry, "team/app", digest, [(data, sign(key, data))])  # ...copied beside this one
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(key))
    assert verify(registry, digest, pem) == 1
    assert f"signature 1: the signature is for {other}, not {digest}" in capsys.readouterr().err


def test_one_good_signature_among_others_is_enough(registry, tmp_path, capsys):
    digest, _ = registry.push_image("team/app", "1", "first")
    ours, theirs = new_key(), new_key()
    data = payload(f"{registry.host}/team/app", digest)
    push_signatures(registry, "team/app", digest, [(data, sign(theirs, data)), (data, None), (data, sign(ours, data))])
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(ours))
    assert verify(registry, digest, pem) == 0
    assert "signature 3 of 3 verifies" in capsys.readouterr().out
    pem.write_bytes(public_pem(new_key()))
    assert verify(registry, digest, pem) == 1
    err = capsys.readouterr().err
    assert "signature 2: no dev.cosignproject.cosign/signature annotation" in err
    assert err.count("does not verify with the key") == 2


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_rsa_and_ed25519_keys(registry, tmp_path, kind):
    digest, _ = registry.push_image("team/app", "1", kind)
    key = new_key(kind)
    cosign_sign(registry, "team/app", digest, key)
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(key))
    assert verify(registry, digest, pem) == 0


def enrol(factory, registry, pem, more: str = "") -> None:
    """images.yaml enrolling team/app of the test registry, verified with `pem` (keys/app.pub)."""
    factory.write("keys/app.pub", pem.read_text())
    entry = f"""
        insecureRegistries: ["{registry.host}"]
        images:
          - name: app
            registry: "{registry.host}"
            repository: team/app
            tag: "1"
            verify: {{key: keys/app.pub}}
        """
    factory.write("images.yaml", entry + more)


def test_the_key_comes_from_images_yaml_and_bad_keys_are_named(signed, factory, capsys):
    registry, digest, _, pem = signed
    enrol(factory, registry, pem)
    assert verify(registry, digest, None, root=factory.root) == 0
    assert f"({factory.root / 'keys/app.pub'})" in capsys.readouterr().out
    factory.write("keys/app.pub", "not a key\n")
    assert verify(registry, digest, None, root=factory.root) == 1
    assert capsys.readouterr().err.startswith(f"error: {factory.root / 'keys/app.pub'}: not a PEM public key")
    assert verify(registry, digest, factory.root / "missing.pub") == 1
    assert "cannot read the public key" in capsys.readouterr().err


def test_an_unreachable_registry_is_a_clear_error(tmp_path, capsys):
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(new_key()))
    digest = "sha256:" + "a" * 64
    args = ["verify", "--image", f"127.0.0.1:9/team/app@{digest}", "--key", str(pem)]
    assert main([*args, "--insecure-registry", "127.0.0.1:9"]) == 1
    assert "cannot reach 127.0.0.1:9" in capsys.readouterr().err


def test_a_digest_is_required(tmp_path):
    pem = tmp_path / "cosign.pub"
    pem.write_bytes(public_pem(new_key()))
    with pytest.raises(FactoryError, match="give the digest to verify"):
        signatures.verify_image(RegistryClient(), parse_ref("ghcr.io/team/app:1"), signatures.read_public_key(pem))


def _real_cosign_signature() -> tuple[bytes, str, str]:
    """containers/image's stored signature: payload, signature, and the digest of the signed manifest."""
    stored = (REAL_COSIGN / "signature-1").read_bytes()
    prefix = b"\x00sigstore-json\n"
    assert stored.startswith(prefix)
    record = json.loads(stored[len(prefix) :])
    assert record["mimeType"] == signatures.SIMPLE_SIGNING
    digest = "sha256:" + hashlib.sha256((REAL_COSIGN / "manifest.json").read_bytes()).hexdigest()
    return base64.b64decode(record["payload"]), record["annotations"][signatures.SIGNATURE_ANNOTATION], digest


def test_a_signature_made_by_the_real_cosign_verifies_offline():
    data, signature, digest = _real_cosign_signature()
    key = signatures.read_public_key(REAL_COSIGN / "cosign.pub")
    assert signatures.check_signature(data, signature, key, digest) is None
    # The same checks refuse it for another digest, another key, or an altered payload.
    other = "sha256:" + "0" * 64
    assert signatures.check_signature(data, signature, key, other) == f"the signature is for {digest}, not {other}"
    stranger = signatures.load_public_key(public_pem(new_key()), "stranger.pub")
    assert "does not verify" in signatures.check_signature(data, signature, stranger, digest)
    assert "does not verify" in signatures.check_signature(data.replace(b"null", b"{}"), signature, key, digest)


def test_record_writes_the_outcome_to_state_either_way(signed, factory, capsys):
    registry, digest, _, pem = signed
    keyless = """  - name: keyless
            registry: ghcr.io
            repository: acme/keyless
            tag: "1"
            verify: {certificateIdentity: ci@acme.example, certificateOidcIssuer: https://issuer.example}
        """
    enrol(factory, registry, pem, keyless)
    assert main(["discover", "--root", str(factory.root)]) == 0
    unsigned, _ = registry.push_image("team/app", "2", "unsigned")
    capsys.readouterr()
    for pushed in (digest, unsigned):
        assert (
            main(["verify", "--root", str(factory.root), "--image", f"{registry.host}/team/app:1@{pushed}", "--record"])
            == 0
        )
    out = capsys.readouterr().out
    assert f"{registry.host}/team/app@{digest}: verified: signature 1 of 1 verifies with the key (recorded)" in out
    assert f"{registry.host}/team/app@{unsigned}: NOT verified: no signature" in out
    (state_file,) = (factory.root / "state/base-images").glob("127.0.0.1*.yaml")
    history = {e["digest"]: e["verification"] for e in yaml.safe_load(state_file.read_text())["runtime"]["history"]}
    assert history[digest]["verified"] is True
    assert history[unsigned]["verified"] is False and history[unsigned]["reason"].startswith("no signature")

    before = factory.snapshot()
    keyless = f"ghcr.io/acme/keyless:1@{digest}"
    assert main(["verify", "--root", str(factory.root), "--image", keyless, "--record"]) == 0
    assert "images.yaml verifies it keyless: left to Kargo's verification, nothing recorded" in capsys.readouterr().out
    assert factory.snapshot() == before
    assert main(["verify", "--root", str(factory.root), "--image", keyless]) == 1
    assert "images.yaml verifies it keyless; give the public key with --key FILE" in capsys.readouterr().err
