"""`build-info`: what the build workflow needs, and BuildKit contexts that pin every base."""

from __future__ import annotations

import json

import pytest

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError
from image_factory.rebuilds.build_info import build_info, parse_pins

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


def github_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT read as the runner reads it: `key=value`, or `key<<DELIMITER` … `DELIMITER`."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            body = []
            for row in lines:
                if row == delimiter:
                    break
                body.append(row)
            outputs[key] = "\n".join(body)
        else:
            key, value = line.split("=", 1)
            outputs[key] = value
    return outputs


def test_cli_prints_github_outputs(example_factory, capsys):
    bases = json.dumps({"python:3.12-slim": A})
    assert main(["build-info", "--root", str(example_factory.root), "--image", "base-python", "--bases", bases]) == 0
    assert github_outputs(capsys.readouterr().out) == {
        "context": "examples/base-python",
        "dockerfile": "examples/base-python/Dockerfile",
        "tags": "ghcr.io/acme-platform/base-python:3.12",
        "registry": "ghcr.io",
        "repository": "ghcr.io/acme-platform/base-python",
        "structure-test": "",
        "structure-test-image": "",
        "bases": f'{{"docker.io/library/python:3.12-slim": "{A}"}}',
        "already-built": "",
        "signing": "keyless",  # images.yaml's signing policy: the sign job follows it
        **dict.fromkeys(["sigstore-fulcio-url", "sigstore-rekor-url", "sigstore-tuf-mirror", "sigstore-tuf-root"], ""),
        "cache-from": "",  # source.buildCache: none unless asked for
        "cache-to": "",
        "build-contexts": f"python:3.12-slim=docker-image://docker.io/library/python@{A}",
        "build-args": "",
        "test-command": "python3 -c 'import ssl, sqlite3; print(ssl.OPENSSL_VERSION)'",
    }


def test_a_test_command_cannot_set_outputs_of_its_own(example_factory, capsys):
    """The heredoc delimiter is drawn at random per run, as GitHub's toolkit does."""
    forged = "true\nIMAGE_FACTORY_EOF\nghadelimiter_x\nrepository=evil.example/steal"
    text = example_factory.read("images.yaml").replace(
        "python3 -c 'import ssl, sqlite3; print(ssl.OPENSSL_VERSION)'", json.dumps(forged)
    )
    assert forged.splitlines()[0] != text  # the command was replaced
    example_factory.write("images.yaml", text)
    assert main(["discover", "--root", str(example_factory.root)]) == 0
    capsys.readouterr()
    runs = []
    for _ in range(2):
        args = [
            "--root",
            str(example_factory.root),
            "--image",
            "base-python",
            "--bases",
            json.dumps({"python:3.12-slim": A}),
        ]
        assert main(["build-info", *args]) == 0
        runs.append(capsys.readouterr().out)
    outputs = github_outputs(runs[0])
    assert outputs["test-command"] == forged and outputs["repository"] == "ghcr.io/acme-platform/base-python"
    delimiters = [next(line.split("<<")[1] for line in run.splitlines() if "<<" in line) for run in runs]
    assert delimiters[0] != delimiters[1] and all(d.startswith("ghadelimiter_") for d in delimiters)


def test_build_args_reach_the_build(factory, capsys):
    factory.write(
        "images.yaml",
        """
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            source:
              provider: local
              repo: app
              dockerfile: Dockerfile
              workflow: build.yml
              buildArgs: {PYTHON_VERSION: "3.13", VARIANT: slim}
        """,
    )
    factory.write(
        "app/Dockerfile", "ARG PYTHON_VERSION=3.12\nARG VARIANT=alpine\nFROM python:${PYTHON_VERSION}-${VARIANT}\n"
    )
    discover(factory.root)
    pins = json.dumps({"python:3.13-slim": A})
    assert main(["build-info", "--root", str(factory.root), "--image", "app", "--bases", pins]) == 0
    outputs = github_outputs(capsys.readouterr().out)
    assert outputs["build-args"] == "PYTHON_VERSION=3.13\nVARIANT=slim"
    assert outputs["build-contexts"] == f"python:3.13-slim=docker-image://docker.io/library/python@{A}"


def test_a_structure_test_path_is_in_the_checkout(factory):
    factory.write(
        "images.yaml",
        """
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            source: {provider: github, repo: acme/app, dockerfile: docker/Dockerfile, workflow: build.yml}
            test: {structureTest: tests/structure.yaml, structureTestImage: "cst@sha256:%s"}
        """
        % ("c" * 64),
    )
    assert main(["discover", "--root", str(factory.root)]) == 0
    _, state = load_model(factory.root)
    info = build_info(state, "app", {})
    assert (info.structure_test, info.test_command, info.repository) == ("tests/structure.yaml", "", "ghcr.io/acme/app")
    assert info.structure_test_image == "cst@sha256:" + "c" * 64  # also under workflow_dispatch, with no input


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
    """A Kargo rebuild stage sends one base and the digest that soaked; the rest come from state,
    and a base with nothing to pin it to stops the build rather than float on its tag."""
    soaked, parent = "sha256:" + "e" * 64, "sha256:" + "f" * 64
    args = ["build-info", "--root", str(example_factory.root), "--image", "orders-api"]
    assert main([*args, "--base", f"python:3.12-slim={soaked}"]) == 1
    assert capsys.readouterr().err == (
        "error: orders-api: no digest to pin ghcr.io/acme-platform/python-service:1 to: python-service has no "
        "successful build yet (build it first, or give one with --bases or --base)\n"
    )
    both = [*args, "--base", f"python:3.12-slim={soaked}", "--base", f"ghcr.io/acme-platform/python-service:1={parent}"]
    assert main(both) == 0
    outputs = github_outputs(capsys.readouterr().out)
    assert f"python:3.12-slim=docker-image://docker.io/library/python@{soaked}" in outputs["build-contexts"]
    assert json.loads(outputs["bases"]) == {
        "docker.io/library/python:3.12-slim": soaked,
        "ghcr.io/acme-platform/python-service:1": parent,
    }
    assert main([*args, "--base", f"node:22={soaked}"]) == 1
    assert capsys.readouterr().err.startswith(
        "error: --base: docker.io/library/node:22: not a base of orders-api (its bases: "
    )
    assert main([*args, "--base", "nope"]) == 1
    assert main(["build-info", "--root", str(example_factory.root), "--image", "ghost"]) == 1


