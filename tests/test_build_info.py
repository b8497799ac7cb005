"""`build-info`: what the build workflow needs, and BuildKit contexts that pin every base."""

from __future__ import annotations

import json

import pytest

from image_factory.build_info import build_info, parse_pins
from image_factory.cli import main
from image_factory.discover import load_model
from image_factory.errors import FactoryError
from image_factory.refs import parse_ref

A, B, C = ("sha256:" + ch * 64 for ch in "abc")


@pytest.mark.parametrize(
    ("ref", "familiar"),
    [
        ("python:3.12-slim", "python:3.12-slim"),
        ("docker.io/library/python", "python"),
        ("bitnami/redis:7", "bitnami/redis:7"),
        ("ghcr.io/acme/app", "ghcr.io/acme/app"),
        ("ghcr.io/acme/app:1", "ghcr.io/acme/app:1"),
        ("localhost:5000/x:latest", "localhost:5000/x"),
        (f"gcr.io/distroless/static:nonroot@{A}", f"gcr.io/distroless/static:nonroot@{A}"),
    ],
)
def test_familiar_names_are_what_buildkit_matches(ref, familiar):
    assert parse_ref(ref).familiar == familiar


def test_every_base_is_pinned_by_the_name_the_dockerfile_uses(example_factory):
    _, state = load_model(example_factory.root)
    pins = {"docker.io/library/python:3.12-slim": A, "ghcr.io/acme-platform/python-service:1": B}
    info = build_info(state, "orders-api", pins)
    assert (info.context, info.dockerfile, info.tags, info.registry) == (
        "examples/orders-api",
        "examples/orders-api/Dockerfile",
        "ghcr.io/acme-platform/orders-api:latest",
        "ghcr.io",
    )
    assert info.build_contexts == (
        f"python:3.12-slim=docker-image://docker.io/library/python@{A}",
        f"ghcr.io/acme-platform/python-service:1=docker-image://ghcr.io/acme-platform/python-service@{B}",
    )
    pinned = build_info(state, "metrics-agent", {"gcr.io/distroless/static-debian12:nonroot": C})
    (context,) = pinned.build_contexts
    assert context.startswith("gcr.io/distroless/static-debian12:nonroot@sha256:6ec5aa99")  # as written, pin included
    assert context.endswith(f"=docker-image://gcr.io/distroless/static-debian12@{C}")


def test_cli_prints_github_outputs(example_factory, capsys):
    bases = json.dumps({"python:3.12-slim": A})
    assert main(["build-info", "--root", str(example_factory.root), "--image", "base-python", "--bases", bases]) == 0
    assert capsys.readouterr().out == (
        "context=examples/base-python\n"
        "dockerfile=examples/base-python/Dockerfile\n"
        "tags=ghcr.io/acme-platform/base-python:3.12\n"
        "registry=ghcr.io\n"
        "repository=ghcr.io/acme-platform/base-python\n"
        "structure-test=\n"
        f'bases={{"docker.io/library/python:3.12-slim": "{A}"}}\n'
        "build-contexts<<IMAGE_FACTORY_EOF\n"
        f"python:3.12-slim=docker-image://docker.io/library/python@{A}\n"
        "IMAGE_FACTORY_EOF\n"
        "test-command<<IMAGE_FACTORY_EOF\n"
        "python3 -c 'import ssl, sqlite3; print(ssl.OPENSSL_VERSION)'\n"
        "IMAGE_FACTORY_EOF\n"
    )


def test_a_structure_test_path_is_in_the_checkout(factory):
    factory.write(
        "images.yaml",
        """
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            source: {provider: github, repo: acme/app, dockerfile: docker/Dockerfile, workflow: build.yml}
            test: {structureTest: tests/structure.yaml}
        """,
    )
    assert main(["discover", "--root", str(factory.root)]) == 0
    _, state = load_model(factory.root)
    info = build_info(state, "app", {})
    assert (info.structure_test, info.test_command, info.repository) == ("tests/structure.yaml", "", "ghcr.io/acme/app")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "--bases: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("[]", "--bases: expected a JSON object of reference → digest"),
        ('{"Python": "sha256:1"}', "--bases: invalid image reference 'Python': repository name must be lowercase"),
        ('{"python": "sha256:1"}', "--bases: python: invalid digest 'sha256:1'"),
        ('{"python": 7}', "--bases: python: invalid digest '7'"),
    ],
)
def test_bad_pins_are_refused(text, message):
    with pytest.raises(FactoryError) as raised:
        parse_pins(text)
    assert str(raised.value) == message
    assert parse_pins("null") == {}


def test_one_base_pinned_by_kargo_the_others_by_default(example_factory, capsys):
    """A Kargo rebuild stage sends one base and the digest that soaked; the rest come from state."""
    soaked = "sha256:" + "e" * 64
    args = [
        "build-info",
        "--root",
        str(example_factory.root),
        "--image",
        "orders-api",
        "--base",
        f"python:3.12-slim={soaked}",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"python:3.12-slim=docker-image://docker.io/library/python@{soaked}" in out
    assert f'bases={{"docker.io/library/python:3.12-slim": "{soaked}"}}' in out  # python-service never built yet
    assert main([*args[:-2], "--base", "nope"]) == 1
    assert main(["build-info", "--root", str(example_factory.root), "--image", "ghost"]) == 1
