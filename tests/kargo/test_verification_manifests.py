"""Signature verification in the Kargo manifests: AnalysisTemplates, gated Freight, reporting Stages."""

from __future__ import annotations

import json
import sys

import pytest

from image_factory.discovery.discover import discover, load_model
from image_factory.enrolment.model import COSIGN_IMAGE
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError
from image_factory.kargo import names as kargo_names
from image_factory.trust.signatures import public_keys

from ..conftest import REPO_ROOT
from ..cosign_signer import new_key, public_pem
from ..kargo_model import Freight, HttpResponse, Image, run_promotion
from ..kargo_schemas import validate_object

sys.path.insert(0, str(REPO_ROOT / "cdk8s"))
import kargo_manifests

DIGEST = "sha256:" + "d" * 64
IMAGES_YAML = """
kargo: {factoryRepo: acme/factory, verifyRegistrySecret: pull-secret}
images:
  - name: app
    registry: ghcr.io
    repository: acme/app
    source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}
    test: {command: /app --self-test, analysisTemplates: [smoke-test]}
  - name: python
    registry: docker.io
    repository: library/python
    tag: 3.12-slim
    verify: {key: keys/python.pub, transparencyLog: false}
  - name: distroless
    registry: gcr.io
    repository: distroless/static
    tag: nonroot
    verify:
      certificateIdentity: keyless@distroless.iam.gserviceaccount.com
      certificateOidcIssuer: https://accounts.google.com
  - name: redis
    registry: docker.io
    repository: library/redis
    tag: "7"
    verify: {key: {secret: cosign-redis}, required: false}
  - name: worker
    registry: ghcr.io
    repository: acme/worker
    rebuildDelay: 2d
    source: {provider: local, repo: worker, dockerfile: Dockerfile, workflow: build.yml}
"""


@pytest.fixture
def objects(factory):
    factory.write("images.yaml", IMAGES_YAML)
    factory.write("keys/python.pub", public_pem(new_key()).decode())
    factory.write(
        "app/Dockerfile",
        "FROM python:3.12-slim AS build\nFROM gcr.io/distroless/static:nonroot\nCOPY --from=redis:7 /x /x\n",
    )
    factory.write("worker/Dockerfile", "FROM python:3.12-slim\nCOPY --from=redis:7 /x /x\n")
    discover(factory.root)
    config, state = load_model(factory.root)
    return kargo_manifests.factory_manifests(config, state, public_keys(config, factory.root))


