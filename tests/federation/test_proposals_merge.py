"""Forty teams' proposals cut from one commit and merged one after the other with plain `git
merge`, in three orders: no conflict, and once the default branch derives the fleet-wide files
(synth.yml's `discover --full`), the state one discover of all forty changes would write."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from image_factory.cli import main
from image_factory.federation.proposal import propose

from ..conftest import commit, git

pytestmark = pytest.mark.slow  # forty proposals, three orders of forty merges

TEAMS = 40
POOL = [
    "docker.io/library/python:3.12-slim",
    "docker.io/library/node:22-bookworm-slim",
    "docker.io/library/alpine:3.20",
    "docker.io/library/debian:12",
    "docker.io/library/eclipse-temurin:21-jre",
]
BUILDER = "docker.io/library/golang:1.23-bookworm"


def team(number: int) -> str:
    return f"team-{number:02d}"


def dockerfile(number: int, changed: bool) -> str:
    """Each team's Dockerfile before and after its change. After: every eighth team adds a base
    of its own, teams 1 and 2 move to one new shared base, multi-stage teams (every fourth) drop
    their build stage, the rest move to another base of the pool."""
    base = POOL[number % len(POOL)]
    if not changed:
        if number % 4 == 0:
            return f"FROM {BUILDER} AS build\nRUN make\nFROM {base}\nCOPY --from=build /out /app\n"
        return f"FROM {base}\nCOPY . /app\n"
    if number in (1, 2):
        return "FROM docker.io/library/rust:1.82-slim\nCOPY . /app\n"
    if number % 8 == 0:
        return f"FROM docker.io/library/busybox:1.{30 + number}\nCOPY . /app\n"
    if number % 4 == 0:
        return f"FROM {base}\nCOPY . /app\n"
    return f"FROM {POOL[(number + 1) % len(POOL)]}\nCOPY . /app\n"


def checkouts(folder, changed: bool):
    """Every team repository's checkout, as discover --source-root reads them (OWNER/NAME/)."""
    for number in range(TEAMS):
        repo = folder / "acme" / team(number)
        repo.mkdir(parents=True)
        (repo / "Dockerfile").write_text(dockerfile(number, changed))
    return folder


def state(root) -> dict[str, str]:
    """The state files, but discovered.json (it records the Dockerfiles a discover read: the
    team checkouts where they were given)."""
    files = sorted((root / "state").rglob("*"))
    return {str(p.relative_to(root)): p.read_text() for p in files if p.is_file() and p.name != "discovered.json"}


def test_forty_proposals_merge_in_any_order_without_a_conflict(tmp_path):
    factory = tmp_path / "factory"
    factory.mkdir()
    lines = ["kargo: {factoryRepo: acme/factory}", 'trust: {senders: ["kargo[bot]"]}', "images:"]
    for number in range(TEAMS):
        lines += [
            f"  - name: {team(number)}",
            "    registry: ghcr.io",
            f"    repository: acme/{team(number)}",
            f"    source: {{provider: github, repo: acme/{team(number)}, dockerfile: Dockerfile, workflow: build.yml}}",
        ]
    (factory / "images.yaml").write_text("\n".join(lines) + "\n")
    before = checkouts(tmp_path / "before", changed=False)
    assert main(["discover", "--root", str(factory), "--source-root", str(before)]) == 0
    git(factory, "init", "--quiet", "--initial-branch=main")
    commit(factory, "forty teams")
    cut = git(factory, "rev-parse", "HEAD")

    # Each team's proposal, cut from the same commit: its own images' files only.
    after = checkouts(tmp_path / "after", changed=True)
    for number in range(TEAMS):
        found = propose(factory, f"acme/{team(number)}", after / "acme" / team(number))
        assert sorted(found.files) == [f"state/images/{team(number)}.yaml"], found.files
        git(factory, "checkout", "--quiet", "-b", f"proposal-{number}", cut)
        for path, text in found.files.items():
            (factory / path).write_text(text)
        commit(factory, f"Image Factory: bases of acme/{team(number)}")
    git(factory, "checkout", "--quiet", "main")
    # Meanwhile the events workflow records on main: a build report in a team's own file.
    build = ["record-build", "--root", str(factory), "--image", team(5), "--result", "failure"]
    assert main([*build, "--error", "the test failed", "--finished-at", "2026-11-02T10:00:00Z"]) == 0
    commit(factory, "state: image-built team-05")

    # One discover of all forty changes at once, then the derived files as synth.yml leaves them.
    expected_root = tmp_path / "expected"
    shutil.copytree(factory, expected_root)
    assert main(["discover", "--root", str(expected_root), "--source-root", str(after)]) == 0
    assert main(["discover", "--root", str(expected_root), "--full"]) == 0
    expected = state(expected_root)

    for order in range(3):
        work = tmp_path / f"order-{order}"
        git(tmp_path, "clone", "--quiet", str(factory), str(work))
        numbers = list(range(TEAMS))
        random.Random(order).shuffle(numbers)
        for number in numbers:
            merged = subprocess.run(
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "merge", "--no-edit", f"origin/proposal-{number}"],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            assert merged.returncode == 0, (order, number, merged.stdout + merged.stderr)
        assert main(["discover", "--root", str(work), "--full"]) == 0  # synth.yml, after the merges
        assert state(work) == expected, order
        assert main(["discover", "--root", str(work), "--check"]) == 0
        assert main(["validate", "--root", str(work)]) == 0
