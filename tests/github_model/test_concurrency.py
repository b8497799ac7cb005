"""A burst of 320 deliveries (300 events and 20 sent twice) through events.yml's jobs under GitHub's
concurrency rules (tests/github_model/concurrency.py): the design before the inbox (one run per
event, `queue: max`) loses every event past 100 waiting runs; the inbox loses none, and its state
is the state of applying the same events one by one. The jobs' work is the real drain."""

from __future__ import annotations

import os
import random
import shutil
from datetime import UTC, datetime

import pytest

from ..conftest import REPO_ROOT
from ..event_burst import START, burst, cosign_that_accepts, drain, snapshot
from .concurrency import QUEUE_MAX, Group, WorkflowSpec, simulate

pytestmark = pytest.mark.slow  # hundreds of drains of the real tool

EVENTS = REPO_ROOT / ".github/workflows/events.yml"
BEFORE = REPO_ROOT / "tests/fixtures/events-before-the-inbox.yml"


def test_the_models_groups_follow_githubs_documented_rules():
    rng = random.Random(0)
    single = Group("single", rng)
    assert single.admit("a") == (True, []) and single.admit("b") == (False, [])
    assert single.admit("c") == (False, ["b"])  # the pending one is cancelled for the newer one
    assert single.release() == "c" and single.release() is None
    full = Group("max", rng)
    assert full.admit("running")[0]
    assert all(full.admit(n) == (False, []) for n in range(QUEUE_MAX))
    assert full.admit("one too many") == (False, ["one too many"])
    started = {full.release() for _ in range(QUEUE_MAX)}
    assert started == set(range(QUEUE_MAX))  # every pending one runs, in no promised order


def seconds(event: dict) -> float:
    received = datetime.fromisoformat(event["receivedAt"].replace("Z", "+00:00"))
    return (received - START.astimezone(UTC)).total_seconds()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine") / "factory"
    root.mkdir()
    shutil.copy(REPO_ROOT / "images.yaml", root / "images.yaml")
    shutil.copytree(REPO_ROOT / "examples", root / "examples")
    shutil.copytree(REPO_ROOT / "state", root / "state")
    return root


@pytest.fixture(scope="module")
def events():
    return burst(11, size=300, duplicates=20)


@pytest.fixture(scope="module")
def one_by_one(pristine, events, tmp_path_factory):
    """The state after each event applied alone, in the order GitHub received them."""
    folder = tmp_path_factory.mktemp("one-by-one")
    root = folder / "factory"
    shutil.copytree(pristine, root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{cosign_that_accepts(folder / 'bin')}{os.pathsep}{os.environ['PATH']}")
        for number, event in enumerate(sorted(events, key=lambda e: (e["receivedAt"], e["id"]))):
            drain(root, [event], folder / f"event-{number}")
    return snapshot(root)


@pytest.fixture
def factory(pristine, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{cosign_that_accepts(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "factory"
    shutil.copytree(pristine, root)
    return root


def test_one_run_per_event_in_a_queue_of_100_loses_the_rest_of_a_burst(factory, events, one_by_one, tmp_path):
    spec = WorkflowSpec.parse(BEFORE.read_text())
    assert spec.group == "image-factory-state" and spec.queue == "max"
    applied: list[str] = []

    def handle(run, moment):
        if moment == "finish":
            drain(factory, [run.event], tmp_path / f"run-{run.number}")
            applied.append(run.event["id"])

    outcome = simulate(spec, [(seconds(e), e) for e in events], {"handle": handle}, lambda job, run: 90.0)
    lost = {e["id"] for e in events} - set(applied)
    assert outcome.cancelled_runs == len(lost) > 150  # past 100 waiting runs, GitHub cancels
    assert snapshot(factory) != one_by_one


@pytest.mark.parametrize("seed", [1, 2])
def test_the_inbox_loses_nothing_and_ends_as_one_by_one(factory, events, one_by_one, tmp_path, seed):
    spec = WorkflowSpec.parse(EVENTS.read_text())
    assert spec.group is None and spec.jobs["receive"].group is None
    assert spec.jobs["drain"].group == "image-factory-drain" and spec.jobs["drain"].needs == ("receive",)
    inbox: dict[str, dict] = {}
    taken: dict[int, dict[str, dict]] = {}
    drains: list[int] = []

    def receive(run, moment):
        if moment == "finish":  # the ref is pushed at the job's end
            inbox[run.event["id"]] = run.event

    def drain_job(run, moment):
        if moment == "start":  # the inbox as fetched when the drain starts
            taken[run.number] = dict(inbox)
            return
        batch = taken.pop(run.number)
        drain(factory, list(batch.values()), tmp_path / f"drain-{run.number}")
        drains.append(len(batch))
        for name in batch:  # deleted after the state was pushed
            inbox.pop(name, None)

    rng = random.Random(seed)
    outcome = simulate(
        spec,
        [(seconds(e), e) for e in events],
        {"receive": receive, "drain": drain_job},
        lambda job, run: rng.uniform(10, 30) if job == "receive" else rng.uniform(45, 120),
        seed=seed,
    )
    assert outcome.cancelled_runs == 0 and outcome.finished_jobs["receive"] == len(events)
    assert outcome.cancelled_jobs["drain"] > 0  # pending drains replaced by newer ones: harmless
    assert inbox == {} and sum(drains) == len(events) and len(drains) < 20
    assert snapshot(factory) == one_by_one
