"""Large states load in two processes: the same model, the same errors, as one process gives."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from image_factory.discovery.discover import discover, load_model, read_discoveries
from image_factory.enrolment.config import load_config
from image_factory.errors import FactoryError
from image_factory.speed import parallel
from image_factory.state.store import load_state


def _tagged(function, *args):
    """`function(*args)` and the process that computed it."""
    return os.getpid(), function(*args)


class _Untag:
    def __init__(self, pending, pids: list[int]):
        self.pending, self.pids = pending, pids

    def result(self):
        pid, value = self.pending.result()
        self.pids.append(pid)
        return value


@pytest.fixture
def forking(monkeypatch):
    """Fork for any state, however small; the list collects the processes that did the work."""
    pids: list[int] = []
    real = parallel.background

    @contextmanager
    def background(function, *args, worthwhile=True):
        with real(_tagged, function, *args, worthwhile=worthwhile) as pending:
            yield _Untag(pending, pids)

    monkeypatch.setattr(parallel, "WORTHWHILE_FILES", 0)
    monkeypatch.setattr(parallel, "can_fork", lambda: True)  # fork works on one CPU too (Linux, as in CI)
    monkeypatch.setattr(parallel, "background", background)
    return pids


def test_two_processes_load_the_same_model(example_factory, forking):
    alone = (load_model(example_factory.root), load_state(example_factory.root))
    assert forking and all(pid != os.getpid() for pid in forking)
    forking.clear()
    parallel.WORTHWHILE_FILES = 10**9  # restored by monkeypatch
    assert (load_model(example_factory.root), load_state(example_factory.root)) == alone
    assert not forking or all(pid == os.getpid() for pid in forking)


def test_errors_in_either_half_are_all_reported(example_factory, forking):
    files = sorted((example_factory.root / "state/images").glob("*.yaml"))
    files[0].write_text(files[0].read_text().replace("runtime:", "runtimes:"))
    files[-1].write_text("name: [\n")
    with pytest.raises(FactoryError) as raised:
        load_model(example_factory.root)
    reported = {problem.file for problem in raised.value.problems}
    assert {f"state/images/{files[0].name}", f"state/images/{files[-1].name}"} <= reported
    assert forking


def test_discover_reads_dockerfiles_while_state_loads(example_factory, forking):
    before = example_factory.snapshot()
    outcome = discover(example_factory.root, full=True)
    assert forking and outcome.written == [] and example_factory.snapshot() == before


def test_dockerfiles_read_half_in_each_process_discover_the_same(example_factory, forking):
    config = load_config(example_factory.root)
    split: dict[str, dict] = {}
    found = read_discoveries(example_factory.root, config, None, read=split)
    assert forking and all(pid != os.getpid() for pid in forking)
    parallel.WORTHWHILE_FILES = 10**9  # restored by monkeypatch
    alone: dict[str, dict] = {}
    assert read_discoveries(example_factory.root, config, None, read=alone) == found
    assert alone == split and all(record["sha256"] for record in alone.values())
    (example_factory.root / "examples/web/Dockerfile").write_text("FROM\n")
    (example_factory.root / "examples/base-python/Dockerfile").unlink()
    parallel.WORTHWHILE_FILES = 0
    with pytest.raises(FactoryError) as raised:
        read_discoveries(example_factory.root, config, None)
    files = sorted(problem.file for problem in raised.value.problems)
    assert files == ["examples/web/Dockerfile", "images.yaml"]  # both halves' problems, the missing one by its line
