"""`image-factory promote`: the tag moves to a pushed digest on a real registry, byte for byte."""

from __future__ import annotations

import hashlib

import requests

from image_factory.cli import main

from ..registry_server import OCI_INDEX

ACCEPT = f"{OCI_INDEX}, application/vnd.oci.image.manifest.v1+json"


def enrol(factory, host: str) -> None:
    factory.write(
        "images.yaml",
        f"""
        insecureRegistries: ["{host}"]
        images:
          - name: app
            registry: "{host}"
            repository: team/app
            tag: "1"
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
        """,
    )


def tagged(host: str) -> tuple[str, bytes]:
    answer = requests.get(f"http://{host}/v2/team/app/manifests/1", headers={"Accept": ACCEPT}, timeout=10)
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"], answer.content


def test_the_tag_moves_to_the_candidate_index_unchanged(factory, registry, capsys):
    """A multi-platform candidate pushed by digest only: the tag gets that very index."""
    enrol(factory, registry.host)
    old, _ = registry.push_image("team/app", "1", "old")
    candidate, platforms = registry.push_index("team/app", "candidate-scratch", "new")
    raw = requests.get(
        f"http://{registry.host}/v2/team/app/manifests/{candidate}", headers={"Accept": ACCEPT}, timeout=10
    ).content
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", candidate]) == 0
    assert capsys.readouterr().out == f"{registry.host}/team/app:1 → {candidate} (was {old})\n"
    digest, body = tagged(registry.host)
    assert digest == candidate and body == raw  # the same bytes: index, platforms, attestations
    assert hashlib.sha256(body).hexdigest() == candidate.split(":")[1]
    assert len(platforms) == 2


def test_a_digest_that_was_never_pushed_leaves_the_tag_alone(factory, registry, capsys):
    enrol(factory, registry.host)
    old, _ = registry.push_image("team/app", "1", "old")
    missing = "sha256:" + "0" * 64
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", missing]) == 1
    assert (
        capsys.readouterr().err
        == f"error: --digest: {registry.host}/team/app@{missing} is not in the registry: nothing to tag\n"
    )
    assert tagged(registry.host)[0] == old


def test_bad_requests_are_refused(factory, registry, capsys):
    enrol(factory, registry.host)
    assert main(["promote", "--root", str(factory.root), "--image", "ghost", "--digest", "sha256:" + "1" * 64]) == 1
    assert "'ghost' is not a managed image in images.yaml" in capsys.readouterr().err
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", "SHA256:abc"]) == 1
    assert "invalid digest" in capsys.readouterr().err