def named(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def watched(ref):
    return kargo_names.watched_name(parse_ref(ref))


def test_every_generated_object_validates(objects):
    kinds = [o["kind"] for o in objects]
    assert kinds.count("AnalysisTemplate") == 3 and kinds.count("ConfigMap") == 1
    roles = [o["metadata"]["labels"][kargo_names.ROLE] for o in objects if o["kind"] == "Stage"]
    assert roles.count("soak") == 2 and roles.count("rebuild") == 3  # worker's; app's own on each base
    for body in objects:
        assert validate_object(body) == [], body["metadata"]["name"]


def test_required_verification_gates_the_recording_stage(objects):
    python = watched("python:3.12-slim")
    record = named(objects, "Stage", python)
    assert record["spec"]["verification"] == {
        "analysisTemplates": [{"name": f"verify-{python}"}],
        "args": [{"name": "digest", "value": "${{ imageFrom('docker.io/library/python').Digest }}"}],
    }
    rebuild = named(objects, "Stage", kargo_names.rebuild_name("app", python))
    assert rebuild["spec"]["requestedFreight"][0]["sources"]["stages"] == [python]  # only verified Freight
    soak = named(objects, "Stage", kargo_names.soak_name(python, "2d"))  # worker's
    assert soak["spec"]["requestedFreight"][0]["sources"] == {"stages": [python], "requiredSoakTime": "48h"}
    verified = named(objects, "Stage", f"{python}-verified")
    assert verified["spec"]["requestedFreight"][0]["sources"] == {"stages": [python]}
    # what the verified Stage reports, as Kargo evaluates and sends it
    freight = Freight("f" * 40, (Image("docker.io/library/python", "3.12-slim", DIGEST),))
    warehouses = {python: ["docker.io/library/python"]}
    secrets = {"image-factory-github": {"token": "t"}}
    result = run_promotion(
        verified, freight=freight, warehouses=warehouses, secrets=secrets, http=lambda _: HttpResponse(204)
    )
    assert json.loads(result.requests[0].body) == {
        "event_type": "base-image-verified",
        "client_payload": {"image": "docker.io/library/python:3.12-slim", "digest": DIGEST, "freight": "f" * 40},
    }


def test_a_key_file_becomes_a_config_map_mounted_into_a_pinned_cosign(objects, factory):
    python = watched("python:3.12-slim")
    key = named(objects, "ConfigMap", f"cosign-key-{python}")
    assert key["data"] == {"cosign.pub": factory.read("keys/python.pub")}
    template = named(objects, "AnalysisTemplate", f"verify-{python}")
    assert template["spec"]["args"] == [{"name": "digest"}]
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == COSIGN_IMAGE and "@sha256:" in COSIGN_IMAGE
    assert container["args"] == [
        "verify",
        "--key",
        "/cosign/cosign.pub",
        "--insecure-ignore-tlog=true",
        "docker.io/library/python@{{args.digest}}",
    ]
    assert {"name": "cosign-key", "configMap": {"name": f"cosign-key-{python}"}} in pod["volumes"]
    # Private registries: cosign reads a dockerconfigjson Secret, by name only.
    assert container["env"] == [{"name": "DOCKER_CONFIG", "value": "/docker"}]
    assert {"name": "registry-auth", "mountPath": "/docker", "readOnly": True} in container["volumeMounts"]


def test_keyless_and_secret_keys(objects):
    distroless = named(objects, "AnalysisTemplate", f"verify-{watched('gcr.io/distroless/static:nonroot')}")
    container = distroless["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "verify",
        "--certificate-identity",
        "keyless@distroless.iam.gserviceaccount.com",
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
        "gcr.io/distroless/static@{{args.digest}}",
    ]
    redis = named(objects, "AnalysisTemplate", f"verify-{watched('redis:7')}")
    volumes = redis["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]["volumes"]
    assert volumes[0] == {
        "name": "cosign-key",
        "secret": {"secretName": "cosign-redis", "items": [{"key": "cosign.pub", "path": "cosign.pub"}]},
    }


def test_advisory_verification_does_not_hold_rebuilds_back(objects):
    redis = watched("redis:7")
    assert "verification" not in named(objects, "Stage", redis)["spec"]
    advisory = named(objects, "Stage", f"{redis}-verify")
    assert advisory["spec"]["verification"]["analysisTemplates"] == [{"name": f"verify-{redis}"}]
    assert advisory["spec"]["requestedFreight"][0]["sources"] == {"stages": [redis]}
    verified = named(objects, "Stage", f"{redis}-verified")
    assert verified["spec"]["requestedFreight"][0]["sources"] == {"stages": [f"{redis}-verify"]}
    # worker soaks in the recording Stage, not behind the advisory verification
    soak = named(objects, "Stage", kargo_names.soak_name(redis, "2d"))
    assert soak["spec"]["requestedFreight"][0]["sources"] == {"stages": [redis], "requiredSoakTime": "48h"}


def test_no_credential_in_any_manifest(objects):
    text = json.dumps(objects)
    assert "PRIVATE KEY" not in text and "password" not in text.lower()
    assert "${{ secret('image-factory-github').token }}" in text  # tokens only by reference


def test_a_missing_or_broken_key_file_names_images_yaml(factory):
    factory.write("images.yaml", IMAGES_YAML)
    factory.write("app/Dockerfile", "FROM python:3.12-slim\n")
    factory.write("worker/Dockerfile", "FROM python:3.12-slim\n")
    discover(factory.root)
    config, _ = load_model(factory.root)
    with pytest.raises(FactoryError) as raised:
        public_keys(config, factory.root)
    assert str(raised.value).startswith("images.yaml:8: verify.key of 'python': cannot read keys/python.pub")
    factory.write("keys/python.pub", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(FactoryError, match=r"verify\.key of 'python': keys/python\.pub: not a PEM public key"):
        public_keys(config, factory.root)


def test_a_managed_image_s_own_analysis_verifies_its_rebuild_stages(objects):
    python = watched("python:3.12-slim")
    rebuild = named(objects, "Stage", kargo_names.rebuild_name("app", python))
    assert rebuild["spec"]["verification"] == {
        "analysisTemplates": [{"name": "smoke-test"}],
        "args": [
            {"name": "image", "value": "app"},
            {"name": "base", "value": "docker.io/library/python:3.12-slim"},
            {"name": "digest", "value": "${{ imageFrom('docker.io/library/python').Digest }}"},
        ],
    }
    assert validate_object(rebuild) == []
