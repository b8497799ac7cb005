"""State commits against real git repositories: racing writers, re-applied edits, no duplicates."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import responses
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover
from image_factory.state import gitops
from image_factory.state.files import apply_changes

from ..conftest import commit, git

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


IMAGE_FACTORY = Path(sys.executable).parent / "image-factory"
NODE = "docker.io/library/node:22-slim"


def at(minutes: int) -> str:
    return (SEEN + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def burst() -> list[tuple[str, list[str]]]:
    """50 events as events.yml receives them in a burst (Kargo refreshes many Warehouses at once,
    builds report together): a label each, and the command that records it."""
    events = [
        (f"py-{i}", ["record-update", "--image", "python:3.12-slim", "--digest", digest(f"py-{i}"), "--seen-at", at(i)])
        for i in range(40)
    ]
    events += [
        (f"node-{i}", ["record-update", "--image", "node:22-slim", "--digest", digest(f"node-{i}"), "--seen-at", at(i)])
        for i in range(5)
    ]
    events += [
        (
            f"app-{i}",
            [
                "record-build",
                "--image",
                "app",
                "--result",
                "success",
                "--digest",
                digest(f"app-{i}"),
                "--base",
                f"{PYTHON}={digest(f'py-{i}')}",
                "--finished-at",
                at(60 + i),
            ],
        )
        for i in range(5)
    ]
    return events


@pytest.mark.slow
def test_a_burst_of_50_events_racing_to_push_all_land(tmp_path):
    """50 real processes, each in its own clone, started together and all pushing state to one
    bare origin: each is rejected by the others' pushes until its turn, re-applies its edit on
    the new tip and lands. Every process succeeds and every event is in origin's state."""
    seed = tmp_path / "seed"
    (seed / "app").mkdir(parents=True)
    (seed / "web").mkdir()
    (seed / "images.yaml").write_text(
        "kargo: {factoryRepo: acme/factory}\nimages:\n"
        "  - {name: app, registry: ghcr.io, repository: acme/app,"
        " source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}\n"
        "  - {name: web, registry: ghcr.io, repository: acme/web,"
        " source: {provider: local, repo: web, dockerfile: Dockerfile, workflow: build.yml}}\n"
    )
    (seed / "app" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    (seed / "web" / "Dockerfile").write_text("FROM node:22-slim\n")
    discover(seed)
    git(seed, "init", "--quiet", "--initial-branch=main")
    commit(seed, "seed")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(origin))
    events = burst()
    for index in range(len(events)):
        git(tmp_path, "clone", "--quiet", str(origin), f"clone-{index}")

    racers = [
        subprocess.Popen(
            [str(IMAGE_FACTORY), *command, "--root", str(tmp_path / f"clone-{index}"), "--push"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index, (_, command) in enumerate(events)
    ]
    outputs = [racer.communicate(timeout=300)[0] for racer in racers]
    failed = [
        (label, out) for (label, _), racer, out in zip(events, racers, outputs, strict=True) if racer.returncode != 0
    ]
    assert not failed, f"{len(failed)} of {len(events)} events failed; the first: {failed[0]}"

    git(tmp_path, "clone", "--quiet", str(origin), "check")
    check = tmp_path / "check"
    bases = {yaml.safe_load(p.read_text())["ref"]: p for p in (check / "state" / "base-images").glob("*.yaml")}
    python = yaml.safe_load(bases[PYTHON].read_text())["runtime"]["history"]
    node = yaml.safe_load(bases[NODE].read_text())["runtime"]["history"]
    app = yaml.safe_load((check / "state" / "images" / "app.yaml").read_text())["runtime"]
    assert {entry["digest"] for entry in python} == {digest(f"py-{i}") for i in range(40)}
    assert {entry["digest"] for entry in node} == {digest(f"node-{i}") for i in range(5)}
    assert {attempt["digest"] for attempt in app["attempts"]} == {digest(f"app-{i}") for i in range(5)}
    assert len(git(check, "log", "--format=%s").splitlines()) == len(events) + 1  # one commit per event


def test_the_push_token_reaches_git_in_its_environment_only(remote_and_clones, monkeypatch):
    """With IMAGE_FACTORY_GIT_TOKEN, git's fetch and push get the auth header for exactly the
    remote's URL (GitHub Enterprise's too) as GIT_CONFIG_* variables, after any the caller set:
    not on a command line, not in .git/config, and the token variable itself is not passed on."""
    _, a, _ = remote_and_clones
    url = "https://github.example.com/acme/factory"
    git(a, "remote", "set-url", "origin", url)
    monkeypatch.setenv("IMAGE_FACTORY_GIT_TOKEN", "ghs_example")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.quotepath")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "false")
    env = gitops.auth_environment(a, "origin")
    assert "IMAGE_FACTORY_GIT_TOKEN" not in env
    header = gitops.run_git(a, "config", "--get", f"http.{url}.extraheader", env=env).stdout.strip()
    assert header == "AUTHORIZATION: basic " + base64.b64encode(b"x-access-token:ghs_example").decode()
    assert gitops.run_git(a, "config", "--get", "core.quotepath", env=env).stdout.strip() == "false"
    assert "extraheader" not in (a / ".git" / "config").read_text()
    monkeypatch.delenv("IMAGE_FACTORY_GIT_TOKEN")
    assert gitops.auth_environment(a, "origin") is None  # no token: git's own credentials


def note(root) -> None:
    """A state file written the tool's way (only what the tool writes is committed)."""
    apply_changes({root / "state" / "note.yaml": "x: 1\n"}, root / "state" / ".journal")


def test_a_push_refused_for_another_reason_fails_at_once(remote_and_clones, tmp_path):
    """Only a lost race is retried: a remote that refuses the push (here a hook, as a protected
    branch would) is one clear error after one try, not minutes of backoff."""
    origin, a, _ = remote_and_clones
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: pushes need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    note(a)
    waits: list[float] = []
    with pytest.raises(gitops.FactoryError) as raised:
        gitops.commit_and_push(a, "state: note", lambda: None, sleep=waits.append)
    assert waits == []
    assert "push to origin/main failed:" in str(raised.value)
    assert "protected branch: pushes need a review" in str(raised.value)


def test_a_push_that_fails_for_a_passing_reason_is_tried_again(remote_and_clones):
    """The remote is away for a moment (here: moved, as a dropped connection or a 502 would be):
    the event already got its answer and this checkout is thrown away with the run, so the push
    is tried again after a wait instead of losing the recorded event."""
    origin, a, _ = remote_and_clones
    away = origin.with_name("away.git")
    origin.rename(away)
    note(a)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        away.rename(origin)  # back again

    pushed = gitops.commit_and_push(a, "state: note", lambda: note(a), sleep=wait)
    assert len(waits) == 1 and pushed == git(origin, "rev-parse", "main")


def test_push_commits_only_what_the_tool_wrote_never_what_was_staged(remote_and_clones):
    """An operator's staged edit stays staged and out of the state commit; so does an editor's
    backup beside a state file."""
    origin, a, _ = remote_and_clones
    (a / "README.md").write_text("my draft\n")
    git(a, "add", "README.md")
    note(a)
    backup = a / "state" / "note.yaml~"
    backup.write_text("x: 0\n")
    assert gitops.commit_and_push(a, "state: note", lambda: None) is not None
    assert git(a, "show", "--name-only", "--format=", "HEAD").splitlines() == ["state/note.yaml"]
    assert git(a, "diff", "--cached", "--name-only").splitlines() == ["README.md"]  # still staged, not pushed
    assert "README.md" not in git(origin, "ls-tree", "--name-only", "main").splitlines()
    assert backup.exists()


@pytest.mark.parametrize(
    "mess, says",
    [
        ("staged", "the checkout has changes of its own (README.md)"),
        ("edited", "the checkout has changes of its own (app/Dockerfile)"),
        ("committed", "main has 1 commit(s) origin/main does not"),
        ("detached", "HEAD is detached"),
    ],
)
def test_push_refuses_up_front_a_checkout_a_lost_race_could_cost_its_work(remote_and_clones, mess, says, capsys):
    """--push resets the branch to the remote's when it loses a race: it refuses, before writing
    anything, a checkout whose work that reset would take, and one it could never push."""
    _, a, b = remote_and_clones
    assert record(b, "from-b") == 0  # a is behind: its push would lose the race
    capsys.readouterr()
    if mess == "staged":
        (a / "README.md").write_text("draft\n")
        git(a, "add", "README.md")
    elif mess == "edited":
        (a / "app" / "Dockerfile").write_text("FROM python:3.13-slim\n")
    elif mess == "committed":
        (a / "notes.txt").write_text("mine\n")
        commit(a, "my own commit")
    else:
        git(a, "checkout", "--quiet", "--detach")
    before = {path: path.read_bytes() for path in a.rglob("*") if path.is_file() and ".git" not in path.parts}
    head = git(a, "rev-parse", "HEAD")
    assert record(a, "from-a") == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    after = {path: path.read_bytes() for path in a.rglob("*") if path.is_file() and ".git" not in path.parts}
    assert after == before and git(a, "rev-parse", "HEAD") == head  # nothing written, nothing lost


def test_a_lost_race_keeps_untracked_files_and_the_other_writers_edit(remote_and_clones):
    origin, a, b = remote_and_clones
    assert record(b, "from-b") == 0
    mine = a / "state" / "images" / "draft.yaml~"
    mine.write_text("an editor's backup\n")
    assert record(a, "from-a") == 0
    assert mine.read_text() == "an editor's backup\n"
    git(origin.parent, "clone", "--quiet", str(origin), "check")
    assert sorted(history(origin.parent / "check")) == sorted([digest("from-a"), digest("from-b")])
