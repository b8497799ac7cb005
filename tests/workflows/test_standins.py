"""The test infrastructure on its own: a real Docker engine, a real registry, and the stand-ins of the
actions build.yml pins, run by act. A tiny workflow builds a 2-line Dockerfile whose base is pinned
by a build-contexts line, pushes it by digest, runs it, signs it with a key and tags it."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import textwrap

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ..conftest import commit, git
from ..cosign_signer import new_key, payload
from ..registry_server import OCI_INDEX, OCI_MANIFEST, Registry
from ..standins import TOOL, StandIns, run_act

WORKFLOW = """
name: standins
on: workflow_dispatch
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      digest: ${{ steps.build.outputs.digest }}
    steps:
      - uses: CHECKOUT
        with:
          persist-credentials: false
      - uses: CHECKOUT
        with:
          repository: acme/factory
          ref: main
          path: .factory
      - uses: SETUP_PYTHON
        with:
          python-version: "3.12"
      - run: test -f .factory/images.yaml && python -c 'import sys; assert sys.prefix != sys.base_prefix'
      - uses: SETUP_BUILDX
      - uses: LOGIN
        with:
          registry: @REGISTRY@
          username: ci
          password: ${{ secrets.REGISTRY_PASSWORD }}
      - id: build
        uses: BUILD_PUSH
        with:
          context: .
          file: Dockerfile
          build-contexts: |
            busybox-base:pinned=docker-image://@REGISTRY@/base/busybox@@BASE@
          outputs: type=image,name=@REGISTRY@/team/app,push-by-digest=true,name-canonical=true,push=true
          provenance: mode=max
          sbom: true
      - run: docker run --rm --network none "@REGISTRY@/team/app@${{ steps.build.outputs.digest }}" cat /hello
  sign:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - uses: COSIGN_INSTALLER
        with:
          cosign-release: v2.4.1
      - uses: LOGIN
        with:
          registry: @REGISTRY@
          username: ci
          password: ${{ secrets.REGISTRY_PASSWORD }}
      - env:
          CANDIDATE: @REGISTRY@/team/app@${{ needs.build.outputs.digest }}
          COSIGN_PRIVATE_KEY: ${{ secrets.COSIGN_PRIVATE_KEY }}
        run: |
          cosign sign --yes --key env://COSIGN_PRIVATE_KEY "$CANDIDATE"
          cosign sign --yes "$CANDIDATE"
          docker buildx imagetools create --tag @REGISTRY@/team/app:1 "$CANDIDATE"
