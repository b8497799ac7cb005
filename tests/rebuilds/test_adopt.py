"""`image-factory adopt`: an image that runs already, recorded with what it is built on, from its
provenance (BuildKit's attestation manifest), its OCI base labels, or the operator's word, in a
real registry."""

from __future__ import annotations

import json

import pytest
import yaml

from image_factory.cli import main

from ..registry_server import OCI_INDEX, OCI_MANIFEST

PYTHON = "docker.io/library/python:3.12-slim"
PY_DIGEST = "sha256:" + "1" * 64
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def app_factory(root, registry, dockerfile: str):
    """A factory with `app` (a local source, `dockerfile`) in `registry`, tag 1, discovered."""
    (root / "app").mkdir(parents=True)
    (root / "app/Dockerfile").write_text(dockerfile)
    (root / "images.yaml").write_text(
        f"""kargo: {{factoryRepo: acme/factory}}
trust: {{senders: ["kargo[bot]"]}}
insecureRegistries: ["{registry.host}"]
images:
  - name: app
    registry: "{registry.host}"
    repository: acme/app
    tag: "1"
    source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
"""
    )
    assert main(["discover", "--root", str(root)]) == 0
    return root


@pytest.fixture
def factory(tmp_path, registry):
    return app_factory(tmp_path / "factory", registry, f"FROM {PYTHON}\nCOPY . /app\n")


def push(registry, body: dict, media_type: str, tag: str) -> tuple[str, int]:
    data = json.dumps(body).encode()
    return registry._manifest("acme/app", tag, data, media_type), len(data)


def image(registry, labels: dict, tag: str) -> dict:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels}}).encode()
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": registry._blob("acme/app", config), "size": len(config)},
        "layers": [],
    }
    digest, size = push(registry, body, OCI_MANIFEST, tag)
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "platform": {"os": "linux", "architecture": "amd64"},
    }


def with_provenance(registry, materials: list[dict]) -> str:
    """An index as buildx pushes it: the image, and an attestation manifest whose SLSA provenance
    lists the build's materials; tagged 1, the image's tag."""
    app = image(registry, {}, "plain")
    statement = json.dumps(
        {"predicateType": "https://slsa.dev/provenance/v0.2", "predicate": {"materials": materials}}
    ).encode()
    unknown = json.dumps({"architecture": "unknown", "os": "unknown"}).encode()
    attestation = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": registry._blob("acme/app", unknown), "size": len(unknown)},
        "layers": [
            {
                "mediaType": "application/vnd.in-toto+json",
                "digest": registry._blob("acme/app", statement),
                "size": len(statement),
                "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            }
        ],
    }
    digest, size = push(registry, attestation, OCI_MANIFEST, "attestation")
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": app["digest"],
        },
    }
    index, _ = push(registry, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [app, entry]}, OCI_INDEX, "1")
    return index


def last_build(root) -> dict:
    return yaml.safe_load((root / "state/images/app.yaml").read_text())["runtime"]["lastBuild"]


def test_an_image_built_with_provenance_is_adopted_on_the_bases_it_names(factory, registry, capsys):
    material = {
        "uri": "pkg:docker/docker.io/library/python@3.12-slim?platform=linux%2Famd64",
        "digest": {"sha256": "1" * 64},
    }
    index = with_provenance(registry, [material])
    assert main(["adopt", "--root", str(factory), "--image", "app", "--at", "2026-11-01T00:00:00Z"]) == 0
    assert f"app: adopted {index} built on {PYTHON}@sha256:111111111111… (from provenance)" in capsys.readouterr().out
    built = last_build(factory)
    assert built["adopted"] is True and built["digest"] == index and built["baseDigests"] == {PYTHON: PY_DIGEST}
    assert built["finishedAt"] == "2026-11-01T00:00:00Z"  # as stated, never the config's `created`
    assert main(["validate", "--root", str(factory)]) == 0
    # a newer python digest makes it stale, as for an image the factory built
    assert main(["record-update", "--root", str(factory), "--image", PYTHON, "--digest", "sha256:" + "2" * 64]) == 0
    capsys.readouterr()
    assert main(["status", "--root", str(factory)]) == 0
    assert f"app ← {PYTHON}: built on sha256:111111111111…" in capsys.readouterr().out
    assert main(["adopt", "--root", str(factory), "--image", "app"]) == 1  # only an image never built
    assert "has builds recorded already" in capsys.readouterr().err


def test_oci_base_labels_serve_when_there_is_no_provenance(factory, registry, capsys):
    image(
        registry, {"org.opencontainers.image.base.name": PYTHON, "org.opencontainers.image.base.digest": PY_DIGEST}, "1"
    )
    assert main(["adopt", "--root", str(factory), "--image", "app"]) == 0
    assert "(from labels)" in capsys.readouterr().out
    assert last_build(factory)["baseDigests"] == {PYTHON: PY_DIGEST}


def test_an_image_that_names_no_base_needs_the_operators_word(factory, registry, capsys):
    digest = image(registry, {}, "1")["digest"]
    before = (factory / "state/images/app.yaml").read_text()
    assert main(["adopt", "--root", str(factory), "--image", "app"]) == 1
    err = capsys.readouterr().err
    assert f"its provenance or labels (it has neither) name no digest of {PYTHON}, and no --base does" in err
    assert (factory / "state/images/app.yaml").read_text() == before
    given = ["--base", f"python:3.12-slim={PY_DIGEST}", "--digest", digest]
    assert main(["adopt", "--root", str(factory), "--image", "app", *given]) == 0
    assert "(from the operator)" in capsys.readouterr().out
    assert last_build(factory)["baseDigests"] == {PYTHON: PY_DIGEST}


def test_provenance_is_matched_by_tag_and_completed_by_the_operator(tmp_path, registry, capsys):
    """Two bases of one repository (python 3.11 and 3.12) and one the provenance does not name:
    each gets its own digest, the missing one the operator's; a --base that is no base, or a
    digest the registry does not hold, is refused."""
    dockerfile = "FROM python:3.11-slim AS old\nFROM golang:1.23 AS build\nFROM python:3.12-slim\n"
    root = app_factory(tmp_path / "factory", registry, dockerfile + "COPY --from=old /a /a\nCOPY --from=build /b /b\n")
    materials = [
        {"uri": "pkg:docker/docker.io/library/python@3.11-slim", "digest": {"sha256": "a" * 64}},
        {"uri": "pkg:docker/docker.io/library/python@3.12-slim", "digest": {"sha256": "b" * 64}},
    ]
    with_provenance(registry, materials)
    golang = "docker.io/library/golang:1.23"
    assert main(["adopt", "--root", str(root), "--image", "app", "--base", "pyhton:3.12=sha256:" + "c" * 64]) == 1
    assert "docker.io/library/pyhton:3.12: not a base of app" in capsys.readouterr().err
    assert main(["adopt", "--root", str(root), "--image", "app", "--digest", "sha256:" + "d" * 64]) == 1
    assert "is not in its registry" in capsys.readouterr().err
    assert main(["adopt", "--root", str(root), "--image", "app", "--base", f"{golang}=sha256:" + "e" * 64]) == 0
    assert "(from provenance and the operator)" in capsys.readouterr().out
    assert last_build(root)["baseDigests"] == {
        "docker.io/library/python:3.11-slim": "sha256:" + "a" * 64,
        PYTHON: "sha256:" + "b" * 64,
        golang: "sha256:" + "e" * 64,
    }
