"""The installed `image-factory` command: the `bases` contract and the bundled example."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image_factory.cli import main

from ..conftest import FIXTURES, REPO_ROOT

EXECUTABLE = shutil.which("image-factory", path=str(Path(sys.executable).parent))


def run(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    assert EXECUTABLE, "the console script is installed with the package (pip install -e .)"
    return subprocess.run([EXECUTABLE, *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_bases_json_contract():
    dockerfile = FIXTURES / "dockerfiles" / "arg-partially-unresolved-mixed" / "Dockerfile"
    result = run("bases", "--json", str(dockerfile))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "images": ["docker.io/library/golang:1.23"],
        "unresolved": ["${RUNTIME}"],
        "details": [
            {"ref": "docker.io/library/golang:1.23", "kind": "from", "stage": "build", "line": 3},
            {"ref": "${RUNTIME}", "kind": "from", "stage": "1", "line": 4, "unresolved": True},
        ],
    }


def test_bases_build_args_from_the_command_line(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE=python:3.11\nARG RUNTIME\nFROM ${BASE} AS build\nFROM ${RUNTIME}\n")
    result = run(
        "bases",
        "--json",
        "--build-arg",
        "BASE=python:3.13",
        "--build-arg",
        "RUNTIME=gcr.io/distroless/python3",
        str(dockerfile),
    )
    assert json.loads(result.stdout)["images"] == [
        "docker.io/library/python:3.13",
        "gcr.io/distroless/python3:latest",
    ]
    assert json.loads(result.stdout)["unresolved"] == []


def test_bases_text_output(tmp_path, capsys):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM node:22 AS build\nFROM nginx:1.27\nCOPY --from=build /a /b\n")
    assert main(["bases", str(dockerfile)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{dockerfile}:1: from docker.io/library/node:22 (stage build)",
        f"{dockerfile}:2: from docker.io/library/nginx:1.27 (stage 1)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bases", "missing/Dockerfile"], "error: missing/Dockerfile: file not found"),
        (["bases", "--build-arg", "NOVALUE", "Dockerfile"], "error: --build-arg: 'NOVALUE' is not NAME=VALUE"),
    ],
)
def test_bases_errors(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == message


def test_invalid_dockerfile_exits_non_zero_with_line(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM alpine\nFROM Ubuntu:24.04\n")
    result = run("bases", str(dockerfile))
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: {dockerfile}:2: invalid image reference 'Ubuntu:24.04': repository name must be lowercase\n"
    )


def test_usage_error_exits_2():
    assert run("discover", "--no-such-flag").returncode == 2


def test_bundled_example_state_is_current_and_valid(example_factory):
    """The committed state/ is exactly what discover produces from images.yaml and examples/."""
    result = run("discover", "--check", cwd=example_factory.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "state/ is up to date, nothing written" in result.stdout  # as the last discover read them
    result = run("discover", "--check", "--full", cwd=example_factory.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "State: 0 to write, 12 unchanged, 0 to remove." in result.stdout
    result = run("validate", cwd=example_factory.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: images.yaml (8 images) and state/ (5 managed, 7 watched) are valid\n"


def test_bundled_example_covers_what_the_readme_promises(example_factory):
    from image_factory.enrolment.config import load_config
    from image_factory.state.store import load_state

    config = load_config(example_factory.root)
    state = load_state(example_factory.root)
    assert len(config.external) >= 2
    managed_on_managed = {name: [b.image for b in image.base_images if b.image] for name, image in state.images.items()}
    assert managed_on_managed["orders-api"] == ["python-service"]
    assert managed_on_managed["python-service"] == ["base-python"]
    assert any(d.pinned_digest for base in state.base_images.values() for d in base.dependents)
    assert any(len({b.stage for b in image.base_images}) > 1 for image in state.images.values())


def test_discover_on_the_example_prints_a_readable_summary(example_factory):
    result = run("discover", "--full", cwd=example_factory.root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "images.yaml: 5 managed, 3 external images"
    assert "  orders-api      ghcr.io/acme-platform/orders-api:latest" in lines
    assert "                  ← ghcr.io/acme-platform/python-service:1 (managed image python-service, stage 1)" in lines
    distroless = next(line for line in lines if line.startswith("  gcr.io/distroless/static-debian12:nonroot "))
    assert "new digests of nonroot, signatures verified keyless; enrolled as distroless-static;" in distroless
    assert lines[-1] == "State: 0 written, 12 unchanged, 0 removed."


@pytest.mark.parametrize("command", [["plan"], ["graph", "--format", "dot"], ["status"], ["discover"]])
def test_a_reader_that_goes_away_ends_nothing_badly(example_factory, command):
    """`image-factory plan | head`: the reader closes the pipe before the tool writes; the tool
    finishes its work and exits 0 without a traceback, like other command-line tools."""
    process = subprocess.Popen(
        [sys.executable, "-m", "image_factory", *command, "--root", str(example_factory.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # before the interpreter has even started
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


def test_validate_before_the_first_discover_says_so(tmp_path, capsys):
    (tmp_path / "images.yaml").write_text(
        "images:\n  - {name: app, registry: ghcr.io, repository: acme/app,"
        " source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}\n"
    )
    assert main(["validate", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        "ok: images.yaml (1 images) is valid; there is no state/ yet: `image-factory discover` has not run here "
        "(it writes state/ from images.yaml and the Dockerfiles)\n"
    )


def test_an_events_words_in_an_error_never_reach_the_job_summary(example_factory, monkeypatch, capsys):
    """events.yml appends `plan --markdown` to $GITHUB_STEP_SUMMARY; the subject comes from the
    event. Its error, annotation included, goes to stderr: nothing of it becomes Markdown."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    subject = "x](https://evil.example) ![t](https://evil.example/t.png)"
    assert main(["plan", "--root", str(example_factory.root), "--markdown", "--base", subject]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "::error::" in err and "evil.example" in err
