"""State commits against real git repositories: racing writers, re-applied edits, no duplicates."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import responses
import yaml

from image_factory.cli import main
from image_factory.discover import discover

from .conftest import git

PYTHON = "docker.io/library/python:3.12-slim"
SEEN = datetime(2026, 11, 1, tzinfo=UTC)


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def history(clone) -> list[str]:
    for path in (clone / "state" / "base-images").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if data["ref"] == PYTHON:
            return [entry["digest"] for entry in data["runtime"]["history"]]
    raise AssertionError("no python state")


@pytest.fixture
def remote_and_clones(tmp_path):
    """A factory pushed to a bare 'origin', and two independent clones of it."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "images.yaml").write_text(
        "kargo: {factoryRepo: acme/factory}\nimages:\n"
        "  - {name: app, registry: ghcr.io, repository: acme/app,"
        " source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}\n"
    )
    (seed / "app").mkdir()
    (seed / "app" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    discover(seed)
    git(seed, "init", "--quiet", "--initial-branch=main")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "seed")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(origin))
    clones = []
    for name in ("a", "b"):
        git(tmp_path, "clone", "--quiet", str(origin), name)
        clones.append(tmp_path / name)
    return origin, *clones


def record(clone, label, *extra) -> int:
    return main(
        [
            "record-update",
            "--root",
            str(clone),
            "--image",
            "python:3.12-slim",
            "--digest",
            digest(label),
            "--seen-at",
            SEEN.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--push",
            *extra,
        ]
    )


def test_a_rejected_push_is_retried_on_top_of_the_other_writer(remote_and_clones, capsys):
    origin, a, b = remote_and_clones
    assert record(b, "from-b") == 0
    assert record(a, "from-a") == 0  # a is stale: its first push is rejected, the edit re-applied
    assert "pushed" in capsys.readouterr().out
    fresh = origin.parent / "check"
    git(origin.parent, "clone", "--quiet", str(origin), "check")
    assert sorted(history(fresh)) == sorted([digest("from-a"), digest("from-b")])
    log = git(fresh, "log", "--format=%s").splitlines()
    assert len(log) == 3 and log[-1] == "seed"
    assert all(line.startswith("state: docker.io/library/python:3.12-slim has a new digest") for line in log[:2])


def test_the_same_event_twice_pushes_nothing(remote_and_clones, capsys):
    _, a, _ = remote_and_clones
    assert record(a, "once") == 0
    assert record(a, "once") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "nothing to push: state already had it"


@responses.activate
def test_dispatch_retry_re_records_the_attempt_without_calling_github_again(remote_and_clones, monkeypatch):
    origin, a, b = remote_and_clones
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_example")
    url = "https://api.github.com:443/repos/acme/factory/actions/workflows/build.yml/dispatches"
    responses.add(responses.POST, url, status=204)
    now = (SEEN + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for clone in (a, b):
        git(clone, "pull", "--quiet")
    assert record(b, "py-1") == 0
    git(a, "pull", "--quiet")
    assert (
        main(
            [
                "record-update",
                "--root",
                str(b),
                "--image",
                "python:3.12-slim",
                "--digest",
                digest("py-0"),
                "--seen-at",
                "2026-10-01T00:00:00Z",
                "--push",
            ]
        )
        == 0
    )
    # a has py-1 but not b's second push: its dispatch push is rejected and re-applied
    assert main(["dispatch", "--root", str(a), "--now", now, "--push"]) == 0
    assert len(responses.calls) == 1
    fresh = origin.parent / "check"
    git(origin.parent, "clone", "--quiet", str(origin), "check")
    state = yaml.safe_load((fresh / "state" / "images" / "app.yaml").read_text())
    assert [(x["result"], x["baseDigests"]) for x in state["runtime"]["attempts"]] == [
        ("pending", {PYTHON: digest("py-1")})
    ]
    assert digest("py-0") in history(fresh)