"""


@pytest.mark.slow
def test_a_workflow_builds_pushes_runs_signs_and_tags_with_the_standins(docker_engine, tmp_path):
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry", users={"ci": "s3cret"})
    try:
        docker_engine.docker("login", registry.host, "-u", "ci", "--password-stdin", stdin=b"s3cret")
        base = docker_engine.busybox_image(registry)
        app, factory = tmp_path / "app", tmp_path / "factory"
        (app / ".github" / "workflows").mkdir(parents=True)
        factory.mkdir()
        (factory / "images.yaml").write_text("images: []\n")
        standins = StandIns(tmp_path, {"acme/app": app, "acme/factory": factory})
        workflow = WORKFLOW.replace("@REGISTRY@", registry.host).replace("@BASE@", base)
        for placeholder, name in [
            ("CHECKOUT", "actions/checkout"),
            ("SETUP_PYTHON", "actions/setup-python"),
            ("SETUP_BUILDX", "docker/setup-buildx-action"),
            ("LOGIN", "docker/login-action"),
            ("BUILD_PUSH", "docker/build-push-action"),
            ("COSIGN_INSTALLER", "sigstore/cosign-installer"),
        ]:
            workflow = workflow.replace(f"uses: {placeholder}", f"uses: {standins.uses(name)}")
        (app / ".github" / "workflows" / "standins.yml").write_text(textwrap.dedent(workflow).lstrip())
        (app / "Dockerfile").write_text("FROM busybox-base:pinned\nRUN echo built-by-standin > /hello\n")
        git(app, "init", "--quiet", "--initial-branch=main")
        commit(app, "app")
        key = new_key()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()

        result = run_act(
            app,
            "workflow_dispatch",
            ".github/workflows/standins.yml",
            standins,
            "--env",
            "GITHUB_REPOSITORY=acme/app",
            "-s",
            "REGISTRY_PASSWORD",
            "-s",
            "COSIGN_PRIVATE_KEY",
            env={**docker_engine.env(), "REGISTRY_PASSWORD": "s3cret", "COSIGN_PRIVATE_KEY": pem},
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        assert "built-by-standin" in output

        # The records: what each stand-in received and did.
        checkouts = standins.records("actions/checkout")
        assert [(c["inputs"]["repository"], c["inputs"]["path"]) for c in checkouts] == [
            ("acme/app", ""),
            ("acme/factory", ".factory"),
        ]
        assert checkouts[0]["ref"] == standins.uses("actions/checkout").split("@")[1]
        assert checkouts[0]["inputs"]["persist-credentials"] == "false"
        assert standins.records("actions/setup-python")[0]["inputs"]["python-version"] == "3.12"
        logins = standins.records("docker/login-action")
        assert len(logins) == 2 and all(entry["logged_in"] for entry in logins)
        assert logins[0]["inputs"]["password"] == "sha256:" + hashlib.sha256(b"s3cret").hexdigest()
        (build,) = standins.records("docker/build-push-action")
        assert build["pinned"] == ["busybox-base:pinned"]
        assert build["dockerfile"].startswith(f"FROM {registry.host}/base/busybox@{base}\n")
        assert build["inputs"]["provenance"] == "mode=max" and build["pushed"] == [f"{registry.host}/team/app"]
        digest = build["digest"]
        assert standins.records("sigstore/cosign-installer")[0]["inputs"]["cosign-release"] == "v2.4.1"
        keyed, keyless = standins.records("cosign")
        assert keyed["argv"][:4] == ["sign", "--yes", "--key", "env://COSIGN_PRIVATE_KEY"]
        assert "COSIGN_PRIVATE_KEY" in keyed["env"] and len(keyed["signed"]) == 1
        assert keyless["argv"] == ["sign", "--yes", f"{registry.host}/team/app@{digest}"] and keyless["signed"] == []
        assert standins.records("docker buildx")[0]["argv"][:2] == ["imagetools", "create"]

        # The registry: an index (image + provenance) by digest, tagged only by the final step, signed.
        auth = ("ci", "s3cret")
        base_url = f"http://{registry.host}/v2/team/app"
        tags = requests.get(f"{base_url}/tags/list", auth=auth, timeout=10).json()["tags"]
        assert sorted(tags) == sorted(["1", digest.replace(":", "-") + ".sig"])
        index = requests.get(f"{base_url}/manifests/1", auth=auth, headers={"Accept": OCI_INDEX}, timeout=10)
        assert index.headers["Docker-Content-Digest"] == digest and json.loads(index.content)["mediaType"] == OCI_INDEX
        attestation = json.loads(index.content)["manifests"][1]
        assert attestation["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
        layers = requests.get(
            f"{base_url}/manifests/{attestation['digest']}", auth=auth, headers={"Accept": OCI_MANIFEST}, timeout=10
        ).json()["layers"]
        kinds = [layer["annotations"]["in-toto.io/predicate-type"] for layer in layers]
        assert kinds == ["https://slsa.dev/provenance/v0.2", "https://spdx.dev/Document"]
        provenance = requests.get(f"{base_url}/blobs/{layers[0]['digest']}", auth=auth, timeout=10).json()
        assert provenance["predicate"]["materials"][0]["digest"] == {"sha256": base.split(":")[1]}
        signature = requests.get(
            f"{base_url}/manifests/{digest.replace(':', '-')}.sig",
            auth=auth,
            headers={"Accept": OCI_MANIFEST},
            timeout=10,
        ).json()["layers"][0]
        data = payload(f"{registry.host}/team/app", digest)
        assert signature["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        raw = base64.b64decode(signature["annotations"]["dev.cosignproject.cosign/signature"])
        key.public_key().verify(raw, data, ec.ECDSA(hashes.SHA256()))
    finally:
        registry.stop()


def test_build_push_standin_pins_from_and_copy_from_as_buildkit_named_contexts_would():
    spec = importlib.util.spec_from_file_location("standin_tool", TOOL)
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    dockerfile = textwrap.dedent(
        """\
        ARG PY=3.12
        FROM python:${PY}-slim AS build
        COPY --from=docker.io/library/busybox:latest /bin/busybox /bb
        FROM build
        COPY --chown=1 --from=build /bb /bb
        """
    )
    contexts = {"python:3.12-slim": "r/python@sha256:1", "busybox": "r/busybox@sha256:2", "build": "r/x@sha256:3"}
    text, replaced = tool.pin_dockerfile(dockerfile, contexts, {})
    assert text.splitlines() == [
        "ARG PY=3.12",
        "FROM r/python@sha256:1 AS build",
        "COPY --from=r/busybox@sha256:2 /bin/busybox /bb",
        "FROM build",
        "COPY --chown=1 --from=build /bb /bb",
    ]
    assert replaced == ["python:3.12-slim", "docker.io/library/busybox:latest"]
    assert tool.pin_dockerfile(dockerfile, contexts, {"PY": "3.13"})[1] == ["docker.io/library/busybox:latest"]