def test_bases_merge_with_what_the_next_build_would_use(example_factory, capsys):
    root = str(example_factory.root)
    record = ["record-update", "--root", root, "--image", "python:3.12-slim", "--digest", B]
    assert main([*record, "--seen-at", "2026-01-01T00:00:00Z"]) == 0
    args = ["build-info", "--root", root, "--image", "orders-api", "--now", "2026-02-01T00:00:00Z"]
    capsys.readouterr()
    assert main([*args, "--bases", json.dumps({"ghcr.io/acme-platform/python-service:1": C})]) == 0
    assert json.loads(github_outputs(capsys.readouterr().out)["bases"]) == {
        "docker.io/library/python:3.12-slim": B,  # past its delay in state
        "ghcr.io/acme-platform/python-service:1": C,  # given
    }


def test_a_re_sent_kargo_dispatch_of_a_build_that_happened_says_so(example_factory, capsys):
    """Kargo re-sends a dispatch GitHub answered with a 5xx, which GitHub may have acted on."""
    root = str(example_factory.root)
    pins = {"docker.io/library/python:3.12-slim": A}
    built = ["record-build", "--root", root, "--image", "base-python", "--result", "success", "--digest", B]
    assert main([*built, "--bases", json.dumps(pins), "--run-url", "https://github.com/acme/f/actions/runs/1"]) == 0
    capsys.readouterr()
    args = ["build-info", "--root", root, "--image", "base-python"]
    assert main([*args, "--base", f"python:3.12-slim={A}"]) == 0
    already = github_outputs(capsys.readouterr().out)["already-built"]
    assert (
        already
        == f"base-python was built on exactly these digests already ({B}, https://github.com/acme/f/actions/runs/1)"
    )
    assert main([*args, "--base", f"python:3.12-slim={C}"]) == 0  # a new digest is a new build
    assert github_outputs(capsys.readouterr().out)["already-built"] == ""
    assert main([*args, "--bases", json.dumps(pins)]) == 0  # asked for explicitly (a retry, a rollback)
    assert github_outputs(capsys.readouterr().out)["already-built"] == ""


@pytest.mark.parametrize(
    "nested", ["[" * 100_000 + "]" * 100_000, '{"python:3.12-slim": ' + "[" * 50_000 + "]" * 50_000 + "}"]
)
def test_bases_nested_past_any_reason_are_one_error(nested):
    with pytest.raises(FactoryError) as raised:
        parse_pins(nested)
    assert str(raised.value).startswith("--bases: ")


@pytest.mark.parametrize(
    ("kind", "cache_from", "cache_to"),
    [
        ("gha", "type=gha,scope=image-factory-app", "type=gha,scope=image-factory-app,mode=max"),
        (
            "registry",
            "type=registry,ref=ghcr.io/acme/app:buildcache",
            "type=registry,ref=ghcr.io/acme/app:buildcache,mode=max",
        ),
    ],
)
def test_a_build_cache_is_opt_in_per_image(factory, capsys, kind, cache_from, cache_to):
    factory.write(
        "images.yaml",
        f"""
        kargo: {{factoryRepo: acme/factory}}
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml, buildCache: {kind}}}
        """,
    )
    factory.write("app/Dockerfile", "FROM scratch\n")
    discover(factory.root)
    assert main(["build-info", "--root", str(factory.root), "--image", "app", "--bases", "{}"]) == 0
    out = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if line.startswith("cache-"))
    assert out == {"cache-from": cache_from, "cache-to": cache_to}


def test_a_digest_recorded_but_not_yet_eligible_is_named_with_when_it_will_be(example_factory, capsys):
    """Not "none recorded in state yet": the digest is there, and the delay says when it may be used."""
    root = example_factory.root
    python = "docker.io/library/python:3.12-slim"
    seen = "sha256:" + "9" * 64
    assert (
        main(
            [
                "record-update",
                "--root",
                str(root),
                "--image",
                python,
                "--digest",
                seen,
                "--seen-at",
                "2026-11-20T00:00:00Z",
            ]
        )
        == 0
    )
    capsys.readouterr()
    now = ["--now", "2026-11-22T00:00:00Z"]
    assert main(["build-info", "--root", str(root), "--image", "base-python", *now]) == 1
    assert capsys.readouterr().err == (
        f"error: base-python: no digest to pin {python} to: its newest digest {seen}, first seen "
        "2026-11-20T00:00:00Z, becomes eligible at 2026-11-27T00:00:00Z (the 7d delay; `expedite` skips it), "
        "or give one with --bases or --base\n"
    )
